"""The session memory's file: one SQLite database that every worker of an instance shares.

Without Redis, the workers of one instance must still agree on a session's language: the
post-message call (and Orchestrate's post-invoke call) that carries no context may reach another
worker than the pre-message call that found it. A file on the instance's disk is shared by all
of them, and SQLite makes it safe for concurrent processes (WAL mode: readers never wait).

Reads are the request's own (one indexed SELECT). Writes are not: `update` hands the values to
the worker's writer thread and returns; the writer writes whatever has gathered in one
transaction, at once, so the other workers see a value within milliseconds (a session's next
call comes after the assistant or the agent has answered), and this worker at once (its `get`
adds what it has not written yet). Measured under gunicorn with floors.py's post-message load
(bench/postmessage.py --only sessions), a transaction in each request cost about a third of the
throughput whatever its statements (each reloads the pages another worker changed, and waits
for SQLite's lock, which a thread can hold across a wait for the GIL); one writer thread a
worker batches them and costs a fraction of that.

`synchronous=NORMAL`: a commit is never fsynced; a power cut may lose the last values, never the
file's consistency, which is all a memory that expires after `SESSION_TTL` needs. Bounds: the
database file holds at most `SESSION_MEMORY_BYTES` (SQLite's own `max_page_count`, set on every
connection: a write that would grow the file past it fails with SQLITE_FULL); then the sessions
written least recently go, 2 % at a time, and the batch is written again. The writer deletes
expired records at most once a minute, and truncates the WAL when it grows past WAL_LIMIT.

Connections and threads never cross gunicorn's fork: `open` (in the master, at start-up) creates
the schema and closes its connection; in each worker, each thread opens its connection to read
and the writer thread starts on the first write. Errors fail open through `FailOpen`: a turn
then finds no session memory (or its values are not kept), and one line is logged.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import sqlite3
import threading
import time
import weakref
from typing import Any, Callable, Iterable

from .cache import FailOpen
from .settings import SettingsError

# How long a statement waits for another process's write (each takes microseconds).
FILE_TIMEOUT = 0.5
# A statement SQLite finds locked by another process's write is tried again after this long
# (SQLite's own busy handler sleeps 1, 2, 5, ... ms between tries).
BUSY_PAUSE = 0.0001
# After an error, turns skip the file this long (one log line per outage, see FailOpen).
FILE_BACKOFF = 1.0
# Each connection's page cache, in KiB.
CACHE_KIB = 256
# The start-up's wait for the file (another instance's master may be creating it).
STARTUP_TIMEOUT = 10.0
PURGE_EVERY = 60.0
# Sessions waiting for the writer, at most (a stuck file must not grow a worker's memory).
MAX_PENDING = 10_000
# A writer thread with nothing to write this long ends; the next update starts another.
WRITER_IDLE = 30.0
# SQLite's own checkpoints copy the WAL into the file, but start it again only at a moment no
# connection is reading: under a steady load it grew by tens of MB a minute. Past WAL_LIMIT the
# writer waits up to CHECKPOINT_WAIT for the readers of the moment and truncates it.
WAL_LIMIT = 16 * 1024 * 1024
CHECKPOINT_WAIT = 0.05
# When the file is full, this share of the sessions (the least recently written) goes, and the
# batch is written again, at most EVICT_ATTEMPTS times.
EVICT_SHARE = 0.02
EVICT_ATTEMPTS = 8

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    expires REAL NOT NULL,
    data TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sessions_by_expiry ON sessions (expires);
"""
UPSERT = ("INSERT INTO sessions (id, expires, data) VALUES (?, ?, ?) "
          "ON CONFLICT (id) DO UPDATE SET expires = excluded.expires, data = excluded.data")

Encoder = Callable[[dict[str, Any], Iterable[str]], str]


class SessionFile(FailOpen):
    """Session records in a SQLite file: `get(key) -> dict`, `update(key, values)`.

    `encode(record, first)` is the record's JSON text as stored (within the record's byte
    limit, keeping the keys in `first` before the others).
    """

    # NORMAL: measured as fast as OFF, and several times faster per write than FULL (which
    # fsyncs every commit).
    synchronous = "NORMAL"

    def __init__(self, path: str, ttl: float, *, max_bytes: int, encode: Encoder,
                 timeout: float = FILE_TIMEOUT, clock: Callable[[], float] = time.time) -> None:
        super().__init__("session memory file", "turns find no session memory", FILE_BACKOFF)
        self.path = path
        self.ttl = float(ttl)
        self.max_bytes = max_bytes
        self.encode = encode
        self.timeout = timeout
        self._clock = clock   # wall time: the expiry times are shared by processes
        self._local = threading.local()
        self._purged_at = float("-inf")
        self._reset()
        reference = weakref.ref(self)
        os.register_at_fork(before=lambda: (me := reference()) and me._transaction.acquire(),
                            after_in_parent=lambda: (me := reference()) and
                            me._transaction.release(),
                            after_in_child=lambda: (me := reference()) and me._reset())
        atexit.register(lambda: (me := reference()) and me.flush(1.0))   # a worker's exit

    def _reset(self) -> None:
        """A process's own writer state: nothing waiting, no writer thread yet (also in a child
        just forked, where the parent's thread does not run and its lock may be held)."""
        self._lock = threading.Condition()
        # Held by the writer across each transaction, and by a fork: SQLite keeps its file
        # locks' state in process memory, so a child forked while the writer held the write
        # lock would find the file locked by a connection that no longer runs, for good.
        self._transaction = threading.Lock()
        self._pending: dict[str, dict[str, Any]] = {}   # values the writer has not taken yet
        self._writing: dict[str, dict[str, Any]] = {}   # values it is writing now
        self._writer_pid = 0

    @classmethod
    def open(cls, path: str, ttl: float, **options: Any) -> "SessionFile":
        """Create (or reuse) the file now, at start-up, and prove it can be written: a path
        on a read-only disk stops the start with a SettingsError naming SESSION_MEMORY_PATH."""
        memory = cls(path, ttl, **options)
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))   # not readable by others
            connection = memory._connect(STARTUP_TIMEOUT)
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.executescript(SCHEMA)
                connection.execute("PRAGMA user_version = 1")   # a write, on every start
                if memory._file_bytes(connection) > memory.max_bytes:
                    # SESSION_MEMORY_BYTES was lowered: SQLite cannot cap a file below its
                    # size, so the sessions go (they are a memory, not a record).
                    connection.execute("DELETE FROM sessions")
                    connection.execute("VACUUM")
            finally:
                connection.close()   # the master keeps no connection across the fork
        except (OSError, sqlite3.Error) as exc:
            raise SettingsError(f"SESSION_MEMORY_PATH={path!r}: the session memory cannot be "
                                f"written there ({type(exc).__name__}: {exc}); set it to a "
                                "writable file, or set REDIS_URL") from None
        return memory

    def _connect(self, timeout: float = 0.0) -> sqlite3.Connection:
        """A connection in autocommit; without SQLite's busy handler unless `timeout` (the
        statements wait in `_run` instead)."""
        connection = sqlite3.connect(self.path, timeout=timeout, isolation_level=None,
                                     check_same_thread=False)
        self._run(connection, f"PRAGMA synchronous={self.synchronous}")
        # A small page cache: another worker's commit empties it anyway, and a worker has a
        # connection per thread (16 x 2 MB with SQLite's default).
        self._run(connection, f"PRAGMA cache_size=-{CACHE_KIB}")
        page_size = self._run(connection, "PRAGMA page_size").fetchone()[0]
        self._run(connection, f"PRAGMA max_page_count={max(1, self.max_bytes // page_size)}")
        return connection

    @staticmethod
    def _file_bytes(connection: sqlite3.Connection) -> int:
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        return int(pages * connection.execute("PRAGMA page_size").fetchone()[0])

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, opened in this process (never one from before a fork)."""
        held = getattr(self._local, "held", None)
        if held is None or held[0] != os.getpid():
            held = self._local.held = (os.getpid(), self._connect())
        return held[1]

    def _run(self, connection: sqlite3.Connection, statement: str,
             parameters: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        """Run one statement; while another process's write holds the lock, try again every
        BUSY_PAUSE, for at most the timeout."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return connection.execute(statement, parameters)
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY \
                        or time.monotonic() >= deadline:
                    raise
            time.sleep(BUSY_PAUSE)

    # --- reading (the request's thread) -----------------------------------------------------

    def get(self, key: str) -> dict[str, Any]:
        """The session's record, {} when unknown or expired (or when the file fails), with
        the values this worker has not written yet."""
        def read(_: Any) -> dict[str, Any]:
            row = self._run(self._connection(), "SELECT data FROM sessions WHERE id = ? AND "
                            "expires > ?", (key, self._clock())).fetchone()
            return json.loads(row[0]) if row else {}

        with self._lock:   # before the file: what the writer commits meanwhile is in both
            waiting = {**self._writing.get(key, {}), **self._pending.get(key, {})}
        return {**self.run(read, {}), **waiting}

    # --- writing (the worker's writer thread) -----------------------------------------------

    def update(self, key: str, values: dict[str, Any]) -> None:
        """Merge `values` into the record and give it a fresh TTL, soon: the writer thread
        writes it (values written to one session meanwhile are merged and written once)."""
        with self._lock:
            if self._writer_pid != os.getpid():
                self._writer_pid = os.getpid()
                threading.Thread(target=self._write_forever, name="session-file-writer",
                                 daemon=True).start()
            if key not in self._pending and len(self._pending) >= MAX_PENDING:
                return          # the writer is stuck (its errors are logged): fail open
            self._pending[key] = {**self._pending.get(key, {}), **values}
            self._lock.notify_all()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every value this process handed over is written (or dropped by a
        failure); False if that took longer than `timeout`. For tests and the worker's exit."""
        with self._lock:
            return self._lock.wait_for(lambda: not (self._pending or self._writing), timeout)

    def _write_forever(self) -> None:
        """The writer thread: write what is pending, batch after batch; end when idle."""
        connection = self.run(lambda _: self._connect(), None)
        try:
            while True:
                with self._lock:
                    if connection is None or not self._lock.wait_for(
                            lambda: bool(self._pending), WRITER_IDLE):
                        self._pending = {}              # nothing, or no connection: fail open
                        self._writer_pid = 0
                        self._lock.notify_all()
                        return
                    self._writing, self._pending = self._pending, {}
                    batch = self._writing
                self.run(lambda _: self._write_batch(connection, batch), None)
                with self._lock:
                    self._writing = {}
                    self._lock.notify_all()
        finally:
            if connection is not None:
                connection.close()

    def _write_batch(self, connection: sqlite3.Connection, batch: dict[str, dict[str, Any]]
                     ) -> None:
        """Write `batch` in one transaction (read, merge, cut, write each record), so two
        workers writing one session never lose each other's values. When the file is full,
        the least recently written sessions go first (EVICT_SHARE of them) and the batch is
        written again."""
        with self._transaction:
            self._write_batch_once(connection, batch)
        self._keep_wal_small()

    def _write_batch_once(self, connection: sqlite3.Connection,
                          batch: dict[str, dict[str, Any]]) -> None:
        for attempt in range(EVICT_ATTEMPTS):
            try:
                self._run(connection, "BEGIN IMMEDIATE")
                now = self._clock()
                if now - self._purged_at >= PURGE_EVERY:
                    self._purged_at = now
                    connection.execute("DELETE FROM sessions WHERE expires <= ?", (now,))
                for key, values in batch.items():
                    row = connection.execute("SELECT expires, data FROM sessions WHERE id = ?",
                                             (key,)).fetchone()
                    record = json.loads(row[1]) if row and row[0] > now else {}
                    connection.execute(UPSERT, (key, now + self.ttl,
                                                self.encode({**record, **values}, values)))
                connection.execute("COMMIT")
                break
            except sqlite3.OperationalError as exc:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                if exc.sqlite_errorcode != sqlite3.SQLITE_FULL or attempt == EVICT_ATTEMPTS - 1:
                    raise
            count = self._run(connection, "SELECT count(*) FROM sessions").fetchone()[0]
            self._run(connection, "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions "
                      "ORDER BY expires LIMIT ?)", (max(1, int(count * EVICT_SHARE)),))

    def _keep_wal_small(self) -> None:
        """Past WAL_LIMIT, copy the WAL into the file and truncate it, unless another process
        is doing so or a reader stays longer than CHECKPOINT_WAIT: then a later batch will."""
        try:
            if os.path.getsize(self.path + "-wal") <= WAL_LIMIT:
                return
            with contextlib.closing(sqlite3.connect(self.path, timeout=CHECKPOINT_WAIT,
                                                    isolation_level=None)) as connection:
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except (OSError, sqlite3.OperationalError):
            pass

    def usage(self) -> dict[str, int]:
        """What the file holds now (expired sessions included until purged): sessions, the
        bytes of their ids and records, and the database file's size (reads every row)."""
        connection = self._connection()
        sessions, records = connection.execute(
            "SELECT count(*), coalesce(sum(length(CAST(id AS BLOB)) + "
            "length(CAST(data AS BLOB))), 0) FROM sessions").fetchone()
        return {"sessions": sessions, "record_bytes": records,
                "file_bytes": self._file_bytes(connection)}
