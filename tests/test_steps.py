"""The step contract: `step(turn)`, state shared through the Turn's typed fields only.

`turn.notes` is write-only (the request's log line): a step that wipes it after every other step
changes no answer. Steps read what earlier steps found from typed fields, and the session record
is read once per turn whichever steps ask for it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from flask import Response

from handlers.logs import LOG_STEPS
from handlers.pipeline import Turn, run_steps
from handlers.postmessage import POSTMESSAGE_STEPS, read_customer_language
from handlers.premessage import PREMESSAGE_STEPS, remember_language, reply_if_unsupported
from tests.conftest import fixture

SPANISH = "Hola, necesito ayuda con mi tarjeta de crédito, por favor"


def pre_body(text: str, session: str = "s-steps") -> dict[str, Any]:
    return {"event": {"name": "message_received"},
            "payload": {"input": {"message_type": "text", "text": text},
                        "context": {"global": {"session_id": session, "system": {}},
                                    "skills": {"actions skill": {"skill_variables": {}}}}}}


def post_body(session: str = "s-steps") -> dict[str, Any]:
    generic = [{"response_type": "text", "text": "How can I help you?"},
               {"response_type": "option", "title": "Pick one",
                "options": [{"label": "Cards", "value": {"input": {"text": "cards"}}}]}]
    return {"event": {"name": "message_processed"}, "options": {},
            "payload": {"output": {"generic": generic},
                        "context": {"global": {"session_id": session, "system": {}},
                                    "skills": {"actions skill": {"skill_variables": {}}}}}}


def conversation() -> list[tuple[str, dict[str, Any]]]:
    """Pre-message turns that exercise every step's condition, a reply, a click, log events."""
    log = fixture("log_webhook_request.message_logged.SYNTHESIZED.json")
    call = fixture("log_webhook_request.cdr_logged.full.json")
    return [("/webhooks/premessage", pre_body(SPANISH)),
             ("/webhooks/premessage", pre_body("12345")),            # skipped: no letters
             ("/webhooks/postmessage", post_body()),
             ("/webhooks/premessage", pre_body("cards")),            # a click on the reply
             ("/webhooks/premessage", pre_body("Bonjour, je voudrais suivre ma commande",
                                               session="s-other")),
            ("/webhooks/logs", log), ("/webhooks/logs", log), ("/webhooks/logs", call)]


def forget_notes(turn: Turn) -> None:
    turn.notes.clear()


def with_forgetting(steps: list[Any]) -> list[Any]:
    return [forget for step in steps for forget in (step, forget_notes)]


def test_premessage_steps_in_order():
    assert [step.__name__ for step in PREMESSAGE_STEPS] == [
        "mark_untranslatable", "detect_language", "reply_if_unsupported", "translate_input",
        "translate_channel_texts", "remember_language"]


def test_notes_are_only_written(make_app, libre_server):
    """Every answer is the same when the notes are wiped after every step."""
    settings = {"TRANSLATOR": "libre", "TRANSLATOR_URL": libre_server.url,
                "SUPPORTED_LANGUAGES": "en,es"}
    plain = make_app(**settings).test_client()
    forgetting = make_app(steps={"premessage": with_forgetting(PREMESSAGE_STEPS),
                                 "postmessage": with_forgetting(POSTMESSAGE_STEPS),
                                 "logs": with_forgetting(LOG_STEPS)}, **settings).test_client()
    answers: dict[str, list[Any]] = {"plain": [], "forgetting": []}
    for name, client in (("plain", plain), ("forgetting", forgetting)):
        for path, body in conversation():
            answer = client.post(path, data=json.dumps(body))
            answers[name].append((path, answer.status_code, answer.get_json(),
                                  answer.headers.get("X-Watson-Assistant-Webhook-Return")))
    assert answers["forgetting"] == answers["plain"]
    # The conversation did reach the steps' branches: a translation, a skip, an answer at once.
    pre = [answer for answer in answers["plain"] if answer[0] == "/webhooks/premessage"]
    assert pre[0][2]["payload"]["input"]["text"] != SPANISH
    assert pre[1][2]["payload"]["input"]["text"] == "12345"
    assert pre[-1][3] == "true"  # French is not supported here
    logs = [answer[2] for answer in answers["plain"] if answer[0] == "/webhooks/logs"]
    assert logs == [{"accepted": True, "duplicate": False}, {"accepted": True, "duplicate": True},
                    {"accepted": True, "duplicate": False}]


def test_a_step_reads_what_earlier_steps_found(make_app, libre_server):
    seen: list[dict[str, Any]] = []

    def look(turn: Turn) -> None:
        seen.append({"language": turn.language, "from": turn.language_from,
                     "skipped": turn.skipped, "translated": turn.translated,
                     "failed": turn.translation_failed, "text": turn.payload["input"]["text"]})

    steps = [*PREMESSAGE_STEPS, look]
    client = make_app(steps={"premessage": steps}, TRANSLATOR="libre",
                      TRANSLATOR_URL=libre_server.url).test_client()
    client.post("/webhooks/premessage", data=json.dumps(pre_body(SPANISH)))
    client.post("/webhooks/premessage", data=json.dumps(pre_body("12345")))
    libre_server.fail_with(500)
    client.post("/webhooks/premessage", data=json.dumps(pre_body("¿Dónde está mi pedido ahora?")))
    assert [(s["language"], s["skipped"], s["translated"], s["failed"]) for s in seen] == [
        ("es", None, True, False), ("es", "no_letters", False, False), ("es", None, False, True)]
    assert seen[0]["from"] == "detected" and seen[0]["text"] != SPANISH
    assert seen[1]["from"] == "session"


class CountingSessions:
    """The app's real session memory, counting reads (a wrapper, not a stand-in)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.reads = 0

    def get(self, session_id: str | None) -> dict[str, Any]:
        self.reads += 1
        return self.real.get(session_id)

    def update(self, session_id: str | None, values: dict[str, Any]) -> None:
        self.real.update(session_id, values)


@pytest.mark.parametrize("path, body", [("/webhooks/premessage", pre_body("cards")),
                                        ("/webhooks/postmessage", post_body())])
def test_the_session_record_is_read_once_per_turn(make_app, libre_server, path, body):
    app = make_app(TRANSLATOR="libre", TRANSLATOR_URL=libre_server.url)
    services = app.extensions["webhooks"]
    services.sessions.update("s-steps", {"language": "es", "offered": ["cards"]})
    services.sessions = counting = CountingSessions(services.sessions)
    answer = app.test_client().post(path, data=json.dumps(body))
    assert answer.status_code == 200
    assert counting.reads == 1


# --- steps without an app: Turn.for_test ------------------------------------------------------

def test_a_step_runs_on_a_turn_without_an_app():
    turn = Turn.for_test(pre_body("Bonjour, je voudrais suivre ma commande")["payload"],
                         SUPPORTED_LANGUAGES="en,es", LANGUAGES="en,es,fr")
    answer = run_steps(PREMESSAGE_STEPS, turn)
    assert turn.language == "fr" and turn.notes["answered_by"] == "reply_if_unsupported"
    assert answer is not None and answer.skip_processing and answer.status == 200
    assert answer.body["output"]["generic"][0]["text"].startswith("Sorry, I can only help in")
    assert "payload" not in answer.body


def test_the_settings_of_a_test_turn_are_its_own_not_the_environment(monkeypatch):
    monkeypatch.setenv("SUPPORTED_LANGUAGES", "en")
    turn = Turn.for_test({"input": {"text": "hola"}}, ASSISTANT_LANGUAGE="es")
    assert turn.settings.assistant_language == "es"
    assert {"en", "fr"} <= set(turn.settings.supported_languages)   # the default, not "en" alone
    turn.language = "fr"
    assert reply_if_unsupported(turn) is None


def test_post_message_reads_the_language_the_pre_message_turn_left():
    """The post-message turn's first step finds the language in the session memory a test
    turn shares with the one before it, with no context variable to read."""
    pre = Turn.for_test(pre_body(SPANISH, session="s-for-test")["payload"])
    pre.language = "es"
    remember_language(pre)
    payload = post_body(session="s-for-test")["payload"]
    post = Turn.for_test(payload, "postmessage", services=pre.services)
    assert read_customer_language(post) is None
    assert (post.language, post.language_from) == ("es", "session")
    alone = Turn.for_test(post_body(session="s-for-test")["payload"], "postmessage")
    read_customer_language(alone)
    assert (alone.language, alone.language_from) == (None, "unknown")


def test_a_step_that_returns_a_flask_response_is_named_in_the_error():
    def old_style(turn: Turn) -> Any:
        return Response("{}", content_type="application/json")

    with pytest.raises(TypeError, match="step old_style returned a Response"):
        run_steps([old_style], Turn.for_test({"input": {"text": "hi"}}))
