"""Session memory: what the kit remembers about a conversation between two webhook calls.

The pre-message step records the customer's language here and the post-message step the option
values it just offered, keyed by `context.global.session_id`. The post-message payload may carry no
context, so the language must live somewhere outside the payload too, where every worker that
may serve the session's next call finds it:

- without `REDIS_URL`, in one SQLite file per instance that all its workers share
  (`SESSION_MEMORY_PATH`; session_file.py);
- with `REDIS_URL`, in Redis, shared by every worker of every instance: a hash per session,
  refreshed to `SESSION_TTL` on each update. Redis is a convenience, never a dependency: each
  worker keeps an in-process copy of what it wrote, which answers for a few seconds after a
  Redis error (`handlers.cache.SharedRedis`).

Either way a record is at most SESSION_RECORD_BYTES of JSON (`encode_record` says what is cut).
The file holds at most `SESSION_MEMORY_BYTES`; a worker's fallback copy of Redis at most
`SESSION_MEMORY_SIZE` sessions and `SESSION_MEMORY_BYTES` of records.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable, Iterable

from .cache import SharedRedis, TTLCache
from .envelope import MAX_SESSION_ID_CHARS, digest, has_lone_surrogate
from .session_file import SessionFile
from .settings import DEFAULTS, SESSION_RECORD_BYTES

SESSION_FILE_NAME = "sessions.sqlite3"


class SessionMemory:
    """What the kit remembers per session id: `get(id) -> dict`, `update(id, values)`.

    Keys the kit uses: "language" (the session's ISO 639-1 code) and "offered" (the option and
    suggestion values the last reply showed). Values must be JSON-serialisable.
    """

    def __init__(self, ttl: float, *, file: SessionFile | None = None,
                 redis: SharedRedis | None = None, size: int = DEFAULTS["session_memory_size"],
                 max_bytes: int = DEFAULTS["session_memory_bytes"],
                 clock: Callable[[], float] = time.monotonic) -> None:
        if (file is None) == (redis is None):
            raise ValueError("the session memory lives in a file or in Redis: pass one")
        self.ttl = float(ttl)
        self.file = file
        self.redis = redis
        # Redis's fallback copy: (record, its size in bytes) per session.
        self.local: TTLCache[tuple[dict[str, Any], int]] | None = TTLCache(
            size, ttl, clock, weigh=lambda entry: entry[1], max_bytes=max_bytes) \
            if redis is not None else None

    @property
    def backend(self) -> str:
        return "redis" if self.redis is not None else "file"

    @staticmethod
    def _stored_key(session_id: str) -> str:
        """Session ids are the assistant's UUIDs; anything odd (very long, or not encodable as
        UTF-8, which Redis keys and SQLite text must be) is replaced by its digest, so an
        entry's size is bounded whatever the id."""
        if len(session_id) > MAX_SESSION_ID_CHARS or has_lone_surrogate(session_id):
            return "sha256:" + digest(session_id)
        return session_id

    def _key(self, session_id: str) -> str:
        assert self.redis is not None
        return self.redis.key("session", self._stored_key(session_id))

    def get(self, session_id: str | None) -> dict[str, Any]:
        """The session's values, {} when unknown, expired or when there is no session id."""
        if not session_id or not isinstance(session_id, str):
            return {}
        if self.file is not None:
            return self.file.get(self._stored_key(session_id))
        assert self.redis is not None and self.local is not None
        key = self._key(session_id)
        raw = self.redis.run(lambda client: client.hgetall(key), None)
        if raw is not None:
            return _decode_fields(raw)
        entry = self.local.get(self._stored_key(session_id))
        return dict(entry[0]) if entry else {}

    def update(self, session_id: str | None, values: dict[str, Any]) -> None:
        """Merge `values` into the session and give it a fresh `SESSION_TTL`."""
        if not session_id or not isinstance(session_id, str) or not values:
            return
        stored_key = self._stored_key(session_id)
        if self.file is not None:
            self.file.update(stored_key, encode_record(values, first=values)[0])
            return
        assert self.redis is not None and self.local is not None
        entry = self.local.get(stored_key)
        kept, text = encode_record({**(entry[0] if entry else {}), **values}, first=values)
        self.local.set(stored_key, (kept, len(text.encode())))
        fields = {name: _json_text(value) for name, value in kept.items() if name in values}
        dropped = [name for name in values if name not in kept]   # cut out: not kept either
        key = self._key(session_id)
        ttl = max(1, int(self.ttl))

        def write(client: Any) -> None:
            pipe = client.pipeline(transaction=False)
            if fields:
                pipe.hset(key, mapping=fields)
            if dropped:
                pipe.hdel(key, *dropped)
            pipe.expire(key, ttl)
            pipe.execute()

        self.redis.run(write, None)


def encode_record(record: dict[str, Any], first: Iterable[str] = ()
                  ) -> tuple[dict[str, Any], str]:
    """The record as stored: (what it keeps, its JSON text of at most SESSION_RECORD_BYTES of
    UTF-8). It is cut, not refused: values are taken in this order, "language" first, then the
    keys in `first` (the values being written), then the others; a value that fits is kept
    whole; a list that does not fit keeps its first values that fit (so a reply's first
    options are the ones a click is recognised by); any other value that does not fit is left
    out."""
    whole = _json_text(record)
    if len(whole) * 4 <= SESSION_RECORD_BYTES or len(whole.encode()) <= SESSION_RECORD_BYTES:
        return record, whole                            # the usual record: nothing to cut
    room = SESSION_RECORD_BYTES - 2                     # the braces
    kept: dict[str, Any] = {}
    pieces: list[str] = []
    for name in dict.fromkeys(["language", *first, *record]):
        if name not in record or not isinstance(name, str):
            continue
        value = record[name]
        head = _json_text(name) + ":"
        used = len(head.encode()) + (1 if pieces else 0)  # and the comma before it
        text = _json_text(value)
        if used + len(text.encode()) > room:
            if not isinstance(value, list):
                continue
            value, texts = [], []
            used += 2                                     # the brackets
            for item in record[name]:
                item_text = _json_text(item)
                grown = used + len(item_text.encode()) + (1 if texts else 0)
                if grown > room:
                    break
                value.append(item)
                texts.append(item_text)
                used = grown
            text = "[" + ",".join(texts) + "]"
        else:
            used += len(text.encode())
        if used > room:
            continue
        kept[name] = value
        pieces.append(head + text)
        room -= used
    return kept, "{" + ",".join(pieces) + "}"


def encoded_text(record: dict[str, Any], first: Iterable[str]) -> str:
    """The JSON text of `encode_record`, as the session file stores it."""
    return encode_record(record, first)[1]


def _json_text(value: Any) -> str:
    """`value` as compact JSON: non-ASCII as is, unless it holds a lone surrogate (from a
    payload's escape), which UTF-8 (Redis, SQLite) cannot carry; then escaped."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if not has_lone_surrogate(text) else json.dumps(value, separators=(",", ":"))


def _decode_fields(raw: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, text in raw.items():
        try:
            values[name] = json.loads(text)
        except ValueError:
            continue  # a field someone else wrote by hand; not ours to interpret
    return values


def session_file_path(settings: Any, instance_path: str) -> str:
    """Where the session file lives: SESSION_MEMORY_PATH, else beside the log store when that
    is a SQLite file, else in the app's instance folder (where the default log store is)."""
    if settings.session_memory_path:
        return str(settings.session_memory_path)
    url = settings.database_url or ""
    if url.startswith("sqlite:///"):
        database = url[len("sqlite:///"):].split("?", 1)[0]
        if database and database != ":memory:" and not database.startswith("file:"):
            return os.path.join(os.path.dirname(os.path.abspath(database)), SESSION_FILE_NAME)
    return os.path.join(instance_path, SESSION_FILE_NAME)


def build_session_memory(settings: Any, redis: SharedRedis | None = None,
                         instance_path: str = "instance") -> SessionMemory:
    """The app's session memory: Redis when REDIS_URL is set, else the instance's file."""
    if redis is not None:
        return SessionMemory(settings.session_ttl, redis=redis,
                             size=settings.session_memory_size,
                             max_bytes=settings.session_memory_bytes)
    file = SessionFile.open(session_file_path(settings, instance_path), settings.session_ttl,
                            max_bytes=settings.session_memory_bytes, encode=encoded_text)
    return SessionMemory(settings.session_ttl, file=file)
