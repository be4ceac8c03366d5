"""Schema versions 1 and 2 -> 3 in place, on SQLite and PostgreSQL: a database made by an
earlier kit (its table, indexes and version row, with events in it) is opened by the new code,
which adds the explorer's columns and index (from 1), fills them for the stored events from
their raw JSON, creates the overview's roll-up tables (empty: the readers fill them), records
version 3, and keeps every row as it was."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (BigInteger, Boolean, Column, DateTime, Float, Index, Integer, MetaData,
                        String, Table, Text, UniqueConstraint, create_engine, inspect, select)

from handlers.store import SCHEMA_VERSION, EventStore, Filters, events, normalize_url
from handlers.store.rows import raw_json
from handlers.store.schema import hourly, rolled_hours, schema_version, session_hours
from logs_support import cdr_body, message_body, pg_store_url, store_url  # noqa: F401

DAY = datetime(2024, 5, 1, 9, 30)


def version_1(metadata: MetaData) -> Table:
    """The log_events table exactly as schema version 1 declared it."""
    table = Table(
        "log_events", metadata,
        Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
               autoincrement=True),
        Column("event", String(32), nullable=False),
        Column("idempotency_key", String(255), nullable=False),
        Column("received_at", DateTime(), nullable=False),
        Column("request_timestamp", DateTime()),
        Column("response_timestamp", DateTime()),
        Column("assistant_id", String(255)),
        Column("skill_id", String(255)),
        Column("session_id", String(255)),
        Column("customer_id", String(255)),
        Column("customer_text", Text()),
        Column("reply_text", Text()),
        Column("intent", String(255)),
        Column("intent_confidence", Float()),
        Column("language", String(32)),
        Column("agent_transfer", Boolean()),
        Column("raw", Text(), nullable=False),
        UniqueConstraint("event", "idempotency_key", name="uq_log_events_key"),
    )
    Index("ix_log_events_received_at", table.c.received_at)
    Index("ix_log_events_session_id", table.c.session_id)
    Table("log_schema_version", metadata,
          Column("version", Integer(), primary_key=True, autoincrement=False),
          Column("applied_at", DateTime(), nullable=False))
    return table


def old_rows() -> list[dict[str, Any]]:
    translated = message_body("m1", text="my order", session="u1", language="en")
    variables = translated["payload"]["response"]["context"]["skills"]["actions skill"][
        "skill_variables"]
    variables.update(customer_language="es", original_input="mi pedido",
                     translation_failed=False)
    failed = message_body("m2", text="ayuda", session="u1", customer_language="es")
    failed["payload"]["response"]["context"]["skills"]["actions skill"]["skill_variables"][
        "translation_failed"] = True
    call = cdr_body("u1")
    call["payload"]["call"]["end_reason"] = "caller_hangup"
    rows = []
    for index, body in enumerate((translated, failed, call)):
        payload = body["payload"]
        rows.append({"event": body["event"]["name"], "idempotency_key": f"k{index}",
                     "received_at": DAY + timedelta(minutes=index), "session_id": "u1",
                     "customer_text": payload.get("request", {}).get("input", {}).get("text"),
                     "language": "es" if index < 2 else None, "raw": raw_json(body)})
    rows.append({"event": "message_logged", "idempotency_key": "k-bad", "raw": "not json",
                 "received_at": DAY + timedelta(minutes=5), "session_id": "u2",
                 "customer_text": None, "language": None})
    return rows


def test_a_version_1_database_upgrades_in_place(store_url: str) -> None:
    engine = create_engine(normalize_url(store_url))
    metadata = MetaData()
    old = version_1(metadata)
    with engine.begin() as connection:
        metadata.create_all(connection)
        connection.execute(metadata.tables["log_schema_version"].insert().values(
            version=1, applied_at=DAY))
        connection.execute(old.insert(), old_rows())
        before = [tuple(row) for row in connection.execute(select(old).order_by(old.c.id))]

    store = EventStore.open(store_url)
    assert store.schema_version() == SCHEMA_VERSION == 4
    assert {"log_hourly", "log_session_hours", "log_rolled_hours"} <= \
        set(inspect(engine).get_table_names())
    columns = {column["name"] for column in inspect(engine).get_columns("log_events")}
    assert {"original_text", "environment", "translation_failed", "end_reason"} <= columns
    indexes = {index["name"] for index in inspect(engine).get_indexes("log_events")}
    assert "ix_log_events_overview" in indexes
    with engine.connect() as connection:
        rows = connection.execute(select(events).order_by(events.c.id)).all()
    # Every old column kept as it was.
    assert [tuple(getattr(row, name) for name in old.c.keys()) for row in rows] == before
    translated, failed, call, bad = rows
    assert (translated.original_text, translated.translation_failed, translated.environment) \
        == ("mi pedido", False, "draft")
    assert failed.translation_failed is True and failed.original_text is None
    assert call.end_reason == "caller_hangup"
    assert bad.original_text is None and bad.translation_failed is None   # unreadable raw

    figures = store.reports.overview(Filters(DAY - timedelta(hours=1), DAY + timedelta(hours=1)))
    assert figures["translation_failures"] == 1 and figures["calls"]["end_reasons"] == \
        {"caller_hangup": 1}
    # Opening it again changes nothing.
    assert EventStore.open(store_url).create_schema() == 4
    with engine.connect() as connection:
        assert connection.execute(select(events).order_by(events.c.id)).all() == rows
    engine.dispose()


def test_a_version_2_database_gets_the_roll_up_tables(store_url: str) -> None:
    store = EventStore.open(store_url)
    engine = store.engine
    rows = old_rows()[:3]
    with engine.begin() as connection:   # what version 2 was: these tables absent
        for table in (hourly, session_hours, rolled_hours):
            table.drop(connection)
        connection.execute(schema_version.delete())
        connection.execute(schema_version.insert().values(version=2, applied_at=DAY))
        connection.execute(events.insert(), rows)
    period = Filters(DAY - timedelta(hours=2), DAY + timedelta(hours=2))

    upgraded = EventStore.open(store_url)
    assert upgraded.schema_version() == 4
    figures = upgraded.reports.overview(period)
    assert (figures["messages"], figures["sessions"], figures["calls"]["count"]) == (2, 1, 1)
    with engine.connect() as connection:   # the period's whole hours from the oldest event on
        assert connection.execute(select(rolled_hours.c.hour).order_by(rolled_hours.c.hour)) \
            .scalars().all() == [DAY.replace(minute=0) + timedelta(hours=n) for n in (0, 1)]
    engine.dispose()
