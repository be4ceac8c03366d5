"""Memory of the real server: RSS and PSS of the gunicorn master and each worker, for
LANGUAGE_DETECTOR x WEB_CONCURRENCY x sessions held, and what fits a 512 MB or a 1 GB container.

    flock /tmp/bench.lock .venv/bin/python bench/memory.py                # about 20 minutes
    .venv/bin/python bench/memory.py --detectors langdetect --workers 1 --sessions 1000  # smoke

Each server is `handlers:create_app()` under server/gunicorn_conf.py as shipped (default LANGUAGES,
TRANSLATOR=none, a temporary SQLite log store), measured warm (every worker answered the chat
samples of bench/language_samples.json through pre-message, a reply through post-message and two
events through the log webhook), then after each worker took `--sessions` fresh sessions (the small
and default SESSION_MEMORY_SIZE; without REDIS_URL they go to the instance's session file:
docs/deployment.md's per-worker session columns were measured when the workers held them). A worker
is reached through keep-alive connections pinned to it (a connection stays with the worker that
accepted it: its socket's inode among the worker's files in /proc). Figures come from
/proc/<pid>/smaps_rollup: PSS splits a page shared by the master and the workers among them, so the
sum of the processes' PSS is what the container's memory limit counts; private is what a worker
alone holds. Page cache and kernel memory come on top: keep 10 % of the limit free.

The table is docs/deployment.md's sizing table. The default WEB_CONCURRENCY that server/sizing.py
picks for a 512 MB and a 1 GB container must fit in 90 % of it (exit 1 otherwise).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import pathlib
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from bench.harness import REPO, bench_lock, machine  # noqa: E402
from bench.language_samples import MESSAGES  # noqa: E402
from testsupport.gunicorn_process import KIT_APP, serve, worker_pids  # noqa: E402

MB = 1024 * 1024
CONTAINERS = {"512 MB": 512 * MB, "1 GB": 1024 * MB}


# --- what the processes hold --------------------------------------------------------------------

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
class Snapshot:
    master: dict[str, int]
    workers: list[dict[str, int]]

    @property
    def total_pss(self) -> int:
        return self.master["pss"] + sum(worker["pss"] for worker in self.workers)

    def mean(self, field: str) -> float:
        return sum(worker[field] for worker in self.workers) / len(self.workers)


def snapshot(master: int, workers: list[int]) -> Snapshot:
    return Snapshot(rollup(master), [rollup(pid) for pid in workers])


# --- connections pinned to a worker -----------------------------------------------------------

def socket_inode(server_port: int, client_port: int) -> str | None:
    """The inode of the server's end of the loopback connection from `client_port`."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = pathlib.Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, remote = parts[1], parts[2]
            if int(local.rsplit(":", 1)[1], 16) == server_port and \
                    int(remote.rsplit(":", 1)[1], 16) == client_port:
                return parts[9]
    return None


def owner(inode: str, workers: list[int]) -> int | None:
    target = f"socket:[{inode}]"
    for pid in workers:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return pid
        except OSError:
            continue
    return None


def pinned_connections(port: int, workers: list[int], per_worker: int
                       ) -> dict[int, list[http.client.HTTPConnection]]:
    """`per_worker` keep-alive connections to each worker: new connections are opened until each
    worker has accepted that many; the others are closed."""
    pinned: dict[int, list[http.client.HTTPConnection]] = {pid: [] for pid in workers}
    for _ in range(200 * len(workers) * per_worker):
        if all(len(conns) >= per_worker for conns in pinned.values()):
            return pinned
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/healthz")
        connection.getresponse().read()
        inode = socket_inode(port, connection.sock.getsockname()[1])
        pid = owner(inode, workers) if inode else None
        if pid is not None and len(pinned[pid]) < per_worker:
            pinned[pid].append(connection)
        else:
            connection.close()
        time.sleep(0.005)   # let another worker's accept loop take the next one
    raise RuntimeError(f"could not pin {per_worker} connections to each of {len(workers)} workers")


def post(connection: http.client.HTTPConnection, path: str, body: dict[str, Any] | bytes) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    connection.request("POST", path, body=data, headers={"Content-Type": "application/json"})
    answer = connection.getresponse()
    answer.read()
    if answer.status != 200:
        raise RuntimeError(f"{path} answered {answer.status}")


def premessage(text: str, session: str | None = None,
               language: str | None = None) -> dict[str, Any]:
    variables = {"customer_language": language} if language else {}
    context: dict[str, Any] = {"skills": {"actions skill": {"skill_variables": variables}}}
    if session:
        context["global"] = {"session_id": session}
    return {"event": {"name": "message_received"},
            "payload": {"input": {"message_type": "text", "text": text}, "context": context}}


def payload_file(name: str) -> dict[str, Any]:
    return json.loads((REPO / "examples" / "payloads" / name).read_text())


def warm_up(connections: dict[int, list[http.client.HTTPConnection]]) -> None:
    """Every worker answers every sample once: its imports, caches and allocator are those of a
    worker that has served real traffic."""
    texts = [text for kinds in MESSAGES.values() for items in kinds.values() for text in items]
    others = [("/webhooks/postmessage", payload_file("post_message_every_type_es.json")),
              ("/webhooks/logs", payload_file("log_message_logged.json")),
              ("/webhooks/logs", payload_file("ibm_log_cdr.json"))]
    for conns in connections.values():
        for text in texts:
            post(conns[0], "/webhooks/premessage", premessage(text))
        for path, body in others:
            post(conns[0], path, body)


def fill_sessions(connections: dict[int, list[http.client.HTTPConnection]], count: int) -> float:
    """`count` new sessions in every worker's session memory (the cheap way in: a message with
    no letters in a session whose language the context already says); seconds taken."""
    template = json.dumps(premessage("12345", "SESSION", "es")).encode()
    head, tail = template.split(b"SESSION")
    errors: list[BaseException] = []

    def send(connection: http.client.HTTPConnection, number: int) -> None:
        try:
            for _ in range(number):
                post(connection, "/webhooks/premessage", head + str(uuid.uuid4()).encode() + tail)
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    threads = []
    for conns in connections.values():
        shares = [count // len(conns) + (i < count % len(conns)) for i in range(len(conns))]
        threads += [threading.Thread(target=send, args=(conn, share))
                    for conn, share in zip(conns, shares)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.monotonic() - start


# --- one server -----------------------------------------------------------------------------------

@dataclass
class Row:
    detector: str
    workers: int
    sessions: int
    snap: Snapshot


def measure(detector: str, workers: int, sessions: list[int]) -> list[Row]:
    rows = []
    folder = tempfile.TemporaryDirectory(prefix="bench-memory-")
    env = {"LANGUAGE_DETECTOR": detector, "WEB_CONCURRENCY": str(workers),
           "SESSION_MEMORY_SIZE": str(max(sessions)), "WEBHOOK_AUTH": "none",
           "DATABASE_URL": f"sqlite:///{folder.name}/events.sqlite3", "APP_LOG_LEVEL": "WARNING"}
    with folder, serve(KIT_APP, env, start_timeout=120) as url:
        port = int(url.rsplit(":", 1)[1])
        deadline = time.monotonic() + 60
        while len(pids := worker_pids(url.pid)) < workers and time.monotonic() < deadline:
            time.sleep(0.2)   # /healthz answered: the first worker is up, maybe not the last
        if len(pids) != workers:
            raise RuntimeError(f"expected {workers} workers, found {pids}")
        connections = pinned_connections(port, pids, per_worker=2)
        warm_up(connections)
        time.sleep(0.5)
        rows.append(Row(detector, workers, 0, snapshot(url.pid, pids)))
        held = 0
        for size in sorted(sessions):
            seconds = fill_sessions(connections, size - held)
            print(f"  {detector} x {workers}: {size - held} more sessions per worker in "
                  f"{seconds:.0f} s", file=sys.stderr, flush=True)
            held = size
            time.sleep(0.5)
            rows.append(Row(detector, workers, size, snapshot(url.pid, pids)))
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
        snap = row.snap
        label = "warm" if row.sessions == 0 else str(row.sessions)
        print(f"{row.detector:<11} {row.workers:>7} {label:>15} | {mb(snap.master['rss']):>10} "
              f"{mb(snap.master['pss']):>10} | {mb(snap.mean('rss')):>10} "
              f"{mb(snap.mean('pss')):>10} {mb(snap.mean('private')):>8} | "
              f"{mb(snap.total_pss):>9}")


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
        fits = row.snap.total_pss <= 0.9 * limit
        ok = ok and fits
        print(f"{name}: the default is {workers} worker{'s' * (workers > 1)} (lingua, "
              f"{row.sessions} sessions a worker in the session file):"
              f" {row.snap.total_pss / MB:.0f} MB measured, {'fits' if fits else 'DOES NOT FIT'}"
              f" in 90 % of the limit ({0.9 * limit / MB:.0f} MB)")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--detectors", default="lingua,langdetect")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--sessions", default="10000,100000",
                        help="sessions per worker after which to measure (ascending fills)")
    args = parser.parse_args(argv)
    detectors = args.detectors.split(",")
    worker_counts = [int(n) for n in args.workers.split(",")]
    sessions = [int(n) for n in args.sessions.split(",")]
    with bench_lock():
        print(machine())
        print(f"servers: {KIT_APP}, server/gunicorn_conf.py (16 threads per worker), default "
              "LANGUAGES, TRANSLATOR=none, SQLite log store; warm = after the samples\n",
              flush=True)
        rows = []
        for detector in detectors:
            for workers in worker_counts:
                rows += measure(detector, workers, sessions)
        print_table(rows)
        print()
        return 0 if check_defaults(rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
