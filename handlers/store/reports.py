"""Reading the stored events for the command line (`flask logs count|export|stats`): whole
periods of the table, computed by the database, in constant memory.

A mixin of EventStore, so the CLI, the tests and an operator's own script call
`store.count()`, `store.iter_events()`, `store.stats()` on the one object they already hold.
Unlike a log request these have no deadline: they lift the webhook's statement timeout.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Iterator, Sequence

from sqlalchemy import and_, case, func, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from .schema import StoreUnavailable, events


class EventReports:
    """count, iter_events and stats over `self.engine` (set by EventStore)."""

    engine: Engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def _ensure_schema(self) -> None:
        raise NotImplementedError      # EventStore's

    def _connect(self) -> Connection:
        self._ensure_schema()
        try:
            return self.engine.connect()
        except SQLAlchemyError as exc:
            raise StoreUnavailable(type(exc).__name__) from exc

    def _no_statement_timeout(self, connection: Connection) -> None:
        """The command line may scan the whole table: lift the webhook's statement timeout."""
        if self.dialect == "postgresql":
            connection.execute(text("SET LOCAL statement_timeout = 0"))

    @staticmethod
    def _filters(since: datetime | None, until: datetime | None, session: str | None = None,
                 assistant: str | None = None) -> Any:
        conditions = []
        if since is not None:
            conditions.append(events.c.received_at >= since)
        if until is not None:
            conditions.append(events.c.received_at < until)
        if session is not None:
            conditions.append(events.c.session_id == session)
        if assistant is not None:
            conditions.append(events.c.assistant_id == assistant)
        return and_(True, *conditions)

    def count(self, since: datetime | None = None, until: datetime | None = None,
              session: str | None = None, assistant: str | None = None) -> int:
        with self._connect() as connection, connection.begin():
            self._no_statement_timeout(connection)
            return connection.execute(select(func.count()).select_from(events).where(
                self._filters(since, until, session, assistant))).scalar_one()

    def iter_events(self, since: datetime | None = None, until: datetime | None = None,
                    session: str | None = None, assistant: str | None = None,
                    columns: Sequence[str] | None = None, batch: int = 100) -> Iterator[Any]:
        """Rows (all columns, or only `columns`) in insertion order, fetched `batch` at a time
        (a server-side cursor on PostgreSQL), so memory stays flat whatever the table size.
        Rows can be megabytes each (the raw event): batches stay small."""
        chosen = [events.c[name] for name in columns] if columns else [events]
        query = select(*chosen).where(self._filters(since, until, session, assistant)) \
            .order_by(events.c.id)
        with self._connect() as connection, connection.begin():
            self._no_statement_timeout(connection)
            result = connection.execution_options(yield_per=batch).execute(query)
            yield from result

    def stats(self, since: datetime | None = None, until: datetime | None = None,
              top: int = 10) -> dict[str, Any]:
        """Aggregates computed by the database (constant memory): see `flask logs stats`."""
        where = self._filters(since, until)
        messages = and_(where, events.c.event == "message_logged")
        day = func.date(events.c.received_at)
        with self._connect() as connection, connection.begin():
            self._no_statement_timeout(connection)
            per_day: dict[str, dict[str, int]] = {}
            for row in connection.execute(
                    select(day.label("day"), events.c.event, func.count().label("n"))
                    .where(where).group_by(day, events.c.event).order_by(day, events.c.event)):
                key = row.day.isoformat() if isinstance(row.day, date) else str(row.day)
                per_day.setdefault(key, {})[row.event] = row.n
            totals = connection.execute(select(
                func.count().label("messages"),
                func.count(events.c.session_id.distinct()).label("sessions"),
                func.sum(case((events.c.agent_transfer.is_(True), 1), else_=0)).label("transfers"),
            ).where(messages)).one()
            per_session = select(func.count().label("n")).where(
                messages, events.c.session_id.is_not(None)).group_by(events.c.session_id).subquery()
            spread = connection.execute(select(
                func.avg(per_session.c.n).label("mean"), func.min(per_session.c.n).label("min"),
                func.max(per_session.c.n).label("max"))).one()
            languages = {row.language or "unknown": row.n for row in connection.execute(
                select(events.c.language, func.count().label("n")).where(messages)
                .group_by(events.c.language).order_by(func.count().desc(), events.c.language))}
            intents = [{"intent": row.intent, "count": row.n} for row in connection.execute(
                select(events.c.intent, func.count().label("n"))
                .where(messages, events.c.intent.is_not(None))
                .group_by(events.c.intent).order_by(func.count().desc(), events.c.intent)
                .limit(top))]
            calls = connection.execute(select(
                func.count(),
                func.sum(case((events.c.agent_transfer.is_(True), 1), else_=0)),
            ).where(where, events.c.event == "cdr_logged")).one()
        message_count, sessions = totals.messages, totals.sessions
        return {
            "events_per_day": per_day,
            "messages": message_count,
            "sessions": sessions,
            "messages_per_session": {
                "mean": round(float(spread.mean or 0), 2),
                "min": spread.min or 0,
                "max": spread.max or 0,
            },
            "languages": languages,
            "top_intents": intents,
            "agent_transfer_offered": {
                "replies": int(totals.transfers or 0),
                "share": _ratio(int(totals.transfers or 0), message_count),
            },
            "calls": {"count": calls[0], "transferred": int(calls[1] or 0)},
        }


def _ratio(part: float, whole: float) -> float:
    return round(part / whole, 4) if whole else 0.0
