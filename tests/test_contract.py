"""The HTTP contract of the three webhooks, exactly as watsonx Assistant calls them."""

from __future__ import annotations

import copy
import json
import logging

import pytest
from flask import Flask

from handlers.envelope import SKIP_PROCESSING_HEADER, Answer, render, skip_processing
from handlers.premessage import PREMESSAGE_STEPS
from tests.conftest import fixture

ENDPOINTS = {
    "/webhooks/premessage": ["message_received"],
    "/webhooks/postmessage": ["message_processed"],
    "/webhooks/logs": ["message_logged", "cdr_logged"],
}


def stored_events(app: Flask) -> int:
    """How many events the log store holds."""
    return app.extensions["webhooks"].store.reports.count()


def test_premessage_passes_ibm_example_through_with_every_key(client):
    body = fixture("pre_message_request.message_received.json")
    answer = client.post("/webhooks/premessage", data=json.dumps(body))
    assert answer.status_code == 200
    assert answer.content_type == "application/json"
    reply = answer.get_json()
    assert set(reply) == {"payload"}
    # Nothing is translated with the default settings (TRANSLATOR=none), and every key survives.
    assert reply["payload"]["input"]["options"] == {"return_context": True}
    assert reply["payload"]["context"]["skills"]["actions skill"]["user_defined"] == {
        "account_number": "123456"}
    assert reply["payload"]["context"]["global"]["system"]["user_id"] == "my_user_id"


def test_postmessage_keeps_opaque_and_unknown_keys(client):
    body = fixture("post_message_request.message_processed.actions_skill.json")
    body["payload"]["context"]["integrations"] = {"chat": {"browser_info": {"x": [1, 2]}}}
    body["payload"]["some_future_field"] = {"nested": [None, True, 1.5, "é"]}
    answer = client.post("/webhooks/postmessage", data=json.dumps(body))
    assert answer.status_code == 200
    payload = answer.get_json()["payload"]
    # English session: the reply reaches the customer exactly as the assistant wrote it.
    assert payload == body["payload"]
    assert payload["context"]["skills"]["actions skill"]["system"] == {"state": "nnn"}


@pytest.mark.parametrize("name", [
    "log_webhook_request.cdr_logged.full.json",
    "log_webhook_request.message_logged.SYNTHESIZED.json",
])
def test_logs_accepts_both_events(client, name):
    answer = client.post("/webhooks/logs", data=json.dumps(fixture(name)))
    assert 200 <= answer.status_code < 300
    assert answer.content_type == "application/json"


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "application/json; charset=utf-8"])
def test_body_is_json_whatever_the_content_type(client, content_type):
    body = fixture("pre_message_request.message_received.json")
    headers = {"Content-Type": content_type} if content_type else {}
    answer = client.post("/webhooks/premessage", data=json.dumps(body), headers=headers)
    assert answer.status_code == 200
    assert "payload" in answer.get_json()


BAD_BODIES = [
    (b"", "empty_body"),
    (b"   \n", "empty_body"),
    (b"{not json", "invalid_json"),
    (b"\xff\xfe\x00", "invalid_json"),
    (b"[1, 2]", "not_an_object"),
    (b'"text"', "not_an_object"),
    (b'{"payload": {}}', "missing_event"),
    (b'{"event": "message_received", "payload": {}}', "missing_event"),
    (b'{"event": {}, "payload": {}}', "missing_event"),
    (b'{"event": {"name": "message_received"}}', "missing_payload"),
    (b'{"event": {"name": "message_received"}, "payload": [1]}', "payload_not_an_object"),
    (b'{"event": {"name": "message_received"}, "payload": null}', "payload_not_an_object"),
]


@pytest.mark.parametrize("path", list(ENDPOINTS))
@pytest.mark.parametrize("raw, code", BAD_BODIES)
def test_bad_bodies_get_400_json_and_store_nothing(app, client, path, raw, code):
    if code in ("missing_payload", "payload_not_an_object"):
        raw = raw.replace(b"message_received", ENDPOINTS[path][0].encode())
    answer = client.post(path, data=raw)
    assert answer.status_code == 400
    assert answer.content_type == "application/json"
    assert answer.get_json()["error"] == code
    assert answer.get_json()["detail"]
    assert stored_events(app) == 0


@pytest.mark.parametrize("path, wrong", [
    ("/webhooks/premessage", "message_processed"),
    ("/webhooks/postmessage", "message_received"),
    ("/webhooks/logs", "message_received"),
    ("/webhooks/logs", "message_processed"),
])
def test_each_endpoint_takes_only_its_events(app, client, path, wrong):
    answer = client.post(path, data=json.dumps({"event": {"name": wrong}, "payload": {}}))
    assert answer.status_code == 400
    error = answer.get_json()
    assert error["error"] == "wrong_event"
    assert " or ".join(ENDPOINTS[path]) in error["detail"]
    assert stored_events(app) == 0


def test_error_detail_never_echoes_the_payload(client):
    secret_text = "my card is 4111 1111 1111 1111"
    raw = '{"event": {"name": "message_received"}, "payload": {"input": {"text": "%s"}' % secret_text
    answer = client.post("/webhooks/premessage", data=raw)  # truncated: invalid JSON
    assert answer.status_code == 400
    assert "4111" not in answer.get_data(as_text=True)


def test_body_over_max_content_length_is_413(make_app):
    app = make_app(MAX_CONTENT_LENGTH=1024)
    body = {"event": {"name": "message_logged"}, "payload": {"log_id": "x", "pad": "a" * 4000}}
    answer = app.test_client().post("/webhooks/logs", data=json.dumps(body))
    assert answer.status_code == 413
    assert answer.get_json()["error"] == "payload_too_large"
    assert stored_events(app) == 0


@pytest.mark.parametrize("path", list(ENDPOINTS))
@pytest.mark.parametrize("method", ["get", "put", "delete", "patch"])
def test_other_methods_are_405_json(client, path, method):
    answer = getattr(client, method)(path)
    assert answer.status_code == 405
    assert answer.content_type == "application/json"
    assert answer.get_json()["error"] == "method_not_allowed"
    assert "POST" in answer.headers["Allow"]


def test_unknown_path_is_404_json(client):
    answer = client.get("/webhooks/nothing")
    assert answer.status_code == 404
    assert answer.get_json()["error"] == "not_found"


def test_unexpected_exception_is_500_without_trace_or_payload(make_app, caplog):
    def explode(turn):
        raise RuntimeError(f"boom with {turn.payload['input']['text']}")

    app = make_app(steps={"premessage": [explode, *PREMESSAGE_STEPS]})
    body = fixture("pre_message_request.message_received.json")
    with caplog.at_level(logging.INFO):
        answer = app.test_client().post("/webhooks/premessage", data=json.dumps(body))
    assert answer.status_code == 500
    assert answer.get_json() == {
        "error": "internal_error",
        "detail": "the webhook failed unexpectedly; the event was not processed"}
    from handlers.logsetup import JsonFormatter

    lines = [JsonFormatter().format(record) for record in caplog.records]
    text = answer.get_data(as_text=True) + "\n".join(lines)
    assert "Buenos" not in text and "Traceback" not in text
    # The log still says what failed, and where.
    assert any('"exception": "RuntimeError"' in line and "explode" in line for line in lines)


def test_skip_processing_helper_answers_unwrapped_with_header():
    app = Flask(__name__)
    reply = skip_processing("Lo siento", generic=[{"response_type": "pause", "time": 500}])
    assert reply.skip_processing and reply.status == 200
    with app.app_context():
        answer = render(reply)
    assert answer.headers[SKIP_PROCESSING_HEADER] == "true"
    assert answer.content_type == "application/json"
    assert answer.get_json() == {"output": {"generic": [
        {"response_type": "text", "text": "Lo siento"},
        {"response_type": "pause", "time": 500}]}}


def test_an_answer_renders_its_status_and_retry_after_and_nothing_else():
    app = Flask(__name__)
    with app.app_context():
        answer = render(Answer({"error": "busy", "detail": "later"}, 503, retry_after=5))
        plain = render(Answer({"payload": {}}))
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
    assert answer.get_json() == {"error": "busy", "detail": "later"}
    assert SKIP_PROCESSING_HEADER not in answer.headers
    assert plain.status_code == 200 and "Retry-After" not in plain.headers
    assert SKIP_PROCESSING_HEADER not in plain.headers


def test_a_step_can_answer_directly_with_skip_processing(make_app):
    def closed_for_maintenance(turn):
        return skip_processing("We are down for maintenance.")

    app = make_app(steps={"premessage": [closed_for_maintenance, *PREMESSAGE_STEPS]})
    body = fixture("pre_message_request.message_received.json")
    answer = app.test_client().post("/webhooks/premessage", data=json.dumps(body))
    assert answer.status_code == 200
    assert answer.headers[SKIP_PROCESSING_HEADER] == "true"
    assert answer.get_json()["output"]["generic"][0]["text"] == "We are down for maintenance."
    assert "payload" not in answer.get_json()


def test_one_json_log_line_per_request_without_text(client, caplog):
    body = fixture("post_message_request.message_processed.actions_skill.json")
    with caplog.at_level(logging.INFO, logger="handlers.request"):
        client.post("/webhooks/postmessage", data=json.dumps(body))
    records = [r for r in caplog.records if r.name == "handlers.request"]
    assert len(records) == 1
    fields = records[0].fields
    assert fields["endpoint"] == "/webhooks/postmessage"
    assert fields["event"] == "message_processed"
    assert fields["status"] == 200
    assert fields["session_id"] == "sxxx"
    assert isinstance(fields["duration_ms"], float)
    from handlers.logsetup import JsonFormatter

    line = JsonFormatter().format(records[0])
    assert json.loads(line)["session_id"] == "sxxx"
    assert "Good evening" not in line


def test_health_endpoints(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["status"] == "ok"


def test_readyz_is_503_when_the_store_is_unreachable(make_app):
    # Nothing listens on port 1: the connection is refused at once.
    app = make_app(DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:1/test")
    answer = app.test_client().get("/readyz")
    assert answer.status_code == 503
    assert answer.get_json()["status"] == "unavailable"


def test_payload_is_not_shared_between_requests(client):
    body = fixture("pre_message_request.message_received.json")
    original = copy.deepcopy(body)
    for _ in range(2):
        assert client.post("/webhooks/premessage", data=json.dumps(body)).status_code == 200
    assert body == original
