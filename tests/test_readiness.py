"""/readyz on PostgreSQL: the probe proves the store can write without leaving dead tuples behind
(a probe every few seconds must not bloat a table), and still answers 503 for a store that
cannot write: read-only, the INSERT privilege revoked, the table locked. SQLite's readiness is
tested in test_store_partition.py and test_contract.py."""

from __future__ import annotations

import time
import uuid
from typing import Any, Callable, Iterator

import pytest
from logs_support import pg_store_url  # noqa: F401
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine

from handlers.store import EventStore, LogEvent, StoreUnavailable

pytestmark = pytest.mark.postgres


def schema_of(url: str) -> str:
    return url.rsplit("search_path%3D", 1)[1]


@pytest.fixture
def admin(postgres_url: str) -> Iterator[Engine]:
    engine = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


def table_activity(admin: Engine, schema: str) -> dict[str, tuple[int, int, int, int]]:
    """Per table of the schema: (inserted, updated, deleted, dead) tuples, from the statistics
    (each backend sends its counts when it goes idle a while or exits)."""
    with admin.connect() as connection:
        connection.execute(text("SELECT pg_stat_clear_snapshot()"))
        rows = connection.execute(text(
            "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del, n_dead_tup FROM "
            "pg_stat_user_tables WHERE schemaname = :schema"), {"schema": schema})
        return {row[0]: tuple(row[1:]) for row in rows}


def wait_for(check: Callable[[], bool], what: str, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {seconds:g} s for {what}")
        time.sleep(0.1)


def store_one_event(store: EventStore) -> None:
    assert store.add(LogEvent(event="message_logged", idempotency_key=str(uuid.uuid4()),
                              raw="{}")) is True
    store.engine.dispose()     # its backends exit, and send their statistics


def test_probes_leave_no_dead_tuple_and_write_nothing(pg_store_url: str, admin: Engine) -> None:
    schema = schema_of(pg_store_url)
    store = EventStore.open(pg_store_url)
    store_one_event(store)
    wait_for(lambda: table_activity(admin, schema).get("log_events", (0,))[0] == 1,
             "the first event in the statistics")
    before = table_activity(admin, schema)
    assert {"log_events", "log_schema_version", "log_hourly"} <= set(before)

    for _ in range(50):                      # a probe every few seconds, for a few minutes
        store.check_writable()
    store.engine.dispose()
    # A write after the probes, from a later connection: once it shows in the statistics, the
    # probes' connections (closed before it opened) have sent theirs too.
    store_one_event(store)
    wait_for(lambda: table_activity(admin, schema)["log_events"][0] >= 2,
             "the second event in the statistics")
    after = table_activity(admin, schema)
    assert after.pop("log_events") == (2, 0, 0, before.pop("log_events")[3])   # no dead tuple
    assert after == before                                                    # nor elsewhere


def test_a_healthy_store_is_ready(make_app: Any, pg_store_url: str) -> None:
    app = make_app(DATABASE_URL=pg_store_url)
    answer = app.test_client().get("/readyz")
    assert (answer.status_code, answer.get_json()) == (200, {"status": "ok",
                                                             "store": "postgresql"})
    app.extensions["webhooks"].store.engine.dispose()


def test_read_only_connections_are_not_ready(make_app: Any, pg_store_url: str) -> None:
    """As after a failover to a standby, or with default_transaction_read_only set by an
    operator (some managed services set it when the disk fills)."""
    app = make_app(DATABASE_URL=pg_store_url)
    store = app.extensions["webhooks"].store
    client = app.test_client()
    assert client.get("/readyz").status_code == 200

    def read_only(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("SET default_transaction_read_only = on")
        dbapi_connection.commit()            # SET is undone by a rollback otherwise

    event.listen(store.engine, "connect", read_only)
    store.engine.dispose()                   # every connection from now on is read-only
    answer = client.get("/readyz")
    assert (answer.status_code, answer.get_json()) == (503, {"status": "unavailable",
                                                             "store": "cannot write"})
    event.remove(store.engine, "connect", read_only)
    store.engine.dispose()
    assert client.get("/readyz").status_code == 200
    store.engine.dispose()


def test_a_revoked_insert_privilege_is_not_ready(pg_store_url: str, admin: Engine) -> None:
    role = f"kit_probe_{uuid.uuid4().hex[:10]}"
    schema = schema_of(pg_store_url)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        connection.execute(text(f'GRANT USAGE, CREATE ON SCHEMA "{schema}" TO "{role}"'))
    try:
        store = EventStore.open(pg_store_url.replace("//postgres@", f"//{role}@"))
        store.check_writable()               # the role owns the tables it created
        with admin.connect() as connection:
            connection.execute(text(f'REVOKE INSERT ON "{schema}".log_events FROM "{role}"'))
        with pytest.raises(StoreUnavailable, match="ProgrammingError"):
            store.check_writable()
        store.engine.dispose()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP OWNED BY "{role}"'))
            connection.execute(text(f'DROP ROLE "{role}"'))


def test_a_table_locked_by_a_migration_is_not_ready_within_the_budget(pg_store_url: str) -> None:
    store = EventStore.open(pg_store_url, timeout=0.5)
    store.check_writable()
    locker = create_engine(pg_store_url)
    with locker.connect() as connection:
        connection.execute(text("LOCK TABLE log_events IN ACCESS EXCLUSIVE MODE"))
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.check_writable()
        assert time.monotonic() - started < 1.5
        connection.rollback()
    store.check_writable()                   # the lock is gone: ready again
    store.engine.dispose()
    locker.dispose()
