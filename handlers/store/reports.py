"""Reading the stored events for the command line (`flask logs count|export|stats`) and the
explorer (handlers/explorer): whole periods of the table, computed by the database, in
constant memory. `overview()` is the one query behind both `logs stats` and the explorer's
overview, so the two always print the same numbers for the same period.

The store's read side, `store.reports`: the CLI, the explorer, the tests and an operator's own
script call `store.reports.count()`, `.iter_events()`, `.stats()`, `.overview()`. Unlike a log
request these have no deadline: they lift the webhook's statement timeout.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Callable, Iterator, Sequence

from sqlalchemy import (and_, case, func, literal, or_, select, text, tuple_, union,
                        union_all)
from sqlalchemy.engine import Connection, Engine

from .filters import Filters
from .quality_reports import QualityReports
from .rollup import RollUp, Split, hours, split
from .schema import events, hourly, session_hours


# Sessions listed per page of the explorer (keyset pagination: the page after a cursor).
PAGE_SIZE = 50


class EventReports(QualityReports):
    """Whole periods of the events table: count, iter_events, stats, overview, sessions,
    transcript; quality_report and unrecognized_requests (QualityReports). `connect()` is the store's (the schema made first, StoreUnavailable when the
    database does not answer); `rollup` its hourly roll-up."""

    def __init__(self, engine: Engine, rollup: RollUp,
                 connect: Callable[[], Connection]) -> None:
        self.engine = engine
        self.rollup = rollup
        self._connect = connect
        self.dialect = engine.dialect.name

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
        plan = self._plan(Filters(since, until))
        with self._connect() as connection, connection.begin():
            self._no_statement_timeout(connection)
            per_day: dict[str, dict[str, int]] = {}
            for row in connection.execute(
                    select(day.label("day"), events.c.event, func.count().label("n"))
                    .where(where).group_by(day, events.c.event).order_by(day, events.c.event)):
                key = row.day.isoformat() if isinstance(row.day, date) else str(row.day)
                per_day.setdefault(key, {})[row.event] = row.n
            figures = self._overview(connection, Filters(since, until), plan, supported)
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
        plan = self._plan(filters)
        with self._connect() as connection, connection.begin():
            self._no_statement_timeout(connection)
            return self._overview(connection, filters, plan, supported, bucket)

    def roll_up(self) -> int:
        """Fill the overview's roll-up of every closed hour now, so that the first view after
        an upgrade is not the one that waits (`logs init-db`); returns the hours it holds."""
        plan = self._plan(Filters())
        return 0 if plan.rolled is None else sum(1 for _ in hours(*plan.rolled))

    def _plan(self, filters: Filters) -> Split:
        """Which part of the period the roll-up serves (filled first where it lacks hours);
        the rest is counted from the events (see rollup.py)."""
        with self._connect() as connection:
            first = connection.execute(select(func.min(events.c.received_at))).scalar()
        plan = split(filters.since, filters.until, first)
        if plan.rolled is not None and not self.rollup.ready(*plan.rolled):
            return Split(None, ((filters.since, filters.until),))
        return plan

    def _overview(self, connection: Connection, filters: Filters, plan: Split,
                  supported: Sequence[str] | None, bucket: str | None = None) -> dict[str, Any]:
        # Grouped by (slot, language, failed), from the events of the edges and the roll-up of
        # the hours between, then summed here (a few thousand rows at most).
        per_slot: dict[str, int] = {}
        languages: dict[str, int] = {}
        failures = total = 0
        for row in self._message_groups(connection, filters, plan, bucket):
            total += row.n
            if bucket:
                label = self._label(row.slot, bucket)
                per_slot[label] = per_slot.get(label, 0) + row.n
            code = row.language or "unknown"
            languages[code] = languages.get(code, 0) + row.n
            if row.flag:
                failures += row.n
        sessions = self._sessions_count(connection, filters, plan)
        unsupported = sum(n for code, n in languages.items()
                          if supported and code != "unknown" and code not in supported)
        calls = {"count": 0, "transferred": 0, "end_reasons": {}, "languages": {}}
        for row in self._call_groups(connection, filters, plan):
            calls["count"] += row.n
            calls["transferred"] += row.n if row.flag else 0
            reason = row.end_reason or "unknown"
            calls["end_reasons"][reason] = calls["end_reasons"].get(reason, 0) + row.n
            # the caller's language, from the call record's cdr_custom_data (docs/phone.md)
            code = row.language or "unknown"
            calls["languages"][code] = calls["languages"].get(code, 0) + row.n
        for split in ("end_reasons", "languages"):
            calls[split] = dict(sorted(calls[split].items(), key=lambda item: (-item[1], item[0])))
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

    def _message_groups(self, connection: Connection, filters: Filters, plan: Split,
                        bucket: str | None) -> list[Any]:
        rows: list[Any] = []
        slot = self._bucket(bucket) if bucket else literal("")
        for period in plan.edges:
            rows += connection.execute(
                select(slot.label("slot"), events.c.language,
                       events.c.translation_failed.label("flag"), func.count().label("n"))
                .where(filters.during(period).where("message_logged"))
                .group_by(slot, events.c.language, events.c.translation_failed)).all()
        if plan.rolled is not None:
            hour = [hourly.c.hour] if bucket else []
            rows += connection.execute(
                select((hourly.c.hour if bucket else literal("")).label("slot"),
                       hourly.c.language, hourly.c.flag, func.sum(hourly.c.n).label("n"))
                .where(filters.during(plan.rolled).where("message_logged", hourly))
                .group_by(*hour, hourly.c.language, hourly.c.flag)).all()
        return rows

    def _call_groups(self, connection: Connection, filters: Filters, plan: Split) -> list[Any]:
        rows: list[Any] = []
        for period in plan.edges:
            rows += connection.execute(
                select(events.c.end_reason, events.c.language,
                       events.c.agent_transfer.label("flag"), func.count().label("n"))
                .where(filters.during(period).where("cdr_logged"))
                .group_by(events.c.end_reason, events.c.language, events.c.agent_transfer)).all()
        if plan.rolled is not None:
            rows += connection.execute(
                select(hourly.c.end_reason, hourly.c.language, hourly.c.flag,
                       func.sum(hourly.c.n).label("n"))
                .where(filters.during(plan.rolled).where("cdr_logged", hourly))
                .group_by(hourly.c.end_reason, hourly.c.language, hourly.c.flag)).all()
        return rows

    def _sessions_count(self, connection: Connection, filters: Filters, plan: Split) -> int:
        """Distinct sessions with a message in the period: the roll-up's hours and the edges'
        events in one UNION (a session spans hours: counts cannot be added)."""
        if plan.rolled is None:
            return self._raw_sessions_count(connection, filters)
        parts = [select(events.c.session_id).where(filters.during(period).where("message_logged"),
                                                   events.c.session_id.is_not(None))
                 for period in plan.edges]
        parts.append(select(session_hours.c.session_id).where(
            filters.during(plan.rolled).where("message_logged", session_hours)))
        distinct = (union(*parts) if len(parts) > 1 else parts[0].distinct()).subquery()
        return connection.execute(select(func.count()).select_from(distinct)).scalar_one()

    def _raw_sessions_count(self, connection: Connection, filters: Filters) -> int:
        messages = filters.where("message_logged")
        if self.dialect == "postgresql":
            # count(DISTINCT) sorts; a grouped subquery hashes: the same number, faster.
            distinct = select(events.c.session_id).where(
                messages, events.c.session_id.is_not(None)).group_by(events.c.session_id) \
                .subquery()
            return connection.execute(select(func.count()).select_from(distinct)).scalar_one()
        # SQLite would group along the session index, visiting every row: count(DISTINCT)
        # stays on the covering index.
        return connection.execute(
            select(func.count(events.c.session_id.distinct())).where(messages)).scalar_one()

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
        plan = Split(None, ((filters.since, filters.until),)) if search else self._plan(filters)
        # Each part of the period gives rows of (session, first, last, messages, language, ...):
        # the events of the edges grouped by session, the roll-up's session-hours as they are
        # (a text search needs the words: events only); the sessions are their sum.
        parts = [self._session_rows(filters.during(period), search) for period in plan.edges]
        if plan.rolled is not None:
            parts.append(select(
                session_hours.c.session_id, session_hours.c.first_at, session_hours.c.last_at,
                session_hours.c.messages, session_hours.c.language,
                session_hours.c.assistant_id, session_hours.c.environment,
                session_hours.c.failed)
                .where(filters.during(plan.rolled).where("message_logged", session_hours)))
        rows = (union_all(*parts) if len(parts) > 1 else parts[0]).subquery()
        last = func.max(rows.c.last_at)
        failed = func.sum(rows.c.failed)
        query = select(rows.c.session_id, func.min(rows.c.first_at).label("first_at"),
                       last.label("last_at"), func.sum(rows.c.messages).label("messages"),
                       func.max(rows.c.language).label("language"),
                       func.max(rows.c.assistant_id).label("assistant_id"),
                       func.max(rows.c.environment).label("environment"),
                       failed.label("failed")).group_by(rows.c.session_id)
        having = []
        if failed_only:
            having.append(failed > 0)
        if after is not None:
            having.append(tuple_(last, rows.c.session_id) < tuple_(*after)
                          if self.dialect == "postgresql" else
                          or_(last < after[0], and_(last == after[0],
                                                    rows.c.session_id < after[1])))
        if having:
            query = query.having(and_(*having))
        query = query.order_by(last.desc(), rows.c.session_id.desc()).limit(limit)
        with self._connect() as connection, connection.begin():
            self._no_statement_timeout(connection)
            return connection.execute(query).all()

    @staticmethod
    def _session_rows(filters: Filters, search: str) -> Any:
        """A part of the period's messages grouped by session, as the session list sums them."""
        where = and_(filters.where("message_logged"), events.c.session_id.is_not(None))
        if search:
            pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%") \
                .replace("_", "\\_") + "%"
            where = and_(where, or_(events.c.customer_text.ilike(pattern, escape="\\"),
                                    events.c.original_text.ilike(pattern, escape="\\")))
        return select(events.c.session_id, func.min(events.c.received_at).label("first_at"),
                      func.max(events.c.received_at).label("last_at"),
                      func.count().label("messages"),
                      func.max(events.c.language).label("language"),
                      func.max(events.c.assistant_id).label("assistant_id"),
                      func.max(events.c.environment).label("environment"),
                      func.sum(case((events.c.translation_failed.is_(True), 1), else_=0))
                      .label("failed")) \
            .where(where).group_by(events.c.session_id)

    def transcript(self, session: str, limit: int = 2000) -> list[Any]:
        """A session's messages and calls, oldest first (at most `limit`)."""
        with self._connect() as connection, connection.begin():
            self._no_statement_timeout(connection)
            return connection.execute(
                select(events).where(events.c.session_id == session)
                .order_by(events.c.received_at, events.c.id).limit(limit)).all()



def _ratio(part: float, whole: float) -> float:
    return round(part / whole, 4) if whole else 0.0
