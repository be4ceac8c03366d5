"""The translation transport end to end: batching and keep-alive.

    flock /tmp/bench.lock .venv/bin/python bench/translation.py [--requests 20 --turns 1000]

The kit under gunicorn (server/gunicorn_conf.py defaults) with TRANSLATOR=libre at the
LibreTranslate stand-in (testsupport/libre_server.py, in this process, so its counters are read
directly), one post-message request at a time on a keep-alive connection; the reply is
bench/loads.py's: 12 distinct strings in a Spanish session.

1. Cold, the stand-in answering in 50 ms: fresh strings every request. Targets: exactly 1
   provider request per reply, and a median latency <= 1.2 round trips of the provider (60 ms).
2. Warm: the same reply again once every worker has it cached. Target: median <= 10 ms, 0
   provider requests.
3. Connections the stand-in accepted over `--turns` cold turns (no delay, so the run is short),
   after the runs above opened each worker's: the pooled sessions keep them open. Target: at
   most 2 per gunicorn worker.

Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import pathlib
import statistics
import sys
import tempfile
import time
from typing import Any

REPO = pathlib.Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.harness import bench_lock, machine  # noqa: E402
from bench.loads import STRINGS, check_translated, kit_env, reply  # noqa: E402
from testsupport.gunicorn_process import gunicorn_settings, serve  # noqa: E402
from testsupport.libre_server import LibreServer  # noqa: E402

DELAY_MS = 50.0
COLD_TARGET_ROUND_TRIPS = 1.2
WARM_TARGET_MS = 10.0
CONNECTIONS_PER_WORKER = 2


class Client:
    """One keep-alive connection to the kit; `post` answers (milliseconds, parsed JSON)."""

    def __init__(self, url: str) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]),
                                                     timeout=30)

    def post(self, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        started = time.perf_counter()
        self.connection.request("POST", "/webhooks/postmessage", body=json.dumps(body).encode(),
                                headers={"Content-Type": "application/json"})
        answer = self.connection.getresponse()
        raw = answer.read()
        if answer.status != 200:
            raise RuntimeError(f"postmessage answered {answer.status}: {raw[:300]!r}")
        return (time.perf_counter() - started) * 1000, json.loads(raw)


def fresh(n: int) -> list[str]:
    """The reply's strings made new by a word, not a number (numbers are masked, so strings that
    differ only in a number share one cache entry)."""
    tag = ""
    while True:
        n, letter = divmod(n, 26)
        tag += "abcdefghijklmnopqrstuvwxyz"[letter]
        if not n:
            break
    return [f"{text} (ref {tag})" for text in STRINGS]


def cold(client: Client, libre: LibreServer, requests: int, offset: int) -> dict[str, Any]:
    times, provider_requests = [], []
    for n in range(requests):
        strings = fresh(offset + n)
        before = libre.http_requests
        elapsed, answer = client.post(reply(strings))
        check_translated(answer, strings)
        times.append(elapsed)
        provider_requests.append(libre.http_requests - before)
    return {"times": times, "provider_requests": provider_requests}


def warm(client: Client, libre: LibreServer, requests: int) -> dict[str, Any]:
    quiet = 0
    for _ in range(200):  # until every worker has the reply: five requests in a row with no call
        before = libre.http_requests
        client.post(reply(STRINGS))
        quiet = quiet + 1 if libre.http_requests == before else 0
        if quiet == 5:
            break
    before = libre.http_requests
    times = []
    for _ in range(requests):
        elapsed, answer = client.post(reply(STRINGS))
        check_translated(answer, STRINGS)
        times.append(elapsed)
    return {"times": times, "provider_requests": libre.http_requests - before}


def run(requests: int, turns: int) -> bool:
    workers = int(gunicorn_settings().get("workers") or 1)
    print(f"machine: {machine()}")
    print(f"kit: server/gunicorn_conf.py defaults ({workers} workers), TRANSLATOR=libre at a "
          f"stand-in "
          f"on loopback; one request at a time on one keep-alive connection (one worker "
          f"serves it)")
    libre = LibreServer(delay_ms=DELAY_MS).start()
    try:
        with tempfile.TemporaryDirectory() as tmp, \
                serve(env=kit_env(libre.url, f"sqlite:///{tmp}/events.sqlite3")) as url:
            client = Client(url)
            cold(client, libre, workers * 2, offset=10_000)  # each worker reads /languages
            first = cold(client, libre, requests, offset=0)
            second = warm(client, libre, requests * 5)
            libre.delay(0)
            before = libre.connections  # opened by the workers so far (each keeps its own)
            libre.reset_counts()
            cold(client, libre, turns, offset=20_000)
            connections, provider_requests = libre.connections, libre.http_requests
            total = before + connections
    finally:
        libre.stop()

    median = statistics.median(first["times"])
    round_trips = median / DELAY_MS
    per_reply = sorted(set(first["provider_requests"]))
    cold_ok = per_reply == [1] and round_trips <= COLD_TARGET_ROUND_TRIPS
    print(f"cold ({requests} replies of 12 fresh strings, provider {DELAY_MS:.0f} ms): median "
          f"{median:.1f} ms = {round_trips:.2f} round trips (min {min(first['times']):.1f}, max "
          f"{max(first['times']):.1f} ms); provider requests per reply {per_reply}  "
          f"{'ok' if cold_ok else 'MISSED'} (target 1 request, <= {COLD_TARGET_ROUND_TRIPS} "
          f"round trips)")
    warm_median = statistics.median(second["times"])
    warm_ok = warm_median <= WARM_TARGET_MS and second["provider_requests"] == 0
    print(f"warm ({len(second['times'])} replies, cached): median {warm_median:.2f} ms, max "
          f"{max(second['times']):.2f} ms; provider requests {second['provider_requests']}  "
          f"{'ok' if warm_ok else 'MISSED'} (target median <= {WARM_TARGET_MS:.0f} ms, 0)")
    limit = CONNECTIONS_PER_WORKER * workers
    per_thousand = connections * 1000 / turns
    connections_ok = connections <= limit
    print(f"connections: {connections} new over {turns} cold turns ({provider_requests} "
          f"provider requests) = {per_thousand:.1f} per 1,000 turns; {total} in the whole run "
          f"({workers} workers)  "
          f"{'ok' if connections_ok else 'MISSED'} (target <= {limit}: "
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
