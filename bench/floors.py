"""The kit's speed floors, all in one run, every server under the same gunicorn settings.

    flock /tmp/bench.lock .venv/bin/python bench/floors.py [--duration 8 --rounds 3]
    .venv/bin/python bench/floors.py --duration 1 --rounds 1       # smoke: proves it runs

Three gunicorns with the project's server/gunicorn_conf.py and one environment (bench/loads.py's
kit_env: default settings plus a translator, a SQLite store, the log webhook's signed JWT, a
request line per request at INFO): the kit, the bare Flask echo (testsupport/echo_app.py) and
the plain log webhook (bench/plain_log_app.py: the log template, one commit per request).

| case | load (bench/loads.py) | floor |
|---|---|---|
| pre-message | fresh English sentences, TRANSLATOR=libre set | kit >= 0.35 x echo |
| post-message | 12 strings, Spanish session, strings cached | kit >= 0.5 x echo |
| log | message_logged, fresh log_id, signed JWT, SQLite | kit >= 0.3 x echo |
| log | the same load | kit (group commit) >= 1.3 x plain |

The translator is the LibreTranslate stand-in (testsupport/libre_server.py) in this process: it
counts its calls, so post-message is measured only once a warm-up run makes none, and a call
during the measured rounds fails the run (it would measure the translator, not the cache). wrk
drives the load, so this process is idle while the servers work. Each round measures every
server of a case in turn; the table shows each server's best round, each floor as req/s ratio
with the CPU ratio (reference CPU per request / kit's) beside it. After the log case both
stores' rows are counted: at least one per acknowledged request. Exit status 0 when every floor
holds, no request failed and nothing acknowledged is missing; 2 when wrk is missing.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import loads  # noqa: E402
from bench.harness import (RESULT_HEAD, Load, Result, arguments, bench_lock,  # noqa: E402
                           check_answers, machine, measure_rounds, probe, require_wrk,
                           result_cells, run_load, summarise)
from testsupport.gunicorn_process import ECHO_APP, KIT_APP, gunicorn_settings, serve  # noqa: E402
from testsupport.libre_server import LibreServer  # noqa: E402

PLAIN_APP = "bench.plain_log_app:app"
# Table names of the two stores, for counting rows with sqlite3 (no import of either app).
KIT_TABLE = "log_events"
PLAIN_TABLE = "events"
CACHE_WARMUP_RUNS = 10        # at most this many 1 s runs to fill every worker's cache


@dataclass(frozen=True)
class Case:
    """One load and the servers it is measured on, in the order of each round."""

    name: str
    load: Load
    servers: tuple[str, ...]


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


def cases() -> list[Case]:
    """The loads of bench/loads.py, labelled for one table."""
    return [
        Case("pre-message", Load("/webhooks/premessage", [loads.premessage(text)
                                                          for text in loads.ENGLISH],
                                 name="pre-message"), ("kit", "echo")),
        Case("post-message", Load("/webhooks/postmessage",
                                  [loads.reply(loads.STRINGS, session_id="{{N}}")],
                                  name="post-message"), ("kit", "echo")),
        Case("log", loads.log_load(), ("kit", "plain", "echo")),
    ]


def environments(folder: str, translator_url: str) -> dict[str, dict[str, str]]:
    """Each server's environment: the same variables for the three, so server/gunicorn_conf.py reads
    the same values for all (only the stores' files differ)."""
    kit = loads.kit_env(translator_url, f"sqlite:///{folder}/kit.sqlite3")
    plain = {**kit, "DATABASE_URL": f"sqlite:///{folder}/plain.sqlite3",
             "WEBHOOK_SECRET": loads.LOG_SECRET}
    return {"kit": kit, "echo": kit, "plain": plain}


@contextlib.contextmanager
def servers(folder: str, translator_url: str) -> Iterator[dict[str, str]]:
    env = environments(folder, translator_url)
    with serve(KIT_APP, env["kit"]) as kit, serve(ECHO_APP, env["echo"]) as echo, \
            serve(PLAIN_APP, env["plain"]) as plain:
        yield {"kit": kit, "echo": echo, "plain": plain}


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


def ratio(top: Result, bottom: Result) -> float:
    return top.rps / bottom.rps if bottom.rps else 0.0


def cpu_ratio(top: Result, bottom: Result) -> float | None:
    """The reference's CPU per request over the server's: the ratio other load disturbs least."""
    if not (top.cpu_ms and bottom.cpu_ms):
        return None
    return bottom.cpu_ms / top.cpu_ms


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__.splitlines()[0], argv)
    duration, rounds, connections, warmup = args.duration, args.rounds, args.connections, \
        args.warmup
    require_wrk()

    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-floors-") as folder:
        conf = gunicorn_settings(environments(folder, "http://127.0.0.1:1/")["kit"])
    print(f"servers: kit {KIT_APP}, echo {ECHO_APP}, plain {PLAIN_APP}; "
          f"server/gunicorn_conf.py for all: {conf.get('workers')} workers x "
          f"{conf.get('threads')} threads ({conf.get('worker_class')})")
    print(f"load: {connections} connections, {rounds} x {duration:g} s per server and case "
          f"after {warmup:g} s warm-up; best of the rounds shown", flush=True)

    measured: dict[str, dict[str, list[Result]]] = {}
    problems: list[str] = []
    libre = LibreServer().start()
    try:
        with bench_lock(), tempfile.TemporaryDirectory(prefix="bench-floors-") as folder, \
                servers(folder, libre.url) as urls:
            for case in cases():
                chosen = {who: urls[who] for who in case.servers}
                check_answers(chosen, case.load)
                if case.name == "post-message":
                    _, answer = probe(urls["kit"], case.load)
                    loads.check_translated(json.loads(answer), loads.STRINGS)
                    runs = warm_cache(urls["kit"], case.load, libre, connections)
                    print(f"  post-message: translator quiet after {runs} warm-up run(s) of 1 s")
                for url in chosen.values():  # warm-up, before the translator's calls count
                    if warmup > 0:
                        run_load(url, case.load, duration=warmup, connections=connections)
                libre.reset_counts()
                results = measure_rounds(chosen, case.load, duration=duration, rounds=rounds,
                                         connections=connections)
                measured[case.name] = results
                per_round = ", ".join("/".join(f"{results[who][n].rps:.0f}"
                                               for who in case.servers) for n in range(rounds))
                print(f"  {case.name}: {'/'.join(case.servers)} req/s per round: {per_round}; "
                      f"translator calls {libre.calls}", flush=True)
                if case.name == "post-message" and libre.calls:
                    problems.append(f"post-message called the translator {libre.calls} times "
                                    f"while measured: the cache was not warm")
            acknowledged = {who: sum(r.requests - r.non2xx for r in measured["log"][who])
                            for who in ("kit", "plain")}
            stored = {"kit": rows_stored(Path(folder, "kit.sqlite3"), KIT_TABLE),
                      "plain": rows_stored(Path(folder, "plain.sqlite3"), PLAIN_TABLE)}
    finally:
        libre.stop()

    summary = {case: {who: summarise(results) for who, results in by_server.items()}
               for case, by_server in measured.items()}
    width = max(len(case) for case in summary) + 2
    head = f"{'case':<{width}}{'server':<7} {RESULT_HEAD}"
    print(f"\n{head}\n{'-' * len(head)}")
    for case, by_server in summary.items():
        for number, (who, result) in enumerate(by_server.items()):
            print(f"{case if number == 0 else '':<{width}}{who:<7} {result_cells(result)}")
            if result.errors or result.non2xx:
                problems.append(f"{case} on the {who}: {result.errors} socket errors or "
                                f"timeouts, {result.non2xx} answers >= 400")
    for who in ("kit", "plain"):
        # the probe and warm-ups also store rows: every measured 2xx must be there at least
        if stored[who] < acknowledged[who]:
            problems.append(f"log on the {who}: {stored[who]} rows for {acknowledged[who]} "
                            f"acknowledged requests")
    print(f"log rows stored: kit {stored['kit']}, plain {stored['plain']} (acknowledged in "
          f"measured rounds: kit {acknowledged['kit']}, plain {acknowledged['plain']})")

    print("\nfloor                      req/s ratio  cpu ratio  floor")
    below = []
    for floor in FLOORS:
        top, bottom = summary[floor.case][floor.server], summary[floor.case][floor.reference]
        value, cpu = ratio(top, bottom), cpu_ratio(top, bottom)
        ok = value >= floor.minimum
        if not ok:
            below.append(floor)
        label = f"{floor.case}: {floor.server} / {floor.reference}"
        print(f"{label:<26} {value:11.2f} {cpu if cpu is not None else float('nan'):10.2f}  "
              f">= {floor.minimum:<4g} {'ok' if ok else 'BELOW'}")
    for problem in problems:
        print(f"FAILED: {problem}")
    print("every floor holds" if not below and not problems else
          f"{len(below)} floor(s) missed, {len(problems)} failure(s)")
    return 1 if below or problems else 0


if __name__ == "__main__":
    sys.exit(main())
