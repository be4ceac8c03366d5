"""What thousands of worker restarts cost a scrape (issue 22): the multiprocess metrics folder
with every dead worker's files left behind (prometheus-client alone) against the same folder
after gunicorn.conf.py's `child_exit` merged them (handlers/metrics_folder.py).

    flock /tmp/bench.lock .venv/bin/python bench/metrics_restarts.py [--restarts 100,1000]

One real worker process records a realistic set of the kit's metrics (every webhook, statuses
and decisions, 16 languages, translation sources, provider calls, the log store) in
multiprocess mode and exits; its two files are copied as N dead workers'. For each N: the file
count and the time of a scrape (the /metrics view's work: the collector over the folder, under
the scrape lock, rendered as text; median of 5), then the same after merging the dead workers
one at a time as child_exit does (with the mean time of one merge, the master's cost per
restart). Exit status 0 when a scrape after N merges takes at most twice the scrape of a
folder with a single dead worker, whatever N, and the merged totals equal the unmerged ones.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.harness import bench_lock, machine  # noqa: E402

# One worker's life: a few hundred requests spread over the label sets a busy kit sees.
WORKER = """
from handlers import metrics
m = metrics._define()
languages = "en es fr de it pt nl sv pl ru tr ar hi ja ko zh".split()
for webhook in ("premessage", "postmessage", "log"):
    for status, decision in (("200", "processed"), ("200", "translation_failed"),
                             ("200", "no_letters"), ("400", "invalid_json"),
                             ("401", "unauthorized"), ("503", "store_unavailable")):
        m.requests.labels(webhook, status, decision).inc(7)
    for seconds in (0.003, 0.02, 0.2, 1.5):
        m.duration.labels(webhook).observe(seconds)
for language in languages:
    for source in ("detected", "session", "chosen"):
        m.languages.labels(language, source).inc(3)
for source in ("memory", "cache", "redis", "provider"):
    m.strings.labels("libre", source).inc(11)
for outcome in ("ok", "timeout", "error"):
    m.provider_calls.labels("libre", outcome).inc(5)
    m.provider_duration.labels("libre").observe(0.3)
m.fail_open.labels("libre", "timeout").inc(2)
m.writes.labels("new").inc(40)
m.rows.labels("message_logged").inc(40)
for rows in (1, 3, 9):
    m.commit.observe(0.002)
    m.batch.observe(rows)
print(__import__("os").getpid())
"""


def make_worker(folder: Path) -> int:
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(folder), PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", WORKER], env=env, capture_output=True,
                          text=True, timeout=120, check=True, cwd=REPO)
    return int(done.stdout)


def scrape(folder: Path) -> tuple[float, bytes]:
    """The median time of 5 scrapes of `folder`, in ms, and the last scrape's text."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    from handlers.metrics_folder import scrape_lock

    times, text = [], b""
    for _ in range(5):
        started = time.perf_counter()
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(folder))
        with scrape_lock(str(folder)):
            text = generate_latest(registry)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), text


def totals(text: bytes) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            found[sample.name] = found.get(sample.name, 0.0) + sample.value
    return found


def one_case(template: Path, restarts: int) -> tuple[str, float, float, bool]:
    from handlers.metrics_folder import compact

    with tempfile.TemporaryDirectory(prefix="bench-restarts-") as name:
        folder = Path(name)
        pids = list(range(100_000, 100_000 + restarts))
        for pid in pids:
            for kind in ("counter", "histogram"):
                shutil.copy(template / f"{kind}.db", folder / f"{kind}_{pid}.db")
        files_before = len(list(folder.glob("*.db")))
        before_ms, before_text = scrape(folder)
        started = time.perf_counter()
        for pid in pids:
            assert compact(str(folder), [pid])
        merge_ms = (time.perf_counter() - started) * 1000 / restarts
        files_after = len(list(folder.glob("*.db")))
        after_ms, after_text = scrape(folder)
    same = all(abs(value - totals(after_text).get(key, 0.0)) <= 1e-9 * max(1.0, abs(value))
               for key, value in totals(before_text).items())
    line = (f"{restarts:>9} {files_before:>13} {before_ms:>16.1f} {files_after:>12} "
            f"{after_ms:>15.1f} {merge_ms:>13.2f}  {'yes' if same else 'NO'}")
    return line, before_ms, after_ms, same


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restarts", default="100,1000",
                        help="comma-separated numbers of dead workers (default 100,1000)")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.restarts.split(",")]
    print(f"machine: {machine()}")
    problems = []
    with bench_lock(), tempfile.TemporaryDirectory(prefix="bench-worker-") as name:
        folder = Path(name)
        pid = make_worker(folder)
        template = folder / "template"
        template.mkdir()
        for kind in ("counter", "histogram"):
            shutil.move(folder / f"{kind}_{pid}.db", template / f"{kind}.db")
        single_line, single_ms, _, _ = one_case(template, 1)
        print("restarts  files before  scrape ms before  files after  scrape ms after  "
              "ms per merge  same totals")
        print(single_line, flush=True)
        for restarts in counts:
            line, _, after_ms, same = one_case(template, restarts)
            print(line, flush=True)
            if not same:
                problems.append(f"{restarts} restarts: the merged totals differ")
            if after_ms > 2 * max(single_ms, 1.0):
                problems.append(f"{restarts} restarts: a scrape after merging took "
                                f"{after_ms:.1f} ms, over twice one dead worker's "
                                f"{single_ms:.1f} ms")
    for problem in problems:
        print(f"*** {problem} ***")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
