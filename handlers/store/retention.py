"""Retention: events older than LOG_RETENTION_DAYS are deleted, at most once an hour, from a
background thread (and by `flask --app handlers logs purge`).

A mixin of EventStore, like the reports: `store.purge(days)` on the object the CLI and the
webhook already hold.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from .rollup import ceil_hour
from .schema import StoreUnavailable, events, utcnow

log = logging.getLogger("handlers.store")

PURGE_INTERVAL = 3600.0
PURGE_BATCH = 1000


class Retention:
    """purge and the hourly background purge over `self.engine` (set by EventStore)."""

    engine: Engine
    retention_days: int | None
    _last_purge: float
    _purge_lock: threading.Lock

    def _ensure_schema(self) -> None:
        raise NotImplementedError      # EventStore's

    def _writer(self) -> Any:
        raise NotImplementedError      # EventStore's

    def _forget_rollup(self, since: datetime | None, until: datetime | None) -> None:
        raise NotImplementedError      # EventStore's

    def purge(self, older_than_days: float, *, now: datetime | None = None) -> int:
        """Delete events received more than `older_than_days` ago; returns how many.

        Deletes in batches of PURGE_BATCH rows, one short transaction each, so inserts (which
        need SQLite's single write lock) are never held up for long. The overview's roll-up of
        the hours it emptied is dropped (rollup.py).
        """
        self._ensure_schema()
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

    def _maybe_purge(self) -> None:
        """Run the retention purge in the background if it has not run for an hour."""
        if not self.retention_days or time.monotonic() - self._last_purge < PURGE_INTERVAL:
            return
        if not self._purge_lock.acquire(blocking=False):
            return
        self._last_purge = time.monotonic()
        threading.Thread(target=self._purge_in_background, name="log-retention",
                         daemon=True).start()

    def _purge_in_background(self) -> None:
        try:
            deleted = self.purge(self.retention_days or 0)
            if deleted:
                log.info("retention purge", extra={"fields": {
                    "deleted": deleted, "older_than_days": self.retention_days}})
        except Exception as exc:
            log.warning("retention purge failed: %s", type(exc).__name__)
        finally:
            self._purge_lock.release()
