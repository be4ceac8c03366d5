"""The event store on its own: schema, durability settings, idempotent inserts, group commit,
retention, and failing databases. Every test runs on SQLite and on PostgreSQL (`store_url`)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, func, make_url, select, text

from handlers import SettingsError, create_app
from handlers.store import (PURGE_BATCH, SCHEMA_VERSION, EventStore, GroupCommitter, LogEvent,
                            StoreUnavailable, events, normalize_url, schema_version, utcnow)
from logs_support import (FreezableProxy, free_port, pg_store_url,  # noqa: F401  (fixtures)
                          store_url)


def item(key: str | None = None, days_old: float = 0, **columns: Any) -> LogEvent:
    key = key or str(uuid.uuid4())
    return LogEvent(event="message_logged", idempotency_key=key,
                    raw='{"event":{"name":"message_logged"},"payload":{"log_id":"%s"}}' % key,
                    received_at=utcnow() - timedelta(days=days_old), **columns)


def count(store: EventStore) -> int:
    with store.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(events)).scalar_one()


@pytest.fixture
def store(store_url: str) -> Any:
    store = EventStore.open(store_url)
    yield store
    store.engine.dispose()


def test_schema_is_created_with_its_version_and_init_is_repeatable(store: EventStore) -> None:
    assert store.schema_version() == SCHEMA_VERSION
    assert store.create_schema() == SCHEMA_VERSION
    assert EventStore.open(store.url).create_schema() == SCHEMA_VERSION
    with store.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(schema_version)).scalar() == 1


def test_a_newer_schema_than_the_kit_is_refused(store: EventStore) -> None:
    with store.engine.begin() as connection:
        connection.execute(schema_version.insert().values(version=SCHEMA_VERSION + 1,
                                                          applied_at=utcnow()))
    with pytest.raises(SettingsError, match="newer than this kit"):
        EventStore(store.url).create_schema()


def test_insert_is_idempotent_by_event_and_key(store: EventStore) -> None:
    key = str(uuid.uuid4())
    assert store.add(item(key)) is True
    assert store.add(item(key)) is False
    # the same key under the other event name is another event
    call = item(key)
    call.event = "cdr_logged"
    assert store.add(call) is True
    assert count(store) == 2


def test_a_batch_tells_each_row_new_or_duplicate(store: EventStore) -> None:
    """One transaction with new keys, keys stored before and a key given twice: each caller is
    told what happened to its own row (on SQLite this is read back after the insert)."""
    old = [item() for _ in range(3)]
    store.add_many(old[:2])
    twice = item()
    call = item(old[0].idempotency_key)
    call.event = "cdr_logged"                           # same key, other event: new
    batch = [item(), old[0], twice, old[1], item(twice.idempotency_key), call, old[2], item()]
    assert store.add_many(batch) == [True, False, True, False, False, True, True, True]
    assert store.add_many(batch) == [False] * len(batch)
    assert count(store) == 2 + 5
    with store.engine.connect() as connection:
        stored = connection.execute(select(events.c.idempotency_key, events.c.raw).where(
            events.c.idempotency_key == twice.idempotency_key)).all()
    assert stored == [(twice.idempotency_key, twice.raw)]    # the first of the two is kept


def test_duplicates_racing_from_many_threads_are_stored_once(store: EventStore) -> None:
    keys = [str(uuid.uuid4()) for _ in range(10)]
    outcomes: list[tuple[str, bool]] = []
    barrier = threading.Barrier(8)
    lock = threading.Lock()

    def sender() -> None:
        # separate stores are separate pools: like two workers or two instances
        own = EventStore(store.url, group_commit=False)
        barrier.wait()
        for key in keys:
            stored = own.add(item(key))
            with lock:
                outcomes.append((key, stored))
        own.engine.dispose()

    threads = [threading.Thread(target=sender) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 80
    for key in keys:
        assert sum(stored for k, stored in outcomes if k == key) == 1
    assert count(store) == 10


def test_concurrent_inserts_through_the_group_committer_all_land(store: EventStore) -> None:
    assert store.committer is not None
    results: list[bool] = []
    lock = threading.Lock()

    def sender() -> None:
        for _ in range(25):
            stored = store.add(item())
            with lock:
                results.append(stored)

    threads = [threading.Thread(target=sender) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [True] * 200
    assert count(store) == 200


def test_sqlite_connections_are_durable_wal_with_a_busy_timeout(tmp_path: Any) -> None:
    store = EventStore.open(f"sqlite:///{tmp_path}/e.sqlite3", timeout=2.5)
    seen = []

    def check() -> None:
        with store.engine.connect() as connection:
            seen.append(tuple(connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                              for name in ("journal_mode", "synchronous", "busy_timeout")))

    # several pooled connections, opened from several threads: each has the pragmas
    with store.engine.connect(), store.engine.connect():
        threads = [threading.Thread(target=check) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert seen == [("wal", 2, 2500)] * 4   # synchronous 2 = FULL


@pytest.mark.postgres
def test_postgres_urls_are_rewritten_to_psycopg(postgres_url: str) -> None:
    rest = postgres_url.split("://", 1)[1]
    assert normalize_url("postgres://" + rest) == "postgresql+psycopg://" + rest
    assert normalize_url("postgresql://" + rest) == "postgresql+psycopg://" + rest
    assert normalize_url("sqlite:///x.sqlite3") == "sqlite:///x.sqlite3"
    store = EventStore("postgres://" + rest)
    assert store.engine.dialect.driver == "psycopg"
    store.ping()
    store.engine.dispose()


@pytest.mark.postgres
def test_prepare_threshold_none_in_the_url_never_prepares_statements(pg_store_url: str) -> None:
    # What PgBouncer in transaction mode before 1.21 needs: psycopg prepares a query on the
    # server after 5 runs on a connection, and PgBouncer may run the next one elsewhere.
    def prepared_after_batches(url: str) -> int:
        store = EventStore.open(url)
        for _ in range(8):
            store.add_many([item(), item()])
        assert store.engine.pool.checkedin() == 1   # so the one connection that wrote
        with store.engine.connect() as connection:
            prepared = connection.execute(
                text("SELECT count(*) FROM pg_prepared_statements")).scalar()
        store.engine.dispose()
        return prepared

    assert prepared_after_batches(pg_store_url) >= 1   # psycopg's default prepares
    assert prepared_after_batches(pg_store_url + "&prepare_threshold=none") == 0
    store = EventStore.open(pg_store_url)
    assert count(store) == 32
    store.engine.dispose()


@pytest.mark.parametrize("value", ["-1", "sometimes"])
def test_a_bad_prepare_threshold_fails_at_start_up(value: str) -> None:
    with pytest.raises(SettingsError, match="prepare_threshold"):
        create_app({"DATABASE_URL": f"postgresql+psycopg://u@127.0.0.1:1/db?prepare_threshold="
                                    f"{value}"})


@pytest.mark.parametrize("url", ["mysql://user@localhost/db", "sqlite+nodriver:///x.db"])
def test_an_unusable_database_url_fails_at_start_up(url: str) -> None:
    with pytest.raises(SettingsError, match="DATABASE_URL"):
        create_app({"DATABASE_URL": url})


def test_purge_deletes_only_older_events_in_batches(store: EventStore) -> None:
    store.add_many([item(days_old=40) for _ in range(PURGE_BATCH + 250)])
    store.add_many([item(days_old=20), item(days_old=1), item()])
    assert store.retention.purge(30) == PURGE_BATCH + 250
    assert count(store) == 3
    assert store.retention.purge(10) == 1
    assert count(store) == 2


def _wait_for_retention_thread() -> None:
    for thread in threading.enumerate():
        if thread.name == "log-retention":
            thread.join(timeout=30)


def test_retention_purges_automatically_at_most_once_an_hour(store_url: str) -> None:
    store = EventStore.open(store_url, retention_days=30)
    store.add_many([item(days_old=45), item(days_old=31), item(days_old=29)])
    store.add(item())                 # first insert of the process: the purge is due
    _wait_for_retention_thread()
    assert count(store) == 2
    store.add_many([item(days_old=60)])
    store.add(item())                 # within the hour: no second purge
    _wait_for_retention_thread()
    assert count(store) == 4
    store.engine.dispose()


def test_without_retention_nothing_is_purged(store: EventStore) -> None:
    store.add_many([item(days_old=4000)])
    store.add(item())
    _wait_for_retention_thread()
    assert count(store) == 2


def test_an_unreachable_postgres_is_unavailable_not_a_hang() -> None:
    store = EventStore.open(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none",
                            timeout=1)
    with pytest.raises(StoreUnavailable):
        store.add(item())
    with pytest.raises(Exception):
        store.ping()


def test_a_locked_sqlite_database_is_unavailable_after_the_busy_timeout(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/e.sqlite3"
    store = EventStore.open(url, timeout=0.3)
    holder = create_engine(url, isolation_level="AUTOCOMMIT")
    with holder.connect() as connection:
        connection.exec_driver_sql("BEGIN IMMEDIATE")   # another process holds the write lock
        with pytest.raises(StoreUnavailable):
            store.add(item())
        connection.exec_driver_sql("ROLLBACK")
    assert store.add(item()) is True


@pytest.mark.postgres
def test_a_locked_postgres_table_is_unavailable_after_the_lock_timeout(pg_store_url: str) -> None:
    store = EventStore.open(pg_store_url, timeout=0.5)
    holder = create_engine(pg_store_url)
    with holder.begin() as connection:
        connection.execute(text("LOCK TABLE log_events IN ACCESS EXCLUSIVE MODE"))
        with pytest.raises(StoreUnavailable):
            store.add(item())
    assert store.add(item()) is True
    holder.dispose()


@pytest.mark.postgres
def test_connections_the_server_dropped_are_replaced_without_losing_the_event(
        pg_store_url: str) -> None:
    store = EventStore.open(pg_store_url, group_commit=False)
    assert store.add(item()) is True
    with store.engine.connect() as connection:   # the one pooled connection the next add reuses
        backend = connection.execute(text("SELECT pg_backend_pid()")).scalar()
    admin = create_engine(pg_store_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
    assert store.add(item()) is True
    assert count(store) == 2
    admin.dispose()


@pytest.mark.postgres
def test_a_row_the_database_rejects_does_not_sink_its_batch(pg_store_url: str) -> None:
    store = EventStore.open(pg_store_url)
    with pytest.raises(StoreUnavailable, match="DataError"):
        store.add_many([item(), item(language="x" * 100), item()])
    assert count(store) == 2    # its neighbours were written on their own


# --- the group committer's contract, with a write function the test controls ---------------

def test_group_commit_answers_each_caller_only_after_its_batch_and_batches_the_waiting() -> None:
    batches: list[list[str]] = []
    first_write_entered = threading.Event()
    release_first = threading.Event()

    def write(items: list[LogEvent]) -> list[bool]:
        batches.append([i.idempotency_key for i in items])
        if len(batches) == 1:
            first_write_entered.set()
            release_first.wait(10)
        return [True] * len(items)

    committer = GroupCommitter(write)
    done: dict[str, bool] = {}

    def submit(key: str) -> None:
        done[key] = committer.submit(item(key))

    leader = threading.Thread(target=submit, args=("a",))
    leader.start()
    first_write_entered.wait(10)
    followers = [threading.Thread(target=submit, args=(key,)) for key in "bcdef"]
    for thread in followers:
        thread.start()
    while True:     # until all five are queued behind the running batch
        with committer._lock:
            if len(committer._queue) == 5:
                break
    assert done == {}           # nobody answered while the first batch is uncommitted
    release_first.set()
    for thread in [leader, *followers]:
        thread.join(10)
    assert done == dict.fromkeys("abcdef", True)
    assert batches[0] == ["a"]
    assert sorted(batches[1]) == list("bcdef")   # one transaction for all who waited
    assert len(batches) == 2


def test_group_commit_failure_fails_every_caller_in_the_batch_and_recovers() -> None:
    entered = threading.Event()
    release = threading.Event()
    calls = []

    def write(items: list[LogEvent]) -> list[bool]:
        calls.append(len(items))
        if len(calls) == 1:
            entered.set()
            release.wait(10)
            return [True]
        if len(calls) == 2:
            raise StoreUnavailable("OperationalError")
        return [True] * len(items)

    committer = GroupCommitter(write)
    errors: dict[str, str] = {}

    def submit(key: str) -> None:
        try:
            committer.submit(item(key))
        except StoreUnavailable as exc:
            errors[key] = str(exc)

    first = threading.Thread(target=submit, args=("a",))
    first.start()
    entered.wait(10)
    rest = [threading.Thread(target=submit, args=(key,)) for key in "bcd"]
    for thread in rest:
        thread.start()
    while True:
        with committer._lock:
            if len(committer._queue) == 3:
                break
    release.set()
    for thread in [first, *rest]:
        thread.join(10)
    assert errors == dict.fromkeys("bcd", "OperationalError")
    assert committer.submit(item("e")) is True    # the next batch works
    assert not committer._busy and not committer._queue


def test_group_commit_reports_per_item_outcomes() -> None:
    outcomes = iter([[True], [False], [StoreUnavailable("DataError")]])
    committer = GroupCommitter(lambda items: next(outcomes))
    assert committer.submit(item()) is True
    assert committer.submit(item()) is False
    with pytest.raises(StoreUnavailable, match="DataError"):
        committer.submit(item())


@pytest.mark.postgres
def test_a_frozen_postgres_is_cut_at_the_deadline_not_waited_on_forever(
        pg_store_url: str) -> None:
    url = make_url(pg_store_url)
    proxy = FreezableProxy(url.host or "127.0.0.1", url.port or 5432)
    try:
        through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        store = EventStore.open(through, timeout=0.5)
        first, frozen, last = item(), item(), item()
        assert store.add(first) is True
        proxy.frozen.set()            # a pooled connection now leads nowhere
        with pytest.raises(StoreUnavailable):
            store.add(frozen)
        with pytest.raises(Exception):
            store.ping()
        proxy.frozen.clear()
        assert store.add(last) is True        # and the store recovers on fresh connections
        with store.engine.connect() as connection:
            keys = set(connection.execute(select(events.c.idempotency_key)).scalars())
        # The refused one may still land when the relay thaws (answered 503 but kept: the
        # harmless direction); the acknowledged ones must be there.
        assert {first.idempotency_key, last.idempotency_key} <= keys
        store.engine.dispose()
    finally:
        proxy.close()


# --- SQLite's writer lock across processes ---------------------------------------------------

HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.readline()
"""


def test_sqlite_writers_of_other_processes_queue_on_the_writer_lock_with_a_bounded_wait(
        tmp_path: Any) -> None:
    store = EventStore.open(f"sqlite:///{tmp_path}/e.sqlite3", timeout=0.3)
    assert store.writer_lock is not None
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, store.writer_lock.path],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"      # another process writes
        with pytest.raises(StoreUnavailable, match="writer lock"):
            store.add(item())
        with pytest.raises(StoreUnavailable, match="writer lock"):
            store.add(item())                  # still its turn: the wait stays bounded
    finally:
        holder.communicate("done\n", timeout=10)
    for _ in range(100):     # released: writes go through again, once the abandoned wait ends
        try:
            assert store.add(item()) is True
            break
        except StoreUnavailable:
            continue
    assert count(store) == 1


def test_the_writer_lock_is_reentrant_and_excludes_other_threads(tmp_path: Any) -> None:
    store = EventStore.open(f"sqlite:///{tmp_path}/e.sqlite3", timeout=0.2)
    lock = store.writer_lock
    assert lock is not None
    outcome: list[str] = []
    with lock.hold():
        with lock.hold():                      # the same thread: no deadlock
            pass

        def other() -> None:
            try:
                with lock.hold():
                    outcome.append("entered")
            except StoreUnavailable:
                outcome.append("refused")

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert outcome == ["refused"]
    assert store.add(item()) is True


def test_group_commit_takes_its_batch_after_passing_the_gate() -> None:
    gate_entered = threading.Event()
    open_gate = threading.Event()
    batches: list[list[str]] = []

    @contextlib.contextmanager
    def gate() -> Any:
        gate_entered.set()
        open_gate.wait(10)
        yield

    def write(items: list[LogEvent]) -> list[bool]:
        batches.append(sorted(i.idempotency_key for i in items))
        return [True] * len(items)

    committer = GroupCommitter(write, gate=gate)
    threads = [threading.Thread(target=committer.submit, args=(item("a"),))]
    threads[0].start()
    gate_entered.wait(10)
    threads += [threading.Thread(target=committer.submit, args=(item(key),)) for key in "bcd"]
    for thread in threads[1:]:
        thread.start()
    while True:
        with committer._lock:
            if len(committer._queue) == 4:    # the leader is still queued: nothing taken yet
                break
    open_gate.set()
    for thread in threads:
        thread.join(10)
    assert batches == [list("abcd")]
