"""Helpers shared by the log store's tests (test_store*.py, test_logs*.py, test_cli_logs.py).

`store_url` is parametrized over SQLite (a file in the test's tmp_path) and PostgreSQL (the
`postgres_url` server, skipped with a reason when unset). Each PostgreSQL test gets a schema of
its own, selected through libpq's `options=-csearch_path=...` in the URL (which the kit passes
through untouched, and which survives into gunicorn workers through DATABASE_URL), so parallel
runs never see each other's rows; the schema is dropped afterwards.

`gunicorn(env)` runs the real server (server/gunicorn_conf.py) on a free loopback port.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from typing import Any, Iterator

import pytest

from sqlalchemy import create_engine, select

from conftest import fixture
from handlers.store import LogEvent, events, normalize_url
from handlers.store.rows import new_row, raw_json
from testsupport.gunicorn_process import free_port, worker_pids
from testsupport.pg_schema import postgres_schema

REPO = pathlib.Path(__file__).resolve().parent.parent
GUNICORN = pathlib.Path(sys.executable).with_name("gunicorn")


@pytest.fixture
def pg_store_url(postgres_url: str) -> Iterator[str]:
    """An empty PostgreSQL schema of the test's own (dropped afterwards), as a store URL."""
    with postgres_schema(postgres_url) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> str:
    """A fresh, empty event store URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/events.sqlite3"
    return request.getfixturevalue("pg_store_url")


def message_body(log_id: str | None = None, *, text: str = "Good morning",
                 reply: str | list[str] = "Hello. Good evening", session: str = "session-1",
                 assistant: str = "assistant-1", intents: list[dict[str, Any]] | None = None,
                 language: str = "en", generic: list[dict[str, Any]] | None = None,
                 customer_language: str | None = None, **payload: Any) -> dict[str, Any]:
    """IBM's message_logged example (synthesized from the Log model) with the given values."""
    body = copy.deepcopy(fixture("log_webhook_request.message_logged.SYNTHESIZED.json"))
    log = body["payload"]
    log["log_id"] = log_id or str(uuid.uuid4())
    log["request"]["input"]["text"] = text
    replies = [reply] if isinstance(reply, str) else reply
    log["response"]["output"]["generic"] = generic if generic is not None else [
        {"response_type": "text", "text": line} for line in replies]
    log["response"]["output"]["intents"] = intents or []
    log["session_id"] = session
    log["response"]["context"]["global"]["session_id"] = session
    log["assistant_id"] = assistant
    log["language"] = language
    if customer_language:
        log["response"]["context"]["skills"]["actions skill"]["skill_variables"][
            "customer_language"] = customer_language
    log.update(payload)
    return body


def cdr_body(global_session_id: str | None = None) -> dict[str, Any]:
    body = copy.deepcopy(fixture("log_webhook_request.cdr_logged.full.json"))
    body["payload"]["global_session_id"] = global_session_id or str(uuid.uuid4())
    return body


def row_of(body: dict[str, Any], received_at: Any = None) -> LogEvent:
    """The row the log webhook stores for `body` (its context variables under their default
    names), received at a chosen time."""
    return new_row(body["event"]["name"], body["payload"], raw=raw_json(body),
                   received_at=received_at)


def stored_keys(url: str) -> list[str]:
    """The keys in the store at `url`, read directly (not through a proxy under test)."""
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as connection:
            return list(connection.execute(select(events.c.idempotency_key)).scalars())
    finally:
        engine.dispose()


def post(url: str, body: Any, timeout: float = 30.0) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


@contextlib.contextmanager
def gunicorn(env: dict[str, str], workers: int = 2,
             threads: int = 8) -> Iterator[tuple[str, subprocess.Popen]]:
    """The kit under real gunicorn (the project's config), on a free port; yields (url, master)."""
    port = free_port()
    clean = {key: value for key, value in os.environ.items()
             if not key.startswith(("WEBHOOK_", "LOG_", "DATABASE_"))}
    clean.update({"PORT": str(port), "WEB_CONCURRENCY": str(workers),
                  "GUNICORN_THREADS": str(threads), "APP_LOG_LEVEL": "WARNING"}, **env)
    log = open(os.devnull, "w")
    master = subprocess.Popen(
        [str(GUNICORN), "-c", "server/gunicorn_conf.py", "--bind", f"127.0.0.1:{port}",
         "handlers:create_app()"], cwd=REPO, env=clean, stdout=log, stderr=log,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if master.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {master.returncode}")
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not answer /healthz within 30 s") from None
                time.sleep(0.1)
        while len(worker_pids(master.pid)) < workers and time.monotonic() < deadline:
            time.sleep(0.05)
        yield url, master
    finally:
        master.send_signal(signal.SIGTERM)
        try:
            master.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(master.pid, signal.SIGKILL)
            master.wait()
        log.close()


class FreezableProxy:
    """A TCP relay on loopback in front of a real server, that can freeze: it then keeps the
    connections open and stops relaying, like a database process that stopped answering while
    its host's kernel still acknowledges every packet (the case no socket option detects)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.frozen = threading.Event()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self._closed = False
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self._sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        while not self._closed:
            try:
                data = source.recv(65536)
                if not data:
                    break
                while self.frozen.is_set() and not self._closed:   # hold what came in
                    time.sleep(0.01)
                sink.sendall(data)
            except OSError:
                break
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed = True
        self.frozen.clear()
        with contextlib.suppress(OSError):
            self.listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()
