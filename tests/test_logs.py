"""The log webhook in process (Flask's test client) on SQLite and PostgreSQL: what is stored,
what is not, and what the assistant is told."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from datetime import datetime
from typing import Any

import jwt
import pytest
from sqlalchemy import func, select

from conftest import fixture
from handlers.logs import LOG_STEPS
from handlers.pipeline import Turn
from handlers.store import events
from handlers.store.rows import raw_copy
from logs_support import free_port, message_body, pg_store_url, store_url  # noqa: F401


def rows(app: Any) -> list[Any]:
    store = app.extensions["webhooks"].store
    with store.engine.connect() as connection:
        return list(connection.execute(select(events).order_by(events.c.id)))


def stored_count(app: Any) -> int:
    store = app.extensions["webhooks"].store
    with store.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(events)).scalar_one()


def send(client: Any, body: Any, **headers: str) -> Any:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post("/webhooks/logs", data=data, headers=headers)


@pytest.fixture
def log_app(make_app: Any, store_url: str) -> Any:
    return make_app(DATABASE_URL=store_url)


def test_ibm_message_logged_example_is_stored_with_its_columns(log_app: Any) -> None:
    body = fixture("log_webhook_request.message_logged.SYNTHESIZED.json")
    answer = send(log_app.test_client(), body)
    assert answer.status_code == 200
    assert answer.is_json and answer.get_json() == {"accepted": True, "duplicate": False}
    [row] = rows(log_app)
    log = body["payload"]
    assert row.event == "message_logged"
    assert row.idempotency_key == log["log_id"]
    assert row.customer_text == "Good morning"
    assert row.reply_text == "Hello. Good evening"
    assert row.assistant_id == log["assistant_id"]
    assert row.skill_id == log["skill_id"]
    assert row.session_id == log["session_id"]
    assert row.customer_id == "my_customer_id"
    assert row.language == "en"
    assert row.request_timestamp == datetime(2021, 10, 12, 20, 54, 0, 722000)
    assert row.response_timestamp == datetime(2021, 10, 12, 20, 54, 1, 61000)
    assert row.intent is None and row.intent_confidence is None
    assert row.agent_transfer is False
    assert abs((datetime.utcnow() - row.received_at).total_seconds()) < 300
    assert json.loads(row.raw) == body


def test_the_same_log_id_again_answers_2xx_and_stores_nothing_new(log_app: Any) -> None:
    client = log_app.test_client()
    body = message_body("fixed-log-id")
    assert send(client, body).get_json()["duplicate"] is False
    again = send(client, message_body("fixed-log-id", text="something else"))
    assert again.status_code == 200 and again.get_json()["duplicate"] is True
    [row] = rows(log_app)
    assert row.customer_text == "Good morning"      # the first one is kept as it was


def test_ibm_cdr_example_is_stored_keyed_by_its_global_session_id(log_app: Any) -> None:
    body = fixture("log_webhook_request.cdr_logged.full.json")
    client = log_app.test_client()
    assert send(client, body).status_code == 200
    assert send(client, body).get_json()["duplicate"] is True
    [row] = rows(log_app)
    call = body["payload"]
    assert row.event == "cdr_logged"
    assert row.idempotency_key == call["global_session_id"]
    assert row.session_id == call["assistant_interaction_summaries"][0]["session_id"]
    assert row.assistant_id == call["assistant_interaction_summaries"][0]["assistant_id"]
    assert row.request_timestamp == datetime(2021, 10, 12, 20, 54, 2, 591000)
    assert row.response_timestamp == datetime(2021, 10, 12, 20, 54, 20, 375000)
    assert row.agent_transfer is False and row.customer_text is None
    assert json.loads(row.raw) == body


def test_events_without_their_id_are_keyed_by_a_hash_of_the_payload(log_app: Any) -> None:
    client = log_app.test_client()
    bare = {"event": {"name": "message_logged"}, "payload": {"request": {"input": {"text": "hi"}}}}
    other = {"event": {"name": "message_logged"}, "payload": {"request": {"input": {"text": "ho"}}}}
    call = {"event": {"name": "cdr_logged"}, "payload": {"call": {"end_reason": "hangup"}}}
    for body in (bare, bare, other, call, call):
        assert send(client, body).status_code == 200
    stored = rows(log_app)
    assert len(stored) == 3
    assert all(row.idempotency_key.startswith("sha256:") for row in stored)
    assert [row.customer_text for row in stored] == ["hi", "ho", None]


def test_top_intent_language_and_agent_transfer_are_extracted(log_app: Any) -> None:
    body = message_body(
        intents=[{"intent": "greeting", "confidence": 0.41},
                 {"intent": "human_agent", "confidence": 0.93}],
        generic=[{"response_type": "text", "text": "One moment."},
                 {"response_type": "connect_to_agent", "message_to_human_agent": "help",
                  "agent_available": {"message": "Connecting you"}},
                 {"response_type": "text", "text": "Thanks for waiting."}],
        customer_language="fr", language="en")
    assert send(log_app.test_client(), body).status_code == 200
    [row] = rows(log_app)
    assert (row.intent, row.intent_confidence) == ("human_agent", 0.93)
    assert row.reply_text == "One moment.\nThanks for waiting."
    assert row.agent_transfer is True
    assert row.language == "fr"       # the customer's, recorded by the pre-message webhook


@pytest.mark.parametrize("body, status, error", [
    (b"", 400, "empty_body"),
    (b"{not json", 400, "invalid_json"),
    (b"[1, 2]", 400, "not_an_object"),
    (b'{"payload": {}}', 400, "missing_event"),
    (b'{"event": {"name": "message_received"}, "payload": {}}', 400, "wrong_event"),
    (b'{"event": {"name": "message_logged"}}', 400, "missing_payload"),
    (b'{"event": {"name": "cdr_logged"}, "payload": "text"}', 400, "payload_not_an_object"),
])
def test_bad_bodies_store_nothing(log_app: Any, body: bytes, status: int, error: str) -> None:
    answer = send(log_app.test_client(), body)
    assert answer.status_code == status
    assert answer.get_json()["error"] == error
    assert stored_count(log_app) == 0


def test_a_body_over_the_limit_is_refused_and_not_stored(make_app: Any, store_url: str) -> None:
    app = make_app(DATABASE_URL=store_url, MAX_CONTENT_LENGTH=2048)
    answer = send(app.test_client(), message_body(text="x" * 4096))
    assert answer.status_code == 413 and answer.get_json()["error"] == "payload_too_large"
    assert stored_count(app) == 0


def test_unauthenticated_events_are_refused_and_not_stored(make_app: Any, store_url: str) -> None:
    app = make_app(DATABASE_URL=store_url, LOG_AUTH="jwt", LOG_SECRET="s" * 32)
    client = app.test_client()
    body = message_body()
    assert send(client, body).status_code == 401
    assert send(client, body, Authorization=jwt.encode({}, "wrong" * 8, "HS256")).status_code == 401
    assert stored_count(app) == 0
    assert send(client, body, Authorization=jwt.encode({}, "s" * 32, "HS256")).status_code == 200
    assert stored_count(app) == 1


def test_a_one_megabyte_event_is_stored_exactly(log_app: Any) -> None:
    text = ("Ünïcødé ✓ 日本語 " * 70_000)[:1_000_000]
    body = message_body(text=text, reply=["a", "b" * 50_000])
    payload = json.dumps(body, ensure_ascii=False).encode()
    assert len(payload) > 1_000_000
    assert send(log_app.test_client(), payload).status_code == 200
    [row] = rows(log_app)
    assert row.customer_text == text
    assert json.loads(row.raw) == body


def test_text_no_database_can_hold_is_cleaned_in_columns_and_escaped_in_the_raw_copy(
        log_app: Any) -> None:
    body = message_body(text="nul\u0000 and a lone \ud800 surrogate")
    data = json.dumps(body).encode()          # ASCII escapes, as JSON allows
    assert send(log_app.test_client(), data).status_code == 200
    [row] = rows(log_app)
    assert row.customer_text == "nul and a lone ? surrogate"
    assert json.loads(row.raw) == body        # the raw copy keeps every character


def test_the_raw_copy_is_the_body_as_received(log_app: Any) -> None:
    body = message_body(text="caf\u00e9")
    # Key order, spacing and escapes of the assistant's own serialisation are kept as sent.
    sent = ('  {"payload": ' + json.dumps(body["payload"], indent=None, separators=(", ", " : "))
            + ', "event" : {"name": "message_logged"}}\r\n')
    assert send(log_app.test_client(), sent.encode()).status_code == 200
    [row] = rows(log_app)
    assert row.raw == sent.strip()
    assert "\\u00e9" in row.raw            # ASCII-escaped as sent, not re-encoded


def add_a_tag(turn: Turn) -> None:
    """A step of a user's that changes the event in place, and does nothing else."""
    turn.body["payload"]["tag"] = "reviewed"


def replace_the_event(turn: Turn) -> None:
    """A step of a user's that replaces the event by a changed copy, and does nothing else."""
    turn.body = {**turn.body, "payload": {**turn.body["payload"], "tag": "replaced"}}


@pytest.mark.parametrize("step, tag", [(add_a_tag, "reviewed"), (replace_the_event, "replaced")])
def test_the_raw_copy_is_the_event_the_steps_left(make_app: Any, store_url: str, step: Any,
                                                  tag: str) -> None:
    app = make_app(DATABASE_URL=store_url, steps={"logs": [step, *LOG_STEPS]})
    body = message_body(text="caf\u00e9")
    assert send(app.test_client(), json.dumps(body).encode()).status_code == 200
    [row] = rows(app)
    assert json.loads(row.raw) == {**body, "payload": {**body["payload"], "tag": tag}}
    assert "caf\u00e9" in row.raw            # written out again, not the text received


def test_the_raw_copy_keeps_the_text_only_while_it_says_the_event() -> None:
    sent = b'{"event": {"name": "message_logged"}, "payload": {"n": 1.50, "a": "x", "a": "y"}}'
    event = json.loads(sent)
    assert raw_copy(event, sent) == sent.decode()
    assert raw_copy(event, sent, keep_received=False) == \
        '{"event":{"name":"message_logged"},"payload":{"n":1.5,"a":"y"}}'
    event["payload"]["n"] = 2
    assert json.loads(raw_copy(event, sent))["payload"] == {"n": 2, "a": "y"}


def test_a_body_over_several_lines_is_stored_on_one_line(log_app: Any) -> None:
    body = message_body()
    assert send(log_app.test_client(), json.dumps(body, indent=2).encode()).status_code == 200
    [row] = rows(log_app)
    assert "\n" not in row.raw and json.loads(row.raw) == body


def test_odd_values_in_known_fields_do_not_fail_the_event(log_app: Any) -> None:
    body = message_body(session="s")
    log = body["payload"]
    log.update(request_timestamp="yesterday", response_timestamp=12, assistant_id=["x"],
               skill_id=None, customer_id=42, log_id="k" * 400)
    log["response"]["output"]["intents"] = [{"intent": "x", "confidence": "high"}, "junk"]
    log["response"]["output"]["generic"] = "not a list"
    log["response"]["context"] = "not an object"
    assert send(log_app.test_client(), body).status_code == 200
    [row] = rows(log_app)
    assert row.request_timestamp is None and row.response_timestamp is None
    assert row.assistant_id is None and row.customer_id == "42"
    assert row.idempotency_key.startswith("sha256:")      # an over-long id is hashed
    assert (row.intent, row.intent_confidence) == ("x", None)
    assert row.reply_text is None
    assert json.loads(row.raw) == body


def test_redaction_masks_columns_and_raw_copy_before_writing(make_app: Any,
                                                             store_url: str) -> None:
    app = make_app(DATABASE_URL=store_url, LOG_REDACT="true")
    body = message_body(text="I'm jane@example.com, card 4111 1111 1111 1111, call +1 415 555 0100",
                        reply="We'll call +1 415 555 0100", customer_id="+14155550100")
    answer = send(app.test_client(), body)
    assert answer.status_code == 200
    [row] = rows(app)
    assert row.customer_text == "I'm [email], card [card], call [phone]"
    assert row.reply_text == "We'll call [phone]"
    assert row.customer_id == "[phone]"
    assert row.idempotency_key == body["payload"]["log_id"]
    raw = json.loads(row.raw)
    assert raw["payload"]["request"]["input"]["text"] == row.customer_text
    assert raw["payload"]["log_id"] == body["payload"]["log_id"]
    assert "jane@example.com" not in row.raw and "4111" not in row.raw and "555 0100" not in row.raw


def test_without_redaction_the_text_is_kept(log_app: Any) -> None:
    body = message_body(text="I'm jane@example.com")
    send(log_app.test_client(), body)
    assert rows(log_app)[0].customer_text == "I'm jane@example.com"


def test_concurrent_senders_from_threads_all_land_once(log_app: Any) -> None:
    statuses: list[int] = []
    lock = threading.Lock()
    shared = [str(uuid.uuid4()) for _ in range(5)]     # sent by every thread

    def sender() -> None:
        client = log_app.test_client()
        for index in range(20):
            log_id = shared[index % 5] if index % 4 == 0 else str(uuid.uuid4())
            status = send(client, message_body(log_id)).status_code
            with lock:
                statuses.append(status)

    threads = [threading.Thread(target=sender) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 160
    keys = [row.idempotency_key for row in rows(log_app)]
    assert len(keys) == len(set(keys)) == 8 * 15 + len({shared[i % 5] for i in range(0, 20, 4)})


def test_a_dead_database_answers_503_json_and_readyz_says_so(make_app: Any) -> None:
    app = make_app(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/gone")
    client = app.test_client()
    answer = send(client, message_body())
    assert answer.status_code == 503 and answer.is_json
    assert answer.get_json() == {
        "error": "store_unavailable",
        "detail": "the log store did not accept the event; it was not kept"}
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["status"] == "unavailable"


@pytest.mark.timeout(60)
def test_a_database_that_accepts_connections_but_never_answers_gets_503(make_app: Any) -> None:
    """A silent server (a host that is up while the database hangs): connect_timeout bounds it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        app = make_app(DATABASE_URL=f"postgresql://postgres@127.0.0.1:"
                                    f"{listener.getsockname()[1]}/silent")
        answer = send(app.test_client(), message_body())
        assert answer.status_code == 503
        assert answer.get_json()["error"] == "store_unavailable"
    finally:
        listener.close()


def test_a_sqlite_path_that_cannot_be_opened_answers_503(make_app: Any, tmp_path: Any) -> None:
    app = make_app(DATABASE_URL=f"sqlite:///{tmp_path}")     # a directory, not a file
    answer = send(app.test_client(), message_body())
    assert answer.status_code == 503
    assert answer.get_json()["error"] == "store_unavailable"
    assert app.test_client().get("/readyz").status_code == 503


def test_the_request_log_line_says_new_or_duplicate_but_never_the_text(
        log_app: Any, caplog: pytest.LogCaptureFixture) -> None:
    client = log_app.test_client()
    body = message_body(text="my secret sentence")
    with caplog.at_level("INFO", logger="handlers.request"):
        send(client, body)
        send(client, body)
    lines = [getattr(record, "fields", {}) for record in caplog.records
             if record.name == "handlers.request"]
    assert [line.get("stored") for line in lines] == ["new", "duplicate"]
    assert "my secret sentence" not in caplog.text


def test_log_retention_days_purges_old_events_when_events_arrive(make_app: Any,
                                                                   store_url: str) -> None:
    from datetime import timedelta

    from handlers.store import LogEvent, utcnow

    app = make_app(DATABASE_URL=store_url, LOG_RETENTION_DAYS="30")
    store = app.extensions["webhooks"].store
    old = LogEvent(event="message_logged", idempotency_key="old", raw="{}",
                   received_at=utcnow() - timedelta(days=31))
    recent = LogEvent(event="message_logged", idempotency_key="recent", raw="{}",
                      received_at=utcnow() - timedelta(days=29))
    store.add_many([old, recent])
    assert send(app.test_client(), message_body()).status_code == 200
    for thread in threading.enumerate():
        if thread.name == "log-retention":
            thread.join(timeout=30)
    keys = {row.idempotency_key for row in rows(app)}
    assert "old" not in keys and "recent" in keys and len(keys) == 2
