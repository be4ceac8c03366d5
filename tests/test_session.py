"""Session memory: in process (a bounded LRU with a TTL) and in Redis, failing open without it."""

from __future__ import annotations

import logging
import socket

import pytest

from handlers.cache import SharedRedis, TTLCache
from handlers.session import SessionMemory


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unknown_session_and_missing_id_read_as_empty():
    memory = SessionMemory(10, 60)
    assert memory.get("nobody") == {}
    assert memory.get(None) == {}
    assert memory.get("") == {}
    memory.update(None, {"language": "es"})  # no session id: nothing to remember, no error
    assert memory.get("None") == {}


def test_update_merges_values():
    memory = SessionMemory(10, 60)
    memory.update("s1", {"language": "es"})
    memory.update("s1", {"offered": ["Yes", "No"]})
    assert memory.get("s1") == {"language": "es", "offered": ["Yes", "No"]}
    memory.update("s1", {"language": "fr"})
    assert memory.get("s1") == {"language": "fr", "offered": ["Yes", "No"]}


def test_get_returns_a_copy():
    memory = SessionMemory(10, 60)
    memory.update("s1", {"language": "es"})
    memory.get("s1")["language"] = "de"
    assert memory.get("s1") == {"language": "es"}


def test_entries_expire_after_the_ttl_and_updates_refresh_it():
    clock = Clock()
    memory = SessionMemory(10, 60, clock=clock)
    memory.update("s1", {"language": "es"})
    clock.now += 50
    memory.update("s1", {"offered": ["a"]})  # refreshes the TTL
    clock.now += 50
    assert memory.get("s1") == {"language": "es", "offered": ["a"]}
    clock.now += 61
    assert memory.get("s1") == {}


def test_in_process_memory_is_bounded_least_recently_used_first():
    memory = SessionMemory(2, 60)
    memory.update("a", {"language": "es"})
    memory.update("b", {"language": "fr"})
    memory.get("a")  # a is now more recent than b
    memory.update("c", {"language": "de"})
    assert memory.get("b") == {}
    assert memory.get("a") == {"language": "es"}
    assert memory.get("c") == {"language": "de"}
    assert len(memory.local) == 2


def test_ttl_cache_with_size_zero_keeps_nothing():
    cache: TTLCache[str] = TTLCache(0, 60)
    cache.set("k", "v")
    assert cache.get("k") is None


@pytest.mark.redis
def test_redis_memory_is_shared_between_instances(redis_url, redis_prefix):
    one = SessionMemory(10, 60, SharedRedis(redis_url, redis_prefix))
    other = SessionMemory(10, 60, SharedRedis(redis_url, redis_prefix))
    one.update("s1", {"language": "ja", "offered": ["はい", "Order #1"]})
    other.update("s1", {"language": "es"})
    assert one.get("s1") == {"language": "es", "offered": ["はい", "Order #1"]}
    client = one.redis.client
    key = f"{redis_prefix}session:s1"
    assert 0 < client.ttl(key) <= 60
    client.delete(key)
    assert one.get("s1") == {}  # Redis is the truth when it answers


@pytest.mark.redis
def test_redis_memory_via_the_app_settings(make_app, redis_url, redis_prefix):
    app = make_app(REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix, SESSION_TTL="120")
    sessions = app.extensions["webhooks"].sessions
    assert sessions.backend == "redis"
    sessions.update("s2", {"language": "fr"})
    assert sessions.redis.client.ttl(f"{redis_prefix}session:s2") > 60
    other = make_app(REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix)
    assert other.extensions["webhooks"].sessions.get("s2") == {"language": "fr"}
    sessions.redis.client.delete(f"{redis_prefix}session:s2")


def test_redis_down_falls_back_to_process_memory_and_logs_once(caplog):
    redis = SharedRedis(f"redis://127.0.0.1:{unused_port()}/0", "x:")
    memory = SessionMemory(10, 60, redis)
    with caplog.at_level(logging.WARNING, logger="handlers.cache"):
        memory.update("s1", {"language": "es"})
        assert memory.get("s1") == {"language": "es"}
        memory.update("s1", {"offered": ["a"]})
        assert memory.get("s1") == {"language": "es", "offered": ["a"]}
    warnings = [r for r in caplog.records if r.name == "handlers.cache"]
    assert len(warnings) == 1
    assert "redis unavailable (ConnectionError)" in warnings[0].getMessage()
    assert not redis.available  # in its back-off: the next calls do not even try
    assert redis.errors == 1
