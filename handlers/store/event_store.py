"""The event store: every event stored once, durably, within the request's budget.

Losing or duplicating events is the failure that matters, so:

- A row is acknowledged only after its transaction committed. SQLite runs in WAL mode with
  `synchronous=FULL` (the WAL is fsynced at every commit: a crash or a power cut keeps it);
  PostgreSQL commits durably by default.
- Every event has an idempotency key, unique together with the event name; inserts are
  `INSERT ... ON CONFLICT DO NOTHING`, so a duplicate sent to two workers or two instances at
  the same moment is stored once, without a check-then-insert race.
- A database that is down, stuck or silently cut off answers within one budget
  (`DATABASE_TIMEOUT`, 1.5 s by default) with `StoreUnavailable`, which the webhook turns into
  a 503 (see deadlines.py). A 503 means "not acknowledged": the row may or may not have been
  committed (a write cut at the deadline may still commit on the server); the assistant's
  resend is harmless, since inserts are idempotent on the event's key.
- Readiness (`check_writable`, /readyz) is the ability to write: a recent failed write, or a
  probe, says 503. On SQLite the probe inserts an event-sized row and rolls it back; on
  PostgreSQL it runs the events' INSERT for no row at all, which leaves no dead tuple behind.
- Concurrent inserts of one process are grouped into one transaction (commit.py).
- `LOG_RETENTION_DAYS` purges old events at most once an hour, from a background thread
  (retention.py).

The store is composed of three objects, one entry point each: the store itself (add, readiness,
schema), `store.reports` (the read side: count, export, stats, the explorer's queries) and
`store.retention` (purge).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from datetime import datetime
from typing import Any, Sequence

from sqlalchemy import event, false, func, literal, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import (DataError, DBAPIError, IntegrityError, InterfaceError,
                            OperationalError, SQLAlchemyError)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.schema import CreateIndex, CreateTable

from .. import metrics
from ..settings import SettingsError
from .commit import GROUP_COMMIT_DEFAULT, GroupCommitter, WriterLock
from .deadlines import Budget
from .raw_insert import insert_raw
from .reports import EventReports
from .retention import Retention
from .rollup import HOUR, RollUp
from .upgrade import add_missing_columns, backfill_version_2, refill_rollup
from .schema import (DEFAULT_TIMEOUT, SCHEMA_VERSION, STARTUP_TIMEOUT, LogEvent, StoreUnavailable,
                     build_engine, events, metadata, normalize_url, safe_url, schema_version,
                     utcnow)

log = logging.getLogger("handlers.store")

# For this long after a write failed, /readyz says 503 without probing (unless a write
# succeeds meanwhile); afterwards a probe decides, so an instance taken out of rotation by its
# own failing readiness comes back once the database does.
RECENT_FAILURE = 3.0
# SQLite's readiness probe's row: about one event's size, so that a full disk (or SQLite's page
# limit) refuses it as it refuses events. It is rolled back, never committed: it leaves no row
# and no freed page behind (a later probe would fit in a freed page although no event could),
# and costs no fsync.
PROBE_EVENT = "readiness_probe"
PROBE_SIZE = 4096


class EventStore:
    """The log events table: insert, readiness, schema; `reports` reads it, `retention`
    purges it."""

    def __init__(self, url: str, *, retention_days: int | None = None,
                 group_commit: bool | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url = normalize_url(url)
        self.engine: Engine = build_engine(self.url, timeout)
        self.timeout = timeout
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        if group_commit is None:
            group_commit = GROUP_COMMIT_DEFAULT.get(self.dialect, True)
        self.budget = Budget(timeout, guard_connections=self.dialect == "postgresql")
        # When the latest write failed for a store-wide reason (None: it succeeded).
        self._failed_at: float | None = None
        self._probe_lock = threading.Lock()
        if self.dialect == "postgresql":
            event.listen(self.engine, "do_connect", self.budget.connect)
        # Measured: the raw insert (raw_insert.py) serves more requests than Core on both
        # backends (bench/RESULTS.md), so it is the store's one insert path.
        self._insert = self._insert_raw
        database = self.engine.url.database
        self.writer_lock = WriterLock(database + "-writer.lock", timeout) \
            if self.dialect == "sqlite" and database and database != ":memory:" \
            and not database.startswith("file:") else None
        self.committer = GroupCommitter(self._write, wait=timeout,
                                        gate=self._writer) if group_commit else None
        self.rollup = RollUp(self.engine, self._writer)
        self.reports = EventReports(self.engine, self.rollup, self._connect)
        self.retention = Retention(self.engine, retention_days, ready=self._ensure_schema,
                                   writer=self._writer, forget_rollup=self._forget_rollup)

    @classmethod
    def open(cls, url: str, **options: Any) -> "EventStore":
        """Build the store and create its schema now (at start-up). A database that does not
        answer yet is not fatal: /readyz says so, and the schema is created on first use."""
        store = cls(url, **options)
        try:
            with store.budget.within(max(store.timeout, STARTUP_TIMEOUT)):
                store.create_schema()
        except StoreUnavailable as exc:
            log.warning("log store %s unreachable at start-up (%s); the schema will be created "
                        "when it answers", safe_url(store.url), exc)
        finally:
            store.engine.dispose()   # the master keeps no connection across the fork
        return store

    # --- schema ----------------------------------------------------------------------------

    def create_schema(self) -> int:
        """Create the tables if missing and record the schema version; returns the version.

        Safe when several processes start at once: IF NOT EXISTS everywhere, and on
        PostgreSQL an advisory lock serialises concurrent creators.
        """
        try:
            with self.engine.begin() as connection, \
                    self.budget.guard(connection.connection.dbapi_connection):
                if self.dialect == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(581771505)"))
                for table in metadata.sorted_tables:
                    connection.execute(CreateTable(table, if_not_exists=True))
                found = connection.execute(select(func.max(schema_version.c.version))).scalar()
                if found is not None and found > SCHEMA_VERSION:
                    raise SettingsError(
                        f"the log store's schema is version {found}, newer than this kit "
                        f"({SCHEMA_VERSION}); upgrade the kit")
                # Columns before indexes: a version 1 table lacks what the new index covers.
                upgraded = found is not None and found < SCHEMA_VERSION \
                    and add_missing_columns(connection)
                if upgraded and self.dialect == "postgresql":
                    # A whole-table step (the new index, the filling), not a request.
                    connection.execute(text("SET LOCAL statement_timeout = 0"))
                for table in metadata.sorted_tables:
                    for index in table.indexes:
                        connection.execute(CreateIndex(index, if_not_exists=True))
                if upgraded:
                    filled = backfill_version_2(connection)
                    log.warning("log store upgraded from schema version %s to %s (%d events "
                                "filled in)", found, SCHEMA_VERSION, filled)
                refill_rollup(connection, found)
                if found is None or found < SCHEMA_VERSION:
                    connection.execute(schema_version.insert().values(
                        version=SCHEMA_VERSION, applied_at=utcnow()))
                    found = SCHEMA_VERSION
        except (OperationalError, InterfaceError, PoolTimeout) as exc:
            raise StoreUnavailable(type(exc).__name__) from exc
        self._schema_ready = True
        return int(found)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def schema_version(self) -> int | None:
        with self._connect() as connection:
            return connection.execute(select(func.max(schema_version.c.version))).scalar()

    def _connect(self) -> Connection:
        """A connection for reading, the schema made first (no deadline: see reports.py)."""
        self._ensure_schema()
        try:
            return self.engine.connect()
        except SQLAlchemyError as exc:
            raise StoreUnavailable(type(exc).__name__) from exc

    def _ensure_schema(self) -> None:
        if self._schema_ready:
            return
        with self._schema_lock:
            if not self._schema_ready:
                self.create_schema()

    # --- health ----------------------------------------------------------------------------

    def ping(self) -> None:
        """Raises when the database does not answer within the budget (a read: `SELECT 1`)."""
        with self.budget.within():
            for attempt in (1, 2):
                try:
                    with self.engine.connect() as connection, \
                            self.budget.guard(connection.connection.dbapi_connection):
                        connection.execute(text("SELECT 1"))
                    return
                except DBAPIError as exc:
                    if attempt == 1 and _is_disconnect(exc):
                        continue   # a pooled connection the server dropped; try a fresh one
                    raise

    def check_writable(self) -> None:
        """Raise StoreUnavailable unless an event could be written now (what /readyz says).

        A write that failed in the last RECENT_FAILURE seconds (and none succeeded since)
        answers at once, without touching the database; otherwise a probe, within the budget:

        - SQLite: a row of about an event's size is inserted (the write lock, new pages, as an
          event would need them) and rolled back. SQLite keeps no dead row versions.
        - PostgreSQL: a rolled-back insert would leave a dead tuple in log_events (and its
          indexes) every probe, which only vacuum takes away. The probe runs the events'
          INSERT with a SELECT that yields no row instead: PostgreSQL still checks everything
          a write is refused for before the first row (a read-only transaction, a standby
          after a failover, the INSERT privilege) and takes the insert's lock on the table
          and its indexes (waiting at most the budget behind a migration's exclusive lock);
          it writes no tuple, takes no transaction id and writes no WAL.

        Neither sees a failure that only a real write meets (a full disk, a WAL that cannot
        grow): the failed writes do, through RECENT_FAILURE. Probes of one process run one at
        a time, so a burst of checks against a dead database holds one connection attempt,
        not one each.
        """
        failed = self._failed_at
        if failed is not None and time.monotonic() - failed < RECENT_FAILURE:
            raise StoreUnavailable("the latest write failed")
        with self.budget.within() as deadline:
            if not self._probe_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                raise StoreUnavailable("another readiness probe is still waiting")
            try:
                self._ensure_schema()
                self._probe()
            finally:
                self._probe_lock.release()
        self._failed_at = None

    def _probe(self) -> None:
        key = f"{PROBE_EVENT}-{uuid.uuid4().hex}"
        if self.dialect == "postgresql":    # INSERT ... SELECT ... WHERE false: no row
            probe = events.insert().from_select(
                ["event", "idempotency_key", "received_at", "raw"],
                select(literal(PROBE_EVENT), literal(key), literal(utcnow()),
                       literal("")).where(false()))
        else:
            probe = events.insert().values(**LogEvent(event=PROBE_EVENT, idempotency_key=key,
                                                      raw=" " * PROBE_SIZE).row())
        try:
            with self._writer(), self.engine.connect() as connection:
                with self.budget.guard(connection.connection.dbapi_connection) as guard:
                    try:
                        with connection.begin() as transaction:
                            connection.execute(probe)
                            transaction.rollback()
                    except SQLAlchemyError:
                        if guard is not None and guard.fired:
                            connection.invalidate()   # its socket was shut down
                        raise
        except SQLAlchemyError as exc:
            raise StoreUnavailable(type(exc).__name__) from exc

    # --- writing ---------------------------------------------------------------------------

    def add(self, item: LogEvent) -> bool:
        """Store one event durably; True if it is new, False if its key was already stored.

        Returns only after the commit. Raises `StoreUnavailable` if the row may not be kept.
        """
        with self.budget.within() as deadline:
            self._ensure_schema()
            if self.committer is not None:
                stored = self.committer.submit(item, deadline)
            else:
                stored = _outcome(self._write([item])[0])
        self.retention.maybe_purge()
        return stored

    def add_many(self, items: Sequence[LogEvent]) -> list[bool]:
        """Store several events in one transaction (tests, imports). They may belong to past
        hours: the overview's roll-up of those hours is dropped, to be counted again."""
        with self.budget.within():
            self._ensure_schema()
            results = [_outcome(result) for result in self._write(list(items))]
        if items:   # outside the write's budget: it may wait for a fill of those hours
            times = [item.received_at for item in items]
            self._forget_rollup(min(times), max(times) + HOUR)
        return results

    def _forget_rollup(self, since: datetime | None, until: datetime | None) -> None:
        try:
            with self._writer(), self.engine.begin() as connection:
                self.rollup.forget(connection, since, until)
        except SQLAlchemyError as exc:
            raise StoreUnavailable(type(exc).__name__) from exc

    def _write(self, items: list[LogEvent]) -> list[bool | StoreUnavailable]:
        """Insert `items` in one transaction: per item True (new), False (duplicate), or the
        StoreUnavailable that kept it out. Raises StoreUnavailable when none was stored. The
        outcome is what `check_writable` reports until the next write or probe."""
        started = time.monotonic()
        try:
            results = self._write_attempts(items)
        except StoreUnavailable:
            self._failed_at = time.monotonic()
            raise
        self._failed_at = None
        metrics.store_commit(len(items), time.monotonic() - started)
        return results

    def _write_attempts(self, items: list[LogEvent]) -> list[bool | StoreUnavailable]:
        try:
            try:
                return list(self._write_once(items))
            except DBAPIError as exc:
                if not _is_disconnect(exc):
                    raise
                # The server dropped a pooled connection (restart, failover). Inserts ignore
                # conflicts, so writing the batch again on a fresh connection is safe.
                return list(self._write_once(items))
        except SQLAlchemyError as exc:
            if len(items) > 1 and _row_specific(exc):
                # One bad row must not sink its neighbours: write each on its own, so only
                # the caller whose row cannot be stored is told so.
                return [self._write_one(item) for item in items]
            log.warning("log store write failed: %s", type(exc).__name__)
            raise StoreUnavailable(type(exc).__name__) from exc

    def _write_once(self, items: list[LogEvent]) -> list[bool]:
        """One transaction, so one commit, for `items`; per item whether it is a new row."""
        inserted = self._insert(items)
        results = []
        for item in items:
            key = (item.event, item.idempotency_key)
            results.append(key in inserted)
            inserted.discard(key)    # the same key twice in one batch: the second is a duplicate
        return results

    def _insert_raw(self, items: list[LogEvent]) -> set[tuple[str, str]]:
        """The insert as shipped: the driver's own, measured faster (see raw_insert.py)."""
        return insert_raw(self.engine, items, self.budget.guard, self._writer)

    def _writer(self) -> Any:
        """SQLite's writer lock (see WriterLock), waited on within this thread's deadline."""
        if self.writer_lock is None:
            return contextlib.nullcontext()
        return self.writer_lock.hold(self.budget.remaining())

    def _write_one(self, item: LogEvent) -> bool | StoreUnavailable:
        try:
            return self._write_once([item])[0]
        except SQLAlchemyError as exc:
            log.warning("log store write failed: %s", type(exc).__name__)
            return StoreUnavailable(type(exc).__name__)

def _outcome(result: bool | StoreUnavailable) -> bool:
    if isinstance(result, BaseException):
        raise result
    return result



def _is_disconnect(exc: BaseException) -> bool:
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def _row_specific(exc: SQLAlchemyError) -> bool:
    """An error one row's data can cause (not the database being away)."""
    return isinstance(exc, (DataError, IntegrityError)) or not isinstance(exc, DBAPIError)
