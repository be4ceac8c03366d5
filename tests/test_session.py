"""Session memory: the instance's SQLite file (shared by its processes, bounded in sessions and
bytes, expiring by SESSION_TTL), Redis with its in-process fallback copy, and the record's cut."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import pathlib
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from typing import Any

import pytest

from handlers.cache import SharedRedis, TTLCache
from handlers.session import SessionMemory, build_session_memory, encode_record, encoded_text
from handlers.session_file import FILE_BACKOFF, FILE_TIMEOUT, SessionFile
from handlers.settings import SESSION_RECORD_BYTES, SettingsError, load_settings

ROOT = pathlib.Path(__file__).resolve().parent.parent


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def file_memory(path: pathlib.Path, ttl: float = 60, clock: Any = None,
                max_bytes: int = 1 << 20) -> SessionMemory:
    options = {"clock": clock} if clock else {}
    return SessionMemory(ttl, file=SessionFile.open(str(path), ttl, max_bytes=max_bytes,
                                                    encode=encoded_text, **options))


def written(memory: SessionMemory, session: str, values: dict[str, Any]) -> None:
    """Update, and wait for the worker's writer thread to have written it."""
    memory.update(session, values)
    assert memory.file is not None and memory.file.flush()


@pytest.fixture
def memory(tmp_path: pathlib.Path) -> SessionMemory:
    return file_memory(tmp_path / "sessions.sqlite3")


def test_unknown_session_and_missing_id_read_as_empty(memory):
    assert memory.backend == "file"
    assert memory.get("nobody") == {}
    assert memory.get(None) == {}
    assert memory.get("") == {}
    memory.update(None, {"language": "es"})  # no session id: nothing to remember, no error
    assert memory.get("None") == {}


def test_update_merges_values(memory):
    memory.update("s1", {"language": "es"})
    memory.update("s1", {"offered": ["Yes", "No"]})
    assert memory.get("s1") == {"language": "es", "offered": ["Yes", "No"]}   # at once
    memory.update("s1", {"language": "fr"})
    assert memory.get("s1") == {"language": "fr", "offered": ["Yes", "No"]}
    assert memory.file.flush()
    assert memory.get("s1") == {"language": "fr", "offered": ["Yes", "No"]}   # and written
    assert memory.file.usage()["sessions"] == 1


def test_a_worker_always_reads_its_own_last_write(memory):
    """Whether the value is still waiting, being written or written, `get` answers with it
    (the writer thread writes while the turns go on)."""
    stale = []
    for number in range(3000):
        memory.update("s1", {"offered": [number]})
        got = memory.get("s1")["offered"]
        if got != [number]:
            stale.append((number, got))
    assert stale == []


def test_get_returns_a_copy(memory):
    written(memory, "s1", {"language": "es"})
    memory.get("s1")["language"] = "de"
    memory.update("s2", {"language": "es"})
    memory.get("s2")["language"] = "de"
    assert memory.get("s1") == {"language": "es"} and memory.get("s2") == {"language": "es"}


def test_two_memories_on_one_file_see_each_other(tmp_path):
    """What two gunicorn workers of one instance are: two processes on one file."""
    one, other = (file_memory(tmp_path / "shared.sqlite3") for _ in range(2))
    written(one, "s1", {"language": "ja"})
    written(other, "s1", {"offered": ["はい", "Order #1"]})
    assert one.get("s1") == {"language": "ja", "offered": ["はい", "Order #1"]}


def test_a_forked_process_writes_what_its_parent_reads(tmp_path):
    memory = file_memory(tmp_path / "forked.sqlite3")
    written(memory, "before", {"language": "fr"})  # the parent has a connection and a writer
    memory.update("pending", {"language": "de"})   # ... and perhaps a value not written yet

    def child() -> None:
        assert memory.get("pending") in ({}, {"language": "de"})   # the parent's, if written
        written(memory, "from-child", {"language": "es"})          # its own writer thread
        assert not memory.file._pending                            # never the parent's

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(30)
    assert process.exitcode == 0
    assert memory.file.flush()
    assert memory.get("from-child") == {"language": "es"}
    assert memory.get("before") == {"language": "fr"}
    assert memory.get("pending") == {"language": "de"}


def test_entries_expire_after_the_ttl_and_updates_refresh_it(tmp_path):
    clock = Clock()
    memory = file_memory(tmp_path / "ttl.sqlite3", ttl=60, clock=clock)
    written(memory, "s1", {"language": "es"})
    clock.now += 50
    written(memory, "s1", {"offered": ["a"]})  # refreshes the TTL
    clock.now += 50
    assert memory.get("s1") == {"language": "es", "offered": ["a"]}
    clock.now += 11
    assert memory.get("s1") == {}
    written(memory, "s1", {"offered": ["b"]})  # an expired record is not merged into
    assert memory.get("s1") == {"offered": ["b"]}


def test_expired_records_are_deleted_by_the_writers(tmp_path):
    clock = Clock()
    memory = file_memory(tmp_path / "purge.sqlite3", ttl=60, clock=clock)
    for number in range(5):
        written(memory, f"old-{number}", {"language": "es"})
    assert memory.file.usage()["sessions"] == 5
    clock.now += 120           # past the TTL, and past the purge interval
    written(memory, "new", {"language": "fr"})
    assert memory.file.usage()["sessions"] == 1


def test_the_file_never_passes_max_bytes_least_recently_written_first(tmp_path):
    clock = Clock()
    budget = 1 << 20
    memory = file_memory(tmp_path / "bytes.sqlite3", clock=clock, max_bytes=budget)
    offered = [f"option number {index} " + "x" * 80 for index in range(500)]   # cut to 16 kB
    for number in range(200):             # about 3 MB of records
        clock.now += 1
        written(memory, f"s{number}", {"language": "es", "offered": offered})
        assert memory.file.usage()["file_bytes"] <= budget
        assert memory.get(f"s{number}")["language"] == "es"    # the write was kept
    usage = memory.file.usage()
    assert 20 < usage["sessions"] < 64 and usage["record_bytes"] < budget
    kept = [number for number in range(200) if memory.get(f"s{number}")]
    assert kept == list(range(200 - len(kept), 200))           # the newest, and only those
    assert memory.file.errors == 0


def test_a_lowered_budget_empties_a_file_over_it_at_start_up(tmp_path):
    memory = file_memory(tmp_path / "lowered.sqlite3", max_bytes=4 << 20)
    for number in range(150):
        memory.update(f"s{number}", {"offered": ["y" * 100] * 150})
    assert memory.file.flush() and memory.file.usage()["file_bytes"] > 1 << 20
    smaller = file_memory(tmp_path / "lowered.sqlite3", max_bytes=1 << 20)
    assert smaller.file.usage() == {"sessions": 0, "record_bytes": 0,
                                    "file_bytes": smaller.file.usage()["file_bytes"]}
    assert smaller.file.usage()["file_bytes"] <= 1 << 20
    written(smaller, "after", {"language": "es"})
    assert smaller.get("after") == {"language": "es"}


def test_a_write_lock_held_elsewhere_fails_open(tmp_path, caplog):
    """Another process keeps the file's write lock: turns never wait for it (the writer
    thread does, FILE_TIMEOUT at most), one line is logged, and once the lock is free later
    values are written again."""
    path = tmp_path / "locked.sqlite3"
    memory = file_memory(path)
    written(memory, "s1", {"language": "es"})
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")               # SQLite's write lock, kept
    try:
        with caplog.at_level(logging.WARNING, logger="handlers.cache"):
            started = time.monotonic()
            memory.update("s1", {"language": "fr"})
            assert time.monotonic() - started < 0.05     # the turn does not wait
            assert memory.file.flush(FILE_TIMEOUT + 2)   # the writer gave up: not written
            took = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert FILE_TIMEOUT <= took < FILE_TIMEOUT + 1
    warnings = [r.getMessage() for r in caplog.records if r.name == "handlers.cache"]
    assert warnings == ["session memory file unavailable (OperationalError); turns find no "
                        "session memory for 1 s"]
    time.sleep(FILE_BACKOFF)
    assert memory.get("s1") == {"language": "es"}   # the failed value is gone, nothing half
    written(memory, "s1", {"language": "de"})
    assert memory.get("s1") == {"language": "de"}


def test_concurrent_updates_of_one_session_lose_nothing(tmp_path):
    """Workers writing different values of one session at once: each writer thread reads and
    writes the records of its batch in one transaction, so every value is kept."""
    path = tmp_path / "race.sqlite3"
    memory = file_memory(path)

    def writer(prefix: str) -> None:
        mine = file_memory(path)
        for number in range(100):
            mine.update("shared", {f"{prefix}{number}": number})
            if number % 10 == 0:
                time.sleep(0.001)               # several batches, interleaved with the others
        assert mine.file is not None and mine.file.flush()

    fork = multiprocessing.get_context("fork")
    children = [fork.Process(target=writer, args=(prefix,)) for prefix in "abc"]
    for child in children:
        child.start()
    writer("d")
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    assert memory.get("shared") == {f"{prefix}{number}": number
                                    for prefix in "abcd" for number in range(100)}


def test_a_100_kb_record_is_cut_keeping_the_language_and_the_first_values(memory):
    offered = [f"choice {index:03d} " + "é" * 95 for index in range(500)]     # about 100 kB
    assert len(json.dumps(offered, ensure_ascii=False).encode()) > 100_000
    written(memory, "big", {"language": "es"})
    written(memory, "big", {"offered": offered, "notes": "n" * 100_000})
    kept = memory.get("big")
    assert kept["language"] == "es"
    assert "notes" not in kept                   # not a list: what does not fit is left out
    assert 0 < len(kept["offered"]) < len(offered)
    assert kept["offered"] == offered[:len(kept["offered"])]   # the first values, in order
    assert memory.file.usage()["record_bytes"] <= SESSION_RECORD_BYTES + len("big")


def test_the_writer_thread_ends_when_idle_and_starts_again(tmp_path, monkeypatch):
    monkeypatch.setattr("handlers.session_file.WRITER_IDLE", 0.05)
    memory = file_memory(tmp_path / "idle.sqlite3")
    written(memory, "s1", {"language": "es"})
    deadline = time.monotonic() + 5
    while memory.file._writer_pid and time.monotonic() < deadline:
        time.sleep(0.01)
    assert memory.file._writer_pid == 0
    written(memory, "s1", {"offered": ["a"]})
    assert memory.get("s1") == {"language": "es", "offered": ["a"]}


def test_encode_record_order_and_sizes():
    kept, text = encode_record({"offered": ["a"], "language": "es"})
    assert text == '{"offered":["a"],"language":"es"}' and kept == {"offered": ["a"],
                                                                    "language": "es"}
    emoji = "😀" * 4000          # 4 bytes of UTF-8 each: 16,000 bytes in 4,000 characters
    kept, text = encode_record({"language": "es", "note": emoji + emoji})
    assert kept == {"language": "es"} and len(text.encode()) <= SESSION_RECORD_BYTES
    record = {"language": "es", "old": "o" * 10_000, "new": "n" * 10_000}
    kept, text = encode_record(record, first=["new"])   # the values just written come first
    assert set(kept) == {"language", "new"}
    assert len(text.encode()) <= SESSION_RECORD_BYTES
    big = ["ü" * 1000] * 40
    kept, text = encode_record({"offered": big})
    assert json.loads(text) == kept and len(text.encode()) <= SESSION_RECORD_BYTES
    # {"offered":[...]} is 14 bytes; each value 2,002 and a comma: 8 fit in 16,384
    assert len(kept["offered"]) == 8
    kept, text = encode_record({"language": "es", "x": "\ud800"})   # a lone surrogate: escaped
    assert json.loads(text) == kept and text.encode()


def test_a_file_that_cannot_be_written_stops_the_start(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(SettingsError, match="^SESSION_MEMORY_PATH=") as caught:
        file_memory(blocker / "sessions.sqlite3")
    assert "\n" not in str(caught.value)
    not_a_database = tmp_path / "notes.txt"
    not_a_database.write_text("these are not sessions " * 100)
    with pytest.raises(SettingsError, match="SESSION_MEMORY_PATH"):
        file_memory(not_a_database)


READ_ONLY_SCRIPT = """
import sys
from handlers.session_file import FILE_BACKOFF, FILE_TIMEOUT, SessionFile
from handlers.settings import SettingsError
try:
    SessionFile.open(sys.argv[1], 60, max_bytes=1 << 20, encode=lambda record, first: "{}")
except SettingsError as exc:
    print(exc)
"""


@pytest.mark.skipif(not shutil.which("unshare"), reason="needs unshare (util-linux)")
def test_a_read_only_filesystem_stops_the_start_naming_the_setting(tmp_path):
    """A read-only mount (as a container's read-only root filesystem): a mount namespace of
    the test's own, so nothing outside it sees the mount."""
    folder = tmp_path / "ro"
    folder.mkdir()
    script = f"mount -t tmpfs -o ro tmpfs {folder} && exec {sys.executable} -c \"$0\" \"$1\""
    done = subprocess.run(["unshare", "--mount", "--map-root-user", "sh", "-c", script,
                           READ_ONLY_SCRIPT, str(folder / "sessions.sqlite3")],
                          capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode != 0 and "mount" in done.stderr:
        pytest.skip(f"no mount namespace here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip()
    assert line.startswith(f"SESSION_MEMORY_PATH='{folder}/sessions.sqlite3'")
    assert "Read-only file system" in line and "\n" not in line


def test_the_file_lives_beside_a_sqlite_log_store_else_in_the_instance_folder(tmp_path):
    def path(**settings: str) -> str:
        return build_session_memory(load_settings(settings, environ={}),
                                    instance_path=str(tmp_path / "instance")).file.path

    assert path(DATABASE_URL=f"sqlite:///{tmp_path}/logs/events.sqlite3") == \
        f"{tmp_path}/logs/sessions.sqlite3"
    assert path() == f"{tmp_path}/instance/sessions.sqlite3"
    assert path(DATABASE_URL="postgresql://user@db/wxa") == \
        f"{tmp_path}/instance/sessions.sqlite3"
    assert path(DATABASE_URL="sqlite:///:memory:") == f"{tmp_path}/instance/sessions.sqlite3"
    assert path(SESSION_MEMORY_PATH=f"{tmp_path}/mine.sqlite3") == f"{tmp_path}/mine.sqlite3"
    assert oct(os.stat(f"{tmp_path}/mine.sqlite3").st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("value", ["0", "1048575", "lots"])
def test_session_memory_bytes_is_at_least_a_mebibyte(value):
    with pytest.raises(SettingsError, match="SESSION_MEMORY_BYTES"):
        load_settings({"SESSION_MEMORY_BYTES": value}, environ={})


def test_ttl_cache_with_size_zero_keeps_nothing():
    cache: TTLCache[str] = TTLCache(0, 60)
    cache.set("k", "v")
    assert cache.get("k") is None


def test_ttl_cache_weighed_keeps_at_most_max_bytes():
    cache: TTLCache[str] = TTLCache(100, 60, weigh=len, max_bytes=10)
    cache.set("a", "xxxx")
    cache.set("b", "yyyy")
    cache.set("a", "zzzz")          # replacing counts the new value only
    assert cache.bytes == 8
    cache.set("c", "wwww")          # 12 > 10: the least recently used ("b") goes
    assert cache.get("b") is None and cache.get("a") == "zzzz" and cache.bytes == 8


# --- Redis -------------------------------------------------------------------------------------

@pytest.mark.redis
def test_redis_memory_is_shared_between_instances(redis_url, redis_prefix):
    one = SessionMemory(60, redis=SharedRedis(redis_url, redis_prefix))
    other = SessionMemory(60, redis=SharedRedis(redis_url, redis_prefix))
    one.update("s1", {"language": "ja", "offered": ["はい", "Order #1"]})
    other.update("s1", {"language": "es"})
    assert one.get("s1") == {"language": "es", "offered": ["はい", "Order #1"]}
    client = one.redis.client
    key = f"{redis_prefix}session:s1"
    assert 0 < client.ttl(key) <= 60
    client.delete(key)
    assert one.get("s1") == {}  # Redis is the truth when it answers


@pytest.mark.redis
def test_redis_records_are_cut_like_the_file(redis_url, redis_prefix):
    memory = SessionMemory(60, redis=SharedRedis(redis_url, redis_prefix))
    offered = [f"choice {index:03d} " + "é" * 95 for index in range(500)]
    memory.update("big", {"language": "es", "notes": "short"})
    memory.update("big", {"offered": offered, "notes": "n" * 100_000})
    kept = memory.get("big")
    assert kept["language"] == "es" and "notes" not in kept   # the cut value is not kept
    assert kept["offered"] == offered[:len(kept["offered"])]
    stored = memory.redis.client.hgetall(f"{redis_prefix}session:big")
    assert sum(len(name.encode()) + len(text.encode()) for name, text in stored.items()) \
        <= SESSION_RECORD_BYTES
    memory.redis.client.delete(f"{redis_prefix}session:big")


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
    memory = SessionMemory(60, redis=redis)
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


def test_the_redis_fallback_copy_is_bounded_in_sessions_and_bytes():
    redis = SharedRedis(f"redis://127.0.0.1:{unused_port()}/0", "x:")
    memory = SessionMemory(60, redis=redis, size=1000, max_bytes=2 * SESSION_RECORD_BYTES)
    offered = ["x" * 100] * 500
    for number in range(5):
        memory.update(f"s{number}", {"language": "es", "offered": offered})
    assert memory.local is not None and memory.local.bytes <= 2 * SESSION_RECORD_BYTES
    assert len(memory.local) == 2 and memory.get("s4")["language"] == "es"
    small = SessionMemory(60, redis=redis, size=2)
    for number in range(5):
        small.update(f"s{number}", {"language": "es"})
    assert small.local is not None and len(small.local) == 2
