"""The log webhook under real gunicorn (two workers, gthread), on SQLite and PostgreSQL:
concurrent senders, the same event racing into both workers, and a worker SIGKILLed mid-load
losing no acknowledged event."""

from __future__ import annotations

import http.client
import os
import signal
import threading
import time
import uuid
from typing import Any

import pytest
from logs_support import (gunicorn, message_body, pg_store_url, post, stored_keys,  # noqa: F401
                          store_url, worker_pids)

pytestmark = pytest.mark.slow


def run_senders(count: int, work: Any) -> list[BaseException]:
    errors: list[BaseException] = []

    def guarded(index: int) -> None:
        try:
            work(index)
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_concurrent_senders_through_two_workers_all_land_once(store_url: str) -> None:
    sent: dict[int, list[str]] = {}
    with gunicorn({"DATABASE_URL": store_url}) as (url, _):
        def sender(index: int) -> None:
            sent[index] = []
            for _ in range(40):
                log_id = str(uuid.uuid4())
                status, answer = post(url + "/webhooks/logs", message_body(log_id))
                assert (status, answer) == (200, {"accepted": True, "duplicate": False})
                sent[index].append(log_id)

        assert run_senders(8, sender) == []
    keys = stored_keys(store_url)
    assert sorted(keys) == sorted(key for ids in sent.values() for key in ids)
    assert len(keys) == 320


def test_the_same_event_racing_into_both_workers_is_stored_once(store_url: str) -> None:
    log_ids = [str(uuid.uuid4()) for _ in range(30)]
    fresh: dict[str, int] = dict.fromkeys(log_ids, 0)
    lock = threading.Lock()
    with gunicorn({"DATABASE_URL": store_url}) as (url, master):
        assert len(worker_pids(master.pid)) == 2
        barrier = threading.Barrier(16)

        def sender(index: int) -> None:
            for log_id in log_ids:
                barrier.wait()        # all 16 send this log_id at the same moment
                status, answer = post(url + "/webhooks/logs", message_body(log_id))
                assert status == 200
                if not answer["duplicate"]:
                    with lock:
                        fresh[log_id] += 1

        assert run_senders(16, sender) == []
    assert fresh == dict.fromkeys(log_ids, 1)     # exactly one sender was told "new"
    assert sorted(stored_keys(store_url)) == sorted(log_ids)


def test_a_worker_killed_mid_load_loses_no_acknowledged_event(store_url: str) -> None:
    total, senders = 480, 8
    acknowledged: list[str] = []
    failed: list[str] = []
    at_kill: list[int] = []
    lock = threading.Lock()
    with gunicorn({"DATABASE_URL": store_url}) as (url, master):
        victims = worker_pids(master.pid)
        assert len(victims) == 2

        def sender(index: int) -> None:
            for _ in range(total // senders):
                log_id = str(uuid.uuid4())
                try:
                    status, _ = post(url + "/webhooks/logs", message_body(log_id), timeout=30)
                except (OSError, http.client.HTTPException):
                    status = 0         # the connection died with the worker: not acknowledged
                with lock:
                    (acknowledged if status == 200 else failed).append(log_id)

        def killer(_: int) -> None:
            while True:
                with lock:
                    if len(acknowledged) >= total // 4:
                        break
                time.sleep(0.001)
            os.kill(victims[0], signal.SIGKILL)
            with lock:
                at_kill.append(len(acknowledged) + len(failed))

        kill_thread = threading.Thread(target=killer, args=(0,))
        kill_thread.start()
        assert run_senders(senders, sender) == []
        kill_thread.join()
        replaced = worker_pids(master.pid)
        assert victims[0] not in replaced
    stored = set(stored_keys(store_url))
    assert len(acknowledged) + len(failed) == total
    assert at_kill and at_kill[0] < total          # killed while senders were still sending
    print(f"killed after {at_kill[0]} answers; acknowledged {len(acknowledged)}, "
          f"failed {len(failed)}")
    assert len(acknowledged) > total // 2         # the survivors and the new worker kept going
    missing = [log_id for log_id in acknowledged if log_id not in stored]
    assert missing == []
