"""Where a log request's CPU goes: the log webhook called in one process, with no HTTP and no
gunicorn, so the figures hold still on a shared machine where req/s over HTTP move by a quarter
from run to run. It backs the diagnosis in issue 5's notes (the README's section on the store).

    flock /tmp/bench.lock .venv/bin/python bench/logs_costs.py [--threads 16] [--seconds 5]
        [--database-url URL] [--variants kit,core insert,kit,core insert]

N threads call the WSGI app directly with IBM's message_logged example (a fresh `log_id` per
request, the assistant's JWT, as bench/logs.py sends), each variant in a fresh process:

    echo          testsupport/echo_app.py, the baseline
    no write      the kit's log webhook, its store answering at once without writing
    wait 0.3 ms   the same, but each request waits 0.3 ms instead (as long as a commit with its
                  fsync takes here): what a durable write costs before any database work
    kit           the kit as shipped (SQLite in a temporary folder unless --database-url)
    core insert   the kit with its store's plain SQLAlchemy Core insert instead of the raw
                  one it ships (`bench.logs:app_with_core_inserts()`): issue 12 part 5's
                  "raw path against the plain path, in one run"

and prints req/s, the process's CPU time per request (user + system) and its context switches
per request. "kit" minus "wait" is the write's own work; "wait" minus "no write" is what making
every request wait costs in CPU on this machine. Information only: it has no target, and exits 0
unless a variant failed.
"""

from __future__ import annotations

import argparse
import faulthandler
import io
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from typing import Any, Callable

REPO = pathlib.Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.harness import bench_lock, server_env  # noqa: E402
from bench.logs import (WAIT, app_storing_nothing, app_with_core_inserts, kit_env,  # noqa: E402
                        message_load)

VARIANTS = ("echo", "no write", "wait 0.3 ms", "kit", "core insert")


def build_app(variant: str, database_url: str) -> Any:
    """The WSGI app of `variant` (its settings come from the environment, as in production)."""
    if variant == "echo":
        from testsupport.echo_app import create_app as create_echo

        return create_echo()
    os.environ.update(kit_env(database_url))
    if variant == "no write":
        return app_storing_nothing()
    if variant == "wait 0.3 ms":
        return app_storing_nothing(WAIT)
    if variant == "core insert":
        return app_with_core_inserts()
    from handlers import create_app

    return create_app()


def caller(app: Any) -> Callable[[], None]:
    """One request to /webhooks/logs through the WSGI interface; raises unless it answers 200."""
    load = message_load()
    body = json.dumps(load.template, separators=(",", ":"))
    headers = {"HTTP_" + name.upper().replace("-", "_"): value
               for name, value in load.all_headers().items()}

    def call() -> None:
        data = body.replace("{{N}}", uuid.uuid4().hex).encode()
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": load.path, "SERVER_NAME": "bench",
                   "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
                   "REMOTE_ADDR": "127.0.0.1", "wsgi.input": io.BytesIO(data),
                   "CONTENT_LENGTH": str(len(data)), "CONTENT_TYPE": "application/json",
                   **headers}
        status: list[str] = []
        b"".join(app(environ, lambda line, _headers, _exc=None: status.append(line)))
        if not status[0].startswith("200"):
            raise RuntimeError(f"the app answered {status[0]}")
    return call


def measure(variant: str, threads: int, seconds: float, database_url: str) -> dict[str, Any]:
    """Run `variant` from `threads` threads for `seconds`; CPU and switches per request."""
    call = caller(build_app(variant, database_url))
    for _ in range(100):
        call()                                   # imports, caches, the schema
    done = [0] * threads
    failures: list[BaseException] = []
    stop = threading.Event()

    def work(slot: int) -> None:
        try:
            while not stop.is_set():
                call()
                done[slot] += 1
        except BaseException as exc:  # reported below
            failures.append(exc)
            stop.set()

    workers = [threading.Thread(target=work, args=(slot,)) for slot in range(threads)]
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for worker in workers:
        worker.start()
    stop.wait(seconds)
    stop.set()
    for worker in workers:
        worker.join()
    after, elapsed = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{variant}: {failures[0]!r}")
    requests = sum(done)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    switches = (after.ru_nvcsw - before.ru_nvcsw) + (after.ru_nivcsw - before.ru_nivcsw)
    return {"variant": variant, "rps": requests / elapsed, "cpu_us": cpu / requests * 1e6,
            "switches": switches / requests}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--database-url", help="the kit's store (default: SQLite in a temporary "
                                               "folder)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma list of variants to run in this order (default: all)")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.variant:      # the child: one variant, one JSON line
        # a hung child shows where every thread waits (on stderr) before the parent kills it
        faulthandler.dump_traceback_later(args.seconds + 90, exit=True)
        print(json.dumps(measure(args.variant, args.threads, args.seconds, args.database_url)))
        return 0
    chosen = [name.strip() for name in args.variants.split(",")]
    unknown = sorted(set(chosen) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    rows = []
    with bench_lock(), tempfile.TemporaryDirectory() as folder:
        # a variant may be named twice (kit,core insert,kit,core insert): interleaved rounds
        for number, variant in enumerate(chosen):
            url = args.database_url or \
                f"sqlite:///{folder}/{number}-{variant.replace(' ', '-')}.sqlite3"
            child = subprocess.run(
                [sys.executable, __file__, "--variant", variant, "--threads", str(args.threads),
                 "--seconds", str(args.seconds), "--database-url", url],
                capture_output=True, text=True, timeout=args.seconds + 120, cwd=REPO,
                env=server_env())      # without the kit's settings of this shell
            if child.returncode != 0:
                print(f"{variant}: failed\n{child.stderr[-2000:]}", file=sys.stderr)
                return 1
            rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
    print(f"log webhook in one process, {args.threads} threads, {args.seconds:g} s each, "
          f"store {'from --database-url' if args.database_url else 'SQLite (temporary)'}")
    print(f"{'variant':14s} {'req/s':>8s} {'cpu us/req':>11s} {'switches/req':>13s}")
    for row in rows:
        print(f"{row['variant']:14s} {row['rps']:8.0f} {row['cpu_us']:11.0f} "
              f"{row['switches']:13.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
