"""The real app under gunicorn with the project's server/gunicorn_conf.py, over HTTP on loopback.

The Flask test client skips the server: these tests catch what only a real deployment shows
(the config file, preloading before the fork, the worker class, the JSON log line on stderr).
They start gunicorn through testsupport/gunicorn_process.py's `serve`, as the benchmarks do.
"""

from __future__ import annotations

import json
import pathlib
import time
import urllib.error
import urllib.request
from typing import Any, Iterator

import pytest

from testsupport.gunicorn_process import serve
from conftest import fixture

pytestmark = pytest.mark.slow
BEARER = "gunicorn-test-token-3f9a"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One gunicorn for the module: pre-message open, post-message behind a Bearer token."""
    folder = tmp_path_factory.mktemp("gunicorn")
    env = {
        "WEB_CONCURRENCY": "2",
        "GUNICORN_THREADS": "4",
        "DATABASE_URL": f"sqlite:///{folder}/events.sqlite3",
        "WEBHOOK_AUTH": "none",
        "POSTMESSAGE_AUTH": "bearer",
        "POSTMESSAGE_SECRET": BEARER,
    }
    with serve("handlers:create_app()", env, log_path=folder / "gunicorn.log") as url:
        yield url


def call(url: str, method: str = "POST", body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def contains(whole: Any, part: Any) -> bool:
    """True if every key and value of `part` is in `whole` (dicts compared recursively)."""
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(
            key in whole and contains(whole[key], value) for key, value in part.items())
    return whole == part


def test_healthz(server: Any) -> None:
    status, headers, body = call(server + "/healthz", "GET")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"status": "ok"}


def test_premessage_round_trip_keeps_the_payload(server: Any) -> None:
    sent = fixture("pre_message_request.message_received.json")
    # No Content-Type, as the assistant sends it.
    status, headers, body = call(server + "/webhooks/premessage",
                                 body=json.dumps(sent).encode())
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    answer = json.loads(body)
    assert set(answer) == {"payload"}
    assert contains(answer["payload"], sent["payload"])


def test_bad_json_is_a_400_json_error(server: Any) -> None:
    status, headers, body = call(server + "/webhooks/premessage", body=b'{"event": {"name": ')
    assert status == 400
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body)["error"] == "invalid_json"


def test_auth_configured_refuses_without_credentials(server: Any) -> None:
    sent = json.dumps(fixture("post_message_request.message_processed.actions_skill.json"))
    status, headers, body = call(server + "/webhooks/postmessage", body=sent.encode())
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert json.loads(body)["error"] == "unauthorized"

    status, _, body = call(server + "/webhooks/postmessage", body=sent.encode(),
                           headers={"Authorization": "Bearer wrong-" + BEARER})
    assert status == 401
    assert BEARER.encode() not in body

    status, _, body = call(server + "/webhooks/postmessage", body=sent.encode(),
                           headers={"Authorization": f"Bearer {BEARER}"})
    assert status == 200
    assert contains(json.loads(body)["payload"], json.loads(sent)["payload"])


def test_one_json_line_per_request_on_stderr_without_text(server: Any) -> None:
    marker = "gunicorn log probe 7c1e"
    sent = fixture("pre_message_request.message_received.json")
    sent["payload"]["input"]["text"] = marker
    sent["payload"]["context"]["global"]["session_id"] = "session-7c1e"
    status, _, _ = call(server + "/webhooks/premessage", body=json.dumps(sent).encode())
    assert status == 200
    deadline = time.monotonic() + 5      # request lines are written in batches (0.1 s)
    while True:
        log = pathlib.Path(server.log_path).read_text()
        lines = [json.loads(line) for line in log.splitlines() if "session-7c1e" in line]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(lines) == 1
    assert lines[0]["endpoint"] == "/webhooks/premessage"
    assert lines[0]["status"] == 200
    assert lines[0]["event"] == "message_received"
    assert marker not in log
