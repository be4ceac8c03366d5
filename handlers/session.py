"""Session memory: what the kit remembers about a conversation between two webhook calls.

The pre-message step records the customer's language here and the post-message step the option
values it just offered, keyed by `context.global.session_id`. The post-message payload may carry no
context, so the language must live somewhere outside the payload too.

One process keeps it in a bounded LRU with a TTL. With `REDIS_URL` every worker and every instance
shares it through Redis instead: a hash per session, refreshed to `SESSION_TTL` on each update.
Redis is a convenience, never a dependency: its calls have short socket timeouts, an error is
logged once and the kit falls back to the in-process copy for a few seconds before trying again.

This module also holds the two small pieces of shared-state plumbing the translation cache reuses:
`TTLCache` (the in-process LRU) and `SharedRedis` (the client with its fail-open back-off).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Generic, Hashable, TypeVar

from .envelope import MAX_SESSION_ID_CHARS, digest, has_lone_surrogate

log = logging.getLogger(__name__)

T = TypeVar("T")
V = TypeVar("V")

# Redis answers in well under a millisecond; a call that takes longer than this is a Redis in
# trouble, and the webhook must not wait on it (the assistant's own timeout is a few seconds).
REDIS_SOCKET_TIMEOUT = 0.25
# After a Redis error, how long the kit stays on its in-process copy before trying Redis again.
REDIS_BACKOFF = 5.0


class TTLCache(Generic[V]):
    """A thread-safe LRU of at most `size` entries; each expires `ttl` s after it was set."""

    def __init__(self, size: int, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = max(0, int(size))
        self.ttl = float(ttl)
        self._clock = clock
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
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return value

    def set(self, key: Hashable, value: V) -> None:
        if self.size == 0:
            return
        with self._lock:
            self._items[key] = (self._clock() + self.ttl, value)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class SharedRedis:
    """The kit's Redis client: short timeouts, one log line per outage, a back-off, never a crash.

    `run(action, fallback)` returns what `action(client)` returns, or `fallback` when Redis fails or
    is in its back-off period. Built before gunicorn forks; redis-py's pool reconnects per process.
    """

    def __init__(self, url: str, prefix: str, *, timeout: float = REDIS_SOCKET_TIMEOUT,
                 backoff: float = REDIS_BACKOFF, ssl_cert_reqs: str = "required") -> None:
        import redis

        self.prefix = prefix
        self.backoff = backoff
        # Only TLS connections (rediss://) take ssl_cert_reqs; a plain connection rejects it.
        tls = {"ssl_cert_reqs": ssl_cert_reqs} if url.startswith("rediss://") else {}
        self.client = redis.Redis.from_url(url, socket_timeout=timeout,
                                           socket_connect_timeout=timeout,
                                           decode_responses=True, **tls)
        self._down_until = 0.0
        self._lock = threading.Lock()
        self.errors = 0

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def run(self, action: Callable[[Any], T], fallback: T) -> T:
        if not self.available:
            return fallback
        try:
            return action(self.client)
        except Exception as exc:  # redis raises many types (connection, timeout, response, OOM)
            with self._lock:
                self.errors += 1
                first = self.available
                self._down_until = time.monotonic() + self.backoff
            if first:
                # The exception's type says enough; its message can quote a key or the URL.
                log.warning("redis unavailable (%s); using in-process memory for %.0f s",
                            type(exc).__name__, self.backoff)
            return fallback


class SessionMemory:
    """What the kit remembers per session id: `get(id) -> dict`, `update(id, values)`.

    Keys the kit uses: "language" (the session's ISO 639-1 code) and "offered" (the option and
    suggestion values the last reply showed). Values must be JSON-serialisable.
    """

    def __init__(self, size: int, ttl: float, redis: SharedRedis | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = float(ttl)
        self.local: TTLCache[dict[str, Any]] = TTLCache(size, ttl, clock)
        self.redis = redis

    @property
    def backend(self) -> str:
        return "redis" if self.redis is not None else "memory"

    @staticmethod
    def _local_key(session_id: str) -> str:
        """Session ids are the assistant's UUIDs; anything odd (very long, or not encodable as
        UTF-8, which Redis keys must be) is replaced by its digest, so an entry's size is
        bounded whatever the id."""
        if len(session_id) > MAX_SESSION_ID_CHARS or has_lone_surrogate(session_id):
            return "sha256:" + digest(session_id)
        return session_id

    def _key(self, session_id: str) -> str:
        assert self.redis is not None
        return self.redis.key("session", self._local_key(session_id))

    def get(self, session_id: str | None) -> dict[str, Any]:
        """The session's values, {} when unknown, expired or when there is no session id."""
        if not session_id or not isinstance(session_id, str):
            return {}
        if self.redis is not None:
            key = self._key(session_id)
            raw = self.redis.run(lambda client: client.hgetall(key), None)
            if raw is not None:
                return _decode_fields(raw)
        return dict(self.local.get(self._local_key(session_id)) or {})

    def update(self, session_id: str | None, values: dict[str, Any]) -> None:
        """Merge `values` into the session and give it a fresh `SESSION_TTL`."""
        if not session_id or not isinstance(session_id, str) or not values:
            return
        local_key = self._local_key(session_id)
        merged = dict(self.local.get(local_key) or {})
        merged.update(values)
        self.local.set(local_key, merged)
        if self.redis is not None:
            key = self._key(session_id)
            fields = {name: _json_text(value) for name, value in values.items()}
            ttl = max(1, int(self.ttl))

            def write(client: Any) -> None:
                pipe = client.pipeline(transaction=False)
                pipe.hset(key, mapping=fields)
                pipe.expire(key, ttl)
                pipe.execute()

            self.redis.run(write, None)


def _json_text(value: Any) -> str:
    """`value` as JSON for Redis: non-ASCII as is, unless it holds a lone surrogate (from a
    payload's escape), which UTF-8 cannot carry; then escaped."""
    text = json.dumps(value, ensure_ascii=False)
    return text if not has_lone_surrogate(text) else json.dumps(value)


def _decode_fields(raw: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, text in raw.items():
        try:
            values[name] = json.loads(text)
        except ValueError:
            continue  # a field someone else wrote by hand; not ours to interpret
    return values


def build_session_memory(settings: Any, redis: SharedRedis | None = None) -> SessionMemory:
    """The app's session memory: in process, or in Redis when REDIS_URL is set."""
    return SessionMemory(settings.session_memory_size, settings.session_ttl, redis)


def build_shared_redis(settings: Any) -> SharedRedis | None:
    """One Redis client for the whole app (session memory and translation cache), or None."""
    if not settings.redis_url:
        return None
    return SharedRedis(settings.redis_url, settings.redis_prefix,
                       ssl_cert_reqs=settings.redis_ssl_cert_reqs)

