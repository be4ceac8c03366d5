"""The event store of the log webhook, on SQLAlchemy Core (SQLite by default, PostgreSQL when
DATABASE_URL says so).

Losing or duplicating events is the failure that matters, so:

- A row is acknowledged only after its transaction committed. SQLite runs in WAL mode with
  `synchronous=FULL` (the WAL is fsynced at every commit: a crash or a power cut keeps it);
  PostgreSQL commits durably by default.
- Every event has an idempotency key, unique together with the event name; inserts are
  `INSERT ... ON CONFLICT DO NOTHING`, so a duplicate sent to two workers or two instances at
  the same moment is stored once, without a check-then-insert race.
- A database that is down, stuck or silently cut off answers within one budget
  (`DATABASE_TIMEOUT`, 1.5 s by default) with `StoreUnavailable`, which the webhook turns into
  a 503: a write gets a deadline when the request asks for it, and everything it does (waiting
  for the group commit, connecting, the statement) ends by then (`Watchdog`,
  `BoundedConnector`). A 503 means "not acknowledged": the row may or may not have been
  committed (a write cut at the deadline may still commit on the server); the assistant's
  resend is harmless, since inserts are idempotent on the event's key.
- Readiness (`check_writable`, /readyz) is the ability to write: a recent failed write, or a
  probe that inserts an event-sized row and rolls it back, says 503.
- Concurrent inserts of one process are grouped into one transaction (`GroupCommitter`): one
  fsync for many events, each request still answered only after its own row is committed.
  With SQLite the worker processes take turns through an flock (`WriterLock`) rather than
  SQLite's sleeping busy handler. Measured with bench/logs.py (README, section logs).
- `LOG_RETENTION_DAYS` purges old events at most once an hour, from a background thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import operator
import os
import socket
import threading
import time
import uuid
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Iterator, Sequence

from sqlalchemy import (BigInteger, Boolean, Column, DateTime, Float, Index, Integer, MetaData,
                        String, Table, Text, UniqueConstraint, and_, case,
                        create_engine, event, func, select, text)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import (ArgumentError, DataError, DBAPIError, IntegrityError, InterfaceError,
                            NoSuchModuleError, OperationalError, SQLAlchemyError)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.schema import CreateIndex, CreateTable

from .settings import SettingsError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
# Seconds a log request may spend on the database (pool, connect, statement, locks) before the
# webhook gives up and answers 503 (DATABASE_TIMEOUT): the bound is 2 s from a silent
# partition, and the watchdog that enforces it looks every WATCHDOG_PERIOD seconds.
DEFAULT_TIMEOUT = 1.5
WATCHDOG_PERIOD = 0.1
# Work that no request waits on (the schema at start-up) gets this long.
STARTUP_TIMEOUT = 10.0
# For this long after a write failed, /readyz says 503 without probing (unless a write
# succeeds meanwhile); afterwards a probe decides, so an instance taken out of rotation by its
# own failing readiness comes back once the database does.
RECENT_FAILURE = 3.0
# The readiness probe's row: about one event's size, so that a full disk (or SQLite's page
# limit) refuses it as it refuses events. It is rolled back, never committed: it leaves no row
# and no freed page behind (a later probe would fit in a freed page although no event could),
# and costs no fsync.
PROBE_EVENT = "readiness_probe"
PROBE_SIZE = 4096
PURGE_INTERVAL = 3600.0
PURGE_BATCH = 1000
MAX_ID_LENGTH = 255

metadata = MetaData()

events = Table(
    "log_events", metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
           autoincrement=True),
    Column("event", String(32), nullable=False),
    Column("idempotency_key", String(MAX_ID_LENGTH), nullable=False),
    Column("received_at", DateTime(), nullable=False),
    Column("request_timestamp", DateTime()),
    Column("response_timestamp", DateTime()),
    Column("assistant_id", String(MAX_ID_LENGTH)),
    Column("skill_id", String(MAX_ID_LENGTH)),
    Column("session_id", String(MAX_ID_LENGTH)),
    Column("customer_id", String(MAX_ID_LENGTH)),
    Column("customer_text", Text()),
    Column("reply_text", Text()),
    Column("intent", String(MAX_ID_LENGTH)),
    Column("intent_confidence", Float()),
    Column("language", String(32)),
    Column("agent_transfer", Boolean()),
    # The event as the assistant sent it (JSON text), so fields IBM adds later are never lost.
    Column("raw", Text(), nullable=False),
    UniqueConstraint("event", "idempotency_key", name="uq_log_events_key"),
)
# received_at: retention, export and stats periods; session_id: `export --session`. No index
# on assistant_id: a deployment has a handful of assistants, so it would not narrow a scan,
# and every index costs each insert.
Index("ix_log_events_received_at", events.c.received_at)
Index("ix_log_events_session_id", events.c.session_id)

schema_version = Table(
    "log_schema_version", metadata,
    Column("version", Integer(), primary_key=True, autoincrement=False),
    Column("applied_at", DateTime(), nullable=False),
)


INSERT_COLUMNS = tuple(column.name for column in events.columns if column.name != "id")


@functools.lru_cache(maxsize=None)
def insert_ignoring_duplicates(rows: int, dialect: str) -> str:
    """One statement inserting `rows` rows, skipping those whose (event, idempotency_key) is
    already stored: generated from the table above, for the driver's own parameter style.

    The one statement of the kit not built with SQLAlchemy's expression language, because it
    runs for every event and was measured: `sqlite.insert(...).on_conflict_do_nothing()` is
    compiled again on every execution (SQLAlchemy 2.0 does not cache the dialect-specific
    insert constructs), about 0.35 ms of CPU per request, more than the insert itself; a
    cached text() statement still cost three times the driver's own execute. One multi-row
    statement per batch is also one round trip to PostgreSQL, not one per row.

    PostgreSQL: numbered parameters (`$1`, `$2`, ...) for psycopg's RawCursor, and RETURNING
    the keys it inserted (one round trip). psycopg parses a `%s` query with a regular
    expression on every execution once it has more than 50 parameters (a batch of three
    rows), about 20 us of CPU per row; a raw query is sent as it is, and prepared on the
    server after a few uses. SQLite: `?`, no RETURNING: without it the statement runs in a
    single step, so the write lock is taken and released (after the commit) inside SQLite;
    which rows were new is read from the row count (see `EventStore._write_once`).
    """
    width = len(INSERT_COLUMNS)
    if dialect == "postgresql":
        values = ", ".join("(" + ", ".join(f"${row * width + column + 1}"
                                           for column in range(width)) + ")"
                           for row in range(rows))
        returning = " RETURNING event, idempotency_key"
    else:
        values = ", ".join(["(" + ", ".join(["?"] * width) + ")"] * rows)
        returning = ""
    return (f"INSERT INTO {events.name} ({', '.join(INSERT_COLUMNS)}) VALUES {values} "
            f"ON CONFLICT (event, idempotency_key) DO NOTHING{returning}")


# The extracted columns, in the order `export --format csv` writes them.
COLUMNS = tuple(column.name for column in events.columns if column.name != "raw")


class StoreUnavailable(Exception):
    """The database did not take or give the events (down, unreachable, locked, timed out)."""


def utcnow() -> datetime:
    """Naive UTC: what every timestamp column holds, on SQLite and PostgreSQL alike."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass
class LogEvent:
    """One row to store: the extracted columns and the raw event (JSON text)."""

    event: str
    idempotency_key: str
    raw: str
    received_at: datetime = field(default_factory=utcnow)
    request_timestamp: datetime | None = None
    response_timestamp: datetime | None = None
    assistant_id: str | None = None
    skill_id: str | None = None
    session_id: str | None = None
    customer_id: str | None = None
    customer_text: str | None = None
    reply_text: str | None = None
    intent: str | None = None
    intent_confidence: float | None = None
    language: str | None = None
    agent_transfer: bool | None = None

    def row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in COLUMNS if name != "id"} | {"raw": self.raw}


def default_url(instance_path: str) -> str:
    """A SQLite file in the app's instance folder: works with no setup at all."""
    os.makedirs(instance_path, exist_ok=True)
    return "sqlite:///" + os.path.join(instance_path, "events.sqlite3")


def normalize_url(url: str) -> str:
    """PostgreSQL goes through psycopg 3: accept the `postgres://` and `postgresql://` spellings
    platforms hand out, and rewrite them to `postgresql+psycopg://`."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def safe_url(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid database URL>"


def _engine(url: str, timeout: float) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise SettingsError(f"DATABASE_URL={safe_url(url)!r} is not a database URL") from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise SettingsError(f"DATABASE_URL uses {backend!r}; the kit supports sqlite and "
                            "postgresql (postgresql+psycopg://user:password@host/db)")
    options: dict[str, Any] = {"pool_recycle": 1800}
    if backend != "sqlite" or _sqlite_file(parsed):
        # A file or a server gets a QueuePool, whose checkout wait is bounded. In-memory
        # SQLite gets SQLAlchemy's SingletonThreadPool (one connection per thread, nothing to
        # wait for), which refuses the argument (the Dockerfile's build step uses one).
        options["pool_timeout"] = timeout
    if backend == "sqlite":
        # Without a timeout in the URL, pysqlite's own busy timeout defaults to 5 s too.
        options["connect_args"] = {"timeout": timeout}
    else:
        millis = int(timeout * 1000)
        # libpq options: appended to any the URL carries (e.g. a search_path), not replacing them.
        server = f"-c statement_timeout={millis} -c lock_timeout={millis} " \
                 f"-c idle_in_transaction_session_timeout={millis * 6}"
        query = parsed.query
        options["connect_args"] = {
            "connect_timeout": query.get("connect_timeout", str(max(2, int(timeout)))),
            "options": (str(query.get("options", "")) + " " + server).strip(),
            # A dead peer (network cut) is noticed after `timeout` when data is waiting for its
            # acknowledgement, and within about 8 s by keepalives when a pooled connection is
            # idle, not after the kernel's minutes. (Neither fires when something on the path
            # acknowledges and then drops everything: the watchdog's deadline covers that.)
            "tcp_user_timeout": query.get("tcp_user_timeout", str(millis)),
            "keepalives": "1", "keepalives_idle": "5", "keepalives_interval": "1",
            "keepalives_count": "3",
            "application_name": query.get("application_name", "watson-webhooks"),
        }
        if "prepare_threshold" in query:
            options["connect_args"]["prepare_threshold"] = _prepare_threshold(
                str(query["prepare_threshold"]))
            parsed = parsed.difference_update_query(["prepare_threshold"])
        options["pool_size"] = 10
        options["max_overflow"] = 10
    try:
        engine = create_engine(parsed, **options)
    except (NoSuchModuleError, ArgumentError, ImportError) as exc:
        raise SettingsError(f"DATABASE_URL={safe_url(url)!r} cannot be used: "
                            f"{type(exc).__name__}") from None
    if backend == "sqlite":
        _configure_sqlite(engine, timeout)
    # Connections must not cross gunicorn's fork (the app is preloaded in the master).
    engine_ref = weakref.ref(engine)
    os.register_at_fork(after_in_child=lambda: (e := engine_ref()) and e.dispose(close=False))
    return engine


def _sqlite_file(url: Any) -> bool:
    """Whether a SQLite URL names a file (as SQLAlchemy decides which pool to use): not
    `sqlite://`, `:memory:` or a `mode=memory` URI."""
    return bool(url.database) and url.database != ":memory:" \
        and url.query.get("mode") != "memory"


def _prepare_threshold(value: str) -> int | None:
    """psycopg's `prepare_threshold` from the URL: after how many runs on a connection a query
    is prepared on the server (psycopg's default: 5); `none` never prepares, as PgBouncer in
    transaction mode before 1.21 (or without `max_prepared_statements`) requires."""
    if value.lower() == "none":
        return None
    if not (value.isascii() and value.isdigit()):
        raise SettingsError(f"DATABASE_URL has prepare_threshold={value!r}; expected a number "
                            "of runs (0 or more) or none")
    return int(value)


def _configure_sqlite(engine: Engine, timeout: float) -> None:
    """WAL + synchronous=FULL + busy timeout on every connection; explicit transactions."""

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own transaction handling skips BEGIN before SELECT and DDL; take it over
        # (SQLAlchemy's documented recipe) so a transaction means one transaction.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        connection.connection.dbapi_connection.execute("BEGIN")  # type: ignore[union-attr]


def _sqlite_datetime(value: datetime | None) -> str | None:
    """SQLAlchemy's storage format for DateTime on SQLite ("2024-05-01 09:30:00.000000")."""
    return None if value is None else value.isoformat(" ", "microseconds")


def _is_disconnect(exc: BaseException) -> bool:
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def _row_specific(exc: SQLAlchemyError) -> bool:
    """An error one row's data can cause (not the database being away)."""
    return isinstance(exc, (DataError, IntegrityError)) or not isinstance(exc, DBAPIError)


class Watchdog:
    """Cuts PostgreSQL connections whose work outlives a deadline, so no thread waits forever.

    The server's statement and lock timeouts end slow statements, and `tcp_user_timeout`
    notices a dead network; neither helps when the server process is frozen while its host
    still acknowledges our packets (a stopped process, a host stalled on storage, a proxy or
    NAT on the path that accepts and forwards nothing): libpq then waits forever. At the
    deadline (the request's, see EventStore._within) the watchdog shuts the connection's
    socket down, the blocked call fails at once with a disconnect error, and the webhook
    answers 503. One thread per process, started on first use (so it exists in each gunicorn
    worker, not the master); it looks every WATCHDOG_PERIOD seconds.
    """

    def __init__(self, period: float = WATCHDOG_PERIOD) -> None:
        self._lock = threading.Lock()
        self._guards: dict[int, _Guard] = {}
        self._pid = 0
        self._period = period

    @contextlib.contextmanager
    def guard(self, fileno: int, seconds: float) -> Iterator["_Guard"]:
        guard = _Guard(time.monotonic() + seconds, fileno)
        with self._lock:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                self._guards = {}
                threading.Thread(target=self._run, name="log-store-watchdog", daemon=True).start()
            self._guards[id(guard)] = guard
        try:
            yield guard
        finally:
            with self._lock:
                self._guards.pop(id(guard), None)

    def _run(self) -> None:
        # Polls a few times a second rather than being woken per request: a deadline is
        # seconds long, and waking this thread on every write cost more than the write.
        while True:
            time.sleep(self._period)
            now = time.monotonic()
            with self._lock:
                for key, guard in list(self._guards.items()):
                    if guard.deadline <= now:
                        # Under the lock: the connection is still checked out, its fd is ours.
                        del self._guards[key]
                        guard.fired = True
                        _shutdown(guard.fileno)


@dataclass(eq=False)
class _Guard:
    deadline: float
    fileno: int
    fired: bool = False


def _shutdown(fileno: int) -> None:
    try:
        with socket.socket(fileno=os.dup(fileno)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class BoundedConnector:
    """Opens database connections in helper threads, so that a request waits for one no longer
    than what is left of its budget.

    libpq's `connect_timeout` cannot be shorter than 2 s, and a silent peer (one that accepts
    the TCP connection and then never answers) holds a connecting thread for all of it; a
    request with a 1.5 s budget must not wait that long. The helper finishes the attempt on
    its own (bounded by `connect_timeout`) and closes a connection that came too late. Only
    new connections pay the thread switch; pooled ones never come here. Helpers are made per
    process (after gunicorn's fork), at most `workers` at a time.
    """

    def __init__(self, workers: int = 4) -> None:
        self._workers = workers
        self._lock = threading.Lock()
        self._pid = 0
        self._executor: ThreadPoolExecutor | None = None

    def connect(self, open_connection: Callable[[], Any], seconds: float) -> Any:
        """`open_connection()` run by a helper; its connection, or StoreUnavailable after
        `seconds` (its own error, e.g. a refused connection, as it was raised)."""
        if seconds <= 0:
            raise StoreUnavailable("no time left to connect to the database")
        with self._lock:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                self._executor = ThreadPoolExecutor(self._workers,
                                                    thread_name_prefix="log-store-connect")
            assert self._executor is not None
            attempt = self._executor.submit(open_connection)
        try:
            return attempt.result(timeout=seconds)
        except TimeoutError:
            if not attempt.cancel():
                attempt.add_done_callback(_close_late_connection)
            raise StoreUnavailable("the database did not accept a connection in time") from None


def _close_late_connection(attempt: Future[Any]) -> None:
    if not attempt.cancelled() and attempt.exception() is None:
        with contextlib.suppress(Exception):
            attempt.result().close()


class WriterLock:
    """One SQLite writer at a time across this host's processes, queued by the kernel.

    SQLite lets one transaction write at a time. When several gunicorn workers try at once,
    the losers sleep in SQLite's busy handler with a growing back-off (1, 2, 5, 10, ... 100 ms)
    although the lock is free again within a millisecond: measured, the database sat idle
    between writes and p99 reached hundreds of milliseconds. An flock on a file beside the
    database makes the writers take turns without sleeping longer than needed; the requests
    that arrive while a worker waits for its turn join its next batch.

    The wait is bounded: after polling for a couple of milliseconds (the usual wait), a blocked
    flock runs in a helper thread the caller waits on for at most `timeout`. The lock file is
    opened in each process (after gunicorn's fork), since an flock belongs to an open file;
    threads of one process also take a threading lock.
    """

    _setup_lock = threading.Lock()

    def __init__(self, path: str, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self._pid = 0
        self._fd = -1
        self._local = threading.Lock()
        self._helper: ThreadPoolExecutor | None = None
        self._owner: int | None = None

    def _ready(self) -> None:
        if self._pid == os.getpid():
            return
        with self._setup_lock:
            if self._pid != os.getpid():
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                self._local = threading.Lock()
                self._helper = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer-lock")
                self._pid = os.getpid()

    @contextlib.contextmanager
    def hold(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the lock (re-entrant: a thread that holds it already just goes on), waiting at
        most `timeout` (default: the store's)."""
        if self._owner == threading.get_ident() and self._pid == os.getpid():
            yield
            return
        timeout = self.timeout if timeout is None else max(0.0, min(timeout, self.timeout))
        self._ready()
        if not self._local.acquire(timeout=timeout):
            raise StoreUnavailable("timed out waiting for the SQLite writer lock")
        release_local = True
        try:
            if not self._try_briefly():
                assert self._helper is not None
                waiting = self._helper.submit(fcntl.flock, self._fd, fcntl.LOCK_EX)
                try:
                    waiting.result(timeout=timeout)
                except TimeoutError:
                    # When the helper gets the lock at last, drop it, and only then let this
                    # process's next writer in (it would otherwise share this fd's flock).
                    release_local = False
                    waiting.add_done_callback(self._abandoned)
                    raise StoreUnavailable("timed out waiting for the SQLite writer lock") \
                        from None
            self._owner = threading.get_ident()
            try:
                yield
            finally:
                self._owner = None
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            if release_local:
                self._local.release()

    def _try_briefly(self) -> bool:
        """A writer holds the lock for a fraction of a millisecond: poll for a couple of
        milliseconds before handing the wait to the helper thread (which costs two thread
        switches)."""
        for pause in (0, 0.0001, 0.0002, 0.0003, 0.0005, 0.0005, 0.0005):
            if pause:
                time.sleep(pause)
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                continue
        return False

    def _abandoned(self, waiting: Future[Any]) -> None:
        if waiting.exception() is None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._local.release()


class GroupCommitter:
    """Commits the rows of concurrent callers together: one transaction, one fsync.

    Leader/follower, no thread of its own (so it survives gunicorn's fork): the first caller
    to find nobody committing becomes the leader, passes the `gate` (SQLite's writer lock),
    takes everything queued (itself first) and writes it in one transaction; the others wait.
    When the batch is done the leader wakes its followers with their own results and hands
    the lead to the first caller that queued meanwhile. A caller returns only after the
    transaction holding its row committed; if that transaction fails, every caller in it gets
    the error.
    """

    def __init__(self, write: Callable[[list[LogEvent]], list[bool | StoreUnavailable]],
                 max_batch: int = 64, wait: float = 4 * DEFAULT_TIMEOUT,
                 gate: Callable[[], Any] = contextlib.nullcontext) -> None:
        self._write = write
        self._gate = gate
        self._max_batch = max_batch
        self._wait = wait
        self._lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._busy = False   # invariant: when not busy, the queue is empty

    def submit(self, item: LogEvent, deadline: float | None = None) -> bool:
        """Store `item` (True: a new row; False: a duplicate) once its transaction committed.

        `deadline` (time.monotonic()) bounds the wait for a turn: a caller still queued then,
        or handed the lead only then, gives up with StoreUnavailable. A batch being written is
        bounded by its leader's deadline, the earliest in the batch (the leader queued first).
        """
        if deadline is None:
            deadline = time.monotonic() + self._wait
        me = _Pending(item)
        with self._lock:
            self._queue.append(me)
            if not self._busy:
                self._busy = True
                me.leader = True
        if not me.leader and not me.wake.acquire(timeout=max(0.0, deadline - time.monotonic())):
            with self._lock:
                if not me.leader and me in self._queue:
                    self._queue.remove(me)
                    raise StoreUnavailable("timed out waiting for the group commit")
            me.wake.acquire()   # its batch is being written (bounded by the database timeouts)
        if me.leader and not me.finished:
            if time.monotonic() >= deadline:
                self._step_aside(me)
                raise StoreUnavailable("timed out waiting for the group commit")
            self._lead()
        if isinstance(me.error, StoreUnavailable):
            raise StoreUnavailable(*me.error.args) from me.error.__cause__
        if me.error is not None:
            if me.leader and not isinstance(me.error, Exception):
                raise me.error   # the leader's own interruption (e.g. the worker is exiting)
            raise StoreUnavailable(type(me.error).__name__) from me.error
        return bool(me.result)

    def _step_aside(self, me: "_Pending") -> None:
        """A leader whose own time is up leaves the queue and hands the lead on, rather than
        answering its request late."""
        with self._lock:
            self._queue.remove(me)
            successor = self._queue[0] if self._queue else None
            if successor is None:
                self._busy = False
            else:
                successor.leader = True
        if successor is not None:
            successor.wake.release()

    def _take(self) -> list["_Pending"]:
        with self._lock:
            batch = self._queue[:self._max_batch]
            del self._queue[:len(batch)]
        return batch

    def _lead(self) -> None:
        batch: list[_Pending] = []
        try:
            # The batch is taken once the gate (SQLite's writer lock) is ours, so whoever
            # queued while we waited for it is written in the same transaction.
            with self._gate():
                batch = self._take()
                results = self._write([pending.item for pending in batch])
            for pending, result in zip(batch, results):
                if isinstance(result, BaseException):
                    pending.error = result
                else:
                    pending.result = result
        except BaseException as exc:
            batch = batch or self._take()
            for pending in batch:
                pending.error = exc
        finally:
            with self._lock:
                successor = self._queue[0] if self._queue else None
                if successor is None:
                    self._busy = False
                else:
                    successor.leader = True
            for pending in batch:
                pending.finished = True
                pending.wake.release()
            if successor is not None:
                successor.wake.release()


class _Pending:
    """One caller's row in the group committer; `wake` is a lock held until it is woken (a
    bare lock costs less than an Event, and each wake happens at most once per wait)."""

    __slots__ = ("item", "wake", "leader", "finished", "result", "error")

    def __init__(self, item: LogEvent) -> None:
        self.item = item
        self.wake = threading.Lock()
        self.wake.acquire()
        self.leader = False
        self.finished = False
        self.result: bool | None = None
        self.error: BaseException | None = None


class EventStore:
    """The log events table and everything done with it: insert, export, stats, purge."""

    def __init__(self, url: str, *, retention_days: int | None = None,
                 group_commit: bool | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url = normalize_url(url)
        self.engine: Engine = _engine(self.url, timeout)
        self.retention_days = retention_days
        self.timeout = timeout
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        self._purge_lock = threading.Lock()
        self._last_purge = float("-inf")
        if group_commit is None:
            group_commit = GROUP_COMMIT_DEFAULT.get(self.dialect, True)
        self.watchdog = Watchdog()
        # The deadline of the request this thread is serving (see `_within`), read by the
        # connect hook, the watchdog's guard and SQLite's writer lock.
        self._budget = threading.local()
        # When the latest write failed for a store-wide reason (None: it succeeded).
        self._failed_at: float | None = None
        self._probe_lock = threading.Lock()
        if self.dialect == "postgresql":
            self._connector = BoundedConnector()
            event.listen(self.engine, "do_connect", self._connect_within_budget)
        # psycopg's cursor for queries with $n parameters, sent as they are (PostgreSQL only;
        # imported here so a SQLite deployment never loads the driver).
        self._raw_cursor: Any = None
        if self.dialect == "postgresql":
            from psycopg import RawCursor

            self._raw_cursor = RawCursor
        dialect = self.engine.dialect
        # SQLAlchemy's own conversions for the driver (datetimes to text on SQLite, ...), the
        # datetime one replaced by the same format from C (it was 2% of a request's CPU).
        self._values_of = operator.attrgetter(*INSERT_COLUMNS)
        converters = {
            index: _sqlite_datetime if self.dialect == "sqlite"
            and isinstance(events.c[name].type, DateTime)
            else events.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            for index, name in enumerate(INSERT_COLUMNS)}
        self._converters = [(index, convert) for index, convert in converters.items() if convert]
        database = self.engine.url.database
        self.writer_lock = WriterLock(database + "-writer.lock", timeout) \
            if self.dialect == "sqlite" and database and database != ":memory:" \
            and not database.startswith("file:") else None
        self.committer = GroupCommitter(self._write, wait=timeout,
                                        gate=self._writer) if group_commit else None

    @classmethod
    def open(cls, url: str, **options: Any) -> "EventStore":
        """Build the store and create its schema now (at start-up). A database that does not
        answer yet is not fatal: /readyz says so, and the schema is created on first use."""
        store = cls(url, **options)
        try:
            with store._within(max(store.timeout, STARTUP_TIMEOUT)):
                store.create_schema()
        except StoreUnavailable as exc:
            log.warning("log store %s unreachable at start-up (%s); the schema will be created "
                        "when it answers", safe_url(store.url), exc)
        finally:
            store.engine.dispose()   # the master keeps no connection across the fork
        return store

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    # --- schema ----------------------------------------------------------------------------

    def create_schema(self) -> int:
        """Create the tables if missing and record the schema version; returns the version.

        Safe when several processes start at once: IF NOT EXISTS everywhere, and on
        PostgreSQL an advisory lock serialises concurrent creators.
        """
        try:
            with self.engine.begin() as connection, \
                    self._deadline(connection.connection.dbapi_connection):
                if self.dialect == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(581771505)"))
                for table in metadata.sorted_tables:
                    connection.execute(CreateTable(table, if_not_exists=True))
                    for index in table.indexes:
                        connection.execute(CreateIndex(index, if_not_exists=True))
                found = connection.execute(select(func.max(schema_version.c.version))).scalar()
                if found is None:
                    connection.execute(schema_version.insert().values(
                        version=SCHEMA_VERSION, applied_at=utcnow()))
                    found = SCHEMA_VERSION
                elif found > SCHEMA_VERSION:
                    raise SettingsError(
                        f"the log store's schema is version {found}, newer than this kit "
                        f"({SCHEMA_VERSION}); upgrade the kit")
        except (OperationalError, InterfaceError, PoolTimeout) as exc:
            raise StoreUnavailable(type(exc).__name__) from exc
        self._schema_ready = True
        return int(found)

    def schema_version(self) -> int | None:
        with self._connect() as connection:
            return connection.execute(select(func.max(schema_version.c.version))).scalar()

    def _ensure_schema(self) -> None:
        if self._schema_ready:
            return
        with self._schema_lock:
            if not self._schema_ready:
                self.create_schema()

    # --- health ----------------------------------------------------------------------------

    def ping(self) -> None:
        """Raises when the database does not answer within the budget (a read: `SELECT 1`)."""
        with self._within():
            for attempt in (1, 2):
                try:
                    with self.engine.connect() as connection, \
                            self._deadline(connection.connection.dbapi_connection):
                        connection.execute(text("SELECT 1"))
                    return
                except DBAPIError as exc:
                    if attempt == 1 and _is_disconnect(exc):
                        continue   # a pooled connection the server dropped; try a fresh one
                    raise

    def check_writable(self) -> None:
        """Raise StoreUnavailable unless an event could be written now (what /readyz says).

        A write that failed in the last RECENT_FAILURE seconds (and none succeeded since)
        answers at once, without touching the database; otherwise a probe inserts a row of
        about an event's size (SQLite's write lock, new pages, a PostgreSQL heap extension and
        its locks, as an event would) and rolls it back, within the budget. It cannot see a
        failure that only the commit meets (a WAL that cannot grow): the failed writes do.
        Probes of one process run one at a time, so a burst of checks against a dead database
        holds one connection attempt, not one each.
        """
        failed = self._failed_at
        if failed is not None and time.monotonic() - failed < RECENT_FAILURE:
            raise StoreUnavailable("the latest write failed")
        with self._within() as deadline:
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
        row = LogEvent(event=PROBE_EVENT, idempotency_key=key, raw=" " * PROBE_SIZE).row()
        try:
            with self._writer(), self.engine.connect() as connection:
                with self._deadline(connection.connection.dbapi_connection) as guard:
                    try:
                        with connection.begin() as transaction:
                            connection.execute(events.insert().values(**row))
                            transaction.rollback()
                    except SQLAlchemyError:
                        if guard is not None and guard.fired:
                            connection.invalidate()   # its socket was shut down
                        raise
        except SQLAlchemyError as exc:
            raise StoreUnavailable(type(exc).__name__) from exc

    # --- the budget --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _within(self, seconds: float | None = None) -> Iterator[float]:
        """Give this thread's database work a deadline `seconds` (default: the budget) from
        now, unless it has one already (the outer deadline holds); yields it."""
        current = getattr(self._budget, "deadline", None)
        if current is not None:
            yield current
            return
        deadline = time.monotonic() + (self.timeout if seconds is None else seconds)
        self._budget.deadline = deadline
        try:
            yield deadline
        finally:
            self._budget.deadline = None

    def _remaining(self) -> float | None:
        """Seconds left of this thread's deadline; None when it has none (the command line)."""
        deadline = getattr(self._budget, "deadline", None)
        return None if deadline is None else deadline - time.monotonic()

    def _connect_within_budget(self, dialect: Any, _record: Any, cargs: Any,
                               cparams: Any) -> Any:
        """SQLAlchemy's `do_connect` hook: a request's new connection within its budget (see
        BoundedConnector); without a deadline, libpq's `connect_timeout` bounds it."""
        remaining = self._remaining()
        if remaining is None:
            return None      # SQLAlchemy connects as usual
        return self._connector.connect(lambda: dialect.connect(*cargs, **cparams), remaining)

    @contextlib.contextmanager
    def _deadline(self, dbapi_connection: Any) -> Iterator[_Guard | None]:
        """Cut the work on a PostgreSQL connection at this thread's deadline (see Watchdog);
        yields the guard (None on SQLite, a local file whose only waits, for the write lock,
        are bounded already, and when the thread has no deadline)."""
        remaining = self._remaining()
        if self.dialect != "postgresql" or remaining is None:
            yield None
            return
        if remaining <= 0:
            raise StoreUnavailable("no time left for the database")
        with self.watchdog.guard(dbapi_connection.fileno(), remaining) as guard:
            try:
                yield guard
            except Exception as exc:
                if guard.fired:
                    raise StoreUnavailable("the database did not answer in time") from exc
                raise

    # --- writing ---------------------------------------------------------------------------

    def add(self, item: LogEvent) -> bool:
        """Store one event durably; True if it is new, False if its key was already stored.

        Returns only after the commit. Raises `StoreUnavailable` if the row may not be kept.
        """
        with self._within() as deadline:
            self._ensure_schema()
            if self.committer is not None:
                stored = self.committer.submit(item, deadline)
            else:
                stored = _outcome(self._write([item])[0])
        self._maybe_purge()
        return stored

    def add_many(self, items: Sequence[LogEvent]) -> list[bool]:
        """Store several events in one transaction (tests, imports)."""
        with self._within():
            self._ensure_schema()
            return [_outcome(result) for result in self._write(list(items))]

    def _write(self, items: list[LogEvent]) -> list[bool | StoreUnavailable]:
        """Insert `items` in one transaction: per item True (new), False (duplicate), or the
        StoreUnavailable that kept it out. Raises StoreUnavailable when none was stored. The
        outcome is what `check_writable` reports until the next write or probe."""
        try:
            results = self._write_attempts(items)
        except StoreUnavailable:
            self._failed_at = time.monotonic()
            raise
        self._failed_at = None
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
        """One statement, so one transaction and one commit, for `items`, on a pooled
        connection of the engine used at the driver's level (see `insert_ignoring_duplicates`
        for why). Driver errors are raised as SQLAlchemy's, and a dropped connection is
        invalidated, exactly as SQLAlchemy itself would do."""
        params: list[Any] = []
        for item in items:
            values = list(self._values_of(item))
            for index, convert in self._converters:
                values[index] = convert(values[index])
            params += values
        sql = insert_ignoring_duplicates(len(items), self.dialect)
        try:
            connection = self.engine.raw_connection()
        except self.engine.dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance(None, None, exc, self.engine.dialect.loaded_dbapi.Error,
                                      hide_parameters=True, connection_invalidated=False,
                                      dialect=self.engine.dialect) from exc
        dbapi_connection = connection.dbapi_connection
        cursor = None
        guard: _Guard | None = None
        try:
            with self._deadline(dbapi_connection) as guard:
                if self.dialect == "sqlite":
                    cursor = dbapi_connection.cursor()
                    # The connection is in autocommit: the statement is its own transaction,
                    # committed (and fsynced) before execute returns.
                    with self._writer():
                        cursor.execute(sql, params)
                    inserted = self._inserted_sqlite(cursor, items)
                else:
                    cursor = self._raw_cursor(dbapi_connection)
                    # One statement is one transaction: in autocommit it is a single round
                    # trip (psycopg would otherwise send BEGIN and COMMIT on their own).
                    dbapi_connection.autocommit = True
                    try:
                        cursor.execute(sql, params)
                        inserted = {tuple(row) for row in cursor.fetchall()}
                    finally:
                        with contextlib.suppress(Exception):
                            dbapi_connection.autocommit = False
        except self.engine.dialect.loaded_dbapi.Error as exc:
            lost = self.engine.dialect.is_disconnect(exc, dbapi_connection, cursor)
            if lost:
                connection.invalidate(exc)
            raise DBAPIError.instance(sql, None, exc, self.engine.dialect.loaded_dbapi.Error,
                                      hide_parameters=True, connection_invalidated=lost,
                                      dialect=self.engine.dialect) from exc
        except StoreUnavailable:
            if guard is not None and guard.fired:
                connection.invalidate()     # the watchdog shut its socket down
            raise
        finally:
            if cursor is not None:
                with contextlib.suppress(Exception):
                    cursor.close()
            connection.close()   # back to the pool, which rolls back anything left open
        results = []
        for item in items:
            key = (item.event, item.idempotency_key)
            results.append(key in inserted)
            inserted.discard(key)    # the same key twice in one batch: the second is a duplicate
        return results

    @staticmethod
    def _inserted_sqlite(cursor: Any, items: list[LogEvent]) -> set[tuple[str, str]]:
        """The (event, key) pairs the insert just run on `cursor` stored.

        Usually all of them (the row count says so). Otherwise they are looked up: SQLite gives
        each new row the largest id + 1 and the statement held the write lock, so the rows it
        stored have the ids up to `lastrowid`, `rowcount` of them; an older row with one of
        the keys has a smaller id.
        """
        stored, last = cursor.rowcount, cursor.lastrowid
        if stored == len(items):
            return {(item.event, item.idempotency_key) for item in items}
        if stored <= 0:
            return set()
        inserted: set[tuple[str, str]] = set()
        for name in {item.event for item in items}:
            keys = list({item.idempotency_key for item in items if item.event == name})
            cursor.execute(
                f"SELECT id, idempotency_key FROM {events.name} WHERE event = ? AND "
                f"idempotency_key IN ({', '.join(['?'] * len(keys))})", [name, *keys])
            inserted.update((name, key) for row_id, key in cursor.fetchall()
                            if row_id > last - stored)
        return inserted

    def _writer(self) -> Any:
        """SQLite's writer lock (see WriterLock), waited on within this thread's deadline."""
        if self.writer_lock is None:
            return contextlib.nullcontext()
        return self.writer_lock.hold(self._remaining())

    def _write_one(self, item: LogEvent) -> bool | StoreUnavailable:
        try:
            return self._write_once([item])[0]
        except SQLAlchemyError as exc:
            log.warning("log store write failed: %s", type(exc).__name__)
            return StoreUnavailable(type(exc).__name__)

    # --- retention -------------------------------------------------------------------------

    def purge(self, older_than_days: float, *, now: datetime | None = None) -> int:
        """Delete events received more than `older_than_days` ago; returns how many.

        Deletes in batches of PURGE_BATCH rows, one short transaction each, so inserts (which
        need SQLite's single write lock) are never held up for long.
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
                    return total
        except SQLAlchemyError as exc:
            raise StoreUnavailable(type(exc).__name__) from exc

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

    # --- reading ---------------------------------------------------------------------------

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


def _outcome(result: bool | StoreUnavailable) -> bool:
    if isinstance(result, BaseException):
        raise result
    return result


def _ratio(part: float, whole: float) -> float:
    return round(part / whole, 4) if whole else 0.0


# Grouping commits was measured with bench/logs.py (its A/B runs): it raised throughput on
# both backends (SQLite about 1.8x, PostgreSQL about 1.25x), so it is on for both.
GROUP_COMMIT_DEFAULT = {"sqlite": True, "postgresql": True}
