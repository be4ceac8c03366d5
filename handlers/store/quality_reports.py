"""The quality report and the unrecognized requests, for `flask logs report` and the explorer:
`store.reports.quality_report(...)` and `store.reports.unrecognized_requests(...)`.

A mixin of EventReports (reports.py), whose period plan it shares: the whole closed hours of a
period come from the roll-up (quality_rollup.py, filled with the overview's), its open edges
from the events themselves.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from sqlalchemy import select
from sqlalchemy.engine import Connection

from .filters import Filters
from .quality import ActionSums, Part, Sums, report
from .quality_rollup import read_parts, rolled, unrecognized
from .rollup import Split
from .schema import events, utcnow

# The report's conversations without a customer language when the caller names no
# ASSISTANT_LANGUAGE (the overview's word for a message without one).
UNKNOWN = "unknown"


class QualityReports:
    """quality_report and unrecognized_requests, for EventReports, whose connection, statement
    timeout and period plan they use."""

    _connect: Callable[[], Connection]

    def _no_statement_timeout(self, connection: Connection) -> None:
        raise NotImplementedError      # EventReports'

    def _plan(self, filters: Filters) -> Split:
        raise NotImplementedError      # EventReports'

    def quality_report(self, since: datetime | None, until: datetime | None, *,
                       assistant: str | None = None, environment: str | None = None,
                       language: str | None = None, now: datetime | None = None,
                       assistant_language: str | None = None) -> dict[str, Any]:
        """Conversations, containment, recognition, action completion, translation failures
        and unsupported-language replies per customer language over [since, until) (the JSON
        of `flask logs report`, see quality.py). `language` keeps the conversations in that
        language; `assistant_language` is the language of a conversation that names none."""
        filters = Filters(since, until, assistant, environment)
        plan = self._plan(filters)
        parts: list[Part] = []
        sums: list[Sums] = []
        action_sums: list[ActionSums] = []
        now = now or utcnow()
        with self._connect() as connection, connection.begin():
            self._no_statement_timeout(connection)
            for period in plan.edges:
                parts += [part for part, _missed in read_parts(
                    connection, filters.during(period).where("message_logged"), by_hour=False)]
            if plan.rolled is not None:
                rolled_parts, sums, action_sums = rolled(
                    connection, lambda table: filters.during(plan.rolled).where("message_logged", table),
                    *plan.rolled, {part.session_id for part in parts}, now)
                parts += rolled_parts
        return report(parts, now, assistant_language or UNKNOWN, since, until,
                      language, sums, action_sums)

    def unrecognized_requests(self, since: datetime | None, until: datetime | None, *,
                              assistant: str | None = None, environment: str | None = None,
                              language: str | None = None, limit: int = 50,
                              offset: int = 0) -> list[dict[str, Any]]:
        """The requests no action recognized, newest first: the customer's words as typed
        (`original_text`, None when they were not translated) beside what the assistant
        received (`received_text`), so a reader sees whether translation or the assistant
        failed. `language`: the turn's customer language."""
        filters = Filters(since, until, assistant, environment)
        plan = self._plan(filters)
        wanted = offset + limit
        found: list[tuple[datetime, int]] = []
        with self._connect() as connection, connection.begin():
            self._no_statement_timeout(connection)
            for period in plan.edges:
                for _part, missed in read_parts(connection, filters.during(period).where("message_logged"),
                                                by_hour=False):
                    found += [(at, event_id) for event_id, at in missed]
            if plan.rolled is not None:
                query = select(unrecognized.c.received_at, unrecognized.c.event_id).where(
                    filters.during(plan.rolled).where("message_logged", unrecognized))
                if language:
                    query = query.join(events, events.c.id == unrecognized.c.event_id) \
                        .where(events.c.language == language)
                found += [tuple(row) for row in connection.execute(
                    query.order_by(unrecognized.c.received_at.desc(),
                                   unrecognized.c.event_id.desc()).limit(wanted))]
            chosen = [event_id for _at, event_id in sorted(found, reverse=True)]
            query = select(events.c.id, events.c.received_at, events.c.session_id,
                           events.c.language, events.c.original_text, events.c.customer_text,
                           events.c.assistant_id, events.c.environment) \
                .where(events.c.id.in_(chosen))
            if language:
                query = query.where(events.c.language == language)
            rows = connection.execute(query).all() if chosen else []
        by_id = {row.id: row for row in rows}
        listed = [by_id[event_id] for event_id in chosen if event_id in by_id]
        return [{"time": row.received_at, "session_id": row.session_id,
                 "language": row.language, "original_text": row.original_text,
                 "received_text": row.customer_text, "assistant": row.assistant_id,
                 "environment": row.environment} for row in listed[offset:wanted]]
