"""Issue 24: the 30-day quality report, overview and Actions page over 200,000 events.

    flock /tmp/bench.lock .venv/bin/python bench/quality.py [--events N] [--backends B,..]

A fresh store (SQLite; PostgreSQL from BENCH_DATABASE_URL or TEST_DATABASE_URL) filled by the
kit's extraction and `add_many`: events with IBM's turn events over 30 days, 1-6 turns a session
in 8 languages, requests starting one of 8 actions or "No matches" (finished, stuck, fallen back
or left open), 3 % handed to an agent. Times the first report (it fills the roll-up), then best
and median of 3 warm runs. Target: report, overview, Actions under 1 s (else exit 1)."""

from __future__ import annotations

import argparse
import base64
import contextlib
import itertools
import os
import pathlib
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from typing import Any, Iterator

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from bench.harness import bench_lock  # noqa: E402
from handlers import create_app  # noqa: E402
from handlers.store import LogEvent, utcnow  # noqa: E402
from handlers.store.rows import new_row, raw_json  # noqa: E402
from testsupport.pg_schema import postgres_schema  # noqa: E402

TARGET = 1.0
CODES = ["en"] * 40 + ["es"] * 20 + ["fr"] * 10 + ["de"] * 10 + ["pt"] * 8 + ["it"] * 5 + \
    ["ja"] * 4 + ["zh"] * 3
ACTIONS = [(f"action_{100 + index}", title) for index, title in enumerate(
    ["Order status", "Refund", "Opening hours", "Change address", "Open an account",
     "Report a lost card", "Book an appointment", "Send money"])]
# How a started action ends, by weight; None: never finished (abandoned once quiet).
FINISHES = ["all_steps_done"] * 80 + ["ended_by_step"] * 5 + ["max_retries_reached"] * 5 + \
    ["fallback"] * 3 + [None] * 7
WORDS = "order parcel refund delivery account password invoice payment address help".split()
PAGES = {"overview": "/explorer/?period=30d", "actions": "/explorer/actions?period=30d"}


def payload(rng: random.Random, number: int, session: int, language: str,
            moment: datetime) -> dict[str, Any]:
    """One turn: a request that starts an action (finished or not) or "No matches"."""
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 8)))
    matched = rng.random() >= (0.06 if language == "en" else 0.15)
    action, finish = (rng.choice(ACTIONS), rng.choice(FINISHES)) if matched else \
        (("anything_else", "No matches"), None)
    common = {"source": {"type": "action", "action": action[0], "action_title": action[1]},
              "condition_type": "user_defined" if matched else "anything_else"}
    turn = [{"event": "action_visited", "reason": "intent", **common}] + \
        ([{"event": "action_finished", "reason": finish, **common}] if finish else [])
    generic = [{"response_type": "text", "text": "Here is what I found: " + words}] + \
        [{"response_type": "connect_to_agent"}] * (rng.random() < 0.03)
    variables = {"customer_language": language} if language == "en" else {
        "customer_language": language, "original_input": f"[{language}] {words}",
        "translation_failed": rng.random() < 0.02}
    return {"log_id": f"q{number}", "session_id": f"s{session}", "language": "en",
            "assistant_id": f"assistant-{1 + (session % 3 == 0)}", "snapshot": "live",
            "request_timestamp": moment.isoformat(timespec="milliseconds") + "Z",
            "request": {"input": {"message_type": "text", "text": words}},
            "response": {"output": {"generic": generic, "debug": {"turn_events": turn}},
                         "context": {"skills": {"actions skill": {
                             "skill_variables": variables}}}}}


def rows(count: int, now: datetime) -> Iterator[LogEvent]:
    """`count` stored events over the 30 days before `now`, as the log webhook stores them."""
    rng, made, session = random.Random(24), 0, 0
    while made < count:
        session, language = session + 1, rng.choice(CODES)
        moment = now - timedelta(days=30, seconds=-rng.random() * (30 * 86400 - 900))
        for _ in range(min(rng.randint(1, 6), count - made)):
            moment += timedelta(seconds=rng.randint(5, 120))
            body, made = payload(rng, made, session, language, moment), made + 1
            yield new_row("message_logged", body, received_at=moment,
                          raw=raw_json({"event": {"name": "message_logged"}, "payload": body}))


def measure(backend: str, url: str, count: int) -> list[tuple[str, float]]:
    app = create_app({"DATABASE_URL": url, "WEBHOOKS": "logs", "DATABASE_TIMEOUT": "20",
                      "EXPLORER_USERNAME": "bench", "EXPLORER_PASSWORD": "bench-password"})
    store, started, made = app.extensions["webhooks"].store, time.perf_counter(), \
        rows(count, utcnow())
    while batch := list(itertools.islice(made, 2_000)):
        store.add_many(batch)
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE log_events" if store.dialect == "postgresql"
                                   else "ANALYZE")     # as autovacuum would on a live store
    print(f"{backend}: {store.reports.count():,} events stored in {time.perf_counter() - started:.1f} s")
    client = app.test_client()
    auth = {"Authorization": "Basic " + base64.b64encode(b"bench:bench-password").decode()}

    def run(page: str | None) -> Any:
        if page is None:
            return store.reports.quality_report(utcnow() - timedelta(days=30), utcnow())
        assert client.get(PAGES[page], headers=auth).status_code == 200, page
    results = []
    for name, page, repeat in [("report 30 d, first (fills the roll-up)", None, 1),
                               ("report 30 d, query only", None, 3),
                               *((f"{page} 30 d (page)", page, 3) for page in PAGES)]:
        if repeat > 1:
            run(page)                          # warm-up: the page cache, the plan cache
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            run(page)
            times.append(time.perf_counter() - started)
        results.append((name, statistics.median(times)))
        print(f"  {name:<38} best {min(times):.3f} s   median {statistics.median(times):.3f} s")
    store.engine.dispose()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    base = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    backends = args.backends.split(",")
    if "postgresql" in backends and not base:
        print("*** PostgreSQL SKIPPED: set BENCH_DATABASE_URL or TEST_DATABASE_URL ***")
        backends.remove("postgresql")
    missed = []
    with bench_lock(), tempfile.TemporaryDirectory(prefix="bench-quality-") as folder, \
            contextlib.ExitStack() as stack:
        for backend in backends:
            url = f"sqlite:///{folder}/events.sqlite3" if backend == "sqlite" else \
                stack.enter_context(postgres_schema(base, "bench_quality"))
            missed += [f"{backend}: {name} took {median:.2f} s" for name, median in
                       measure(backend, url, args.events) if median >= TARGET
                       and "first" not in name]
    for line in missed:
        print(f"*** {line} (target < {TARGET} s) ***")
    return 1 if missed else 0


if __name__ == "__main__":
    import logging
    logging.disable(logging.WARNING)
    sys.exit(main())
