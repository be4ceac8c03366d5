"""The quality figures' share of the hourly roll-up (schema version 4): each closed hour's
conversation parts (quality.py) and unrecognized requests, computed once from the stored events.

The facts live in each event's raw JSON (its turn events), which no index holds: reading them
again for every report of a month would parse every event. So `fill` runs inside the roll-up's
fill of an hour (rollup.py, the same transaction and lock, so `forget` drops these rows with the
overview's), and a report reads a few rows per conversation and hour instead. The open edges of
a period (the current hour, a custom start) are read from the events, as the overview does.

Never in the log webhook's path: the webhook writes the current hour, which is never rolled up.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Iterator

from sqlalchemy import (BigInteger, Column, DateTime, Index, Integer, String, Table, Text,
                        and_, insert, select)
from sqlalchemy.engine import Connection

from .quality import Part
from .quality_facts import turn_facts
from .schema import MAX_ID_LENGTH, events, metadata

# One row per conversation and hour: the part of its turns in that hour.
quality_parts = Table(
    "log_quality_parts", metadata,
    Column("hour", DateTime(), nullable=False),
    Column("session_id", String(MAX_ID_LENGTH), nullable=False),
    Column("assistant_id", String(MAX_ID_LENGTH)),
    Column("environment", String(MAX_ID_LENGTH)),
    Column("first_at", DateTime(), nullable=False),
    Column("last_at", DateTime(), nullable=False),
    Column("part", Text(), nullable=False),
)
Index("ix_log_quality_parts_hour", quality_parts.c.hour)
# One row per unrecognized request: the event it is (its texts stay in log_events).
unrecognized = Table(
    "log_unrecognized", metadata,
    Column("hour", DateTime(), nullable=False),
    Column("event_id", BigInteger().with_variant(Integer(), "sqlite"), nullable=False),
    Column("received_at", DateTime(), nullable=False),
    Column("assistant_id", String(MAX_ID_LENGTH)),
    Column("environment", String(MAX_ID_LENGTH)),
)
Index("ix_log_unrecognized_hour", unrecognized.c.hour, unrecognized.c.received_at)
TABLES = (quality_parts, unrecognized)

MESSAGE_COLUMNS = (events.c.id, events.c.received_at, events.c.session_id,
                   events.c.assistant_id, events.c.environment, events.c.language,
                   events.c.translation_failed, events.c.raw)


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _payload(raw: str) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError:
        return {}
    payload = body.get("payload") if isinstance(body, dict) else None
    return payload if isinstance(payload, dict) else {}


def read_parts(connection: Connection, where: Any, *,
               by_hour: bool) -> Iterator[tuple[Part, list[tuple[int, datetime]]]]:
    """The parts of the messages `where` selects, per conversation (and hour when `by_hour`),
    each with the ids of its unrecognized requests; rows are streamed, a batch at a time."""
    query = select(*MESSAGE_COLUMNS).where(where, events.c.event == "message_logged",
                                           events.c.session_id.is_not(None)) \
        .order_by(events.c.session_id, events.c.received_at, events.c.id)
    part: Part | None = None
    key: tuple[str, datetime | None] | None = None
    missed: list[tuple[int, datetime]] = []
    for row in connection.execute(query.execution_options(yield_per=500)):
        row_key = (row.session_id, _hour(row.received_at) if by_hour else None)
        if row_key != key:
            if part is not None:
                yield part, missed
            key, missed = row_key, []
            part = Part(row.session_id, row.received_at, row.received_at, row.assistant_id,
                        row.environment)
        facts = turn_facts(_payload(row.raw), language=row.language,
                           translation_failed=bool(row.translation_failed))
        part.add(row.received_at, facts)   # type: ignore[union-attr]
        if facts.request and not facts.recognized:
            missed.append((row.id, row.received_at))
    if part is not None:
        yield part, missed


def fill(connection: Connection, start: datetime, end: datetime) -> None:
    """Roll up the quality parts of the hours [start, end), in the roll-up's transaction."""
    period = and_(events.c.received_at >= start, events.c.received_at < end)
    parts, missed = [], []
    for part, ids in read_parts(connection, period, by_hour=True):
        hour = _hour(part.first_at)
        parts.append({"hour": hour, "session_id": part.session_id,
                      "assistant_id": part.assistant_id, "environment": part.environment,
                      "first_at": part.first_at, "last_at": part.last_at,
                      "part": part.to_json()})
        missed += [{"hour": hour, "event_id": event_id, "received_at": at,
                    "assistant_id": part.assistant_id, "environment": part.environment}
                   for event_id, at in ids]
    for table, rows in ((quality_parts, parts), (unrecognized, missed)):
        for chunk in range(0, len(rows), 1000):
            connection.execute(insert(table), rows[chunk:chunk + 1000])


def rolled_parts(connection: Connection, where: Any) -> Iterator[Part]:
    """The stored parts `where` selects (on log_quality_parts)."""
    for row in connection.execute(select(quality_parts).where(where)):
        yield Part.from_json(row.part, row.session_id, row.first_at, row.last_at,
                             row.assistant_id, row.environment)
