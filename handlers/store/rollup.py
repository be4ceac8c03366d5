"""The overview's hourly roll-up (schema version 3): whole past hours read from small tables
instead of counting their events again.

Counting a month of a busy assistant (a million messages) took the database 1.6-1.7 s on every
view. Most of a period is hours that will not change: their counts by the overview's dimensions
(log_hourly) and their distinct sessions (log_session_hours) are computed once, by the first
reader that asks for them, and kept. The period is split (`split`): whole hours that closed
more than GRACE ago come from the roll-up; the open edges (the part of the first hour a custom
period starts in, the current hour and the grace period) are counted from the events as before.

Nothing is added to the log webhook's write path: the webhook writes the current hour only,
which is never rolled up. What writes into or deletes from past hours says so (`forget`):
`add_many` (imports, tests, benchmarks) and the retention purge. Filling and forgetting take
the same lock (SQLite's writer lock, a PostgreSQL advisory lock), so a fill never records an
hour as it was before a write that `forget` already handled.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, ContextManager, Iterator

from sqlalchemy import and_, case, delete, func, insert, literal, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from . import quality_rollup
from .schema import StoreUnavailable, events, hourly, rolled_hours, session_hours, utcnow

log = logging.getLogger("handlers.store")

HOUR = timedelta(hours=1)
# An hour is rolled up once it ended this long ago: a request that took its timestamp just
# before the hour turned may commit a little later, and instances' clocks differ a little.
GRACE = timedelta(minutes=5)
# Hours filled per transaction: SQLite's single writer (the log webhook) waits for at most one
# such chunk (a day of a million-message month: tens of milliseconds).
FILL_CHUNK = 24
ADVISORY_LOCK = 581771506  # PostgreSQL: fills and forgets, one at a time


def floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: datetime) -> datetime:
    start = floor_hour(moment)
    return start if start == moment else start + HOUR


@dataclass(frozen=True)
class Split:
    """A period in two parts: `rolled` ([start, end) of whole closed hours, or None) and
    `edges`, the periods around it counted from the events (None: open-ended)."""

    rolled: tuple[datetime, datetime] | None
    edges: tuple[tuple[datetime | None, datetime | None], ...]


def split(since: datetime | None, until: datetime | None, first: datetime | None,
          now: datetime | None = None) -> Split:
    """Split [since, until) at the hours the roll-up can serve. `first`: when the oldest
    event was received (None: the store is empty); no hour before its hour is rolled up."""
    if first is None:
        return Split(None, ((since, until),))
    closed = floor_hour((now or utcnow()) - GRACE)
    end = closed if until is None else min(floor_hour(until), closed)
    start = floor_hour(first) if since is None else max(ceil_hour(since), floor_hour(first))
    if start >= end:
        return Split(None, ((since, until),))
    edges = []
    if since is not None and since < start:
        edges.append((since, start))
    if until is None or end < until:
        edges.append((end, until))
    return Split((start, end), tuple(edges))


def hours(start: datetime, end: datetime) -> Iterator[datetime]:
    moment = start
    while moment < end:
        yield moment
        moment += HOUR


class RollUp:
    """Fills and forgets the roll-up of one store. `writer` is the store's write lock (SQLite:
    the writer lock; PostgreSQL: no-op, the advisory lock is taken in the transaction)."""

    def __init__(self, engine: Engine, writer: Callable[[], ContextManager[Any]]) -> None:
        self.engine = engine
        self.writer = writer
        self.postgresql = engine.dialect.name == "postgresql"

    def _bucket(self) -> Any:
        """The hour an event belongs to, as a value of the `hour` columns."""
        if self.postgresql:
            return func.date_trunc("hour", events.c.received_at)
        # SQLite keeps DateTime as 'YYYY-MM-DD HH:MM:SS.ffffff' text: the hour's prefix, padded.
        return func.substr(events.c.received_at, 1, 13).concat(":00:00.000000")

    def _begin(self, connection: Connection) -> None:
        if self.postgresql:
            connection.execute(text("SET LOCAL statement_timeout = 0"))
            connection.execute(text(f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK})"))

    def ready(self, start: datetime, end: datetime) -> bool:
        """Fill what [start, end) lacks; whether every hour of it is rolled up now. A fill that
        cannot get the lock or fails leaves the caller counting the events instead."""
        wanted = sum(1 for _ in hours(start, end))
        try:
            if self._filled(start, end) == wanted:
                return True
            chunk_start = start
            while chunk_start < end:
                chunk_end = min(end, chunk_start + FILL_CHUNK * HOUR)
                self._fill(chunk_start, chunk_end)
                chunk_start = chunk_end
            return self._filled(start, end) == wanted
        except (StoreUnavailable, SQLAlchemyError) as exc:
            log.warning("overview roll-up not filled (%s): counting the events instead",
                        type(exc).__name__)
            return False

    def _filled(self, start: datetime, end: datetime) -> int:
        with self.engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(rolled_hours).where(
                rolled_hours.c.hour >= start, rolled_hours.c.hour < end)).scalar_one()

    def _fill(self, start: datetime, end: datetime) -> None:
        """Roll up the hours of [start, end) not rolled up yet, in one transaction."""
        if self._filled(start, end) == sum(1 for _ in hours(start, end)):
            return
        # The quality parts are parsed from the events' JSON before the lock, which the log
        # webhook's SQLite writes wait for (quality_rollup.py checks nothing changed since).
        prepared = quality_rollup.prepare(self.engine, start, end)
        with self.writer(), self.engine.begin() as connection:
            self._begin(connection)
            done = set(connection.execute(select(rolled_hours.c.hour).where(
                rolled_hours.c.hour >= start, rolled_hours.c.hour < end)).scalars())
            missing = [hour for hour in hours(start, end) if hour not in done]
            for first, last in _runs(missing):
                self._fill_run(connection, first, last + HOUR, prepared)

    def _fill_run(self, connection: Connection, start: datetime, end: datetime,
                  prepared: quality_rollup.Prepared | None = None) -> None:
        bucket = self._bucket().label("hour")
        period = and_(events.c.received_at >= start, events.c.received_at < end)
        into = ["hour", "event", "assistant_id", "environment", "language", "end_reason", "flag",
                "n"]
        # Messages and calls apart: the messages' columns are all in the overview's covering
        # index, so their million rows (and raw JSON) are never visited.
        for event, language, end_reason, flag in (
                ("message_logged", events.c.language, literal(None), events.c.translation_failed),
                ("cdr_logged", events.c.language, events.c.end_reason, events.c.agent_transfer)):
            dimensions = [events.c.assistant_id, events.c.environment, language, end_reason, flag]
            connection.execute(insert(hourly).from_select(into, select(
                bucket, literal(event), *dimensions, func.count())
                .where(period, events.c.event == event).group_by(bucket, *dimensions)))
        keys = [events.c.session_id, events.c.assistant_id, events.c.environment,
                events.c.language]
        connection.execute(insert(session_hours).from_select(
            ["hour", "session_id", "assistant_id", "environment", "language", "first_at",
             "last_at", "messages", "failed"],
            select(bucket, *keys, func.min(events.c.received_at), func.max(events.c.received_at),
                   func.count(), func.sum(case((events.c.translation_failed.is_(True), 1),
                                               else_=0)))
            .where(period, events.c.event == "message_logged", events.c.session_id.is_not(None))
            .group_by(bucket, *keys)))
        quality_rollup.fill(connection, start, end, prepared)
        connection.execute(insert(rolled_hours), [{"hour": hour} for hour in hours(start, end)])

    def forget(self, connection: Connection, since: datetime | None,
               until: datetime | None = None) -> None:
        """Drop the roll-up of the hours [floor(since), until) (None: every hour), in the
        caller's write transaction, after it changed their events."""
        self._begin(connection)
        for table in (hourly, session_hours, *quality_rollup.TABLES, rolled_hours):
            conditions = []
            if since is not None:
                conditions.append(table.c.hour >= floor_hour(since))
            if until is not None:
                conditions.append(table.c.hour < until)
            connection.execute(delete(table).where(and_(literal(True), *conditions)))


def _runs(moments: list[datetime]) -> Iterator[tuple[datetime, datetime]]:
    """Consecutive hours as (first, last) pairs."""
    first = last = None
    for moment in moments:
        if last is not None and moment == last + HOUR:
            last = moment
            continue
        if first is not None:
            yield first, last
        first = last = moment
    if first is not None:
        yield first, last
