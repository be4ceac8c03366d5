"""The short-text policy through the pre-message endpoint, with the default settings (issue 14):
for one or two words the assistant's language is the prior; a short text never moves a session
unless its script differs; a sentence still does."""

from __future__ import annotations

import json
from typing import Any

import pytest

from handlers.language import SHORT_TEXT_WORDS, Detection, choose_language
from tests.conftest import fixture

TWELVE = "en,es,fr,de,it,pt,nl,ru,ja,zh,ar,tr"


def event(text: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = fixture("pre_message_request.message_received.json")
    payload = body["payload"]
    payload["input"]["text"] = text
    payload["context"] = {"global": {"system": {}},
                          "skills": {"actions skill": {"skill_variables": dict(variables or {})}}}
    return body


def language_after(client: Any, text: str, session: str | None = None) -> str:
    variables = {"customer_language": session} if session else {}
    answer = client.post("/webhooks/premessage", data=json.dumps(event(text, variables)))
    assert answer.status_code == 200
    return answer.get_json()["payload"]["context"]["skills"]["actions skill"][
        "skill_variables"]["customer_language"]


@pytest.fixture(scope="module")
def clients(tmp_path_factory):
    """Two apps with the default detector: the kit's default LANGUAGES and the issue's twelve."""
    from handlers import create_app

    made = {}
    for name, languages in (("default", None), ("twelve", TWELVE)):
        settings = {"DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp(name)}/events.sqlite3"}
        if languages:
            settings["LANGUAGES"] = languages
        made[name] = create_app(settings).test_client()
    return made


@pytest.mark.parametrize("languages", ["default", "twelve"])
@pytest.mark.parametrize("text, expected", [
    ("agent", "en"), ("payment", "en"), ("menu", "en"), ("cancel", "en"),
    ("Hola", "es"), ("Bonjour", "fr"), ("Danke", "de"), ("gracias", "es"), ("Obrigado", "pt"),
    ("Merhaba", "tr"), ("спасибо", "ru"), ("ありがとう", "ja"),
])
def test_a_first_turn_of_one_word(clients, languages, text, expected):
    assert language_after(clients[languages], text) == expected


@pytest.mark.parametrize("text", ["agent", "Danke schön", "thank you", "Bonjour", "merci",
                                  "Paypal", "order 48213", "Obrigado", "ok"])
def test_a_short_text_never_moves_a_spanish_session(clients, text):
    assert language_after(clients["default"], text, session="es") == "es"


@pytest.mark.parametrize("text, expected", [
    ("спасибо", "ru"),                                       # another script moves it at once
    ("注文はどこですか", "ja"),
    ("Bonjour, je voudrais suivre ma commande", "fr"),       # a sentence still moves it
    ("Guten Tag, wo ist meine Bestellung?", "de"),
    ("Hi, I ordered a jacket last week and it has not arrived", "en"),
])
def test_another_script_or_a_sentence_moves_a_spanish_session(clients, text, expected):
    assert language_after(clients["default"], text, session="es") == expected


def test_the_locale_hint_or_an_explicit_choice_decides_a_short_first_turn():
    short = Detection("fr", 0.2, 5, "latin", "lingua", words=1, assistant_share=0.6)
    policy = {"min_confidence": 0.5, "default": "en"}
    assert choose_language(short, chosen=None, session=None, hint="de", **policy) == (
        "de", "locale")
    assert choose_language(short, chosen="it", session=None, hint=None, **policy) == (
        "it", "chosen")
    assert choose_language(short, chosen=None, session=None, hint=None, **policy) == (
        "en", "default")
    ruled_out = Detection("fr", 0.2, 5, "latin", "lingua", words=1, assistant_share=0.1)
    assert choose_language(ruled_out, chosen=None, session=None, hint=None, **policy) == (
        "fr", "detected")
    assert SHORT_TEXT_WORDS == 2


@pytest.mark.parametrize("text, expected", [
    ("禁用 SO PASSCRED 时出错：", "zh"),      # Han weighs more than Latin command names
    ("ボリュームは eject または eject with operation を実装していません", "ja"),
])
def test_cjk_sentences_with_latin_names_keep_their_script(clients, text, expected):
    assert language_after(clients["twelve"], text) == expected


def test_a_sentence_that_rules_the_session_language_out_moves_it():
    # lingua spreads its confidence over the Latin candidates: French at 0.34 is no "confident"
    # detection, but Spanish at a tenth of it is ruled out.
    french = Detection("fr", 0.34, 34, "latin", "lingua", words=7, assistant_share=0.17,
                       shares=(("fr", 1.0), ("es", 0.05), ("en", 0.17)))
    policy = {"min_confidence": 0.5, "default": "en"}
    assert choose_language(french, chosen=None, session="es", hint=None, **policy) == (
        "fr", "detected")
    unsure = Detection("fr", 0.34, 34, "latin", "lingua", words=7, assistant_share=0.17,
                       shares=(("fr", 1.0), ("es", 0.8)))
    assert choose_language(unsure, chosen=None, session="es", hint=None, **policy) == (
        "es", "session")
