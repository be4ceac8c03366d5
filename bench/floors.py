"""The kit's speed floors, all in one run, every server under the same gunicorn settings.

    flock /tmp/bench.lock .venv/bin/python bench/floors.py [--duration 8 --rounds 3]

The kit, the bare Flask echo and the plain log webhook (bench/plain_log_app.py) under
server/gunicorn_conf.py with one environment (bench/loads.py's kit_env); the cases and floors:
FLOORS and bench/README.md. The translator is the LibreTranslate stand-in in this process: a call
while post-message is measured fails the run (it would measure the translator, not the cache).
After the log case, every acknowledged request must have its row in each store. Exit status 0
when every floor holds and nothing failed; 2 without wrk.
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import loads  # noqa: E402
from bench.harness import (RESULT_HEAD, Load, Result, bench_lock, check_answers,  # noqa: E402
                           connect, machine, measure_rounds, post_json, require_wrk, result_cells,
                           run_load, sample, summarise)
from testsupport.gunicorn_process import ECHO_APP, KIT_APP, gunicorn_settings, serve  # noqa: E402
from testsupport.libre_server import LibreServer  # noqa: E402

PLAIN_APP = "bench.plain_log_app:app"
CACHE_WARMUP_RUNS = 10        # at most this many 1 s runs to fill every worker's cache


@dataclass(frozen=True)
class Floor:
    """`server`'s req/s on `case` must be at least `minimum` x `reference`'s."""

    case: str
    server: str
    reference: str
    minimum: float


FLOORS = (
    Floor("pre-message", "kit", "echo", 0.35),
    Floor("post-message", "kit", "echo", 0.5),
    Floor("log", "kit", "echo", 0.3),
    Floor("log", "kit", "plain", 1.3),
)


def cases() -> dict[str, tuple[Load, tuple[str, ...]]]:
    """Each case's load (bench/loads.py) and the servers a round measures, in order."""
    premessages = [loads.premessage(text) for text in loads.ENGLISH]
    replies = [loads.reply(loads.STRINGS, session_id="{{N}}")]
    return {
        "pre-message": (Load("/webhooks/premessage", premessages, name="pre-message"),
                        ("kit", "echo")),
        "post-message": (Load("/webhooks/postmessage", replies, name="post-message"),
                         ("kit", "echo")),
        "log": (loads.log_load(), ("kit", "plain", "echo")),
    }


@contextlib.contextmanager
def servers(folder: str, translator_url: str) -> Iterator[dict[str, str]]:
    """The three servers, with the same variables (only the stores' files differ), so
    server/gunicorn_conf.py reads the same values for all."""
    kit = loads.kit_env(translator_url, f"sqlite:///{folder}/kit.sqlite3")
    plain = {**kit, "DATABASE_URL": f"sqlite:///{folder}/plain.sqlite3",
             "WEBHOOK_SECRET": loads.LOG_SECRET}
    with serve(KIT_APP, kit) as kit_url, serve(ECHO_APP, kit) as echo_url, \
            serve(PLAIN_APP, plain) as plain_url:
        yield {"kit": kit_url, "echo": echo_url, "plain": plain_url}


def warm_cache(url: str, load: Load, libre: LibreServer, connections: int) -> int:
    """Run `load` until a 1 s run makes no translator call (every worker holds the strings);
    returns the runs it took, or raises when the cache never warms."""
    for run in range(1, CACHE_WARMUP_RUNS + 1):
        libre.reset_counts()
        run_load(url, load, duration=1, connections=connections)
        if libre.calls == 0:
            return run
    raise RuntimeError(f"the post-message cache was still calling the translator after "
                       f"{CACHE_WARMUP_RUNS} warm-up runs")


def rows_stored(database: Path, table: str) -> int:
    with contextlib.closing(sqlite3.connect(database, timeout=30)) as db:
        return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def run_case(name: str, load: Load, urls: dict[str, str], libre: LibreServer,
             args: argparse.Namespace) -> dict[str, list[Result]]:
    """Warm the servers up (the post-message cache until the translator is quiet), then measure
    every round; each server's Results."""
    check_answers(urls, load)
    if name == "post-message":
        _, answer = post_json(connect(urls["kit"]), load.path, sample(load))
        loads.check_translated(answer, loads.STRINGS)
        runs = warm_cache(urls["kit"], load, libre, args.connections)
        print(f"  post-message: translator quiet after {runs} warm-up run(s) of 1 s")
    if args.warmup > 0:
        for url in urls.values():
            run_load(url, load, duration=args.warmup, connections=args.connections)
    libre.reset_counts()
    results = measure_rounds(urls, load, duration=args.duration, rounds=args.rounds,
                             connections=args.connections)
    per_round = ", ".join("/".join(f"{results[who][n].rps:.0f}" for who in urls)
                          for n in range(args.rounds))
    print(f"  {name}: {'/'.join(urls)} req/s per round: {per_round}; "
          f"translator calls {libre.calls}", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per run (8)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (3)")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections (16)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds per server (2)")
    args = parser.parse_args(argv)
    require_wrk()
    conf = gunicorn_settings(loads.kit_env("http://127.0.0.1:1/", "sqlite://"))
    print(f"machine: {machine()}")
    print(f"servers: kit {KIT_APP}, echo {ECHO_APP}, plain {PLAIN_APP}; "
          f"server/gunicorn_conf.py for all: {conf.get('workers')} workers x "
          f"{conf.get('threads')} threads ({conf.get('worker_class')})")
    print(f"load: {args.connections} connections, {args.rounds} x {args.duration:g} s per server "
          f"and case after {args.warmup:g} s warm-up; best of the rounds shown", flush=True)

    measured: dict[str, dict[str, list[Result]]] = {}
    problems: list[str] = []
    libre = LibreServer().start()
    try:
        with bench_lock(), tempfile.TemporaryDirectory(prefix="bench-floors-") as folder, \
                servers(folder, libre.url) as urls:
            for name, (load, chosen) in cases().items():
                measured[name] = run_case(name, load, {who: urls[who] for who in chosen}, libre,
                                          args)
                if name == "post-message" and libre.calls:
                    problems.append(f"post-message called the translator {libre.calls} times "
                                    f"while measured: the cache was not warm")
            stored = {"kit": rows_stored(Path(folder, "kit.sqlite3"), "log_events"),
                      "plain": rows_stored(Path(folder, "plain.sqlite3"), "events")}
    finally:
        libre.stop()

    summary = {case: {who: summarise(results) for who, results in by_server.items()}
               for case, by_server in measured.items()}
    head = f"{'case':<14}{'server':<7} {RESULT_HEAD}"
    print(f"\n{head}\n{'-' * len(head)}")
    for case, by_server in summary.items():
        for number, (who, result) in enumerate(by_server.items()):
            print(f"{case if number == 0 else '':<14}{who:<7} {result_cells(result)}")
            if result.errors or result.non2xx:
                problems.append(f"{case} on the {who}: {result.errors} socket errors or "
                                f"timeouts, {result.non2xx} answers >= 400")
    # the probe and warm-ups also store rows: every measured 2xx must be there at least
    acknowledged = {who: summary["log"][who].requests - summary["log"][who].non2xx
                    for who in stored}
    for who in stored:
        if stored[who] < acknowledged[who]:
            problems.append(f"log on the {who}: {stored[who]} rows for {acknowledged[who]} "
                            f"acknowledged requests")
    print(f"log rows stored: kit {stored['kit']}, plain {stored['plain']} (acknowledged in "
          f"measured rounds: kit {acknowledged['kit']}, plain {acknowledged['plain']})")

    print("\nfloor                      req/s ratio  cpu ratio  floor")
    below = 0
    for floor in FLOORS:
        top, bottom = summary[floor.case][floor.server], summary[floor.case][floor.reference]
        value = top.rps / bottom.rps if bottom.rps else 0.0
        # the reference's CPU per request over the server's: the ratio other load disturbs least
        cpu = bottom.cpu_ms / top.cpu_ms if top.cpu_ms and bottom.cpu_ms else float("nan")
        ok = value >= floor.minimum
        below += not ok
        label = f"{floor.case}: {floor.server} / {floor.reference}"
        print(f"{label:<26} {value:11.2f} {cpu:10.2f}  >= {floor.minimum:<4g} "
              f"{'ok' if ok else 'BELOW'}")
    for problem in problems:
        print(f"FAILED: {problem}")
    print("every floor holds" if not below and not problems else
          f"{below} floor(s) missed, {len(problems)} failure(s)")
    return 1 if below or problems else 0


if __name__ == "__main__":
    sys.exit(main())
