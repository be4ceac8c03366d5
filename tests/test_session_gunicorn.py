"""The session memory under real gunicorn with three workers and the default settings (no
REDIS_URL): a turn served by one worker is remembered by every other.

Each keep-alive connection is served by one worker; the test finds which (the worker holding the
server side of the connection's socket, through /proc) and sends the session's first turn to one
worker and every later turn to the others, so a memory kept per process fails it for certain,
not by chance. A worker's writer thread writes a turn's values within milliseconds; between a
session's turns the test waits SETTLE, far less than the assistant takes to answer. The
translator is the LibreTranslate stand-in (testsupport/libre_server.py).
"""

from __future__ import annotations

import copy
import http.client
import json
import os
import pathlib
import time
import uuid
from typing import Any, Iterator

import pytest

from testsupport.gunicorn_process import serve
from conftest import fixture
from logs_support import worker_pids
from testsupport.libre_server import mark, translate

pytestmark = pytest.mark.slow
WORKERS = 3
KEY = "session-gunicorn-test-key"
SPANISH = "Hola, necesito ayuda con mi pedido"
OPTIONS = ["Track my order", "Change the delivery address", "Talk to an agent"]
SETTLE = 0.1


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    from testsupport.libre_server import LibreServer

    libre = LibreServer().start()
    folder = tmp_path_factory.mktemp("sessions")
    env = {"WEB_CONCURRENCY": str(WORKERS), "GUNICORN_THREADS": "2",
           "DATABASE_URL": f"sqlite:///{folder}/events.sqlite3",
           "WEBHOOKS": "premessage,postmessage,logs,orchestrate", "WEBHOOK_AUTH": "none",
           "ORCHESTRATE_AUTH": "apikey", "ORCHESTRATE_API_KEY": KEY,
           "TRANSLATOR": "libre", "TRANSLATOR_URL": libre.url}
    try:
        with serve("handlers:create_app()", env, log_path=folder / "gunicorn.log") as url:
            yield url, libre
    finally:
        libre.stop()


def server_side_inode(connection: http.client.HTTPConnection) -> str:
    """The inode of the server's end of this TCP connection (from /proc/net/tcp)."""
    client_port = connection.sock.getsockname()[1]
    server_port = connection.sock.getpeername()[1]
    for line in pathlib.Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = (int(address.split(":")[1], 16) for address in fields[1:3])
        if (local, remote) == (server_port, client_port):
            return fields[9]
    raise AssertionError("the connection's server side is not in /proc/net/tcp")


def serving_worker(connection: http.client.HTTPConnection, workers: list[int]) -> int:
    """The worker process that accepted `connection` (it holds the socket's descriptor)."""
    wanted = f"socket:[{server_side_inode(connection)}]"
    for pid in workers:
        for entry in os.scandir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(entry.path) == wanted:
                    return pid
            except OSError:
                continue
    raise AssertionError("no worker holds the connection")


@pytest.fixture(scope="module")
def by_worker(server: tuple[Any, Any]) -> Iterator[dict[int, http.client.HTTPConnection]]:
    """One open keep-alive connection per worker: connections are opened (and answered once)
    until every worker has accepted one."""
    url, _ = server
    deadline = time.monotonic() + 30      # /healthz answers once the first worker is up
    while len(workers := worker_pids(url.pid)) < WORKERS and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(workers) == WORKERS
    port = int(url.rsplit(":", 1)[1])
    found: dict[int, http.client.HTTPConnection] = {}
    spare: list[http.client.HTTPConnection] = []
    for _ in range(200):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/healthz")
        assert json.loads(connection.getresponse().read()) == {"status": "ok"}
        pid = serving_worker(connection, workers)
        if pid in found:
            spare.append(connection)
        else:
            found[pid] = connection
        if len(found) == WORKERS:
            break
    assert len(found) == WORKERS, f"only {len(found)} workers took connections"
    yield found
    for connection in [*found.values(), *spare]:
        connection.close()


def post(connection: http.client.HTTPConnection, path: str, body: Any,
         headers: dict[str, str] | None = None) -> dict[str, Any]:
    connection.request("POST", path, body=json.dumps(body).encode(), headers=headers or {})
    answer = connection.getresponse()
    data = answer.read()
    assert answer.status == 200, data
    return json.loads(data)


def premessage(text: str, session: str) -> dict[str, Any]:
    """A message with the session id and no language of the kit's in the context."""
    body = copy.deepcopy(fixture("pre_message_request.message_received.json"))
    body["payload"]["input"]["text"] = text
    body["payload"]["context"] = {"global": {"session_id": session}}
    return body


def postmessage(session: str) -> dict[str, Any]:
    """A reply whose context holds only the session id (as a stateful client's may), with
    options a click can send back."""
    body = copy.deepcopy(fixture("post_message_request.message_processed.actions_skill.json"))
    body["payload"]["context"] = {"global": {"session_id": session}}
    body["payload"]["output"]["generic"] = [
        {"response_type": "text", "text": "How can I help you?"},
        {"response_type": "option", "title": "Choose one of the following:",
         "options": [{"label": text, "value": {"input": {"text": text}}} for text in OPTIONS]}]
    return body


def orchestrate(hook: str, thread: str, text: str) -> dict[str, Any]:
    body = fixture(f"orchestrate_{hook}_invoke_request.json")
    role = "user" if hook == "pre" else "assistant"
    body["payload"]["messages"] = [{"role": role, "content": {"type": "text", "text": text}}]
    body["context"]["state"]["context"]["wxo_thread_id"] = thread
    return body


def skill_variables(answer: dict[str, Any]) -> dict[str, Any]:
    return answer["payload"]["context"]["skills"]["actions skill"]["skill_variables"]


def test_every_worker_knows_the_language_another_found(by_worker: dict[int, Any]) -> None:
    workers = list(by_worker)
    for round_ in range(4):
        first = workers[round_ % WORKERS]
        others = [pid for pid in workers if pid != first]
        session = f"s-{uuid.uuid4().hex}"
        answer = post(by_worker[first], "/webhooks/premessage", premessage(SPANISH, session))
        assert skill_variables(answer)["customer_language"] == "es"
        time.sleep(SETTLE)
        for _ in range(3):          # many calls, each on a worker that did not see the message
            for pid in others:
                reply = post(by_worker[pid], "/webhooks/postmessage", postmessage(session))
                generic = reply["payload"]["output"]["generic"]
                assert generic[0]["text"] == translate("How can I help you?", "en", "es")
                assert generic[1]["title"] == mark("Choose one of the following:", "en", "es")


def test_a_click_is_recognised_by_a_worker_that_did_not_offer_it(
        server: tuple[Any, Any], by_worker: dict[int, Any]) -> None:
    """The offered-options memory: post-message on one worker, the click on each other."""
    _, libre = server
    workers = list(by_worker)
    session = f"s-{uuid.uuid4().hex}"
    post(by_worker[workers[0]], "/webhooks/premessage", premessage(SPANISH, session))
    time.sleep(SETTLE)
    post(by_worker[workers[1]], "/webhooks/postmessage", postmessage(session))
    time.sleep(SETTLE)
    for pid in (workers[2], workers[0]):
        sent = len(libre.texts())
        answer = post(by_worker[pid], "/webhooks/premessage", premessage(OPTIONS[0], session))
        assert answer["payload"]["input"]["text"] == OPTIONS[0]    # passed on as clicked
        assert skill_variables(answer)["customer_language"] == "es"  # the session's language
        assert libre.texts()[sent:] == []                             # not sent to translate


def test_orchestrate_post_invoke_on_any_worker_knows_the_thread_language(
        by_worker: dict[int, Any]) -> None:
    workers = list(by_worker)
    signed = {"X-API-Key": KEY}
    for first in workers:
        thread = str(uuid.uuid4())
        result = post(by_worker[first], "/plugins/agent-pre-invoke",
                      orchestrate("pre", thread, SPANISH), signed)
        assert result["metadata"] == {"language": "es"}
        time.sleep(SETTLE)
        for _ in range(3):
            for pid in workers:
                if pid == first:
                    continue
                result = post(by_worker[pid], "/plugins/agent-post-invoke",
                              orchestrate("post", thread, "How can I help you?"), signed)
                assert result["metadata"] == {"language": "es"}
                assert result["modified_payload"]["messages"][0]["content"]["text"] == \
                    "¿Cómo puedo ayudarte?"
