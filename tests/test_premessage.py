"""The pre-message webhook end to end: detection, the policy, translation through a real
LibreTranslate-compatible server (deep-translator's own HTTP path), failures, context and memory."""

from __future__ import annotations

import copy
import json
import logging
import socket
import time
from typing import Any

import pytest

from handlers.envelope import SKIP_PROCESSING_HEADER
from handlers.store.quality_facts import turn_facts
from tests.conftest import fixture
from testsupport.libre_server import mark

ACTIONS = "actions skill"
DIALOG = "main skill"


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def event(text: Any = None, *, session: str | None = "s-1", skill: str | None = ACTIONS,
          variables: dict[str, Any] | None = None, locale: str | None = None,
          message_type: str | None = None, context: bool = True) -> dict[str, Any]:
    """A message_received body: IBM's example with our text, session, skill and variables."""
    body = fixture("pre_message_request.message_received.json")
    payload = body["payload"]
    if text is not None:
        payload.setdefault("input", {})["text"] = text
    if message_type is not None:
        payload["input"]["message_type"] = message_type
    if not context:
        payload.pop("context", None)
        return body
    ctx = payload.setdefault("context", {})
    ctx.setdefault("global", {}).setdefault("system", {})
    if session is None:
        ctx["global"].pop("session_id", None)
    else:
        ctx["global"]["session_id"] = session
    if locale:
        ctx["global"]["system"]["locale"] = locale
    if skill is not None:
        key = "skill_variables" if skill == ACTIONS else "user_defined"
        ctx["skills"] = {skill: {key: dict(variables or {}), "system": {"state": "opaque=="}}}
    else:
        ctx.pop("skills", None)
    return body


def variables_of(payload: dict[str, Any], skill: str = ACTIONS) -> dict[str, Any]:
    key = "skill_variables" if skill == ACTIONS else "user_defined"
    return payload["context"]["skills"][skill][key]


@pytest.fixture
def translating(make_app, libre_server):
    """An app translating through the test server; extra settings as keyword arguments."""
    def build(**settings: Any) -> Any:
        settings.setdefault("TRANSLATOR", "libre")
        settings.setdefault("TRANSLATOR_URL", libre_server.url)
        return make_app(**settings).test_client()

    return build


def post(client: Any, body: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    answer = client.post("/webhooks/premessage", data=json.dumps(body))
    return answer, answer.get_json()


@pytest.mark.parametrize("text, language, translation", [
    ("Hola, necesito ayuda con mi pedido", "es", "Hello, I need help with my order"),
    ("Bonjour, je voudrais suivre ma commande", "fr", "Hello, I would like to track my order"),
    ("Guten Tag, wo ist meine Bestellung?", "de", "Good afternoon, where is my order?"),
    ("注文の配送状況を教えてください", "ja", "Please tell me the delivery status of my order"),
    ("مرحبا، أريد إلغاء طلبي", "ar", "Hello, I want to cancel my order"),
])
def test_customer_messages_are_translated_into_the_assistant_language(
        translating, libre_server, text, language, translation):
    client = translating()
    answer, body = post(client, event(text))
    assert answer.status_code == 200
    payload = body["payload"]
    assert payload["input"]["text"] == translation
    variables = variables_of(payload)
    assert variables["customer_language"] == language
    assert variables["original_input"] == text
    assert "translation_failed" not in variables
    assert [(r["source"], r["target"]) for r in libre_server.requests] == [(language, "en")]
    # Everything else the assistant sent comes back untouched.
    assert payload["context"]["skills"][ACTIONS]["system"] == {"state": "opaque=="}


def test_english_goes_through_without_a_translator_call(translating, libre_server):
    client = translating()
    original = event("Hi, I ordered a jacket last week and it has not arrived")
    answer, body = post(client, copy.deepcopy(original))
    payload = body["payload"]
    assert payload["input"] == original["payload"]["input"]
    assert variables_of(payload)["customer_language"] == "en"
    assert "original_input" not in variables_of(payload)
    assert libre_server.calls == 0


def test_detection_runs_without_a_translator(make_app):
    client = make_app().test_client()
    answer, body = post(client, event("Hola, necesito ayuda con mi pedido"))
    payload = body["payload"]
    assert payload["input"]["text"] == "Hola, necesito ayuda con mi pedido"
    assert variables_of(payload)["customer_language"] == "es"
    assert "translation_failed" not in variables_of(payload)  # none configured: nothing failed


def test_short_follow_ups_keep_the_session_language(translating, libre_server):
    client = translating()
    _, body = post(client, event("Hola, necesito ayuda con mi pedido"))
    state = variables_of(body["payload"])
    for text in ("ok", "no", "Paypal", "merci", "super"):
        _, body = post(client, event(text, variables=state))
        state = variables_of(body["payload"])
        assert state["customer_language"] == "es", text
    assert [r["source"] for r in libre_server.requests] == ["es"] * 6
    # A real sentence in another language moves the session.
    _, body = post(client, event("Bonjour, je voudrais suivre ma commande", variables=state))
    assert variables_of(body["payload"])["customer_language"] == "fr"


def test_the_session_memory_keeps_the_language_when_the_context_has_no_variables(
        translating, libre_server):
    client = translating()
    post(client, event("Hola, necesito ayuda con mi pedido", session="s-mem"))
    _, body = post(client, event("ok", session="s-mem", skill=None))
    payload = body["payload"]
    assert variables_of(payload)["customer_language"] == "es"  # created in the Actions layout
    assert libre_server.requests[-1]["source"] == "es"


@pytest.mark.redis
def test_the_session_language_is_shared_through_redis(make_app, libre_server, redis_url,
                                                      redis_prefix):
    settings = {"TRANSLATOR": "libre", "TRANSLATOR_URL": libre_server.url,
                "REDIS_URL": redis_url, "REDIS_PREFIX": redis_prefix}
    one, other = make_app(**settings).test_client(), make_app(**settings).test_client()
    post(one, event("Hola, necesito ayuda con mi pedido", session="s-redis"))
    _, body = post(other, event("ok", session="s-redis", skill=None))
    assert variables_of(body["payload"])["customer_language"] == "es"
    # The same message again, on the other instance: the translation comes from Redis.
    _, body = post(other, event("Hola, necesito ayuda con mi pedido", session="s-redis"))
    assert body["payload"]["input"]["text"] == "Hello, I need help with my order"
    assert libre_server.texts().count("Hola, necesito ayuda con mi pedido") == 1


def test_an_explicit_choice_wins(translating, libre_server):
    client = translating()
    _, body = post(client, event("Hi, I need help with my order",
                                 variables={"chosen_language": "fr"}))
    variables = variables_of(body["payload"])
    assert variables["customer_language"] == "fr"
    assert libre_server.requests[0]["source"] == "fr"
    # Also over a detected session language and for a custom variable name.
    client = translating(CHOSEN_LANGUAGE_VARIABLE="lang_choice")
    _, body = post(client, event("Hola, necesito ayuda con mi pedido",
                                 variables={"lang_choice": "de-DE", "customer_language": "es"}))
    assert variables_of(body["payload"])["customer_language"] == "de"


def test_a_clicked_option_passes_through_and_keeps_the_language(make_app, libre_server):
    app = make_app(TRANSLATOR="libre", TRANSLATOR_URL=libre_server.url)
    client = app.test_client()
    post(client, event("Hola, necesito ayuda con mi pedido", session="s-click"))
    app.extensions["webhooks"].sessions.update("s-click", {"offered": ["Track my order", "Agent"]})
    libre_server.reset_counts()
    _, body = post(client, event("Track my order", session="s-click", skill=None))
    payload = body["payload"]
    assert payload["input"]["text"] == "Track my order"
    assert variables_of(payload)["customer_language"] == "es"
    assert libre_server.calls == 0
    # The values may also come in the context (offered_options_variable).
    _, body = post(client, event("Sí, por favor", session="s-other",
                                 variables={"offered_options": ["Sí, por favor"],
                                            "customer_language": "es"}))
    assert body["payload"]["input"]["text"] == "Sí, por favor"
    assert libre_server.calls == 0


@pytest.mark.parametrize("text", ["", "   ", "4111 1111 1111 1111", "😀👍🎉", "...?!",
                                  "https://example.com/track?id=42", "jane.doe@example.com"])
def test_messages_without_words_are_left_alone(translating, libre_server, text):
    client = translating()
    body = event(text, variables={"customer_language": "es"})
    answer, reply = post(client, copy.deepcopy(body))
    assert answer.status_code == 200
    assert reply["payload"]["input"] == body["payload"]["input"]
    assert variables_of(reply["payload"])["customer_language"] == "es"
    assert libre_server.calls == 0


def test_no_input_text_and_other_message_types_are_left_alone(translating, libre_server):
    client = translating()
    body = event(variables={"customer_language": "es"})
    body["payload"]["input"].pop("text", None)
    _, reply = post(client, copy.deepcopy(body))
    assert reply["payload"]["input"] == body["payload"]["input"]
    body = event("Hola, necesito ayuda", message_type="event")
    _, reply = post(client, copy.deepcopy(body))
    assert reply["payload"]["input"]["text"] == "Hola, necesito ayuda"
    assert libre_server.calls == 0


def test_no_context_creates_the_actions_layout(translating):
    client = translating()
    _, body = post(client, event("Hola, necesito ayuda con mi pedido", context=False))
    payload = body["payload"]
    assert payload["context"] == {"skills": {ACTIONS: {"skill_variables": {
        "customer_language": "es", "original_input": "Hola, necesito ayuda con mi pedido"}}}}
    assert payload["input"]["text"] == "Hello, I need help with my order"


def test_skill_type_dialog_creates_the_dialog_layout(translating):
    client = translating(SKILL_TYPE="dialog")
    _, body = post(client, event("Hola, necesito ayuda con mi pedido", context=False))
    assert body["payload"]["context"]["skills"][DIALOG]["user_defined"][
        "customer_language"] == "es"


def test_a_dialog_payload_gets_its_variables_in_user_defined(translating, libre_server):
    client = translating(LANGUAGE_VARIABLE="lang", ORIGINAL_INPUT_VARIABLE="said")
    _, body = post(client, event("Hola, necesito ayuda con mi pedido", skill=DIALOG,
                                 variables={"keep": 1}))
    variables = variables_of(body["payload"], DIALOG)
    assert variables == {"keep": 1, "lang": "es", "said": "Hola, necesito ayuda con mi pedido"}
    assert ACTIONS not in body["payload"]["context"]["skills"]
    # The next turn reads the dialog variable back.
    _, body = post(client, event("ok", skill=DIALOG, variables=variables))
    assert variables_of(body["payload"], DIALOG)["lang"] == "es"


def test_the_locale_starts_a_new_session(translating, libre_server):
    client = translating()
    _, body = post(client, event("ok", session="s-locale", locale="fr-CA"))
    assert variables_of(body["payload"])["customer_language"] == "fr"


def test_an_unsupported_language_is_answered_directly(translating, libre_server):
    client = translating(SUPPORTED_LANGUAGES="en,es")
    answer = client.post("/webhooks/premessage",
                         json=event("Guten Tag, ich warte seit zwei Wochen auf meine Bestellung"))
    assert answer.status_code == 200
    assert answer.headers[SKIP_PROCESSING_HEADER]
    body = answer.get_json()
    assert "payload" not in body
    text = body["output"]["generic"][0]["text"]
    assert "English" in text and "español" in text
    assert libre_server.calls == 0
    client = translating(SUPPORTED_LANGUAGES="en,es",
                         UNSUPPORTED_LANGUAGE_REPLY="Only English or Spanish, sorry.")
    answer = client.post("/webhooks/premessage",
                         json=event("Guten Tag, ich warte seit zwei Wochen auf meine Bestellung"))
    assert answer.get_json()["output"]["generic"] == [
        {"response_type": "text", "text": "Only English or Spanish, sorry."}]
    # Marked, so that the logged turn counts as an unsupported-language reply.
    assert answer.get_json()["output"]["user_defined"] == {"unsupported_language": True,
                                                           "customer_language": "de"}
    payload = {"response": answer.get_json()}
    assert turn_facts(payload).unsupported and turn_facts(payload).language == "de"


@pytest.mark.parametrize("failure", ["500", "refused", "hang"])
def test_a_failing_translator_fails_open(make_app, libre_server, caplog, failure):
    url = libre_server.url
    if failure == "500":
        libre_server.fail_with(500)
    elif failure == "refused":
        url = f"http://127.0.0.1:{unused_port()}/"
    else:
        libre_server.hang(30)
    client = make_app(TRANSLATOR="libre", TRANSLATOR_URL=url,
                      TRANSLATION_TIMEOUT="0.3").test_client()
    text = "Hola, necesito ayuda con mi pedido urgente"
    caplog.clear()
    with caplog.at_level(logging.INFO):
        answer, body = post(client, event(text))
    assert answer.status_code == 200
    payload = body["payload"]
    assert payload["input"]["text"] == text  # the original goes on
    variables = variables_of(payload)
    assert variables["translation_failed"] is True
    assert variables["customer_language"] == "es"
    assert "original_input" not in variables
    why = {"500": "http_500=1", "refused": "connection_failed=1", "hang": "timeout=1"}[failure]
    lines = [r.getMessage() for r in caplog.records if r.name == "handlers.translation"]
    assert len(lines) == 1 and why in lines[0]
    assert "necesito" not in caplog.text  # never the text in a log line
    libre_server.answer_normally()


def test_translation_failed_is_cleared_on_the_next_good_turn(translating, libre_server):
    client = translating()
    libre_server.fail_with(500)
    _, body = post(client, event("Hola, necesito ayuda con mi pedido"))
    state = variables_of(body["payload"])
    assert state["translation_failed"] is True
    libre_server.answer_normally()
    _, body = post(client, event("Quiero cambiar la dirección de envío de mi pedido",
                                 variables=state))
    state = variables_of(body["payload"])
    assert "translation_failed" not in state
    assert state["original_input"] == "Quiero cambiar la dirección de envío de mi pedido"
    _, body = post(client, event("12345", variables=state))
    assert "original_input" not in variables_of(body["payload"])  # not this turn's words


def test_the_breaker_opens_and_closes_through_the_endpoint(translating, libre_server):
    client = translating(BREAKER_FAILURES="2", BREAKER_COOLDOWN="0.2")
    libre_server.fail_with(500)
    for n in range(3):
        _, body = post(client, event(f"Hola, necesito ayuda con mi pedido número {n}"))
        assert variables_of(body["payload"])["translation_failed"] is True
    assert libre_server.calls == 2  # the third found the circuit open
    libre_server.answer_normally()
    time.sleep(0.25)
    _, body = post(client, event("Hola, necesito ayuda con mi pedido"))
    assert body["payload"]["input"]["text"] == "Hello, I need help with my order"
    assert libre_server.calls == 3


def test_the_request_log_line_has_codes_not_text(translating, caplog):
    client = translating()
    with caplog.at_level(logging.INFO, logger="handlers.request"):
        post(client, event("Hola, necesito ayuda con mi pedido"))
    record = [r for r in caplog.records if r.name == "handlers.request"][-1]
    fields = record.fields  # type: ignore[attr-defined]
    assert fields["language"] == "es" and fields["detected"] == "es"
    assert fields["translated"] is True and fields["language_from"] == "detected"
    assert "pedido" not in json.dumps(fields)


def test_translated_text_from_the_marker_for_unknown_sentences(translating):
    client = translating()
    text = "Necesito una factura para la empresa, por favor"
    _, body = post(client, event(text))
    assert body["payload"]["input"]["text"] == mark(text, "es", "en")


def test_lingua_end_to_end(translating, libre_server):
    client = translating(LANGUAGE_DETECTOR="lingua", LANGUAGES="en,es,fr,de")
    _, body = post(client, event("gracias"))  # a single word lingua gets right
    assert variables_of(body["payload"])["customer_language"] == "es"
    assert body["payload"]["input"]["text"] == "Thank you"
