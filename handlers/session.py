"""Session memory: what the kit remembers about a conversation between two webhook calls.

The pre-message step records the customer's language here and the post-message step the option
values it just offered, keyed by `context.global.session_id`. The post-message payload may carry no
context, so the language must live somewhere outside the payload too.

One process keeps it in a bounded LRU with a TTL. With `REDIS_URL` every worker and every instance
shares it through Redis instead: a hash per session, refreshed to `SESSION_TTL` on each update.
Redis is a convenience, never a dependency: `handlers.cache.SharedRedis` falls back to the
in-process copy for a few seconds after an error.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable

from .cache import SharedRedis, TTLCache
from .envelope import MAX_SESSION_ID_CHARS, digest, has_lone_surrogate


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

