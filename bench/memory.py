"""Memory of the real server: RSS and PSS of the gunicorn master and each worker, for
LANGUAGE_DETECTOR x WEB_CONCURRENCY x sessions held, and what fits a 512 MB or a 1 GB container.

    flock /tmp/bench.lock .venv/bin/python bench/memory.py                # about 20 minutes
    .venv/bin/python bench/memory.py --detectors langdetect --workers 1 --sessions 1000  # smoke

Each server is `handlers:create_app()` under server/gunicorn_conf.py as shipped (default LANGUAGES,
TRANSLATOR=none, a temporary SQLite log store), measured warm (every worker answered the chat
samples, a reply and two log events), then after each worker took `--sessions` fresh sessions
(without REDIS_URL they go to the instance's session file). A worker's memory grows with the
requests it served, so each is reached through keep-alive connections pinned to it (a connection
stays with the worker that accepted it). PSS (/proc/<pid>/smaps_rollup) splits a page the master
shares with the workers among them: the processes' sum is what a container's memory limit counts.

The table is docs/deployment.md's sizing table. The default WEB_CONCURRENCY that server/sizing.py
picks for a 512 MB and a 1 GB container must fit in 90 % of it (exit 1 otherwise).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import pathlib
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from bench.harness import bench_lock, connect, machine, post_json  # noqa: E402
from bench.language_samples import MESSAGES  # noqa: E402
from bench.loads import PAYLOADS, chat_message  # noqa: E402
from testsupport.gunicorn_process import KIT_APP, serve, worker_pids  # noqa: E402

MB = 1024 * 1024
CONTAINERS = {"512 MB": 512 * MB, "1 GB": 1024 * MB}


def rollup(pid: int) -> dict[str, int]:
    """/proc/<pid>/smaps_rollup in bytes: Rss, Pss, Private (clean + dirty)."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as handle:
        for line in handle:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                fields[parts[0].rstrip(":")] = int(parts[1]) * 1024
    return {"rss": fields["Rss"], "pss": fields["Pss"],
            "private": fields["Private_Clean"] + fields["Private_Dirty"]}


@dataclass
class Row:
    """One measurement: the master's and each worker's rollup."""

    detector: str
    workers: int
    sessions: int
    master: dict[str, int]
    each: list[dict[str, int]]

    @property
    def total_pss(self) -> int:
        return self.master["pss"] + sum(worker["pss"] for worker in self.each)

    def mean(self, field: str) -> float:
        return sum(worker[field] for worker in self.each) / len(self.each)


def worker_of(server_port: int, client_port: int, workers: list[int]) -> int | None:
    """The worker holding the server's end of the loopback connection from `client_port`: that
    socket's inode (/proc/net/tcp) among the worker's open files."""
    ports = (f"{server_port:04X}", f"{client_port:04X}")
    sockets = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in pathlib.Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                if (parts[1].rsplit(":", 1)[1], parts[2].rsplit(":", 1)[1]) == ports:
                    sockets.add(f"socket:[{parts[9]}]")
    for pid in workers:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in sockets:
                    return pid
    return None


def pinned_connections(url: str, workers: list[int], per_worker: int
                       ) -> dict[int, list[http.client.HTTPConnection]]:
    """`per_worker` keep-alive connections to each worker: new connections are opened until each
    worker has accepted that many; the others are closed."""
    pinned: dict[int, list[http.client.HTTPConnection]] = {pid: [] for pid in workers}
    for _ in range(200 * len(workers) * per_worker):
        if all(len(conns) >= per_worker for conns in pinned.values()):
            return pinned
        connection = connect(url)
        connection.request("GET", "/healthz")
        connection.getresponse().read()
        pid = worker_of(connection.sock.getpeername()[1], connection.sock.getsockname()[1], workers)
        if pid is not None and len(pinned[pid]) < per_worker:
            pinned[pid].append(connection)
        else:
            connection.close()
        time.sleep(0.005)   # let another worker's accept loop take the next one
    raise RuntimeError(f"could not pin {per_worker} connections to each of {len(workers)} workers")


def warm_up(connections: dict[int, list[http.client.HTTPConnection]]) -> None:
    """Every worker answers every sample once: its imports, caches and allocator are those of a
    worker that has served real traffic."""
    texts = [text for kinds in MESSAGES.values() for items in kinds.values() for text in items]
    others = [("/webhooks/postmessage", "post_message_every_type_es.json"),
              ("/webhooks/logs", "log_message_logged.json"), ("/webhooks/logs", "ibm_log_cdr.json")]
    for conns in connections.values():
        for text in texts:
            post_json(conns[0], "/webhooks/premessage", chat_message(text))
        for path, name in others:
            post_json(conns[0], path, json.loads((PAYLOADS / name).read_text()))


def fill_sessions(connections: dict[int, list[http.client.HTTPConnection]], count: int) -> float:
    """`count` new sessions through every worker (the cheap way in: a message with no letters in
    a session whose language the context already says), all connections at once; seconds taken."""
    head, tail = json.dumps(chat_message("12345", "SESSION", "es")).encode().split(b"SESSION")

    def send(connection: http.client.HTTPConnection, number: int) -> None:
        for _ in range(number):
            post_json(connection, "/webhooks/premessage", head + str(uuid.uuid4()).encode() + tail)

    jobs = [(connection, count // len(conns) + (i < count % len(conns)))
            for conns in connections.values() for i, connection in enumerate(conns)]
    start = time.monotonic()
    with ThreadPoolExecutor(len(jobs)) as pool:
        for future in [pool.submit(send, *job) for job in jobs]:
            future.result()  # raises what the thread raised
    return time.monotonic() - start


def measure(detector: str, workers: int, sessions: list[int]) -> list[Row]:
    rows = []
    folder = tempfile.TemporaryDirectory(prefix="bench-memory-")
    env = {"LANGUAGE_DETECTOR": detector, "WEB_CONCURRENCY": str(workers),
           "SESSION_MEMORY_SIZE": str(max(sessions)), "WEBHOOK_AUTH": "none",
           "DATABASE_URL": f"sqlite:///{folder.name}/events.sqlite3", "APP_LOG_LEVEL": "WARNING"}
    with folder, serve(KIT_APP, env, start_timeout=120) as url:
        deadline = time.monotonic() + 60
        while len(pids := worker_pids(url.pid)) < workers and time.monotonic() < deadline:
            time.sleep(0.2)   # /healthz answered: the first worker is up, maybe not the last
        if len(pids) != workers:
            raise RuntimeError(f"expected {workers} workers, found {pids}")
        connections = pinned_connections(url, pids, per_worker=2)
        warm_up(connections)
        held = 0
        for size in [0, *sorted(sessions)]:
            if size > held:
                seconds = fill_sessions(connections, size - held)
                print(f"  {detector} x {workers}: {size - held} more sessions per worker in "
                      f"{seconds:.0f} s", file=sys.stderr, flush=True)
                held = size
            time.sleep(0.5)
            rows.append(Row(detector, workers, size, rollup(url.pid),
                            [rollup(pid) for pid in pids]))
        for conns in connections.values():
            for connection in conns:
                connection.close()
    return rows


def mb(value: float) -> str:
    return f"{value / MB:6.0f}"


def print_table(rows: list[Row]) -> None:
    print(f"{'detector':<11} {'workers':>7} {'sessions/worker':>15} | {'master RSS':>10} "
          f"{'master PSS':>10} | {'worker RSS':>10} {'worker PSS':>10} {'private':>8} | "
          f"{'total PSS':>9}  (MB; worker figures: the mean of the workers)")
    for row in rows:
        label = "warm" if row.sessions == 0 else str(row.sessions)
        print(f"{row.detector:<11} {row.workers:>7} {label:>15} | {mb(row.master['rss']):>10} "
              f"{mb(row.master['pss']):>10} | {mb(row.mean('rss')):>10} "
              f"{mb(row.mean('pss')):>10} {mb(row.mean('private')):>8} | "
              f"{mb(row.total_pss):>9}")


def check_defaults(rows: list[Row]) -> bool:
    """The default WEB_CONCURRENCY that server/sizing.py picks for each container, with the
    default detector and session memory: does the measured server fit with 10 % to spare?"""
    from server.sizing import usable_cpus, workers_for_memory

    ok = True
    for name, limit in CONTAINERS.items():
        # what server.sizing.default_workers gives in such a container on this machine's CPUs:
        # these servers have no REDIS_URL, so the sessions are in the file, not in the workers
        workers = min(2 * usable_cpus(), workers_for_memory(limit, "lingua", 0))
        row = max((row for row in rows if (row.detector, row.workers) == ("lingua", workers)),
                  key=lambda row: row.sessions, default=None)
        if row is None:
            print(f"{name}: the default is {workers} lingua workers; not measured in this run")
            continue
        fits = row.total_pss <= 0.9 * limit
        ok = ok and fits
        print(f"{name}: the default is {workers} worker{'s' * (workers > 1)} (lingua, "
              f"{row.sessions} sessions a worker in the session file):"
              f" {row.total_pss / MB:.0f} MB measured, {'fits' if fits else 'DOES NOT FIT'}"
              f" in 90 % of the limit ({0.9 * limit / MB:.0f} MB)")
    return ok


def numbers(text: str) -> list[int]:
    return [int(n) for n in text.split(",")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--detectors", default="lingua,langdetect", type=lambda v: v.split(","))
    parser.add_argument("--workers", default="1,2,4", type=numbers)
    parser.add_argument("--sessions", default="10000,100000", type=numbers,
                        help="sessions per worker after which to measure (ascending fills)")
    args = parser.parse_args(argv)
    with bench_lock():
        print(machine())
        print(f"servers: {KIT_APP}, server/gunicorn_conf.py (16 threads per worker), default "
              "LANGUAGES, TRANSLATOR=none, SQLite log store; warm = after the samples\n",
              flush=True)
        rows = []
        for detector in args.detectors:
            for workers in args.workers:
                rows += measure(detector, workers, args.sessions)
        print_table(rows)
        print()
        return 0 if check_defaults(rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
