"""Common chat words never open a session in another language (issue 21): "ok", "yes", "thanks"
keep the session's language, or the assistant's when there is none, through the real pre-message
endpoint with either detector; a word only another language uses ("hola") still opens its
session."""

from __future__ import annotations

import json
from typing import Any

import pytest

from handlers.language import CHAT_WORDS, Detection, choose_language, is_chat
from handlers.settings import DEFAULT_LANGUAGES
from tests.test_language_short import event

CHAT = ["ok", "OK", "Ok!", "okay", "yes", "no", "thanks", "hi", "hello", "help", "sure", "bye",
        "ok thanks", "Thank you!", "yes please", "ok 👍"]


@pytest.fixture(scope="module")
def apps(tmp_path_factory):
    """The default settings (16 LANGUAGES) with each detector, and a few variants."""
    from handlers import create_app

    def app(**settings: str) -> Any:
        folder = tmp_path_factory.mktemp("chat")
        return create_app({"DATABASE_URL": f"sqlite:///{folder}/events.sqlite3", **settings}
                          ).test_client()

    return {"lingua": app(), "langdetect": app(LANGUAGE_DETECTOR="langdetect"),
            "en,es": app(SUPPORTED_LANGUAGES="en,es"),
            "assistant es": app(ASSISTANT_LANGUAGE="es"),
            "assistant de": app(ASSISTANT_LANGUAGE="de", LANGUAGE_DETECTOR="langdetect")}


def turn(client: Any, text: str, session: str | None = None) -> dict[str, Any]:
    variables = {"customer_language": session} if session else {}
    answer = client.post("/webhooks/premessage", data=json.dumps(event(text, variables)))
    assert answer.status_code == 200
    return answer.get_json()


def language_of(body: dict[str, Any]) -> str:
    return body["payload"]["context"]["skills"]["actions skill"]["skill_variables"][
        "customer_language"]


@pytest.mark.parametrize("detector", ["lingua", "langdetect"])
@pytest.mark.parametrize("text", CHAT)
def test_a_first_chat_word_opens_no_session_in_another_language(apps, detector, text):
    # lingua read "ok" as Polish, langdetect "yes" as Turkish and "sure" as French.
    assert language_of(turn(apps[detector], text)) == "en"


@pytest.mark.parametrize("detector", ["lingua", "langdetect"])
@pytest.mark.parametrize("text, expected", [("hola", "es"), ("Gracias", "es"),
                                            ("merci", "fr"), ("Danke", "de")])
def test_a_word_only_another_language_uses_still_opens_its_session(apps, detector, text,
                                                                   expected):
    assert language_of(turn(apps[detector], text)) == expected


@pytest.mark.parametrize("detector", ["lingua", "langdetect"])
@pytest.mark.parametrize("session", ["es", "pl", "ja", "ru"])
@pytest.mark.parametrize("text", ["ok", "yes", "thanks", "hello", "OK!"])
def test_a_chat_word_keeps_the_session_language(apps, detector, session, text):
    assert language_of(turn(apps[detector], text, session=session)) == session


@pytest.mark.parametrize("text", ["ok", "OK", "yes", "thanks"])
def test_a_chat_word_is_not_answered_as_an_unsupported_language(apps, text):
    body = turn(apps["en,es"], text)
    assert "output" not in body, body  # not "Sorry, I can only help in: English, español"
    assert language_of(body) == "en"


@pytest.mark.parametrize("assistant, text", [("assistant es", "ok"), ("assistant es", "vale"),
                                             ("assistant es", "sí"), ("assistant de", "ok"),
                                             ("assistant de", "ja"), ("assistant de", "Danke!")])
def test_chat_words_follow_the_assistant_language(apps, assistant, text):
    assert language_of(turn(apps[assistant], text)) == assistant.split()[1]


def test_every_default_language_has_its_chat_words():
    assert set(DEFAULT_LANGUAGES) <= set(CHAT_WORDS)
    for language in DEFAULT_LANGUAGES:
        assert {"ok", "okay"} <= CHAT_WORDS[language]
        assert len(CHAT_WORDS[language]) >= 10, language


@pytest.mark.parametrize("text, assistant, chat", [
    ("OK", "en", True), ("  ok!! ", "en", True), ("Yes please", "en", True),
    ("thank you", "en", True), ("ok thanks 👍", "en", True), ("ok", "fi", True),
    ("ok, my order", "en", False), ("help me with my order", "en", False), ("hola", "en", False),
    ("vale", "es", True), ("vale", "en", False), ("はい", "ja", True), ("ok ok ok", "en", False),
    ("", "en", False), ("👍", "en", False),
])
def test_is_chat(text, assistant, chat):
    assert is_chat(text, assistant) is chat


def test_the_policy_ignores_a_confident_detection_of_chat_words():
    polish = Detection("pl", 0.95, 2, "latin", "lingua", words=1, assistant_share=0.05,
                       shares=(("pl", 1.0), ("en", 0.05)))
    policy = {"min_confidence": 0.5, "default": "en"}
    assert choose_language(polish, chosen=None, session=None, hint=None, **policy) == (
        "pl", "detected")  # without the text: the detection alone rules English out
    assert choose_language(polish, chosen=None, session=None, hint=None, text="ok",
                           **policy) == ("en", "default")
    assert choose_language(polish, chosen=None, session="es", hint=None, text="ok",
                           **policy) == ("es", "session")
    assert choose_language(polish, chosen=None, session=None, hint="fr", text="OK",
                           **policy) == ("fr", "locale")
    assert choose_language(polish, chosen="pl", session="es", hint=None, text="ok",
                           **policy) == ("pl", "chosen")
