"""Deadlines for database work: a request gets its answer within its budget, whatever the
database does.

The server's own timeouts end slow statements and locks, but not a server that is frozen or
cut off silently; these pieces end that wait on our side. `Budget` is the deadline of the
request each thread serves; `Watchdog` shuts down a PostgreSQL connection's socket when its
work outlives that deadline; `BoundedConnector` stops a request from waiting on a new
connection longer than what is left of it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from .schema import StoreUnavailable

WATCHDOG_PERIOD = 0.1


class Watchdog:
    """Cuts PostgreSQL connections whose work outlives a deadline, so no thread waits forever.

    The server's statement and lock timeouts end slow statements, and `tcp_user_timeout`
    notices a dead network; neither helps when the server process is frozen while its host
    still acknowledges our packets (a stopped process, a host stalled on storage, a proxy or
    NAT on the path that accepts and forwards nothing): libpq then waits forever. At the
    deadline (the request's, see Budget) the watchdog shuts the connection's
    socket down, the blocked call fails at once with a disconnect error, and the webhook
    answers 503. One thread per process, started on first use (so it exists in each gunicorn
    worker, not the master); it looks every WATCHDOG_PERIOD seconds.
    """

    def __init__(self, period: float = WATCHDOG_PERIOD) -> None:
        self._lock = threading.Lock()
        self._guards: dict[int, Guard] = {}
        self._pid = 0
        self._period = period

    @contextlib.contextmanager
    def guard(self, fileno: int, seconds: float) -> Iterator["Guard"]:
        guard = Guard(time.monotonic() + seconds, fileno)
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
class Guard:
    """One connection watched until `deadline`; `fired` once its socket was shut down."""

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

class Budget:
    """The deadline of the request each thread is serving, read by everything that may wait on
    the database on its behalf: the connect hook, the watchdog's guard, SQLite's writer lock.

    A deadline is set per thread (`within`), so the command line, which has none, waits as
    long as its statements take. On PostgreSQL (`guard_connections`) the watchdog cuts a
    connection whose work outlives the deadline, and new connections are opened by the
    BoundedConnector; SQLite is a local file whose only waits (for the write lock) are bounded
    already.
    """

    def __init__(self, timeout: float, guard_connections: bool) -> None:
        self.timeout = timeout
        self.guard_connections = guard_connections
        self.watchdog = Watchdog()
        self.connector = BoundedConnector()
        self._local = threading.local()

    @contextlib.contextmanager
    def within(self, seconds: float | None = None) -> Iterator[float]:
        """Give this thread's database work a deadline `seconds` (default: the budget) from
        now, unless it has one already (the outer deadline holds); yields it."""
        current = getattr(self._local, "deadline", None)
        if current is not None:
            yield current
            return
        deadline = time.monotonic() + (self.timeout if seconds is None else seconds)
        self._local.deadline = deadline
        try:
            yield deadline
        finally:
            self._local.deadline = None

    def remaining(self) -> float | None:
        """Seconds left of this thread's deadline; None when it has none (the command line)."""
        deadline = getattr(self._local, "deadline", None)
        return None if deadline is None else deadline - time.monotonic()

    def connect(self, dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        """SQLAlchemy's `do_connect` hook: a request's new connection within its budget (see
        BoundedConnector); without a deadline, libpq's `connect_timeout` bounds it."""
        remaining = self.remaining()
        if remaining is None:
            return None      # SQLAlchemy connects as usual
        return self.connector.connect(lambda: dialect.connect(*cargs, **cparams), remaining)

    @contextlib.contextmanager
    def guard(self, dbapi_connection: Any) -> Iterator[Guard | None]:
        """Cut the work on a connection at this thread's deadline (see Watchdog); yields the
        guard (None when connections are not guarded, or the thread has no deadline)."""
        remaining = self.remaining()
        if not self.guard_connections or remaining is None:
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
