"""The multiprocess metrics folder stays small over worker restarts (handlers/metrics_folder.py):
a dead worker's counter and histogram files are merged into one file per kind, no count is lost
or counted twice, and a scrape racing the merge sees the same totals.

Dead workers are real processes: each writes its files through prometheus-client in
multiprocess mode and exits. The last test runs real gunicorn with GUNICORN_MAX_REQUESTS=5."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import urllib.request
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from testsupport.gunicorn_process import serve
from handlers.metrics_folder import compact, scrape_lock
from tests.test_metrics import samples, value
from tests.test_premessage import event

# A worker: counts `n` requests (two label sets), observes `n` durations, then exits.
WORKER = """
import sys
from prometheus_client import Counter, Histogram
n = int(sys.argv[1])
requests = Counter("webhook_requests_total", "requests", ["webhook", "status"])
duration = Histogram("webhook_request_duration_seconds", "duration", ["webhook"],
                     buckets=(0.01, 0.1, 1.0))
for i in range(n):
    requests.labels("premessage", "200" if i % 3 else "400").inc()
    duration.labels("premessage").observe((0.005, 0.05, 0.5, 5.0)[i % 4])
print(__import__("os").getpid())
"""


def dead_worker(folder: pathlib.Path, requests: int) -> int:
    """Run one worker process to its end; its pid (its files stay in `folder`)."""
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(folder))
    done = subprocess.run([sys.executable, "-c", WORKER, str(requests)], env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    return int(done.stdout)


def scrape(folder: pathlib.Path) -> dict:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(folder))
    with scrape_lock(str(folder)):
        return samples(generate_latest(registry).decode())


def totals(found: dict) -> tuple[float, ...]:
    return (value(found, "webhook_requests_total", webhook="premessage", status="200"),
            value(found, "webhook_requests_total", webhook="premessage", status="400"),
            value(found, "webhook_request_duration_seconds_count", webhook="premessage"),
            value(found, "webhook_request_duration_seconds_bucket", webhook="premessage",
                  le="0.1"),
            round(value(found, "webhook_request_duration_seconds_sum", webhook="premessage"), 6))


def expected(*workers: int) -> tuple[float, ...]:
    """What `totals` reads once workers that counted `workers` requests each have died."""
    requests = [i for n in workers for i in range(n)]
    observed = [(0.005, 0.05, 0.5, 5.0)[i % 4] for i in requests]
    return (sum(1 for i in requests if i % 3), sum(1 for i in requests if not i % 3),
            len(requests), sum(1 for x in observed if x <= 0.1), round(sum(observed), 6))


def test_dead_workers_merge_into_one_file_per_kind_with_every_count(tmp_path):
    folder = tmp_path / "metrics"
    folder.mkdir()
    pids = [dead_worker(folder, n) for n in (7, 11, 5)]
    before = scrape(folder)
    assert totals(before) == expected(7, 11, 5)

    assert compact(str(folder), pids[:2])
    assert sorted(path.name for path in folder.glob("*.db")) == \
        sorted(["counter_0.db", "histogram_0.db", f"counter_{pids[2]}.db",
                f"histogram_{pids[2]}.db"])
    # every sample, buckets included, unchanged (a sum of floats added in another order may
    # differ in its last bit)
    assert scrape(folder) == pytest.approx(before, rel=1e-12)
    assert compact(str(folder), pids[2:])     # merged into the merged file again
    assert sorted(path.name for path in folder.glob("*.db")) == ["counter_0.db",
                                                                 "histogram_0.db"]
    assert scrape(folder) == pytest.approx(before, rel=1e-12)
    later = dead_worker(folder, 4)            # counting goes on after a merge
    assert compact(str(folder), [later])
    assert totals(scrape(folder)) == expected(7, 11, 5, 4)
    assert not list(folder.glob("*.merging"))


def test_a_live_workers_files_are_never_touched(tmp_path):
    folder = tmp_path / "metrics"
    folder.mkdir()
    dead, live = dead_worker(folder, 3), dead_worker(folder, 2)
    live_files = {path.name: path.read_bytes() for path in folder.glob(f"*_{live}.db")}
    assert compact(str(folder), [dead, 999_999_999])      # a pid without files is skipped
    assert {path.name: path.read_bytes() for path in folder.glob(f"*_{live}.db")} == live_files
    assert not list(folder.glob(f"*_{dead}.db"))


def test_a_scrape_holding_the_lock_defers_the_merge(tmp_path):
    folder = tmp_path / "metrics"
    folder.mkdir()
    pid = dead_worker(folder, 3)
    names = sorted(path.name for path in folder.glob("*.db"))
    with scrape_lock(str(folder)):
        assert compact(str(folder), [pid], wait=0.1) is False
    assert sorted(path.name for path in folder.glob("*.db*")) == names   # nothing changed
    assert compact(str(folder), [pid])


def test_scrapes_racing_the_merges_never_see_a_count_twice_or_missing(tmp_path):
    folder = tmp_path / "metrics"
    folder.mkdir()
    template = dead_worker(folder, 6)
    pids = list(range(100_000, 100_200))      # 200 dead workers' files, 6 requests each
    for pid in pids:
        for kind in ("counter", "histogram"):
            shutil.copy(folder / f"{kind}_{template}.db", folder / f"{kind}_{pid}.db")
    for kind in ("counter", "histogram"):
        (folder / f"{kind}_{template}.db").unlink()
    whole = expected(*[6] * len(pids))[:4]
    seen: list[Any] = []
    done = threading.Event()

    def scraper() -> None:
        while not done.is_set():
            try:
                seen.append(totals(scrape(folder))[:4])
            except Exception as exc:   # a dead worker's file gone between glob and read
                seen.append(repr(exc))

    threads = [threading.Thread(target=scraper) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for pid in pids:                      # one child_exit after another
            while not compact(str(folder), [pid], wait=0.05):
                pass
    finally:
        done.set()
        for thread in threads:
            thread.join()
    assert len(seen) > 3
    assert set(seen) == {whole}
    assert sorted(path.name for path in folder.glob("*.db")) == ["counter_0.db",
                                                                 "histogram_0.db"]


@pytest.mark.slow
def test_gunicorn_replacing_workers_keeps_the_folder_small_and_counts_every_request(tmp_path):
    folder = tmp_path / "metrics"
    folder.mkdir()
    env = {"WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "2", "GUNICORN_MAX_REQUESTS": "5",
           "GUNICORN_MAX_REQUESTS_JITTER": "0", "WEBHOOK_AUTH": "none",
           "WEBHOOKS": "premessage", "METRICS": "on", "PROMETHEUS_MULTIPROC_DIR": str(folder),
           "APP_LOG_LEVEL": "info"}
    body = json.dumps(event("Good morning, where is my order?")).encode()
    sent, most_files = 0, 0
    log = tmp_path / "gunicorn.log"
    with serve("handlers:create_app()", env, log_path=log) as url:
        for _ in range(300):
            request = urllib.request.Request(f"{url}/webhooks/premessage", data=body,
                                             headers={"Content-Type": "application/json",
                                                      "Connection": "close"})
            with urllib.request.urlopen(request, timeout=30) as answer:
                assert answer.status == 200
            sent += 1
            most_files = max(most_files, len(list(folder.glob("*.db"))))
        with urllib.request.urlopen(f"{url}/metrics", timeout=30) as answer:
            found = samples(answer.read().decode())
        files = sorted(path.name for path in folder.glob("*.db"))
    restarts = log.read_text().count("Booting worker with pid")
    assert restarts >= 50, restarts          # 300 requests, a new worker every 5
    assert value(found, "webhook_requests_total", webhook="premessage", status="200",
                 decision="processed") == sent
    assert value(found, "webhook_request_duration_seconds_count", webhook="premessage") == sent
    # the master's, two live workers' (and one being replaced), the merged ones: 2 kinds each
    assert most_files <= 10, most_files
    assert "counter_0.db" in files and len(files) <= 10, files


def test_the_scrape_reads_under_the_lock(make_app, tmp_path, monkeypatch):
    """The /metrics view takes the shared lock: a compaction holding it makes the scrape wait."""
    folder = tmp_path / "metrics"
    folder.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    client = make_app(METRICS="on").test_client()
    from handlers.metrics_folder import _exclusive

    answers: list[Any] = []
    with _exclusive(str(folder), 1.0) as locked:
        assert locked
        scraper = threading.Thread(target=lambda: answers.append(client.get("/metrics")))
        scraper.start()
        scraper.join(0.3)
        assert scraper.is_alive() and not answers      # waiting for the lock
    scraper.join(10)
    assert answers[0].status_code == 200
