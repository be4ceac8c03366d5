"""The quality report and the unrecognized requests from the store, on SQLite and PostgreSQL:
the fixture sessions stored as the log webhook stores them, counted from the hourly roll-up
and from the events, figure by figure against the hand counts."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from handlers.store import EventStore, utcnow
from handlers.store.quality_rollup import quality_parts, unrecognized
from handlers.store.rollup import floor_hour
from handlers.store.rows import clean
from handlers.store.schema import MAX_ID_LENGTH
from logs_support import pg_store_url, store_url  # noqa: F401
from quality_support import (EXPECTED_LANGUAGES, EXPECTED_UNRECOGNIZED, expected_report,
                             log_event, shifted)


@pytest.fixture
def store(store_url: str) -> EventStore:
    return EventStore.open(store_url)


def rows(store: EventStore, table) -> int:
    with store.engine.connect() as connection:
        return len(connection.execute(table.select()).all())


def test_the_report_from_the_roll_up_is_the_hand_count(store: EventStore):
    start = floor_hour(utcnow()) - timedelta(hours=5)
    store.add_many([log_event(turn) for turn in shifted(start)])
    since, until = start - timedelta(hours=1), floor_hour(utcnow()) + timedelta(hours=1)
    first = store.reports.quality_report(since, until, assistant_language="en")
    assert first == expected_report(since, until)
    assert rows(store, quality_parts) == 8 and rows(store, unrecognized) == 2
    assert store.reports.quality_report(since, until, assistant_language="en") == first


def test_the_report_from_the_events_is_the_same(store: EventStore):
    """A period that holds no whole closed hour is counted from the events alone."""
    start = floor_hour(utcnow()) - timedelta(hours=5)
    store.add_many([log_event(turn) for turn in shifted(start)])
    since, until = start - timedelta(minutes=30), start + timedelta(minutes=50)
    assert store.reports.quality_report(since, until, assistant_language="en") == \
        expected_report(since, until)
    assert rows(store, quality_parts) == 0


def test_filters(store: EventStore):
    start = floor_hour(utcnow()) - timedelta(hours=5)
    turns = list(shifted(start))
    for turn in turns:
        if turn["session_id"] == "quality-stuck-en":
            turn["assistant_id"], turn["environment_id"] = "other-assistant", "other-env"
    store.add_many([log_event(turn) for turn in turns])
    since = start - timedelta(hours=1)
    spanish = store.reports.quality_report(since, None, language="es", assistant_language="en")
    assert spanish["languages"] == {"es": EXPECTED_LANGUAGES["es"]}
    other = store.reports.quality_report(since, None, assistant="other-assistant")
    assert other["languages"] == {"en": EXPECTED_LANGUAGES["en"]}
    assert store.reports.quality_report(since, None, environment="other-env")["all"] == \
        EXPECTED_LANGUAGES["en"]
    assert store.reports.quality_report(since, None, assistant="nobody")["all"]["conversations"] == 0


def test_what_was_written_after_the_hour_was_rolled_up_counts(store: EventStore):
    start = floor_hour(utcnow()) - timedelta(hours=5)
    turns = list(shifted(start))
    store.add_many([log_event(turn) for turn in turns if turn["session_id"] != "quality-dialog-pt"])
    since = start - timedelta(hours=1)
    assert store.reports.quality_report(since, None)["all"]["conversations"] == 7
    store.add_many([log_event(turn) for turn in turns if turn["session_id"] == "quality-dialog-pt"])
    assert store.reports.quality_report(since, None, assistant_language="en") == \
        expected_report(since, None)


@pytest.mark.parametrize("hours_ago", [5, 0])
def test_unrecognized_requests(store: EventStore, hours_ago: int):
    """From the roll-up (hours ago) and from the events (this hour): newest first, with the
    words as typed beside what the assistant received."""
    start = floor_hour(utcnow()) - timedelta(hours=hours_ago)
    store.add_many([log_event(turn) for turn in shifted(start)])
    since = start - timedelta(hours=1)
    got = store.reports.unrecognized_requests(since, None)
    assert [(item["session_id"], item["original_text"], item["received_text"],
             item["language"]) for item in got] == EXPECTED_UNRECOGNIZED
    assert got[0]["time"] == start + timedelta(minutes=32)
    assert {item["assistant"] for item in got} == {"97f16ba4-ad94-41af-aa6c-33cd56ad5e7e"}
    assert got[0]["environment"] == "0d4e2d13-5a54-4f45-9e6d-4b3b5a2c2b10"
    assert store.reports.unrecognized_requests(since, None, limit=1, offset=1) == got[1:]
    assert store.reports.unrecognized_requests(since, None, language="de") == got[1:]
    assert store.reports.unrecognized_requests(since, None, assistant="nobody") == []


def test_a_version_3_roll_up_is_rolled_up_again_with_the_quality_parts(store_url: str):
    from handlers.store.schema import schema_version

    store = EventStore.open(store_url)
    start = floor_hour(utcnow()) - timedelta(hours=5)
    store.add_many([log_event(turn) for turn in shifted(start)])
    since = start - timedelta(hours=1)
    store.reports.quality_report(since, None)
    with store.engine.begin() as connection:     # what version 3 left: hours without parts
        for table in (quality_parts, unrecognized):
            connection.execute(table.delete())
        connection.execute(schema_version.delete())
        connection.execute(schema_version.insert().values(version=3, applied_at=utcnow()))
    upgraded = EventStore.open(store_url)
    assert upgraded.schema_version() == 4
    assert upgraded.reports.quality_report(since, None, assistant_language="en") == \
        expected_report(since, None)


def test_a_conversation_over_several_rolled_up_hours_is_merged(store: EventStore):
    """The topic switch two hours after its action started: the parts of both hours are
    merged (the switched-from action is new_action, the other completed), not summed."""
    start = floor_hour(utcnow()) - timedelta(hours=6)
    turns = list(shifted(start))
    later = [turn for turn in turns if turn["session_id"] == "quality-topic-switch-it"][1]
    moment = datetime.fromisoformat(later["request_timestamp"][:-1]) + timedelta(hours=2)
    later["request_timestamp"] = moment.isoformat(timespec="milliseconds") + "Z"
    store.add_many([log_event(turn) for turn in turns])
    since = start - timedelta(hours=1)
    assert store.reports.quality_report(since, None, assistant_language="en") == \
        expected_report(since, None)
    with store.engine.connect() as connection:
        spread = connection.execute(select(quality_parts.c.session_id).where(
            quality_parts.c.spread == 1)).scalars().all()
    assert spread == ["quality-topic-switch-it"] * 2


def test_an_open_action_is_undecided_within_the_hour(store: EventStore):
    start = floor_hour(utcnow()) - timedelta(hours=5)
    store.add_many([log_event(turn) for turn in shifted(start)])
    soon = start + timedelta(minutes=50)
    got = store.reports.quality_report(start - timedelta(hours=1), None, now=soon)
    assert got["all"]["actions_started"] == 5
    assert got["all"]["incomplete"]["abandoned"] == got["all"]["incomplete"]["new_action"] == 0


def test_rows_prepared_before_the_lock_are_not_used_once_the_hour_changed(store: EventStore):
    """The fill parses the events before taking the write lock; an import into those hours
    meanwhile makes it compute them again inside the lock."""
    from handlers.store import quality_rollup

    start = floor_hour(utcnow()) - timedelta(hours=5)
    turns = list(shifted(start))
    store.add_many([log_event(turn) for turn in turns[:-4]])
    prepared = quality_rollup.prepare(store.engine, start, start + timedelta(hours=1))
    assert len(prepared.rows["log_quality_parts"]) == 7
    store.add_many([log_event(turn) for turn in turns[-4:]])   # the dialog, the unsupported reply
    with store.engine.begin() as connection:
        quality_rollup.fill(connection, start, start + timedelta(hours=1), prepared)
    assert rows(store, quality_parts) == 8
    with store.engine.begin() as connection:
        for table in quality_rollup.TABLES:
            connection.execute(table.delete())
        unchanged = quality_rollup.prepare(store.engine, start, start + timedelta(hours=1))
        unchanged.rows["log_quality_parts"].pop()       # marked, to see that it is what is used
        quality_rollup.fill(connection, start, start + timedelta(hours=1), unchanged)
    assert rows(store, quality_parts) == 7


def test_an_action_id_with_a_tab_a_nul_and_no_end_is_rolled_up(store: EventStore):
    """Action ids are the assistant's own: whatever they hold, the roll-up stores them as the
    events' columns do (no NUL, cut to the id width) and the figures stay the hand count's."""
    start = floor_hour(utcnow()) - timedelta(hours=5)
    turns = list(shifted(start))
    original = next(event["source"]["action"] for turn in turns
                    for event in turn["response"]["output"].get("debug", {}).get("turn_events", [])
                    if event.get("source", {}).get("action", "anything_else")
                    not in ("anything_else", "welcome"))
    hostile = "order\tstatus\x00" + "x" * 400
    stored = clean(hostile, MAX_ID_LENGTH)
    for turn in turns:
        for event in turn["response"]["output"].get("debug", {}).get("turn_events", []):
            if event.get("source", {}).get("action") == original:
                event["source"]["action"] = hostile
    store.add_many([log_event(turn) for turn in turns])
    since, until = start - timedelta(hours=1), floor_hour(utcnow()) + timedelta(hours=1)
    got = store.reports.quality_report(since, until, assistant_language="en")
    assert rows(store, quality_parts) == 8          # the roll-up was filled, not skipped
    expected = expected_report(since, until)
    for item in expected["actions"]:
        if item["action"] == original:
            item["action"] = stored
    key = lambda item: (item["action"], item["language"])  # noqa: E731
    assert sorted(got["actions"], key=key) == sorted(expected["actions"], key=key)
    assert got["all"] == expected["all"]
