"""Schema version steps: a database made by an older kit is brought up to SCHEMA_VERSION in
place, inside the transaction that creates the schema (one process does it; the others wait on
the PostgreSQL advisory lock or SQLite's write lock, then find the new version).

Version 4 (the quality report) rolls up what version 3 did plus the quality parts: the hours a
version 3 database rolled up are forgotten, to be rolled up again with them (`refill_rollup`).

Version 2 (the explorer) adds four nullable columns, which both backends add without
rewriting the table, and fills them for the rows already stored from each row's raw event,
with the mapping the log webhook applies to new events (rows.py; the context variables under
their default names: ORIGINAL_INPUT_VARIABLE and TRANSLATION_FAILED_VARIABLE as shipped).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, inspect, select, text, update
from sqlalchemy.engine import Connection

from .rows import event_columns
from .schema import events, hourly, rolled_hours, session_hours

VERSION_2_COLUMNS = ("original_text", "environment", "translation_failed", "end_reason")
BACKFILL_BATCH = 500


def add_missing_columns(connection: Connection) -> list[str]:
    """Add the columns of `log_events` an older schema lacks; returns their names."""
    present = {column["name"] for column in inspect(connection).get_columns(events.name)}
    added = []
    for name in VERSION_2_COLUMNS:
        if name not in present:
            kind = events.c[name].type.compile(dialect=connection.dialect)
            connection.execute(text(f"ALTER TABLE {events.name} ADD COLUMN {name} {kind}"))
            added.append(name)
    return added


def backfill_version_2(connection: Connection) -> int:
    """Fill the version 2 columns of the rows stored before the upgrade; returns how many.

    Reads the raw events in id order, a batch at a time, so memory stays flat."""
    done, last_id = 0, 0
    while True:
        rows = connection.execute(
            select(events.c.id, events.c.event, events.c.raw).where(events.c.id > last_id)
            .order_by(events.c.id).limit(BACKFILL_BATCH)).all()
        if not rows:
            return done
        for row in rows:
            values = _version_2_values(row.event, row.raw)
            if values:
                connection.execute(update(events).where(events.c.id == row.id).values(**values))
        done += len(rows)
        last_id = rows[-1].id


def _version_2_values(name: str, raw: str) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError:
        return {}
    payload = body.get("payload") if isinstance(body, dict) else None
    if not isinstance(payload, dict):
        return {}
    columns = event_columns(name, payload)
    return {key: columns[key] for key in VERSION_2_COLUMNS if columns.get(key) is not None}


def refill_rollup(connection: Connection, found: int | None) -> None:
    """From a version before 4, forget every rolled-up hour: the next reader rolls them up
    again, quality parts included."""
    if found is None or found >= 4:
        return
    for table in (hourly, session_hours, rolled_hours):
        connection.execute(delete(table))
