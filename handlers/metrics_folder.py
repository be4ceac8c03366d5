"""prometheus-client's multiprocess folder kept small over thousands of worker restarts.

Each gunicorn worker writes its counters and histograms to files named for its pid
(`counter_<pid>.db`, `histogram_<pid>.db`) and a scrape reads every `*.db` file of the folder.
prometheus-client's own `mark_process_dead` removes only a dead worker's live gauges, so with
`GUNICORN_MAX_REQUESTS` replacing workers all the time the folder, and the time a scrape takes,
would grow without end. `compact` (server/gunicorn_conf.py's `child_exit`, in the master) merges
a dead worker's counter, histogram and summary files into one file per kind, `<kind>_0.db` (no
process has pid 0), and removes them. It lives here, beside the app's scrape (`scrape_lock`,
handlers/metrics.py), because the two share one lock protocol.

A scrape must never see a worker's counts twice (the merged file written, the dead file not yet
removed) nor miss them (the dead file removed, the merged file not yet in place), so the two
steps are one under an exclusive `flock` on `compaction.lock` in the folder, and a scrape reads
the folder under the shared side of the same lock (`scrape_lock`). Shared holders can overlap
forever (scrapes back to back), so a compaction first takes `compaction.gate`, which every scrape
passes through on its way to the lock: no new scrape starts while it waits for the running ones
to end. The merged file is written
beside its final name first (`<kind>_0.db.merging`: the collector reads `*.db` only) and moved in
with a rename; only the master writes it, and a dead worker's files no longer change, so the
merge itself needs no lock. Values are merged with prometheus-client's public
`MultiProcessCollector.merge(files, accumulate=False)` (its mode for writing merged values back to
a file) and written with its `MmapedDict`, the class its workers write with.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from typing import IO, Iterable, Iterator

LOCK_NAME = "compaction.lock"
GATE_NAME = "compaction.gate"
COMPACTED_PID = 0
# Gauges are left alone: the live ones go with their worker (mark_process_dead), and the others
# ("all", "max", ...) are per worker or need timestamps a merge does not keep.
SUMMED_KINDS = ("counter", "histogram", "summary")


@contextlib.contextmanager
def scrape_lock(folder: str) -> Iterator[None]:
    """Read the folder's files (a scrape) while no compaction swaps them."""
    with open(os.path.join(folder, GATE_NAME), "a") as gate, \
            open(os.path.join(folder, LOCK_NAME), "a") as lock:
        fcntl.flock(gate, fcntl.LOCK_EX)   # held for an instant, longer only by a compaction
        fcntl.flock(lock, fcntl.LOCK_SH)
        fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def compact(folder: str, dead_pids: Iterable[int], wait: float = 1.0) -> bool:
    """Merge the counter, histogram and summary files of the dead workers `dead_pids` into the
    folder's compacted files and remove them. False (nothing changed) when a scrape held the
    lock for `wait` seconds: the caller tries these pids again with the next dead worker."""
    merged: dict[str, list[str]] = {}   # compacted file -> the dead files merged into it
    try:
        for kind in SUMMED_KINDS:
            dead = [path for pid in dead_pids
                    if os.path.exists(path := os.path.join(folder, f"{kind}_{pid}.db"))]
            if dead:
                target = os.path.join(folder, f"{kind}_{COMPACTED_PID}.db")
                _write_merged(target + ".merging", [target] * os.path.exists(target) + dead)
                merged[target] = dead
        if not merged:
            return True
        with _exclusive(folder, wait) as locked:
            if not locked:
                return False
            for target, dead in merged.items():
                os.replace(target + ".merging", target)
                for path in dead:
                    os.remove(path)
        return True
    finally:
        for target in merged:
            with contextlib.suppress(FileNotFoundError):
                os.remove(target + ".merging")


def _write_merged(path: str, files: list[str]) -> None:
    from prometheus_client.mmap_dict import MmapedDict, mmap_key
    from prometheus_client.multiprocess import MultiProcessCollector

    with contextlib.suppress(FileNotFoundError):
        os.remove(path)   # left by a master that died half-way
    values = MmapedDict(path)
    try:
        # accumulate=False: histogram buckets stay per bucket, as workers write them.
        for metric in MultiProcessCollector.merge(files, accumulate=False):
            for sample in metric.samples:
                key = mmap_key(metric.name, sample.name, list(sample.labels),
                               list(sample.labels.values()), metric.documentation)
                values.write_value(key, sample.value, 0.0)
    finally:
        values.close()


@contextlib.contextmanager
def _exclusive(folder: str, wait: float) -> Iterator[bool]:
    """The gate, then the lock once the running scrapes end, each tried until `wait` seconds
    have passed (the master must not hang on them): whether both were taken."""
    deadline = time.monotonic() + wait
    with open(os.path.join(folder, GATE_NAME), "a") as gate, \
            open(os.path.join(folder, LOCK_NAME), "a") as lock:
        if not (_take(gate, deadline) and _take(lock, deadline)):
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            fcntl.flock(gate, fcntl.LOCK_UN)


def _take(file: IO[str], deadline: float) -> bool:
    while True:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
