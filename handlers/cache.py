"""In-process and shared caches: `TTLCache` (a bounded LRU with a TTL), `FailOpen` (a dependency
the kit can do without, with its back-off) and `SharedRedis` (the kit's Redis client).

The session memory and the translation cache both sit on these. Redis is a convenience, never
a dependency: its calls have short socket timeouts, an error is logged once and callers fall back
to their in-process copy for a few seconds before Redis is tried again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Generic, Hashable, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
V = TypeVar("V")

# Redis answers in well under a millisecond; a call that takes longer than this is a Redis in
# trouble, and the webhook must not wait on it (the assistant's own timeout is a few seconds).
REDIS_SOCKET_TIMEOUT = 0.25
# After a Redis error, how long the kit stays on its in-process copy before trying Redis again.
REDIS_BACKOFF = 5.0


class TTLCache(Generic[V]):
    """A thread-safe LRU of at most `size` entries; each expires `ttl` s after it was set.

    With `weigh` (an entry's size in bytes), it also holds at most `max_bytes` in all.
    """

    def __init__(self, size: int, ttl: float, clock: Callable[[], float] = time.monotonic, *,
                 weigh: Callable[[V], int] | None = None, max_bytes: int = 0) -> None:
        self.size = max(0, int(size))
        self.ttl = float(ttl)
        self._clock = clock
        self._weigh = weigh
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            expires, value = item
            if expires <= self._clock():
                self._drop(key)
                return None
            self._items.move_to_end(key)
            return value

    def set(self, key: Hashable, value: V) -> None:
        if self.size == 0:
            return
        with self._lock:
            if key in self._items:
                self._drop(key)
            self._items[key] = (self._clock() + self.ttl, value)
            if self._weigh is not None:
                self.bytes += self._weigh(value)
            while len(self._items) > self.size or \
                    (self._weigh is not None and self.bytes > self.max_bytes):
                self._drop(next(iter(self._items)))

    def _drop(self, key: Hashable) -> None:
        _, value = self._items.pop(key)
        if self._weigh is not None:
            self.bytes -= self._weigh(value)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.bytes = 0


class FailOpen:
    """A dependency the kit can do without: one log line per outage, a back-off, never a crash.

    `run(action, fallback)` returns what `action(self.client)` returns, or `fallback` when the
    action fails or the dependency is in its back-off period (`backoff` seconds after an error,
    so that requests do not each wait on a dependency that just failed).
    """

    client: Any = None

    def __init__(self, name: str, meanwhile: str, backoff: float) -> None:
        self.name = name
        self.meanwhile = meanwhile
        self.backoff = backoff
        self._down_until = 0.0
        self._lock = threading.Lock()
        self.errors = 0

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def run(self, action: Callable[[Any], T], fallback: T) -> T:
        if not self.available:
            return fallback
        try:
            return action(self.client)
        except Exception as exc:  # redis and sqlite3 raise many types (connection, timeout, full)
            with self._lock:
                self.errors += 1
                first = self.available
                self._down_until = time.monotonic() + self.backoff
            if first:
                # The exception's type says enough; its message can quote a key or the URL.
                log.warning("%s unavailable (%s); %s for %.0f s", self.name,
                            type(exc).__name__, self.meanwhile, self.backoff)
            return fallback


class SharedRedis(FailOpen):
    """The kit's Redis client: short timeouts, and FailOpen's back-off and single log line.

    Built before gunicorn forks; redis-py's pool reconnects per process.
    """

    def __init__(self, url: str, prefix: str, *, timeout: float = REDIS_SOCKET_TIMEOUT,
                 backoff: float = REDIS_BACKOFF, ssl_cert_reqs: str = "required") -> None:
        import redis

        super().__init__("redis", "using in-process memory", backoff)
        self.prefix = prefix
        # Only TLS connections (rediss://) take ssl_cert_reqs; a plain connection rejects it.
        tls = {"ssl_cert_reqs": ssl_cert_reqs} if url.startswith("rediss://") else {}
        self.client = redis.Redis.from_url(url, socket_timeout=timeout,
                                           socket_connect_timeout=timeout,
                                           decode_responses=True, **tls)

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)


def build_shared_redis(settings: Any) -> SharedRedis | None:
    """One Redis client for the whole app (session memory and translation cache), or None."""
    if not settings.redis_url:
        return None
    return SharedRedis(settings.redis_url, settings.redis_prefix,
                       ssl_cert_reqs=settings.redis_ssl_cert_reqs)

