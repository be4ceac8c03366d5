"""Retention: events older than LOG_RETENTION_DAYS are deleted, at most once an hour, from a
background thread (and by `flask --app handlers logs purge`).

`store.retention`, composed by the store: `store.retention.purge(days)` for the CLI, and
`maybe_purge()` after each write.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta
from typing import Any, Callable, ContextManager

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from .rollup import ceil_hour
from .schema import StoreUnavailable, events, utcnow

log = logging.getLogger("handlers.store")

PURGE_INTERVAL = 3600.0
PURGE_BATCH = 1000


class Retention:
    """purge, and the hourly background purge of events older than `days` (None: never).

    What it needs of the store: `ready()` makes the schema, `writer()` is SQLite's writer lock,
    `forget_rollup(since, until)` drops the overview's roll-up of the hours it emptied."""

    def __init__(self, engine: Engine, days: int | None, *, ready: Callable[[], None],
                 writer: Callable[[], ContextManager[Any]],
                 forget_rollup: Callable[[datetime | None, datetime | None], None]) -> None:
        self.engine = engine
        self.days = days
        self._ready = ready
        self._writer = writer
        self._forget_rollup = forget_rollup
        self._lock = threading.Lock()
        self._last = float("-inf")

    def purge(self, older_than_days: float, *, now: datetime | None = None) -> int:
        """Delete events received more than `older_than_days` ago; returns how many.

        Deletes in batches of PURGE_BATCH rows, one short transaction each, so inserts (which
        need SQLite's single write lock) are never held up for long. The overview's roll-up of
        the hours it emptied is dropped (rollup.py).
        """
        self._ready()
        cutoff = (now or utcnow()) - timedelta(days=older_than_days)
        doomed = select(events.c.id).where(events.c.received_at < cutoff).limit(PURGE_BATCH)
        total = 0
        try:
            while True:
                with self._writer(), self.engine.begin() as connection:
                    deleted = connection.execute(
                        events.delete().where(events.c.id.in_(doomed.scalar_subquery()))).rowcount
                total += deleted
                if deleted < PURGE_BATCH:
                    break
        except SQLAlchemyError as exc:
            raise StoreUnavailable(type(exc).__name__) from exc
        if total:
            self._forget_rollup(None, ceil_hour(cutoff))
        return total

    def maybe_purge(self) -> None:
        """Run the retention purge in the background if it has not run for an hour."""
        if not self.days or time.monotonic() - self._last < PURGE_INTERVAL:
            return
        if not self._lock.acquire(blocking=False):
            return
        self._last = time.monotonic()
        threading.Thread(target=self._purge_in_background, name="log-retention",
                         daemon=True).start()

    def _purge_in_background(self) -> None:
        try:
            deleted = self.purge(self.days or 0)
            if deleted:
                log.info("retention purge", extra={"fields": {
                    "deleted": deleted, "older_than_days": self.days}})
        except Exception as exc:
            log.warning("retention purge failed: %s", type(exc).__name__)
        finally:
            self._lock.release()
