"""What METRICS=on costs the webhooks (issue 15: at most 5 % of throughput).

    flock /tmp/bench.lock .venv/bin/python bench/metrics.py [--duration 8 --rounds 3]
    .venv/bin/python bench/metrics.py --duration 1 --rounds 1        # smoke: proves it runs

Two gunicorns of the kit with the project's gunicorn.conf.py and the same settings (floors.py's:
every webhook, a translator, a SQLite store, the signed JWT, a log line per request), one with
`METRICS=on` (multiprocess mode, a folder of its own) and one without; each store its own file.
The loads are floors.py's (pre-message English sentences, a cached 12-string post-message
reply, message_logged events). Each round measures both servers one after the other, so a drift
of the machine hits both alike. The table shows each server's best round and the ratio
on / off of req/s and of CPU per request (off's CPU per request over on's, which other load on
the machine disturbs least). Exit status 0 when every ratio of req/s is at least 0.95 and no
request failed; the last line of the scrape is printed to show the metrics were counted.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import floors, postmessage  # noqa: E402
from bench.harness import (KIT_APP, RESULT_HEAD, bench_lock, check_answers,  # noqa: E402
                           machine, measure_rounds, probe, result_cells, round_arguments,
                           serve, summarise)
from testsupport.libre_server import LibreServer  # noqa: E402

TARGET = 0.95   # METRICS=on keeps at least this share of the throughput with it off


def scraped_requests(url: str) -> float:
    """The sum of webhook_requests_total over every worker, from the server's own /metrics."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as answer:
        text = answer.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("webhook_requests_total{"))


def main(argv: list[str] | None = None) -> int:
    duration, rounds, connections, warmup = round_arguments(__doc__.splitlines()[0], argv)
    how = os.environ.get("BENCH_SUMMARY", "best")
    print(f"machine: {machine()}")
    print(f"load: {connections} connections, {rounds} x {duration:g} s per server and case "
          f"after {warmup:g} s warm-up; {how} of the rounds shown", flush=True)

    problems: list[str] = []
    lines: list[str] = []
    libre = LibreServer().start()
    try:
        with bench_lock(), tempfile.TemporaryDirectory(prefix="bench-metrics-") as folder, \
                contextlib.ExitStack() as stack:
            urls = {}
            for who in ("off", "on"):
                os.makedirs(f"{folder}/{who}")
                env = floors.environments(f"{folder}/{who}", libre.url)["kit"]
                if who == "on":
                    os.makedirs(f"{folder}/prometheus")
                    env.update(METRICS="on", PROMETHEUS_MULTIPROC_DIR=f"{folder}/prometheus")
                urls[who] = stack.enter_context(serve(KIT_APP, env))
            for case in floors.cases():
                check_answers(urls, case.load)
                if case.name == "post-message":
                    for url in urls.values():
                        _, answer = probe(url, case.load)
                        postmessage.check_translated(json.loads(answer), postmessage.STRINGS)
                        floors.warm_cache(url, case.load, libre, connections)
                results = measure_rounds(urls, case.load, duration=duration, rounds=rounds,
                                         connections=connections, warmup=warmup)
                off, on = summarise(results["off"], how), summarise(results["on"], how)
                for result in (off, on):
                    if result.non2xx or result.errors:
                        problems.append(f"{case.name}: {result.non2xx} non-2xx answers, "
                                        f"{result.errors} errors")
                share = on.rps / off.rps if off.rps else 0.0
                cpu = off.cpu_ms / on.cpu_ms if off.cpu_ms and on.cpu_ms else None
                per_round = ", ".join(f"{a.rps:.0f}/{b.rps:.0f}"
                                      for a, b in zip(results["off"], results["on"]))
                print(f"  {case.name}: off/on req/s per round: {per_round}", flush=True)
                lines.append(f"{case.name:<13} off {result_cells(off)}")
                lines.append(f"{'':<13} on  {result_cells(on)}")
                lines.append(f"{'':<13} on/off req/s {share:.3f}"
                             + (f", CPU per request {cpu:.3f}" if cpu else ""))
                if share < TARGET:
                    problems.append(f"{case.name}: METRICS=on kept {share:.3f} of the throughput "
                                    f"(target >= {TARGET})")
            counted = scraped_requests(urls["on"])
    finally:
        libre.stop()
    print()
    print(f"{'case':<13}     {RESULT_HEAD}")
    for line in lines:
        print(line)
    print(f"\nwebhook_requests_total scraped from the METRICS=on server: {counted:.0f}")
    for problem in problems:
        print(f"*** {problem} ***")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
