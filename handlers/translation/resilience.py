"""What keeps a slow or failing provider from holding up a request: the bounded pool every call
runs on (`CallPool`), the deadline each call carries (`Call`), and the `CircuitBreaker`.

The kit's clients time out by themselves (transport.py); a provider of the team's may have no
timeout, and a provider can hang. Either way `Translator` waits for its calls only up to the
request's deadline and abandons the rest to these threads.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable

from .. import metrics

log = logging.getLogger("handlers.translation")

class CircuitBreaker:
    """Closed → (N failures in a row) → open for `cooldown` s → half-open: one probe call.

    The probe's success closes it; its failure opens it again. Per process: each worker finds out
    for itself, which costs at most N failed calls per worker per outage.
    """

    def __init__(self, name: str, failures: int, cooldown: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.threshold = max(1, int(failures))
        self.cooldown = float(cooldown)
        self._clock = clock
        self._lock = threading.Lock()
        self.state = "closed"
        self.failures = 0
        self._open_until = 0.0
        self._probing = False
        self.opened = 0  # how many times it opened (stats)

    def allow(self) -> tuple[bool, bool]:
        """(may this call go out, is it the half-open probe)."""
        with self._lock:
            if self.state == "closed":
                return True, False
            if self.state == "open" and self._clock() >= self._open_until:
                self.state = "half_open"
                metrics.breaker_state(self.name, self.state)
            if self.state == "half_open" and not self._probing:
                self._probing = True
                return True, True
            return False, False

    def success(self) -> None:
        with self._lock:
            was = self.state
            self.state, self.failures, self._probing = "closed", 0, False
        if was != "closed":
            metrics.breaker_state(self.name, self.state)
            log.info("translator %s answered again: circuit closed", self.name)

    def failure(self) -> None:
        with self._lock:
            self.failures += 1
            if self.state == "half_open" or self.failures >= self.threshold:
                reopened = self.state == "half_open"
                self.state, self._probing = "open", False
                self._open_until = self._clock() + self.cooldown
                self.opened += 1
            else:
                return
        metrics.breaker_state(self.name, self.state)
        log.warning("translator %s %s: circuit open, no calls for %.0f s", self.name,
                    "still failing" if reopened else f"failed {self.failures} times in a row",
                    self.cooldown)

    def release_probe(self) -> None:
        """The probe never ran (its deadline passed in the queue): let the next call probe."""
        with self._lock:
            self._probing = False


class Call:
    """One provider call in flight (one string, or a batch of them); `abandoned` once its
    requester stopped waiting for it."""

    __slots__ = ("texts", "deadline", "probe", "finished", "abandoned", "lock")

    def __init__(self, texts: list[str], deadline: float, probe: bool) -> None:
        self.texts = texts
        self.deadline = deadline
        self.probe = probe
        self.finished = False
        self.abandoned = False
        self.lock = threading.Lock()


_Work = tuple[Future, Callable[..., Any], tuple[Any, ...]]


class CallPool:
    """A fixed number of daemon threads shared by every request of the process, for blocking calls.

    Not `ThreadPoolExecutor`: its threads are joined when the interpreter exits, so a call hung on
    a silent provider would hold up a worker's shutdown. These threads are daemons, started on
    first use in each process (building the pool before gunicorn forks starts none in the master).
    `submit` returns a standard `Future`, so `concurrent.futures.wait` and `cancel` work as usual.
    """

    def __init__(self, size: int) -> None:
        self.size = max(1, int(size))
        self._queue: queue.SimpleQueue[_Work] | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0   # threads waiting for work and not yet promised to a submitted call
        self.stuck = 0   # threads held by calls nobody waits for any more

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        with self._lock:
            if self._queue is None or self._pid != os.getpid():
                self._queue, self._pid = queue.SimpleQueue(), os.getpid()
                self._threads = self._idle = self.stuck = 0
            if self._idle:
                self._idle -= 1
            elif self._threads < self.size:  # threads start as work needs them, up to size
                self._threads += 1
                threading.Thread(target=self._work, args=(self._queue,), daemon=True,
                                 name=f"translate-{self._threads}").start()
            work_queue = self._queue
        future: Future = Future()
        work_queue.put((future, fn, args))
        return future

    def _work(self, work_queue: "queue.SimpleQueue[_Work]") -> None:
        while True:
            future, fn, args = work_queue.get()
            if future.set_running_or_notify_cancel():  # False: cancelled while it queued
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:
                    future.set_exception(exc)
            with self._lock:
                if work_queue is not self._queue:
                    return  # a pool of another process (after a fork) or a reset
                self._idle += 1

    @property
    def jammed(self) -> bool:
        return self.stuck >= self.size

    def hold(self, delta: int) -> None:
        with self._lock:
            self.stuck += delta
