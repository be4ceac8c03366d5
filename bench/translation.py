"""The translation transport end to end: batching and keep-alive.

    flock /tmp/bench.lock .venv/bin/python bench/translation.py [--requests 20 --turns 1000]

The kit under gunicorn with TRANSLATOR=libre at the LibreTranslate stand-in (in this process, so
its counters are read directly), one post-message request at a time on a keep-alive connection,
bench/loads.py's reply (12 distinct strings, a Spanish session). Targets, exit 1 when one is missed:
1. cold, the stand-in answering in 50 ms, fresh strings every request: 1 provider request per
   reply, a median <= 1.2 round trips of the provider (60 ms);
2. warm, the same reply once cached: a median <= 10 ms, no provider request;
3. over `--turns` cold turns without delay, after the runs above opened each worker's
   connections: at most 2 per worker (the pooled sessions keep them open).
"""

from __future__ import annotations

import argparse
import http.client
import pathlib
import statistics
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from bench.harness import bench_lock, connect, machine, post_json  # noqa: E402
from bench.loads import STRINGS, check_translated, kit_env, reply  # noqa: E402
from testsupport.gunicorn_process import gunicorn_settings, serve  # noqa: E402
from testsupport.libre_server import LibreServer  # noqa: E402

DELAY_MS = 50.0
COLD_TARGET_ROUND_TRIPS = 1.2
WARM_TARGET_MS = 10.0
CONNECTIONS_PER_WORKER = 2


def fresh(n: int) -> list[str]:
    """The reply's strings made new by a word, not a number (numbers are masked, so strings that
    differ only in a number share one cache entry)."""
    tag = "".join("abcdefghij"[int(digit)] for digit in str(n))
    return [f"{text} (ref {tag})" for text in STRINGS]


def timed(client: http.client.HTTPConnection, strings: list[str]) -> float:
    """Milliseconds for one reply holding `strings`, checked to come back translated."""
    elapsed, answer = post_json(client, "/webhooks/postmessage", reply(strings))
    check_translated(answer, strings)
    return elapsed


def cold(client: http.client.HTTPConnection, libre: LibreServer, requests: int,
         offset: int) -> tuple[list[float], list[int]]:
    """Replies of fresh strings: each one's milliseconds and provider requests."""
    times, provider_requests = [], []
    for n in range(requests):
        before = libre.http_requests
        times.append(timed(client, fresh(offset + n)))
        provider_requests.append(libre.http_requests - before)
    return times, provider_requests


def warm(client: http.client.HTTPConnection, libre: LibreServer,
         requests: int) -> tuple[list[float], int]:
    """The same reply once cached: each one's milliseconds, and the provider requests they made."""
    quiet = 0
    for _ in range(200):  # until the reply is cached: five requests in a row with no call
        before = libre.http_requests
        timed(client, STRINGS)
        quiet = quiet + 1 if libre.http_requests == before else 0
        if quiet == 5:
            break
    before = libre.http_requests
    times = [timed(client, STRINGS) for _ in range(requests)]
    return times, libre.http_requests - before


def run(requests: int, turns: int) -> bool:
    workers = int(gunicorn_settings().get("workers") or 1)
    print(f"machine: {machine()}")
    print(f"kit: server/gunicorn_conf.py defaults ({workers} workers), TRANSLATOR=libre at a "
          f"stand-in on loopback; one request at a time on one keep-alive connection (one worker "
          f"serves it)")
    libre = LibreServer(delay_ms=DELAY_MS).start()
    try:
        with tempfile.TemporaryDirectory() as tmp, \
                serve(env=kit_env(libre.url, f"sqlite:///{tmp}/events.sqlite3")) as url:
            client = connect(url)
            cold(client, libre, workers * 2, offset=10_000)  # each worker reads /languages
            cold_times, cold_requests = cold(client, libre, requests, offset=0)
            warm_times, warm_requests = warm(client, libre, requests * 5)
            libre.delay(0)
            before = libre.connections  # opened by the workers so far (each keeps its own)
            libre.reset_counts()
            cold(client, libre, turns, offset=20_000)
            connections, provider_requests = libre.connections, libre.http_requests
            total = before + connections
    finally:
        libre.stop()

    median = statistics.median(cold_times)
    round_trips = median / DELAY_MS
    per_reply = sorted(set(cold_requests))
    cold_ok = per_reply == [1] and round_trips <= COLD_TARGET_ROUND_TRIPS
    print(f"cold ({requests} replies of 12 fresh strings, provider {DELAY_MS:.0f} ms): median "
          f"{median:.1f} ms = {round_trips:.2f} round trips (min {min(cold_times):.1f}, max "
          f"{max(cold_times):.1f} ms); provider requests per reply {per_reply}  "
          f"{'ok' if cold_ok else 'MISSED'} (target 1 request, <= {COLD_TARGET_ROUND_TRIPS} "
          f"round trips)")
    warm_median = statistics.median(warm_times)
    warm_ok = warm_median <= WARM_TARGET_MS and warm_requests == 0
    print(f"warm ({len(warm_times)} replies, cached): median {warm_median:.2f} ms, max "
          f"{max(warm_times):.2f} ms; provider requests {warm_requests}  "
          f"{'ok' if warm_ok else 'MISSED'} (target median <= {WARM_TARGET_MS:.0f} ms, 0)")
    limit = CONNECTIONS_PER_WORKER * workers
    per_thousand = connections * 1000 / turns
    connections_ok = connections <= limit
    print(f"connections: {connections} new over {turns} cold turns ({provider_requests} "
          f"provider requests) = {per_thousand:.1f} per 1,000 turns; {total} in the whole run "
          f"({workers} workers)  {'ok' if connections_ok else 'MISSED'} (target <= {limit}: "
          f"{CONNECTIONS_PER_WORKER} per worker)")
    return cold_ok and warm_ok and connections_ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20, help="cold replies timed")
    parser.add_argument("--turns", type=int, default=1000, help="turns counted for connections")
    args = parser.parse_args()
    with bench_lock():
        ok = run(args.requests, args.turns)
    print("all translation targets met" if ok else "a translation target was MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
