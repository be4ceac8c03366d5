"""The log store when the database goes away: a silent partition or a reset connection
(PostgreSQL behind tests/tcp_proxy.py), and a full disk (SQLite's page limit, a genuine
SQLITE_FULL). The bounds are the issue's: a log request and /readyz answer 503 within 2 s, and
the store recovers without a restart.

"Not acknowledged" is what a 503 means: the event may or may not be stored (an insert cut at
the deadline can still commit once the packets get through), and the assistant's resend is
harmless since inserts are idempotent on `log_id`. A 2xx, on the other hand, is only ever sent
for a committed row: every acknowledged event is checked in the database directly, not through
the proxy.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from typing import Any, Iterator

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import make_url

from handlers.store import PROBE_EVENT, EventStore, LogEvent, StoreUnavailable, events
from logs_support import (gunicorn, message_body, pg_store_url, post,  # noqa: F401
                          stored_keys, worker_pids)
from tcp_proxy import TcpProxy

BOUND = 2.0          # seconds: the bound for a 503 after a partition


def timed_post(url: str, log_id: str) -> tuple[int, str | None, float]:
    """(status, error code, seconds) of one log request."""
    started = time.monotonic()
    status, answer = post(url + "/webhooks/logs", message_body(log_id), timeout=30)
    return status, answer.get("error"), time.monotonic() - started


def timed_get(url: str) -> tuple[int, float]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            status = answer.status
            json.loads(answer.read())
    except urllib.error.HTTPError as error:
        status = error.code
        json.loads(error.read())
    return status, time.monotonic() - started


def wave(url: str, count: int, senders: int = 8) -> list[tuple[str, int, str | None, float]]:
    """`count` log requests from `senders` threads at once: (log_id, status, error, seconds)."""
    results: list[tuple[str, int, str | None, float]] = []
    lock = threading.Lock()
    ids = [str(uuid.uuid4()) for _ in range(count)]

    def sender(mine: list[str]) -> None:
        for log_id in mine:
            outcome = (log_id, *timed_post(url, log_id))
            with lock:
                results.append(outcome)

    threads = [threading.Thread(target=sender, args=(ids[index::senders],))
               for index in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == count
    return results


def through_proxy(store_url: str, proxy: TcpProxy) -> str:
    return make_url(store_url).set(host="127.0.0.1", port=proxy.port) \
        .render_as_string(hide_password=False)


@pytest.fixture
def proxy(pg_store_url: str) -> Iterator[TcpProxy]:
    url = make_url(pg_store_url)
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as relay:
        yield relay


# --- PostgreSQL: a silent partition ----------------------------------------------------------

@pytest.mark.postgres
@pytest.mark.slow
def test_a_silent_partition_answers_503_within_2_s_and_heals_without_a_restart(
        pg_store_url: str, proxy: TcpProxy) -> None:
    answered: list[tuple[str, int, str | None, float]] = []
    with gunicorn({"DATABASE_URL": through_proxy(pg_store_url, proxy)}) as (url, master):
        workers = worker_pids(master.pid)
        warm = wave(url, 16)
        answered += warm
        assert {status for _, status, _, _ in warm} == {200}   # both workers hold connections

        proxy.blackhole()
        status, took = timed_get(url + "/readyz")      # no write has failed yet: the probe
        print(f"\nblackhole: /readyz {status} in {took:.2f} s")
        assert status == 503 and took < BOUND

        first = wave(url, 16)      # the pooled connections lead nowhere now
        answered += first
        connections = proxy.connections
        second = wave(url, 16)     # the watchdog dropped them: these must connect anew
        answered += second
        assert proxy.connections > connections
        for name, outcomes in (("pooled", first), ("new connections", second)):
            slowest = max(seconds for *_, seconds in outcomes)
            print(f"blackhole, {name}: {len(outcomes)} x 503, slowest {slowest:.2f} s")
            assert {(status, error) for _, status, error, _ in outcomes} == \
                {(503, "store_unavailable")}
            assert slowest < BOUND
        status, took = timed_get(url + "/readyz")
        assert status == 503 and took < BOUND

        proxy.heal()
        healed_at = time.monotonic()
        for _ in range(50):        # bounded: the first success ends it
            log_id = str(uuid.uuid4())
            status, _, _ = timed_post(url, log_id)
            answered.append((log_id, status, None, 0.0))
            if status == 200 or time.monotonic() - healed_at > 15:
                break
            time.sleep(0.1)
        assert status == 200
        after = wave(url, 16)
        answered += after
        assert {status for _, status, _, _ in after} == {200}
        for _ in range(100):       # each worker's last failure ages out within RECENT_FAILURE
            status, _ = timed_get(url + "/readyz")
            if status == 200 or time.monotonic() - healed_at > 15:
                break
            time.sleep(0.1)
        assert status == 200
        print(f"healed: writes and /readyz back after {time.monotonic() - healed_at:.2f} s")
        assert worker_pids(master.pid) == workers          # nobody was restarted

    stored = set(stored_keys(pg_store_url))                    # directly, not through the proxy
    acknowledged = [log_id for log_id, status, _, _ in answered if status == 200]
    refused = [log_id for log_id, status, _, _ in answered if status != 200]
    assert [log_id for log_id in acknowledged if log_id not in stored] == []
    kept = sum(log_id in stored for log_id in refused)
    print(f"{len(acknowledged)} acknowledged, all stored; {len(refused)} answered 503, of which "
          f"{kept} were stored anyway (delivered when the partition healed)")


@pytest.mark.postgres
def test_new_connections_into_a_silent_partition_wait_no_longer_than_the_budget(
        pg_store_url: str, proxy: TcpProxy) -> None:
    """libpq cannot wait less than 2 s for a connection; the store's requests wait 0.5 s."""
    store = EventStore.open(through_proxy(pg_store_url, proxy), timeout=0.5)  # none pooled
    proxy.blackhole()
    outcomes: list[tuple[type, float]] = []
    lock = threading.Lock()

    def add() -> None:
        started = time.monotonic()
        try:
            store.add(LogEvent(event="message_logged", idempotency_key=str(uuid.uuid4()),
                               raw="{}"))
            kind: type = bool
        except StoreUnavailable:
            kind = StoreUnavailable
        with lock:
            outcomes.append((kind, time.monotonic() - started))

    threads = [threading.Thread(target=add) for _ in range(12)]   # a leader and its followers
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert [kind for kind, _ in outcomes] == [StoreUnavailable] * 12
    assert max(seconds for _, seconds in outcomes) < 1.0
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        store.check_writable()
    assert time.monotonic() - started < 1.0
    proxy.heal()
    assert store.add(LogEvent(event="message_logged", idempotency_key="after", raw="{}")) is True
    store.engine.dispose()


# --- PostgreSQL: a reset connection ----------------------------------------------------------

@pytest.mark.postgres
def test_a_cut_connection_answers_503_at_once_and_recovers(
        make_app: Any, pg_store_url: str, proxy: TcpProxy) -> None:
    app = make_app(DATABASE_URL=through_proxy(pg_store_url, proxy))
    client = app.test_client()

    def send(log_id: str) -> tuple[int, float]:
        started = time.monotonic()
        answer = client.post("/webhooks/logs", data=json.dumps(message_body(log_id)))
        return answer.status_code, time.monotonic() - started

    before, during, after = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    assert send(before)[0] == 200
    proxy.cut()                     # the pooled connection is reset, and so is every new one
    status, took = send(during)
    assert status == 503 and took < BOUND
    answer = client.post("/webhooks/logs", data=json.dumps(message_body(during)))
    assert answer.get_json()["error"] == "store_unavailable"
    started = time.monotonic()
    assert client.get("/readyz").status_code == 503
    assert time.monotonic() - started < BOUND
    proxy.heal()
    assert send(after)[0] == 200
    assert client.get("/readyz").status_code == 200     # a write succeeded since the failure
    stored = set(stored_keys(pg_store_url))
    assert {before, after} <= stored and during not in stored   # a reset never reached it
    app.extensions["webhooks"].store.engine.dispose()


# --- SQLite: a full disk ---------------------------------------------------------------------

def limit_pages(store: EventStore) -> Any:
    """Every new connection of `store` may not grow the database file beyond its size now
    (`PRAGMA max_page_count`, a per-connection limit): a genuine SQLITE_FULL ("database or disk
    is full") for any write that needs a new page. Returns the listener, to remove it."""
    with store.engine.connect() as connection:
        pages = connection.execute(text("PRAGMA page_count")).scalar()

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

    event.listen(store.engine, "connect", on_connect)
    store.engine.dispose()
    return on_connect


def lift_limit(store: EventStore, listener: Any) -> None:
    event.remove(store.engine, "connect", listener)
    store.engine.dispose()


def test_a_full_disk_makes_readyz_503_and_space_returning_makes_it_200(
        make_app: Any, tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/full.sqlite3"
    app, idle = make_app(DATABASE_URL=url), make_app(DATABASE_URL=url)
    client, idle_client = app.test_client(), idle.test_client()
    store, idle_store = app.extensions["webhooks"].store, idle.extensions["webhooks"].store
    assert client.post("/webhooks/logs", data=json.dumps(message_body("first"))).status_code == 200
    assert client.get("/readyz").status_code == 200

    limits = [(store, limit_pages(store)), (idle_store, limit_pages(idle_store))]
    answer = client.post("/webhooks/logs",
                         data=json.dumps(message_body("refused", text="x" * 5000)))
    assert answer.status_code == 503 and answer.get_json()["error"] == "store_unavailable"
    ready = client.get("/readyz")            # the write that just failed says so at once
    assert ready.status_code == 503 and ready.get_json()["status"] == "unavailable"
    # An instance that has written nothing lately finds out by writing (its probe).
    assert idle_client.get("/readyz").status_code == 503

    for limited, listener in limits:         # space returns
        lift_limit(limited, listener)
    assert idle_client.get("/readyz").status_code == 200
    assert client.post("/webhooks/logs", data=json.dumps(message_body("later"))).status_code \
        == 200
    assert client.get("/readyz").status_code == 200
    with store.engine.connect() as connection:
        keys = set(connection.execute(select(events.c.idempotency_key)).scalars())
        probes = connection.execute(select(func.count()).select_from(events).where(
            events.c.event == PROBE_EVENT)).scalar()
    assert keys == {"first", "later"} and probes == 0   # the probe leaves no row behind


def test_readyz_writes_nothing_it_keeps_and_is_200_on_a_healthy_store(client: Any) -> None:
    for _ in range(3):
        assert client.get("/readyz").get_json() == {"status": "ok", "store": "sqlite"}
    store = client.application.extensions["webhooks"].store
    assert store.reports.count() == 0


# --- the setting -----------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["0", "-1", "30", "soon"])
def test_database_timeout_must_be_a_positive_number_below_30_s(value: str) -> None:
    from handlers.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="DATABASE_TIMEOUT"):
        load_settings({"DATABASE_TIMEOUT": value}, environ={})


def test_database_timeout_is_the_store_budget(make_app: Any) -> None:
    assert make_app().extensions["webhooks"].store.timeout == 1.5
    assert make_app(DATABASE_TIMEOUT="0.8").extensions["webhooks"].store.timeout == 0.8
