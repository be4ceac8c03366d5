"""Issue 15 item 3: the log explorer's overview on a store of 1,000,000 message events.

    flock /tmp/bench.lock .venv/bin/python bench/explorer.py [--events 1000000]
        [--backends sqlite,postgresql] [--repeat 3]

Fills a fresh store (SQLite file; PostgreSQL schema of its own, from BENCH_DATABASE_URL or
TEST_DATABASE_URL, dropped at the end) through the schema the kit creates (its indexes
included), in bulk: executemany in one transaction on SQLite, COPY on PostgreSQL, then
ANALYZE (and VACUUM on PostgreSQL, which an autovacuum would do on a live store: it lets the
covering index answer without visiting the rows). The events: 30 days up to now, sessions of
1 to 9 messages, 8 languages (English most), 2 % translation failures, two assistants and two
environments, one phone call per 100 messages with four end reasons.

Then times the first 30-day overview, which fills the hourly roll-up of the month's closed
hours (once; handlers/store/rollup.py), and then best and median of `--repeat` runs after one
warm-up, each through the explorer's pages (Flask's test client: query, template, SVG) and,
for the overview, the store's query alone: the overview for 30 days, 7 days, 24 hours, 30 days
filtered to one language, and to one assistant; the first and the 20th page of sessions
(keyset); a transcript. Target: every overview under 1 s on both backends. Exit status 1 when
one misses it.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import pathlib
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from typing import Any, Callable, Iterator

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

TARGET = 1.0
LANGUAGES = [("en", 40), ("es", 20), ("fr", 10), ("de", 10), ("pt", 8), ("it", 5), ("ja", 4),
             ("zh", 3)]
END_REASONS = ["caller_hangup", "assistant_hangup", "transfer", "timeout"]
WORDS = "order parcel refund delivery account password invoice payment address help".split()
RAW = '{"event":{"name":"message_logged"},"payload":{"log_id":"%s","synthetic":true}}'
COLUMNS = ("event", "idempotency_key", "received_at", "request_timestamp", "response_timestamp",
           "assistant_id", "session_id", "customer_text", "original_text", "reply_text",
           "language", "environment", "translation_failed", "end_reason", "raw")


def generate(count: int, now: datetime, seed: int = 15) -> Iterator[tuple[Any, ...]]:
    """`count` message events (and a call per 100) spread over the 30 days before `now`."""
    rng = random.Random(seed)
    codes = [code for code, weight in LANGUAGES for _ in range(weight)]
    start = now - timedelta(days=30)
    span = 30 * 86400
    made = session = 0
    while made < count:
        session += 1
        size = min(rng.randint(1, 9), count - made)
        language = rng.choice(codes)
        assistant = "assistant-1" if session % 3 else "assistant-2"
        environment = "live" if session % 5 else "draft"
        moment = start + timedelta(seconds=rng.random() * (span - 600))
        for turn in range(size):
            moment += timedelta(seconds=rng.randint(5, 60))
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 8)))
            key = f"m{made}"
            yield ("message_logged", key, moment, moment, moment + timedelta(milliseconds=300),
                   assistant, f"s{session}", words, None if language == "en" else words,
                   "Here is what I found about " + words, language, environment,
                   rng.random() < 0.02, None, RAW % key)
            made += 1
            if made % 100 == 0:
                yield ("cdr_logged", f"c{made}", moment, moment - timedelta(minutes=3), moment,
                       assistant, f"s{session}", None, None, None, None, environment, None,
                       rng.choice(END_REASONS), RAW % f"c{made}")


def fill_sqlite(url: str, count: int, now: datetime) -> None:
    import sqlite3

    path = url.removeprefix("sqlite:///")
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA synchronous=OFF")
    connection.execute("BEGIN")
    statement = f"INSERT INTO log_events ({', '.join(COLUMNS)}) VALUES " \
                f"({', '.join('?' for _ in COLUMNS)})"
    rows = generate(count, now)
    while True:
        batch = [tuple(value.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(value, datetime)
                       else value for value in row) for _, row in zip(range(50_000), rows)]
        if not batch:
            break
        connection.executemany(statement, batch)
    connection.execute("COMMIT")
    connection.execute("ANALYZE")
    connection.close()


def fill_postgresql(url: str, count: int, now: datetime) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    options = parsed.query.get("options", "")
    dsn = parsed.set(drivername="postgresql").difference_update_query(["options"]) \
        .render_as_string(hide_password=False)
    with psycopg.connect(dsn, options=options, autocommit=True) as connection:
        with connection.cursor() as cursor:
            with cursor.copy(f"COPY log_events ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for row in generate(count, now):
                    copy.write_row(row)
        connection.execute("VACUUM ANALYZE log_events")


def timed(run: Callable[[], Any], repeat: int) -> tuple[float, float]:
    run()                                      # warm-up: the page cache, the plan cache
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times), statistics.median(times)


def measure(backend: str, url: str, args: argparse.Namespace) -> list[tuple[str, float, float]]:
    from handlers import create_app
    from handlers.store import Filters, utcnow

    app = create_app({"DATABASE_URL": url, "EXPLORER_USERNAME": "bench",
                      "EXPLORER_PASSWORD": "bench-password", "WEBHOOKS": "log"})
    store = app.extensions["webhooks"].store
    store.create_schema()
    now = utcnow()
    started = time.perf_counter()
    (fill_sqlite if backend == "sqlite" else fill_postgresql)(url, args.events, now)
    filled = time.perf_counter() - started
    total = store.reports.count()
    print(f"{backend}: {total:,} events stored in {filled:.1f} s")
    month = Filters(now - timedelta(days=30), now)
    started = time.perf_counter()
    store.reports.overview(month, ("en", "es"), "day")
    print(f"  {'overview 30 d, first view':<38} {(time.perf_counter() - started) * 1000:7.0f} ms"
          f"   (fills the hourly roll-up of the month; once)")
    client = app.test_client()
    auth = {"Authorization": "Basic " + base64.b64encode(b"bench:bench-password").decode()}

    def page(path: str) -> Callable[[], Any]:
        def run() -> None:
            answer = client.get(path, headers=auth)
            assert answer.status_code == 200, (path, answer.status_code)
        return run

    first = client.get("/explorer/sessions?period=30d", headers=auth).get_data(as_text=True)
    cursor_path = "/explorer/sessions?period=30d"
    for _ in range(19):                         # walk to the 20th page
        html = client.get(cursor_path, headers=auth).get_data(as_text=True)
        marker = 'rel="next" class="next" href="'
        cursor_path = html.split(marker, 1)[1].split('"', 1)[0].replace("&amp;", "&")
    session = first.split('class="session" href="', 1)[1].split('"', 1)[0]
    cases = [
        ("overview 30 d, query only", lambda: store.reports.overview(month, ("en", "es"), "day")),
        ("overview 30 d (page)", page("/explorer/?period=30d")),
        ("overview 7 d (page)", page("/explorer/?period=7d")),
        ("overview 24 h (page)", page("/explorer/?period=24h")),
        ("overview 30 d, language=es (page)", page("/explorer/?period=30d&language=es")),
        ("overview 30 d, assistant-2 (page)", page("/explorer/?period=30d&assistant=assistant-2")),
        ("sessions 30 d, page 1", page("/explorer/sessions?period=30d")),
        ("sessions 30 d, page 20 (keyset)", page(cursor_path)),
        ("sessions 30 d, translation failed", page("/explorer/sessions?period=30d&failed=1")),
        ("transcript", page(session)),
    ]
    results = []
    for name, run in cases:
        best, median = timed(run, args.repeat)
        results.append((name, best, median))
        print(f"  {name:<38} best {best * 1000:7.0f} ms   median {median * 1000:7.0f} ms")
    store.engine.dispose()
    return results


@contextlib.contextmanager
def store_urls(backends: list[str]) -> Iterator[dict[str, str]]:
    urls: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        if "sqlite" in backends:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-explorer-"))
            urls["sqlite"] = f"sqlite:///{folder}/events.sqlite3"
        if "postgresql" in backends:
            base = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
            if base:
                from tests.pg_schema import postgres_schema
                urls["postgresql"] = stack.enter_context(postgres_schema(base, "bench_explorer"))
            else:
                print("*** PostgreSQL SKIPPED: set BENCH_DATABASE_URL or TEST_DATABASE_URL ***")
        yield urls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    failed = False
    with store_urls(args.backends.split(",")) as urls:
        for backend, url in urls.items():
            for name, _best, median in measure(backend, url, args):
                if name.startswith("overview") and median >= TARGET:
                    print(f"*** {backend}: {name} took {median:.2f} s (target < {TARGET} s) ***")
                    failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    import logging
    logging.disable(logging.INFO)
    sys.exit(main())
