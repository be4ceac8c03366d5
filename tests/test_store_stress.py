"""The log store's budget under stress: no caller waits past its deadline, whatever the writes do.

Once, in a benchmark of the log webhook in one process (16 threads, SQLite), every request hung
until the benchmark gave up; these tests try to provoke that through the real databases: two stores
on one database (on SQLite, two writer-lock file descriptors, as two gunicorn workers have), many
threads with tiny and mixed budgets, writes slowed or failed at random (before or after the real
insert), readiness probes and batch inserts meanwhile. Every call must end within its budget plus
the longest injected stall, every acknowledged event must be in the database, and the store must
answer normally afterwards. A thread still running at the end fails the test with every thread's
stack.
"""

from __future__ import annotations

import faulthandler
import random
import tempfile
import threading
import time
import uuid
from typing import Any, Callable

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DataError, OperationalError

from handlers.store import EventStore, LogEvent, StoreUnavailable, events
from handlers.store.commit import WriterLock
from logs_support import pg_store_url, store_url  # noqa: F401  (fixtures)

THREADS = 24
SECONDS = 3.0
BUDGETS = (0.001, 0.005, 0.02, 0.1, 0.3, 1.5)
STALL = 0.25          # the longest injected stall inside a write
SLACK = 1.0           # scheduling on a busy 2-core machine


def chaotic(insert: Callable[[list[LogEvent]], Any], rng: random.Random,
            lock: threading.Lock) -> Callable[[list[LogEvent]], Any]:
    """`insert` (the store's real one), stalled or failed at random: before it runs, after it
    committed (the caller is told it failed: not acknowledged, though stored), or for one bad
    row (the batch is written again row by row)."""

    def insert_with_faults(items: list[LogEvent]) -> Any:
        with lock:
            roll, stall = rng.random(), rng.uniform(0, STALL)
        if roll < 0.10:
            time.sleep(stall)
        elif roll < 0.15:
            raise OperationalError("INSERT", {}, Exception("injected: database is locked"))
        elif roll < 0.18 and len(items) > 1:
            raise DataError("INSERT", {}, Exception("injected: one bad row"))
        result = insert(items)
        if 0.18 <= roll < 0.21:
            raise OperationalError("COMMIT", {}, Exception("injected: lost after commit"))
        return result

    return insert_with_faults


def item(tag: str) -> LogEvent:
    return LogEvent(event="message_logged", idempotency_key=f"{tag}-{uuid.uuid4().hex}",
                    raw='{"stress": true}')


@pytest.mark.parametrize("seed", [1, 2])
def test_no_caller_outlives_its_budget_under_faults(store_url: str,  # noqa: F811
                                                    seed: int) -> None:
    rng, rng_lock = random.Random(seed), threading.Lock()
    stores = [EventStore.open(store_url), EventStore.open(store_url)]
    for store in stores:
        store._insert = chaotic(store._insert, rng, rng_lock)  # type: ignore[method-assign]
    acknowledged: list[str] = []
    refused: list[str] = []
    late: list[str] = []
    crashed: list[str] = []
    stop = time.monotonic() + SECONDS

    def timed(what: str, budget: float, call: Callable[[], Any]) -> Any:
        started = time.monotonic()
        try:
            return call()
        finally:
            took = time.monotonic() - started
            if took > budget + STALL + SLACK:
                late.append(f"{what} with a {budget} s budget took {took:.2f} s")

    def writer(slot: int) -> None:
        store = stores[slot % 2]
        mine = random.Random(seed * 1000 + slot)
        try:
            for _ in range(100_000):
                if time.monotonic() > stop:
                    return
                budget = mine.choice(BUDGETS)
                event = item(f"w{slot}")
                try:
                    with store.budget.within(budget):
                        stored = timed("add", budget, lambda: store.add(event))
                except StoreUnavailable as exc:
                    refused.append(str(exc))
                    continue
                assert stored is True
                acknowledged.append(event.idempotency_key)
        except BaseException as exc:  # reported below
            crashed.append(f"writer {slot}: {exc!r}")

    def other(slot: int) -> None:
        """Readiness probes and batch inserts, which take the writer lock outside the
        group committer."""
        store = stores[slot % 2]
        try:
            for turn in range(100_000):
                if time.monotonic() > stop:
                    return
                try:
                    if turn % 2:
                        timed("check_writable", store.timeout,
                              lambda: store.check_writable())
                    else:
                        batch = [item(f"m{slot}") for _ in range(3)]
                        results = timed("add_many", store.timeout, lambda: store.add_many(batch))
                        acknowledged.extend(event.idempotency_key
                                            for event, new in zip(batch, results) if new)
                except StoreUnavailable:
                    pass
                time.sleep(0.01)
        except BaseException as exc:  # reported below
            crashed.append(f"other {slot}: {exc!r}")

    threads = [threading.Thread(target=writer, args=(slot,), daemon=True)
               for slot in range(THREADS)]
    threads += [threading.Thread(target=other, args=(slot,), daemon=True) for slot in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, stop + 30 - time.monotonic()))
    hung = [thread.name for thread in threads if thread.is_alive()]
    if hung:
        with tempfile.TemporaryFile("w+") as dump:
            faulthandler.dump_traceback(dump, all_threads=True)
            dump.seek(0)
            pytest.fail(f"{len(hung)} threads still waiting 30 s after the end:\n{dump.read()}")
    print(f"{len(acknowledged)} events acknowledged, {len(refused)} refused "
          f"({len(set(refused))} reasons)")
    try:
        assert not crashed, crashed
        assert not late, late[:10]
        assert len(acknowledged) > 50, "too few writes got through to prove anything"
        with stores[0].engine.connect() as connection:
            found = set(connection.execute(select(events.c.idempotency_key)).scalars())
        missing = set(acknowledged) - found
        assert not missing, f"{len(missing)} acknowledged events are not in the database"
        for store in stores:   # the store answers normally once the faults stop
            store._insert = store._insert_raw  # type: ignore[method-assign]
            assert store.add(item("after")) is True
            store.check_writable()
    finally:
        for store in stores:
            store.engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite",
                                     pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_callers_in_a_stalled_batch_answer_at_their_own_deadline(
        backend: str, request: pytest.FixtureRequest, tmp_path: Any) -> None:
    """A leader whose write stalls (a disk that does not return from fsync: nothing in SQLite
    bounds it) must not hold the callers whose rows it took into its batch past their budget:
    they answer StoreUnavailable (not acknowledged) at their deadline."""
    url = f"sqlite:///{tmp_path}/events.sqlite3" if backend == "sqlite" \
        else request.getfixturevalue("pg_store_url")
    store = EventStore.open(url)
    real_insert, stall = store._insert, threading.Event()

    def stalling_insert(items: list[LogEvent]) -> Any:
        if len(items) > 1 and not stall.is_set():
            stall.set()
            time.sleep(3)   # the stalled write; its rows commit afterwards
        return real_insert(items)

    store._insert = stalling_insert  # type: ignore[method-assign]
    gate = WriterLock(str(tmp_path / "gate.lock"), 5.0)
    store.committer._gate = gate.hold  # type: ignore[union-attr]  # a gate the test can close
    outcomes: dict[int, tuple[str, float]] = {}

    def call(slot: int, budget: float) -> None:
        started = time.monotonic()
        try:
            with store.budget.within(budget):
                outcome = f"stored {store.add(item(f'b{slot}'))}"
        except StoreUnavailable as exc:
            outcome = f"unavailable: {exc}"
        outcomes[slot] = (outcome, time.monotonic() - started)

    try:
        with gate.hold():   # the leader waits at the gate while the others queue behind it
            threads = [threading.Thread(target=call, args=(0, 4.0), daemon=True)]
            threads[0].start()
            time.sleep(0.2)
            threads += [threading.Thread(target=call, args=(slot, 1.0), daemon=True)
                        for slot in range(1, 6)]
            for thread in threads[1:]:
                thread.start()
            time.sleep(0.2)
        for thread in threads:
            thread.join(15)
        assert stall.is_set(), "the batch never reached the write"
        assert all(not thread.is_alive() for thread in threads)
        late = {slot: took for slot, (_, took) in outcomes.items() if slot and took > 1.0 + SLACK}
        assert not late, f"callers of the stalled batch waited past their 1 s budget: {outcomes}"
        assert all(outcomes[slot][0].startswith("unavailable") for slot in range(1, 6)), outcomes
        assert outcomes[0][0] == "stored True", outcomes   # the leader's own write went through
        assert store.add(item("after")) is True
    finally:
        store.engine.dispose()
