"""A conversation through both message webhooks: what the pre-message step records, the
post-message step uses, and the other way round (the offered values that make a click a click).

The post-message payloads here carry the session id and nothing of the kit's, as when the client
keeps no context: the language and the offered values travel through the session memory, in
process and through Redis.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.conftest import fixture
from testsupport.libre_server import translate


def premessage(client: Any, text: str, session_id: str) -> dict[str, Any]:
    event = fixture("pre_message_request.message_received.json")
    event["payload"]["input"] = {"message_type": "text", "text": text}
    event["payload"]["context"] = {"global": {"session_id": session_id}}
    answer = client.post("/webhooks/premessage", data=json.dumps(event))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()["payload"]


def postmessage(client: Any, example: str, session_id: str) -> dict[str, Any]:
    payload = fixture(example)
    payload["context"] = {"global": {"session_id": session_id}}
    answer = client.post("/webhooks/postmessage", data=json.dumps(
        {"event": {"name": "message_processed"}, "options": {}, "payload": payload}))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()["payload"]


def converse(pre_client: Any, post_client: Any) -> None:
    session_id = f"conv-{uuid.uuid4().hex}"
    first = premessage(pre_client, "Hola, necesito ayuda con mi pedido", session_id)
    assert first["input"]["text"] == "Hello, I need help with my order"

    menu = postmessage(post_client, "runtime_output.option.api-dialog-responses_L464.json",
                       session_id)["output"]["generic"][0]
    assert menu["title"] == translate("What do you want to do?", "en", "es")
    assert [o["label"] for o in menu["options"]] == [
        translate(label, "en", "es") for label in ("Send greeting", "Display the local time", "Exit")]
    assert [o["value"]["input"]["text"] for o in menu["options"]] == ["hello", "time", "goodbye"]

    # The customer clicks "Send greeting": the value comes back in English and is let through;
    # the conversation stays in Spanish.
    click = premessage(pre_client, "hello", session_id)
    assert click["input"]["text"] == "hello"
    answer = postmessage(post_client, "runtime_output.text.api-dialog-responses_L64.json",
                         session_id)
    assert answer["output"]["generic"][0]["text"] == translate(
        "OK, you want to fly to Boston next Monday.", "en", "es")


def test_a_conversation_in_one_process(make_app, libre_server):
    client = make_app(TRANSLATOR="libre", TRANSLATOR_URL=libre_server.url).test_client()
    converse(client, client)


@pytest.mark.redis
def test_a_conversation_across_workers_through_redis(make_app, libre_server, redis_url,
                                                     redis_prefix):
    settings = dict(TRANSLATOR="libre", TRANSLATOR_URL=libre_server.url, REDIS_URL=redis_url,
                    REDIS_PREFIX=redis_prefix)
    # The pre-message and post-message calls land on different workers.
    converse(make_app(**settings).test_client(), make_app(**settings).test_client())
