"""The overview's hourly roll-up (handlers/store/rollup.py) on SQLite and PostgreSQL: for every
period and filter its figures equal a count of the stored events made here in Python; hours
are filled once; writes into rolled-up hours (imports) and the retention purge drop them so
they are counted again; the open hours are always counted from the events."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from handlers.store import EventStore, Filters, LogEvent
from handlers.store.rollup import GRACE, floor_hour, split
from handlers.store.schema import hourly, rolled_hours, utcnow
from logs_support import pg_store_url, store_url  # noqa: F401

SUPPORTED = ("en", "es")


def history(now: datetime, count: int = 600, seed: int = 7) -> list[LogEvent]:
    """Messages and calls over the last three days, every dimension varied; sessions that run
    across hour boundaries; a few events without a session or a language."""
    chance = random.Random(seed)
    rows = []
    for index in range(count):
        at = now - timedelta(minutes=chance.randrange(3 * 24 * 60), seconds=chance.random())
        session = f"s{chance.randrange(count // 4)}" if index % 29 else None
        common = dict(idempotency_key=f"k{index}", raw="{}", received_at=at, session_id=session,
                      assistant_id=chance.choice(["a1", "a2"]),
                      environment=chance.choice(["draft", "live", None]))
        if index % 7 == 0:
            rows.append(LogEvent("cdr_logged", **common, agent_transfer=chance.random() < 0.3,
                                 end_reason=chance.choice(["caller_hangup", "transfer", None]),
                                 language=chance.choice(["es", "fr", None])))
        else:
            rows.append(LogEvent("message_logged", **common,
                                 language=chance.choice(["en", "es", "fr", None]),
                                 translation_failed=chance.choice([True, False, None])))
    return rows


def expected(rows: list[LogEvent], filters: Filters, bucket: str) -> dict[str, Any]:
    """The overview's figures counted from the events in Python: the oracle."""
    def kept(row: LogEvent, event: str) -> bool:
        return (row.event == event
                and (filters.since is None or row.received_at >= filters.since)
                and (filters.until is None or row.received_at < filters.until)
                and (not filters.assistant or row.assistant_id == filters.assistant)
                and (not filters.environment or row.environment == filters.environment)
                and (not filters.language or event != "message_logged"
                     or row.language == filters.language))

    messages = [row for row in rows if kept(row, "message_logged")]
    calls = [row for row in rows if kept(row, "cdr_logged")]
    languages = Counter(row.language or "unknown" for row in messages)
    slot = "%Y-%m-%d %H:00" if bucket == "hour" else "%Y-%m-%d"
    reasons = Counter(row.end_reason or "unknown" for row in calls)
    call_languages = Counter(row.language or "unknown" for row in calls)
    return {
        "messages": len(messages),
        "sessions": len({row.session_id for row in messages if row.session_id}),
        "languages": dict(sorted(languages.items(), key=lambda item: (-item[1], item[0]))),
        "translation_failures": sum(1 for row in messages if row.translation_failed),
        "unsupported_language_replies": sum(n for code, n in languages.items()
                                            if code != "unknown" and code not in SUPPORTED),
        "calls": {"count": len(calls),
                  "transferred": sum(1 for row in calls if row.agent_transfer),
                  "end_reasons": dict(sorted(reasons.items(),
                                             key=lambda item: (-item[1], item[0]))),
                  "languages": dict(sorted(call_languages.items(),
                                           key=lambda item: (-item[1], item[0])))},
        "per_" + bucket: dict(sorted(Counter(row.received_at.strftime(slot)
                                             for row in messages).items())),
    }


@pytest.fixture
def store(store_url: str) -> EventStore:
    return EventStore.open(store_url)


def rolled(store: EventStore) -> int:
    with store.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(rolled_hours)).scalar_one()


def test_split_rolls_up_whole_closed_hours_only():
    now = datetime(2026, 12, 3, 10, 2)      # 10:00 is open; 09:00 is still in its grace period
    assert now - GRACE < datetime(2026, 12, 3, 10)
    long_ago = datetime(2026, 11, 1)
    plan = split(datetime(2026, 12, 3, 6, 30), None, long_ago, now)
    assert plan.rolled == (datetime(2026, 12, 3, 7), datetime(2026, 12, 3, 9))
    assert plan.edges == ((datetime(2026, 12, 3, 6, 30), datetime(2026, 12, 3, 7)),
                          (datetime(2026, 12, 3, 9), None))
    assert split(datetime(2026, 12, 3, 8, 30), datetime(2026, 12, 3, 9, 10), long_ago,
                 now).rolled is None     # no whole closed hour inside
    # nothing before the oldest event is rolled up (a period from the year 1 stays cheap)
    assert split(datetime(1, 1, 1), None, datetime(2026, 12, 3, 7, 10), now).rolled == \
        (datetime(2026, 12, 3, 7), datetime(2026, 12, 3, 9))
    everything = split(None, None, datetime(2026, 12, 1, 23, 59), now)
    assert everything.rolled == (datetime(2026, 12, 1, 23), datetime(2026, 12, 3, 9))
    assert everything.edges == ((datetime(2026, 12, 3, 9), None),)
    assert split(None, None, None, now).rolled is None   # an empty store


def test_every_period_and_filter_equals_the_events(store: EventStore):
    now = utcnow()
    rows = history(now)
    store.add_many(rows)
    periods = [
        (now - timedelta(hours=24), None),
        (now - timedelta(days=7), None),
        (now - timedelta(days=2, minutes=17), now - timedelta(hours=5, minutes=41)),
        (floor_hour(now) - timedelta(hours=30), floor_hour(now) - timedelta(hours=6)),
        (now - timedelta(minutes=50), None),   # the open hours only
    ]
    narrowing = [{}, {"assistant": "a1"}, {"environment": "live"}, {"language": "es"},
                 {"assistant": "a2", "environment": "draft", "language": "fr"}]
    for (since, until), narrow, bucket in itertools.product(periods, narrowing, ["hour", "day"]):
        filters = Filters(since, until, **narrow)
        assert store.reports.overview(filters, SUPPORTED, bucket) == \
            expected(rows, filters, bucket), (since, until, narrow, bucket)
    # the closed hours since the oldest event (three days ago), none before it
    assert 3 * 24 - 2 <= rolled(store) <= 3 * 24 + 1
    stats = store.reports.stats(supported=SUPPORTED)    # all time: `logs stats` without a period
    whole = expected(rows, Filters(), "hour")
    assert {key: stats[key] for key in ("messages", "sessions", "languages", "calls")} == \
        {key: whole[key] for key in ("messages", "sessions", "languages", "calls")}


def test_hours_are_filled_once(store: EventStore):
    now = utcnow()
    store.add_many(history(now, count=200))
    filters = Filters(now - timedelta(days=2), None)
    store.reports.overview(filters)
    with store.engine.connect() as connection:
        first = connection.execute(select(func.count()).select_from(hourly)).scalar_one()
    store.reports.overview(filters)
    with store.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(hourly)).scalar_one() == first


def test_an_import_into_rolled_up_hours_is_counted(store: EventStore):
    now = utcnow()
    rows = history(now, count=300)
    store.add_many(rows)
    filters = Filters(now - timedelta(days=3), None)
    assert store.reports.overview(filters)["messages"] == \
        expected(rows, filters, "hour")["messages"]
    late = [LogEvent("message_logged", f"late{n}", "{}", received_at=now - timedelta(hours=20 + n),
                     session_id=f"late-session-{n}", language="es", assistant_id="a1")
            for n in range(3)]
    store.add_many(late)
    assert store.reports.overview(filters, SUPPORTED) == expected(rows + late, filters, "hour")


def test_the_purge_drops_what_it_deleted(store: EventStore):
    now = utcnow()
    rows = history(now, count=300)
    store.add_many(rows)
    filters = Filters(now - timedelta(days=3), None)
    store.reports.overview(filters)
    store.retention.purge(1.5, now=now)
    kept = [row for row in rows if row.received_at >= now - timedelta(days=1.5)]
    assert store.reports.overview(filters, SUPPORTED) == expected(kept, filters, "hour")


def test_what_the_webhook_writes_now_counts_at_once(store: EventStore):
    now = utcnow()
    rows = history(now, count=100)
    store.add_many(rows)
    filters = Filters(now - timedelta(days=1), None)
    before = store.reports.overview(filters)["messages"]
    assert store.add(LogEvent("message_logged", "now-1", "{}", session_id="fresh",
                              language="en"))
    after = store.reports.overview(Filters(now - timedelta(days=1), None))
    assert after["messages"] == before + 1


def test_init_db_fills_the_roll_up_before_anyone_looks(make_app, store_url):
    app = make_app(DATABASE_URL=store_url, WEBHOOKS="logs")
    store = app.extensions["webhooks"].store
    now = utcnow()
    store.add_many(history(now, count=100))
    result = app.test_cli_runner().invoke(args=["logs", "init-db"])
    assert result.exit_code == 0, result.output
    held = rolled(store)
    assert held >= 3 * 24 - 2 and f"explorer roll-up: {held} hours" in result.output


def expected_sessions(rows: list[LogEvent], filters: Filters,
                      failed_only: bool = False) -> list[tuple[Any, ...]]:
    """The session list counted in Python: (session, first, last, messages, failed), newest
    last message first."""
    found: dict[str, list[Any]] = {}
    for row in rows:
        if row.event != "message_logged" or not row.session_id \
                or (filters.since and row.received_at < filters.since) \
                or (filters.until and row.received_at >= filters.until) \
                or (filters.assistant and row.assistant_id != filters.assistant) \
                or (filters.language and row.language != filters.language):
            continue
        entry = found.setdefault(row.session_id, [row.session_id, row.received_at,
                                                  row.received_at, 0, 0])
        entry[1], entry[2] = min(entry[1], row.received_at), max(entry[2], row.received_at)
        entry[3] += 1
        entry[4] += 1 if row.translation_failed else 0
    sessions = [tuple(entry) for entry in found.values() if entry[4] or not failed_only]
    return sorted(sessions, key=lambda entry: (entry[2], entry[0]), reverse=True)


def walk(store: EventStore, filters: Filters, **options: Any) -> list[tuple[Any, ...]]:
    """Every page of the session list, following the keyset cursor."""
    listed, after = [], None
    while True:
        page = store.reports.sessions(filters, after=after, limit=7, **options)
        listed += [(row.session_id, row.first_at, row.last_at, row.messages, row.failed)
                   for row in page]
        if len(page) < 7:
            return listed
        after = (page[-1].last_at, page[-1].session_id)


def test_the_session_list_over_rolled_up_hours_equals_the_events(store: EventStore):
    now = utcnow()
    rows = history(now, count=400)
    store.add_many(rows)
    for filters, failed_only in [
            (Filters(now - timedelta(days=2, minutes=13), None), False),
            (Filters(now - timedelta(days=3), now - timedelta(hours=7, minutes=5)), True),
            (Filters(now - timedelta(days=3), None, assistant="a2", language="es"), False)]:
        assert walk(store, filters, failed_only=failed_only) == \
            expected_sessions(rows, filters, failed_only)
    assert rolled(store) > 0     # the list read the roll-up, not only the events
