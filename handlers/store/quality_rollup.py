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
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterator

from sqlalchemy import (BigInteger, Column, DateTime, Index, Integer, String, Table, Text,
                        and_, exists, func, insert, not_, or_, select, text, update)
from sqlalchemy.engine import Connection, Engine

from .quality import QUIET, ActionSums, Part, Sums, quiet_outcome
from .quality_facts import turn_facts
from .schema import MAX_ID_LENGTH, events, metadata

# One row per conversation and hour: the part of its turns in that hour, its sums as columns
# (so that the database adds up the conversations that need no merging), its actions as JSON.
# `spread`: its session has parts in other hours too (set by the fill of the second hour), so
# the report merges its parts instead of summing them.
quality_parts = Table(
    "log_quality_parts", metadata,
    Column("hour", DateTime(), nullable=False),
    Column("session_id", String(MAX_ID_LENGTH), nullable=False),
    Column("assistant_id", String(MAX_ID_LENGTH)),
    Column("environment", String(MAX_ID_LENGTH)),
    Column("first_at", DateTime(), nullable=False),
    Column("last_at", DateTime(), nullable=False),
    Column("language", String(32)),
    Column("escalated", Integer(), nullable=False),
    Column("requests", Integer(), nullable=False),
    Column("recognized", Integer(), nullable=False),
    Column("failed", Integer(), nullable=False),
    Column("unsupported", Integer(), nullable=False),
    Column("spread", Integer(), nullable=False),
    Column("part", Text(), nullable=False),
)
Index("ix_log_quality_parts_session", quality_parts.c.session_id, quality_parts.c.hour)
# What the report sums, read from the index alone.
Index("ix_log_quality_parts_sums", quality_parts.c.hour, quality_parts.c.spread,
      quality_parts.c.language, quality_parts.c.assistant_id, quality_parts.c.environment,
      quality_parts.c.escalated, quality_parts.c.requests, quality_parts.c.recognized,
      quality_parts.c.failed, quality_parts.c.unsupported)
# The ended actions of each part and (`pending`) the outcome of each action still open at its
# end should the conversation stay quiet, with the part's columns the report filters on.
quality_actions = Table(
    "log_quality_actions", metadata,
    Column("hour", DateTime(), nullable=False),
    Column("session_id", String(MAX_ID_LENGTH), nullable=False),
    Column("assistant_id", String(MAX_ID_LENGTH)),
    Column("environment", String(MAX_ID_LENGTH)),
    Column("language", String(32)),
    Column("last_at", DateTime(), nullable=False),
    Column("spread", Integer(), nullable=False),
    Column("action", String(MAX_ID_LENGTH), nullable=False),
    Column("title", Text()),
    Column("outcome", String(16), nullable=False),
    Column("n", Integer(), nullable=False),
    Column("pending", Integer(), nullable=False),
)
Index("ix_log_quality_actions_session", quality_actions.c.session_id)
Index("ix_log_quality_actions_hour", quality_actions.c.hour)
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
TABLES = (quality_parts, quality_actions, unrecognized)

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


@dataclass
class Prepared:
    """The roll-up rows of the hours [start, end), computed before the fill's lock, and what
    the events of those hours were then (`fingerprint`)."""

    start: datetime
    end: datetime
    fingerprint: tuple[Any, ...]
    rows: dict[str, list[dict[str, Any]]]


def _fingerprint(connection: Connection, start: datetime, end: datetime) -> tuple[Any, ...]:
    """How many messages [start, end) holds and the newest id: any insert (ids only grow) or
    deletion since changes it."""
    return tuple(connection.execute(select(func.count(), func.max(events.c.id)).where(
        events.c.received_at >= start, events.c.received_at < end,
        events.c.event == "message_logged", events.c.session_id.is_not(None))).one())


def prepare(engine: Engine, start: datetime, end: datetime) -> Prepared:
    """Compute the rows of [start, end) outside the fill's transaction (a read of its own)."""
    with engine.connect() as connection, connection.begin():
        if engine.dialect.name == "postgresql":
            connection.execute(text("SET LOCAL statement_timeout = 0"))
        fingerprint = _fingerprint(connection, start, end)
        return Prepared(start, end, fingerprint, _rows(connection, start, end))


def _rows(connection: Connection, start: datetime, end: datetime) -> dict[str, list[Any]]:
    period = and_(events.c.received_at >= start, events.c.received_at < end)
    parts, actions, missed = [], [], []
    for part, ids in read_parts(connection, period, by_hour=True):
        hour = _hour(part.first_at)
        parts.append(part.to_row() | {"hour": hour, "spread": 0})
        # (action, pending, outcome): an action id may hold anything, a tab included
        ended: Counter[tuple[str, int, str]] = Counter()
        for key, n in part.outcomes.items():
            action, outcome = key.rsplit("\t", 1)
            ended[(action, 0, outcome)] += n
        ended.update((action, 1, quiet_outcome(state)) for action, state in part.open)
        for (action, pending, outcome), n in ended.items():
            actions.append({"hour": hour, "session_id": part.session_id,
                            "assistant_id": part.assistant_id, "environment": part.environment,
                            "language": part.language, "last_at": part.last_at, "spread": 0,
                            "action": action, "title": part.titles.get(action),
                            "outcome": outcome, "n": n, "pending": pending})
        missed += [{"hour": hour, "event_id": event_id, "received_at": at,
                    "assistant_id": part.assistant_id, "environment": part.environment}
                   for event_id, at in ids]
    return {quality_parts.name: parts, quality_actions.name: actions, unrecognized.name: missed}


def fill(connection: Connection, start: datetime, end: datetime,
         prepared: Prepared | None = None) -> None:
    """Roll up the quality parts of the hours [start, end), in the roll-up's transaction: the
    rows `prepared` computed if the events of its hours are still what they were, else
    computed now."""
    if prepared is not None and prepared.start <= start and end <= prepared.end and \
            _fingerprint(connection, prepared.start, prepared.end) == prepared.fingerprint:
        rows = {name: [row for row in chosen if start <= row["hour"] < end]
                for name, chosen in prepared.rows.items()}
    else:
        rows = _rows(connection, start, end)
    spread = _spread(connection, start, end, rows[quality_parts.name])
    for row in rows[quality_parts.name] + rows[quality_actions.name]:
        row["spread"] = int(row["session_id"] in spread)
    for table in TABLES:
        for chunk in range(0, len(rows[table.name]), 1000):
            connection.execute(insert(table), rows[table.name][chunk:chunk + 1000])


def _spread(connection: Connection, start: datetime, end: datetime,
            parts: list[dict[str, Any]]) -> set[str]:
    """The sessions of `parts` (the hours [start, end)) that have parts in other hours too; the
    parts of theirs already rolled up are marked: every part of theirs is merged, not summed."""
    seen = Counter(part["session_id"] for part in parts)
    spread = {session for session, n in seen.items() if n > 1}
    sessions = sorted(seen)
    elsewhere = or_(quality_parts.c.hour < start, quality_parts.c.hour >= end)
    for chunk in range(0, len(sessions), 1000):
        spread.update(connection.execute(select(quality_parts.c.session_id).where(
            quality_parts.c.session_id.in_(sessions[chunk:chunk + 1000]), elsewhere)).scalars())
    earlier = sorted(spread)
    for chunk in range(0, len(earlier), 1000):
        for table in (quality_parts, quality_actions):
            connection.execute(update(table).where(
                table.c.session_id.in_(earlier[chunk:chunk + 1000]), table.c.spread == 0,
                or_(table.c.hour < start, table.c.hour >= end)).values(spread=1))
    return spread


def rolled(connection: Connection, filters: Any, start: datetime, end: datetime,
           apart: set[str], now: datetime) -> tuple[list[Part], list[Sums], list[ActionSums]]:
    """The rolled-up hours [start, end) of a period (`filters(table)`: its conditions on a
    roll-up table): the conversations the database can sum as they are (one part, not in the
    hours at the period's ends, not in `apart`: the sessions of its open edges), summed by
    language; the parts of the others, to merge."""
    def alone(table: Any) -> Any:
        condition = and_(table.c.spread == 0, table.c.hour > start,
                         table.c.hour < end - timedelta(hours=1))
        return and_(condition, table.c.session_id.not_in(sorted(apart))) if apart \
            else condition

    parts, ended = quality_parts, quality_actions
    sums = [Sums(*row) for row in connection.execute(select(
        parts.c.language, func.count(), func.sum(parts.c.escalated), func.sum(parts.c.requests),
        func.sum(parts.c.recognized), func.sum(parts.c.failed), func.sum(parts.c.unsupported))
        .where(filters(parts), alone(parts)).group_by(parts.c.language))]
    # An action open at the end of a conversation quiet for over an hour has its outcome;
    # before that it is undecided (quality.py).
    decided = or_(ended.c.pending == 0, ended.c.last_at < now - QUIET)
    action_sums = [ActionSums(*row) for row in connection.execute(select(
        ended.c.language, ended.c.action, func.max(ended.c.title), ended.c.outcome,
        func.sum(ended.c.n)).where(filters(ended), alone(ended), decided)
        .group_by(ended.c.language, ended.c.action, ended.c.outcome))]
    merged = [Part.from_row(row) for row in connection.execute(
        select(parts).where(filters(parts), not_(alone(parts))))]
    return merged, sums, action_sums
