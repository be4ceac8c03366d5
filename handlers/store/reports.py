"""Reading the stored events for the command line (`flask logs count|export|stats`) and the
explorer (handlers/explorer): whole periods of the table, computed by the database, in
constant memory. `overview()` is the one query behind both `logs stats` and the explorer's
overview, so the two always print the same numbers for the same period.

A mixin of EventStore, so the CLI, the tests and an operator's own script call
`store.count()`, `store.iter_events()`, `store.stats()` on the one object they already hold.
Unlike a log request these have no deadline: they lift the webhook's statement timeout.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Iterator, Sequence

from sqlalchemy import and_, case, func, literal, or_, select, text, tuple_
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from .schema import StoreUnavailable, events


@dataclass(frozen=True)
class Filters:
    """What the overview and the session list narrow to: a period ([since, until)) and the
    assistant, environment and customer language (None: all)."""

    since: datetime | None = None
    until: datetime | None = None
    assistant: str | None = None
    environment: str | None = None
    language: str | None = None

    def where(self, event: str) -> Any:
        conditions = [events.c.event == event]
        if self.since is not None:
            conditions.append(events.c.received_at >= self.since)
        if self.until is not None:
            conditions.append(events.c.received_at < self.until)
        if self.assistant:
            conditions.append(events.c.assistant_id == self.assistant)
        if self.environment:
            conditions.append(events.c.environment == self.environment)
        if self.language and event == "message_logged":
            conditions.append(events.c.language == self.language)
        return and_(*conditions)


# Sessions listed per page of the explorer (keyset pagination: the page after a cursor).
PAGE_SIZE = 50


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
              top: int = 10, supported: Sequence[str] | None = None) -> dict[str, Any]:
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
            figures = self._overview(connection, Filters(since, until), supported)
            totals = connection.execute(select(
                func.sum(case((events.c.agent_transfer.is_(True), 1), else_=0)).label("transfers"),
            ).where(messages)).one()
            per_session = select(func.count().label("n")).where(
                messages, events.c.session_id.is_not(None)).group_by(events.c.session_id).subquery()
            spread = connection.execute(select(
                func.avg(per_session.c.n).label("mean"), func.min(per_session.c.n).label("min"),
                func.max(per_session.c.n).label("max"))).one()
            intents = [{"intent": row.intent, "count": row.n} for row in connection.execute(
                select(events.c.intent, func.count().label("n"))
                .where(messages, events.c.intent.is_not(None))
                .group_by(events.c.intent).order_by(func.count().desc(), events.c.intent)
                .limit(top))]
        message_count, sessions = figures["messages"], figures["sessions"]
        return {
            "events_per_day": per_day,
            "messages": message_count,
            "sessions": sessions,
            "messages_per_session": {
                "mean": round(float(spread.mean or 0), 2),
                "min": spread.min or 0,
                "max": spread.max or 0,
            },
            "languages": figures["languages"],
            "translation_failures": figures["translation_failures"],
            "unsupported_language_replies": figures["unsupported_language_replies"],
            "top_intents": intents,
            "agent_transfer_offered": {
                "replies": int(totals.transfers or 0),
                "share": _ratio(int(totals.transfers or 0), message_count),
            },
            "calls": figures["calls"],
        }

    # --- the explorer (and the shared figures of `logs stats`) ------------------------------

    def overview(self, filters: Filters, supported: Sequence[str] | None = None,
                 bucket: str = "hour") -> dict[str, Any]:
        """The explorer's overview: the figures `logs stats` prints for the same period, plus
        messages per hour or day (`bucket`). `supported`: SUPPORTED_LANGUAGES, to count the
        replies in a language the assistant does not serve."""
        with self._connect() as connection, connection.begin():
            self._no_statement_timeout(connection)
            return self._overview(connection, filters, supported, bucket)

    def _overview(self, connection: Connection, filters: Filters,
                  supported: Sequence[str] | None, bucket: str | None = None) -> dict[str, Any]:
        messages = filters.where("message_logged")
        slot = self._bucket(bucket) if bucket else literal("")
        # One pass over the covering index gives the total, the chart, the languages and the
        # failures: grouped by (slot, language, failed), summed here (a few hundred rows).
        per_slot: dict[str, int] = {}
        languages: dict[str, int] = {}
        failures = total = 0
        for row in connection.execute(
                select(slot.label("slot"), events.c.language, events.c.translation_failed,
                       func.count().label("n")).where(messages)
                .group_by(slot, events.c.language, events.c.translation_failed)):
            total += row.n
            if bucket:
                label = self._label(row.slot, bucket)
                per_slot[label] = per_slot.get(label, 0) + row.n
            code = row.language or "unknown"
            languages[code] = languages.get(code, 0) + row.n
            if row.translation_failed:
                failures += row.n
        if self.dialect == "postgresql":
            # count(DISTINCT) sorts; a grouped subquery hashes: the same number, faster.
            distinct = select(events.c.session_id).where(
                messages, events.c.session_id.is_not(None)).group_by(events.c.session_id) \
                .subquery()
            sessions = connection.execute(select(func.count()).select_from(distinct)).scalar_one()
        else:
            # SQLite would group along the session index, visiting every row: count(DISTINCT)
            # stays on the covering index.
            sessions = connection.execute(
                select(func.count(events.c.session_id.distinct())).where(messages)).scalar_one()
        unsupported = sum(n for code, n in languages.items()
                          if supported and code != "unknown" and code not in supported)
        calls = {"count": 0, "transferred": 0, "end_reasons": {}}
        for row in connection.execute(
                select(events.c.end_reason, events.c.agent_transfer, func.count().label("n"))
                .where(filters.where("cdr_logged"))
                .group_by(events.c.end_reason, events.c.agent_transfer)):
            calls["count"] += row.n
            calls["transferred"] += row.n if row.agent_transfer else 0
            reason = row.end_reason or "unknown"
            calls["end_reasons"][reason] = calls["end_reasons"].get(reason, 0) + row.n
        calls["end_reasons"] = dict(sorted(calls["end_reasons"].items(),
                                           key=lambda item: (-item[1], item[0])))
        figures: dict[str, Any] = {
            "messages": total,
            "sessions": sessions,
            "languages": dict(sorted(languages.items(), key=lambda item: (-item[1], item[0]))),
            "translation_failures": failures,
            "unsupported_language_replies": unsupported,
            "calls": calls,
        }
        if bucket:
            figures["per_" + bucket] = dict(sorted(per_slot.items()))
        return figures

    def _bucket(self, bucket: str) -> Any:
        """The hour or day of received_at, cheaply: on SQLite the stored text's prefix
        (`2026-12-03 09`, `2026-12-03`; both the kit's inserts and SQLAlchemy's write
        `YYYY-MM-DD HH:MM:SS.ffffff`), on PostgreSQL date_trunc; `_label` writes it out."""
        if bucket not in ("hour", "day"):
            raise ValueError(f"bucket {bucket!r}: hour or day")
        if self.dialect == "postgresql":
            return func.date_trunc(bucket, events.c.received_at)
        return func.substr(events.c.received_at, 1, 13 if bucket == "hour" else 10)

    @staticmethod
    def _label(value: Any, bucket: str) -> str:
        if isinstance(value, datetime):
            return value.strftime("%Y-%m-%d %H:00" if bucket == "hour" else "%Y-%m-%d")
        return f"{value}:00" if bucket == "hour" else str(value)

    def sessions(self, filters: Filters, *, failed_only: bool = False, search: str = "",
                 after: tuple[datetime, str] | None = None,
                 limit: int = PAGE_SIZE) -> list[Any]:
        """Sessions with a message in the period, newest last message first, `limit` after
        the cursor `after` (last message time, session id): keyset pagination, so page 1,000
        costs what page 1 does. `search` matches the customer's words (as typed or as the
        assistant received them), case-insensitively."""
        where = and_(filters.where("message_logged"), events.c.session_id.is_not(None))
        if search:
            pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%") \
                .replace("_", "\\_") + "%"
            where = and_(where, or_(events.c.customer_text.ilike(pattern, escape="\\"),
                                    events.c.original_text.ilike(pattern, escape="\\")))
        last = func.max(events.c.received_at)
        failed = func.sum(case((events.c.translation_failed.is_(True), 1), else_=0))
        query = select(events.c.session_id, func.min(events.c.received_at).label("first_at"),
                       last.label("last_at"), func.count().label("messages"),
                       func.max(events.c.language).label("language"),
                       func.max(events.c.assistant_id).label("assistant_id"),
                       func.max(events.c.environment).label("environment"),
                       failed.label("failed")) \
            .where(where).group_by(events.c.session_id)
        having = []
        if failed_only:
            having.append(failed > 0)
        if after is not None:
            having.append(tuple_(last, events.c.session_id) < tuple_(*after)
                          if self.dialect == "postgresql" else
                          or_(last < after[0], and_(last == after[0],
                                                    events.c.session_id < after[1])))
        if having:
            query = query.having(and_(*having))
        query = query.order_by(last.desc(), events.c.session_id.desc()).limit(limit)
        with self._connect() as connection, connection.begin():
            self._no_statement_timeout(connection)
            return connection.execute(query).all()

    def transcript(self, session: str, limit: int = 2000) -> list[Any]:
        """A session's messages and calls, oldest first (at most `limit`)."""
        with self._connect() as connection, connection.begin():
            self._no_statement_timeout(connection)
            return connection.execute(
                select(events).where(events.c.session_id == session)
                .order_by(events.c.received_at, events.c.id).limit(limit)).all()



def _ratio(part: float, whole: float) -> float:
    return round(part / whole, 4) if whole else 0.0
