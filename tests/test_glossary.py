"""What must never be translated never reaches the provider (issue 13 items 6 and 7).

Numbers, amounts, dates, times and reference numbers, and the TRANSLATION_GLOSSARY's terms, are
masked before a string goes to the LibreTranslate stand-in, in the post-message reply and the
pre-message input alike: the tests read what the stand-in received and what the assistant or the
channel got back. TRANSLATION_OFF_VARIABLE leaves one turn's input as typed. Every new pattern
reads 200 KB of hostile text within a bound, in a forked child (as tests/test_hostile_input.py).
"""

from __future__ import annotations

import json
import multiprocessing
import pathlib
from typing import Any, Callable

import pytest

from handlers import SettingsError, create_app
from handlers.glossary import MAX_GLOSSARY_TERMS, Glossary
from handlers.masking import (DEFAULT_RULES, MAX_TERM_CHARS, MAX_TEXT_CHARS, build_rules, mask,
                              unmask)
from testsupport.libre_server import mark
from tests.test_postmessage import post as post_reply
from tests.test_postmessage import with_session
from tests.test_premessage import event, variables_of

GLOSSARY = {
    "keep": ["SmartSaver Plus", "SmartSaver", "watsonx"],
    "terms": {"es": {"savings account": "cuenta de ahorro", "checking account": "cuenta corriente"},
              "fr": {"savings account": "compte d'épargne"}},
}
NUMBERS = ["1,250.40", "12/03/2026", "20:30", "88231"]
KEPT = ["SmartSaver Plus", "watsonx"]
LANGUAGES = ("en", "es", "fr", "de")


def write(tmp_path: pathlib.Path, content: Any, name: str = "glossary.json") -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content),
                    encoding="utf-8")
    return str(path)


@pytest.fixture
def app(make_app: Callable[..., Any], libre_server: Any, tmp_path: pathlib.Path) -> Any:
    return make_app(TRANSLATOR="libre", TRANSLATOR_URL=libre_server.url,
                    LANGUAGE_DETECTOR="langdetect", TRANSLATION_GLOSSARY=write(tmp_path, GLOSSARY))


def reached(libre_server: Any) -> str:
    """Everything the provider was asked to translate, as one text."""
    return "\n".join(libre_server.texts())


def assert_never_sent(libre_server: Any, *words: str) -> None:
    sent = reached(libre_server).casefold()
    assert sent, "nothing reached the provider: the test would prove nothing"
    for word in words:
        assert word.casefold() not in sent, word


# --- the post-message reply -------------------------------------------------------------------

def test_the_reply_keeps_numbers_and_kept_terms_and_fixes_terms(app: Any,
                                                                libre_server: Any) -> None:
    text = ("Your SmartSaver Plus savings account was charged 1,250.40 on 12/03/2026 at 20:30, "
            "reference 88231.")
    sent = with_session({"output": {"generic": [
        {"response_type": "text", "text": text},
        {"response_type": "option", "title": "Savings account",
         "options": [{"label": "Open a checking account with watsonx",
                      "value": {"input": {"text": "checking"}}}]}]}}, "es")
    generic = post_reply(app.test_client(), sent)["output"]["generic"]

    assert_never_sent(libre_server, *NUMBERS, *KEPT, "SmartSaver", "savings account",
                      "checking account", "cuenta")
    # The provider saw tokens where the spans were, and put the spans' places back.
    first = libre_server.texts()[0]
    assert first == "Your {0} {1} was charged {2} on {3} at {4}, reference {5}."
    assert generic[0]["text"] == mark("Your SmartSaver Plus cuenta de ahorro was charged 1,250.40 "
                                      "on 12/03/2026 at 20:30, reference 88231.", "en", "es")
    # A string that is only a fixed term needs no provider, and takes the capital it had.
    assert generic[1]["title"] == "Cuenta de ahorro"
    assert generic[1]["options"][0]["label"] == mark("Open a cuenta corriente with watsonx",
                                                     "en", "es")
    assert "Savings account" not in libre_server.texts()


def test_terms_follow_the_customers_language(app: Any, libre_server: Any) -> None:
    """French has its own fixed term, German none: there the term is translated like any word,
    and the kept terms and numbers are masked all the same."""
    client = app.test_client()
    reply = {"output": {"generic": [{"response_type": "text",
                                     "text": "A savings account for SmartSaver, 12 months."}]}}
    french = post_reply(client, with_session(reply, "fr"))["output"]["generic"][0]["text"]
    assert french == mark("A compte d'épargne for SmartSaver, 12 months.", "en", "fr")
    german = post_reply(client, with_session(reply, "de"))["output"]["generic"][0]["text"]
    assert german == mark("A savings account for SmartSaver, 12 months.", "en", "de")
    assert libre_server.texts() == ["A {0} for {1}, {2} months.",
                                    "A savings account for {0}, {1} months."]


def test_a_lost_token_keeps_the_string_in_the_assistants_language(app: Any,
                                                                  libre_server: Any) -> None:
    masked = mask("Pay 1,250.40 by 12/03/2026",
                  app.extensions["webhooks"].glossary.rules("en", "es"))
    assert masked.text == "Pay {0} by {1}"
    assert unmask(masked, "Paga {0} antes") is None  # a number lost: refused
    # Reordered: each comes back as it was.
    assert unmask(masked, "Paga {1} antes del {0}") == "Paga 12/03/2026 antes del 1,250.40"


# --- the pre-message input --------------------------------------------------------------------

def test_the_input_is_masked_in_the_other_direction(app: Any, libre_server: Any) -> None:
    """Customer -> assistant: the fixed term's translation comes back as the assistant's phrase;
    kept terms and numbers verbatim; none of them reached the provider."""
    text = ("Quiero abrir una cuenta de ahorro SmartSaver Plus con 1,250.40 el 12/03/2026 a las "
            "20:30, referencia 88231")
    body = event(text, variables={"chosen_language": "es"})
    answer = app.test_client().post("/webhooks/premessage", data=json.dumps(body))
    assert answer.status_code == 200
    payload = answer.get_json()["payload"]

    assert_never_sent(libre_server, *NUMBERS, *KEPT, "cuenta de ahorro", "savings account")
    assert libre_server.texts() == ["Quiero abrir una {0} {1} con {2} el {3} a las {4}, "
                                    "referencia {5}"]
    assert payload["input"]["text"] == mark(
        "Quiero abrir una savings account SmartSaver Plus con 1,250.40 el 12/03/2026 a las "
        "20:30, referencia 88231", "es", "en")
    assert variables_of(payload)["original_input"] == text


def test_an_input_of_only_a_fixed_term_needs_no_provider(app: Any, libre_server: Any) -> None:
    body = event("Cuenta corriente", variables={"chosen_language": "es"})
    payload = app.test_client().post("/webhooks/premessage", data=json.dumps(body)).get_json()[
        "payload"]
    assert payload["input"]["text"] == "Checking account"
    assert libre_server.calls == 0


def test_without_a_glossary_numbers_are_still_masked(make_app: Callable[..., Any],
                                                    libre_server: Any) -> None:
    client = make_app(TRANSLATOR="libre", TRANSLATOR_URL=libre_server.url,
                      LANGUAGE_DETECTOR="langdetect").test_client()
    body = event("Mi pedido 88231 llega el 12/03/2026", variables={"chosen_language": "es"})
    payload = client.post("/webhooks/premessage", data=json.dumps(body)).get_json()["payload"]
    assert libre_server.texts() == ["Mi pedido {0} llega el {1}"]
    assert payload["input"]["text"] == mark("Mi pedido 88231 llega el 12/03/2026", "es", "en")


def test_the_callers_sms_is_masked_too(make_app: Callable[..., Any], libre_server: Any,
                                       tmp_path: pathlib.Path) -> None:
    """The phone channel's SMS (translated in place beside the control keyword) follows the same
    rules: its address number and fixed term never reach the provider."""
    from tests.test_channels import phone_event

    client = make_app(TRANSLATOR="libre", TRANSLATOR_URL=libre_server.url, SKILL_TYPE="dialog",
                      LANGUAGE_DETECTOR="langdetect",
                      TRANSLATION_GLOSSARY=write(tmp_path, GLOSSARY)).test_client()
    body = phone_event("phone_sms_received.phone-actions.json")
    sms = "Mi cuenta de ahorro es la 88231, calle Mayor 230"
    body["payload"]["input"]["integrations"]["voice_telephony"]["sms_message"] = sms
    payload = client.post("/webhooks/premessage", data=json.dumps(body)).get_json()["payload"]
    assert_never_sent(libre_server, "88231", "230", "cuenta de ahorro")
    assert payload["input"]["integrations"]["voice_telephony"]["sms_message"] == mark(
        "Mi savings account es la 88231, calle Mayor 230", "es", "en")


# --- TRANSLATION_OFF_VARIABLE -----------------------------------------------------------------

@pytest.mark.parametrize("value", [True, "true", " TRUE "])
def test_the_off_variable_leaves_the_input_and_the_language(app: Any, libre_server: Any,
                                                            value: Any) -> None:
    """A Spanish session collecting a name: the name reaches the assistant as typed (no
    detection: "Jean-Pierre Dupont" could pass for French), the session stays Spanish, and the
    reply to it is still translated."""
    client = app.test_client()
    name = "Jean-Pierre Dupont, rue de la Paix"
    body = event(name, session="s-off", variables={"customer_language": "es",
                                                   "skip_translation": value})
    payload = client.post("/webhooks/premessage", data=json.dumps(body)).get_json()["payload"]
    assert payload["input"]["text"] == name
    variables = variables_of(payload)
    assert variables["customer_language"] == "es"
    assert "original_input" not in variables
    assert libre_server.calls == 0
    reply = {"output": {"generic": [{"response_type": "text", "text": "Thank you"}]},
             "context": payload["context"]}
    answer = client.post("/webhooks/postmessage", data=json.dumps(
        {"event": {"name": "message_processed"}, "options": {}, "payload": reply}))
    assert answer.get_json()["payload"]["output"]["generic"][0]["text"] == "Gracias"


@pytest.mark.parametrize("value", [False, "false", 1, "yes", None])
def test_only_true_switches_translation_off(app: Any, libre_server: Any, value: Any) -> None:
    body = event("Quiero abrir una cuenta", variables={"chosen_language": "es",
                                                        "skip_translation": value})
    payload = app.test_client().post("/webhooks/premessage", data=json.dumps(body)).get_json()[
        "payload"]
    assert payload["input"]["text"] == mark("Quiero abrir una cuenta", "es", "en")


def test_the_off_variable_is_named_by_the_setting(make_app: Callable[..., Any],
                                                  libre_server: Any) -> None:
    client = make_app(TRANSLATOR="libre", TRANSLATOR_URL=libre_server.url,
                      LANGUAGE_DETECTOR="langdetect",
                      TRANSLATION_OFF_VARIABLE="collecting_address").test_client()
    for name, translated in (("skip_translation", True), ("collecting_address", False)):
        body = event("Calle Mayor", variables={"chosen_language": "es", name: True})
        payload = client.post("/webhooks/premessage", data=json.dumps(body)).get_json()["payload"]
        assert (payload["input"]["text"] != "Calle Mayor") is translated


# --- matching rules ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def glossary(tmp_path_factory: pytest.TempPathFactory) -> Glossary:
    return Glossary.load(write(tmp_path_factory.mktemp("glossary"), GLOSSARY), LANGUAGES, "en")


def test_an_empty_glossary_is_the_built_in_spans() -> None:
    empty = Glossary.load(None, LANGUAGES, "en")
    assert empty.rules("en", "es") is DEFAULT_RULES is build_rules({})


@pytest.mark.parametrize("text, masked, spans", [
    ("SAVINGS  ACCOUNT fees", "{0} fees", ("Cuenta de ahorro",)),   # case, whitespace, capital
    ("the savings account", "the {0}", ("cuenta de ahorro",)),
    ("savings accounts", "savings accounts", ()),                   # whole words only
    ("my_savings account", "my_savings account", ()),
    ("SmartSaver Plus and SmartSaver", "{0} and {1}", ("SmartSaver Plus", "SmartSaver")),
    ("smartsaver plus", "{0}", ("smartsaver plus",)),                # kept as the customer wrote
    ("Visit https://x.example/savings account", "Visit {0} account",   # a URL stays a URL
     ("https://x.example/savings",)),
])
def test_how_terms_match(glossary: Glossary, text: str, masked: str,
                        spans: tuple[str, ...]) -> None:
    result = mask(text, glossary.rules("en", "es"))
    assert (result.text, result.spans) == (masked, spans)


@pytest.mark.parametrize("text, spans", [
    ("1,250.40", ["1,250.40"]), ("12/03/2026", ["12/03/2026"]), ("20:30", ["20:30"]),
    ("88231", ["88231"]), ("order ORD-88231.", ["ORD-88231"]),
    ("at 10am, A1B2C3", ["10am", "A1B2C3"]),
    ("2026-03-12T10:00", ["2026-03-12T10:00"]), ("€1.000,50 or 9.5%", ["1.000,50", "9.5"]),
    ("注文番号88231です", ["88231"]), ("a 10-year-old", ["10"]), ("in 2026.", ["2026"]),
])
def test_numbers_are_masked(text: str, spans: list[str]) -> None:
    assert list(mask(text).spans) == spans


def test_two_phrases_sharing_a_translation_give_the_input_the_first(
        tmp_path: pathlib.Path) -> None:
    glossary = Glossary.load(write(tmp_path, {"terms": {"es": {
        "savings account": "cuenta de ahorro", "saving account": "cuenta de ahorro"}}}),
        LANGUAGES, "en")
    masked = mask("una cuenta de ahorro", glossary.rules("es", "en"))
    assert masked.spans == ("savings account",)


# --- a malformed glossary stops the start -----------------------------------------------------

@pytest.mark.parametrize("content, says", [
    ("{not json", "not valid JSON"),
    ([], "one JSON object"),
    ({"keep": ["x"], "term": {}}, "one JSON object"),
    ({"keep": "SmartSaver"}, "list of terms"),
    ({"keep": [3]}, "string holding a letter or digit"),
    ({"keep": ["  "]}, "string holding a letter or digit"),
    ({"keep": ["x" * (MAX_TERM_CHARS + 1)]}, "longer than"),
    ({"terms": {"xx": {"a": "b"}}}, "not a customer's language"),
    ({"terms": {"en": {"a": "b"}}}, "not a customer's language"),
    ({"terms": {"es": ["cuenta"]}}, "terms.es"),
    ({"terms": {"es": {"savings account": ""}}}, "terms.es"),
    ({"keep": [f"term {n}" for n in range(MAX_GLOSSARY_TERMS + 1)]}, "at most"),
])
def test_a_malformed_glossary_stops_the_start(tmp_path, content: Any, says: str) -> None:
    settings = {"TRANSLATOR": "none", "TRANSLATION_GLOSSARY": write(tmp_path, content),
                "WEBHOOKS": "premessage,postmessage"}
    with pytest.raises(SettingsError) as raised:
        create_app(settings)
    message = str(raised.value)
    assert message.startswith("TRANSLATION_GLOSSARY") and says in message
    assert "SmartSaver" not in message and "cuenta" not in message  # never quotes the file


def test_a_missing_glossary_stops_the_start(tmp_path) -> None:
    with pytest.raises(SettingsError, match="TRANSLATION_GLOSSARY"):
        create_app({"TRANSLATION_GLOSSARY": str(tmp_path / "absent.json"),
                    "WEBHOOKS": "postmessage"})


# --- hostile text -----------------------------------------------------------------------------

BOUND = 20.0
N = 200_000
HOSTILE = {
    "digits": "1" * N,
    "digits and separators": "1," * (N // 2),
    "separators before letters": "1-a" * (N // 3),
    "letter prefixes": "abcdefghijkl" * (N // 12),
    "prefix then separator": "ORD-" * (N // 4),
    "digits and letters": "a1" * (N // 2),
    "a term's prefix": "savings " * (N // 8),
    "a term's words apart": "savings   \t" * (N // 11),
    "a kept term's prefix": "SmartSaver Plu" * (N // 14),
}


def _finishes_in_time(work: Callable[[], Any]) -> bool:
    child = multiprocessing.get_context("fork").Process(target=work)
    child.start()
    child.join(BOUND)
    if child.is_alive():
        child.kill()
        child.join()
        return False
    return child.exitcode == 0


def test_the_patterns_read_200_kb_of_hostile_text_in_linear_time(glossary: Glossary) -> None:
    """A glossary's pattern holds the built-in spans and the numbers too; each direction's."""
    patterns = [DEFAULT_RULES.pattern, glossary.rules("en", "es").pattern,
                glossary.rules("es", "en").pattern]

    def work() -> None:
        for pattern in patterns:
            for text in HOSTILE.values():
                pattern.sub("", text)

    assert _finishes_in_time(work), f"{len(HOSTILE)} inputs x 3 patterns not read in {BOUND} s"


def test_text_over_the_cap_is_not_scanned_with_a_glossary(glossary: Glossary) -> None:
    text = "savings account 88231 " * (MAX_TEXT_CHARS // 20)
    masked = mask(text, glossary.rules("en", "es"))
    assert masked.text == text and not masked.spans and not masked.translatable
