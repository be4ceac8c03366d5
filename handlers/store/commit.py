"""Writing together: concurrent events of one process share a transaction and its fsync, and
SQLite's writers of all processes on the host take turns.

Group commit is the design of the log store, not tuning: the assistant waits for each event's
commit, and one commit per request would spend most of a request's time on fsync.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterator

from .schema import DEFAULT_TIMEOUT, LogEvent, StoreUnavailable

# Grouping commits was measured with bench/logs.py (its A/B runs): it raised throughput on
# both backends (SQLite about 1.8x, PostgreSQL about 1.25x), so it is on for both.
GROUP_COMMIT_DEFAULT = {"sqlite": True, "postgresql": True}


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
    the lead to the first caller that queued meanwhile. A caller is told its row is stored
    only after the transaction holding it committed; if that transaction fails, every caller in
    it gets the error, and one whose deadline comes first gets StoreUnavailable (see `submit`).
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

        `deadline` (time.monotonic()) bounds every wait of a caller that is not writing: one
        still queued then, handed the lead only then, or whose row is in a batch still being
        written then (its leader stalled: a disk that does not return from fsync, which nothing
        in SQLite bounds) gives up with StoreUnavailable; that row may still be committed, which
        a 503 allows. Only the leader waits for its own write, which the database's timeouts
        and the PostgreSQL watchdog bound.
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
                handed_the_lead = me.leader
                if not handed_the_lead and me in self._queue:
                    self._queue.remove(me)
                    raise StoreUnavailable("timed out waiting for the group commit")
            if handed_the_lead:
                me.wake.acquire()   # the previous leader releases it right after choosing it
            elif not me.finished:   # (result and error are set before finished)
                raise StoreUnavailable("timed out waiting for its batch to commit")
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
