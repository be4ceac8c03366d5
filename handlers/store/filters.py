"""What the reports narrow to (`Filters`): a period, an assistant, an environment, a customer
language, as conditions on the events or on a roll-up table."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_

from .schema import events


@dataclass(frozen=True)
class Filters:
    """What the overview and the session list narrow to: a period ([since, until)) and the
    assistant, environment and customer language (None: all)."""

    since: datetime | None = None
    until: datetime | None = None
    assistant: str | None = None
    environment: str | None = None
    language: str | None = None

    def where(self, event: str, table: Table = events) -> Any:
        """The conditions on the events, or on a roll-up table (rollup.py: its `hour`)."""
        time = table.c.received_at if table is events else table.c.hour
        conditions = [table.c.event == event] if "event" in table.c else []
        if self.since is not None:
            conditions.append(time >= self.since)
        if self.until is not None:
            conditions.append(time < self.until)
        if self.assistant:
            conditions.append(table.c.assistant_id == self.assistant)
        if self.environment:
            conditions.append(table.c.environment == self.environment)
        if self.language and event == "message_logged":
            conditions.append(table.c.language == self.language)
        return and_(True, *conditions)

    def during(self, period: tuple[datetime | None, datetime | None]) -> "Filters":
        """The same filters over another period (a part of this one)."""
        return replace(self, since=period[0], until=period[1])
