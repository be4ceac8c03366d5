"""The post-message webhook end to end: real app, real deep-translator, a LibreTranslate-compatible
server on loopback (testsupport/libre_server.py), IBM's published reply examples.

The stand-in server answers "[en>es] <text>" for text it has no phrase for, so the expected reply
is computed from the example itself, never written by hand.
"""

from __future__ import annotations

import copy
import json
import logging
import pathlib
import uuid
from typing import Any

import pytest

from handlers.masking import mask
from handlers.postmessage import POSTMESSAGE_STEPS
from tests.conftest import fixture
from testsupport.libre_server import translate
from tests.test_fields import EXPECTED, G, as_payload, changed_paths, leaves

LANGUAGE_VARIABLE = "customer_language"
OFFERED_VARIABLE = "offered_options"


def with_session(payload: dict[str, Any], language: str | None, session_id: str | None = None,
                 skill: str = "actions skill") -> dict[str, Any]:
    """The payload with the context the pre-message step leaves: session id and language."""
    payload = copy.deepcopy(payload)
    variables_key = "skill_variables" if skill == "actions skill" else "user_defined"
    context: dict[str, Any] = {"global": {"system": {"turn_count": 3},
                                          "session_id": session_id or str(uuid.uuid4())},
                               "skills": {skill: {variables_key: {}, "system": {"state": "opaque"}}}}
    if language:
        context["skills"][skill][variables_key][LANGUAGE_VARIABLE] = language
    payload["context"] = context
    return payload


def post(client: Any, payload: dict[str, Any]) -> dict[str, Any]:
    answer = client.post("/webhooks/postmessage",
                         data=json.dumps({"event": {"name": "message_processed"}, "options": {},
                                          "payload": payload}))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.content_type == "application/json"
    return answer.get_json()["payload"]


@pytest.fixture
def translating_app(make_app, libre_server):
    return make_app(TRANSLATOR="libre", TRANSLATOR_URL=libre_server.url)


@pytest.fixture
def client(translating_app):
    return translating_app.test_client()


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def test_steps_in_order():
    assert [step.__name__ for step in POSTMESSAGE_STEPS] == [
        "read_customer_language", "resolve_content_keys", "translate_reply",
        "remember_offered_options"]


# --- every example, English and Spanish sessions ----------------------------------------------

@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_english_session_leaves_every_example_byte_for_byte(client, libre_server, name):
    for payload in (as_payload(fixture(name)), with_session(as_payload(fixture(name)), "en")):
        assert dumps(post(client, payload)) == dumps(payload)
    assert libre_server.calls == 0


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_spanish_session_changes_only_readable_text(client, libre_server, name):
    sent = with_session(as_payload(fixture(name)), "es")
    reply = post(client, sent)
    assert list(reply) == list(sent)
    assert changed_paths(sent["output"], reply["output"]) == {
        path[len("output."):] for path in EXPECTED[name]}
    original = dict(leaves(sent["output"]))
    for path, value in leaves(reply["output"]):
        if value != original[path]:
            assert value == translate(original[path], "en", "es")
    # URLs anywhere in the reply are exactly as the assistant sent them.
    urls = sorted(v for _, v in leaves(sent["output"]) if isinstance(v, str) and "://" in v
                  and " " not in v)
    assert urls == sorted(v for _, v in leaves(reply["output"]) if isinstance(v, str)
                          and "://" in v and " " not in v)
    # The context keeps everything it had; at most the offered values are added.
    variables = reply["context"]["skills"]["actions skill"]["skill_variables"]
    assert variables.pop(OFFERED_VARIABLE, None) in (None, ["option 1", "option 2"],
                                                     ["hello", "time", "goodbye"],
                                                     ["Place order", "Exit"],
                                                     ["I want to place an order",
                                                      "I need a drink refill"],
                                                     ["[Message to send]"])
    assert reply["context"] == sent["context"]
    # Strings equal but for their numbers ("row 1 cell 2") go out once, the numbers masked.
    assert libre_server.calls == len({mask(original[path[len("output."):]]).text
                                      for path in EXPECTED[name]})


def test_a_reply_holding_every_type_at_once(client, libre_server):
    items: list[Any] = []
    expected: set[str] = set()
    for name in sorted(EXPECTED):
        for path in EXPECTED[name]:
            if path.startswith(G):
                index, rest = path[len(G) + 1:].split("]", 1)
                expected.add(f"generic[{len(items) + int(index)}]{rest}")
        items.extend(as_payload(fixture(name))["output"]["generic"])
    sent = with_session({"output": {"generic": items}}, "es")
    reply = post(client, sent)
    assert changed_paths(sent["output"], reply["output"]) == expected
    original = dict(leaves(sent["output"]))
    distinct = {mask(original[path]).text for path in expected}
    # Each distinct string went out once, its markup hidden.
    assert libre_server.calls == len(set(libre_server.texts())) == len(distinct)
    assert not any("<em>" in text or "://" in text for text in libre_server.texts())


def test_dialog_skill_context(client, libre_server):
    sent = with_session(fixture("runtime_output.option.api-dialog-responses_L464.json"), "fr",
                        skill="main skill")
    reply = post(client, sent)
    assert reply["output"]["generic"][0]["title"] == translate("What do you want to do?", "en", "fr")
    assert reply["context"]["skills"]["main skill"]["user_defined"][OFFERED_VARIABLE] == [
        "hello", "time", "goodbye"]
    assert "skill_variables" not in reply["context"]["skills"]["main skill"]


# --- masking through the real provider path ----------------------------------------------------

def test_markup_urls_and_placeholders_survive(client, libre_server):
    text = ('Hi {{first_name}}, your order $order_id is ready. See [the tracking page]'
            '(https://shop.example.com/track?id=42&lang=en "Track") or write to help@shop.example.com.'
            ' <a href="https://shop.example.com/faq" target="_blank">Questions?</a> Code: `RESET-9`.')
    sent = with_session({"output": {"generic": [{"response_type": "text", "text": text}]}}, "es")
    reply = post(client, sent)
    translated = reply["output"]["generic"][0]["text"]
    assert translated.startswith("[en>es] Hi {{first_name}}, your order $order_id")
    for span in ("{{first_name}}", "$order_id", '(https://shop.example.com/track?id=42&lang=en "Track")',
                 "help@shop.example.com", '<a href="https://shop.example.com/faq" target="_blank">',
                 "</a>", "`RESET-9`"):
        assert span in translated
    [asked] = libre_server.texts()
    for hidden in ("{{", "$order_id", "https://", "@", "<a", "RESET"):
        assert hidden not in asked
    assert "the tracking page" in asked and "Questions?" in asked


def test_a_translation_that_loses_a_token_keeps_the_original(make_app, libre_server, tmp_path):
    # A translation memory entry that drops the link: refused, the original text goes out.
    memory = tmp_path / "memory"
    memory.mkdir()
    (memory / "en-es.json").write_text(json.dumps({"Visit {0} today": "Visítenos hoy",
                                                   "Thanks": "Gracias"}))
    client = make_app(TRANSLATOR="libre", TRANSLATOR_URL=libre_server.url,
                      TRANSLATION_MEMORY=str(memory)).test_client()
    sent = with_session({"output": {"generic": [
        {"response_type": "text", "text": "Visit https://example.com/a today"},
        {"response_type": "text", "text": "Thanks"}]}}, "es")
    reply = post(client, sent)
    assert [i["text"] for i in reply["output"]["generic"]] == [
        "Visit https://example.com/a today", "Gracias"]
    assert libre_server.calls == 0


# --- failures: one string, a hanging provider ---------------------------------------------------

def test_one_string_failing_while_the_others_succeed(client, libre_server, caplog):
    libre_server.fail_for("Available options", 500)
    sent = with_session(fixture("runtime_output.option.api-dialog-responses_L216.json"), "es")
    with caplog.at_level(logging.INFO):
        reply = post(client, sent)
    item = reply["output"]["generic"][0]
    assert item["title"] == "Available options"
    assert item["options"][0]["label"] == translate("Option 1", "en", "es")
    assert item["options"][1]["label"] == translate("Option 2", "en", "es")
    assert item["description"] == translate("Please select one of the following options:", "en", "es")
    line = next(r for r in caplog.records if r.name == "handlers.request")
    assert (line.fields["translated"], line.fields["untranslated"]) == (3, 1)
    logged = "\n".join(r.getMessage() + dumps(getattr(r, "fields", {})) for r in caplog.records)
    assert "Option" not in logged and "options" not in logged.replace("offered", "")


def test_the_deadline_with_a_hanging_provider(make_app, libre_server):
    libre_server.hang(10)
    client = make_app(TRANSLATOR="libre", TRANSLATOR_URL=libre_server.url,
                      TRANSLATION_TIMEOUT="0.3").test_client()
    sent = with_session(fixture("runtime_output.option.api-dialog-responses_L216.json"), "es")
    reply = post(client, sent)
    assert reply["output"] == sent["output"]
    # The click values are remembered all the same: the session is still Spanish.
    assert reply["context"]["skills"]["actions skill"]["skill_variables"][OFFERED_VARIABLE] == [
        "option 1", "option 2"]
    libre_server.answer_normally()


def test_the_deadline_keeps_what_came_back_in_time(make_app, libre_server):
    libre_server.hang_for("Available options", 10)
    client = make_app(TRANSLATOR="libre", TRANSLATOR_URL=libre_server.url,
                      TRANSLATION_TIMEOUT="0.5").test_client()
    # A reply's strings go out in one request, which the hung string holds: what comes back in
    # time is what an earlier reply put in the cache.
    translator = client.application.extensions["webhooks"].translator
    # (the labels go out as "Option {0}", their numbers masked)
    assert translator.translate("Option {0}", "en", "es", 2.0) == translate("Option {0}", "en",
                                                                            "es")
    sent = with_session(fixture("runtime_output.option.api-dialog-responses_L216.json"), "es")
    item = post(client, sent)["output"]["generic"][0]
    assert item["title"] == "Available options"
    assert item["options"][0]["label"] == translate("Option 1", "en", "es")
    libre_server.answer_normally()


def test_a_repeated_reply_comes_from_the_cache(client, libre_server):
    sent = with_session(fixture("runtime_output.suggestion.api-dialog-responses_L263.json"), "es")
    first = post(client, sent)
    assert libre_server.calls == 5  # title, two labels, two nested texts (output.text repeats them)
    libre_server.reset_counts()
    again = post(client, with_session(sent, "es"))
    assert libre_server.calls == 0
    assert again["output"] == first["output"]


def test_no_translator_configured_leaves_the_reply(make_app):
    client = make_app().test_client()
    sent = with_session(fixture("runtime_output.text.api-dialog-responses_L64.json"), "es")
    assert post(client, sent)["output"] == sent["output"]


# --- where the language comes from ------------------------------------------------------------

def session_only(payload: dict[str, Any], session_id: str) -> dict[str, Any]:
    """A payload whose context has the session id and nothing of the kit's."""
    payload = copy.deepcopy(payload)
    payload["context"] = {"global": {"session_id": session_id}}
    return payload


def test_without_context_variables_the_session_memory_gives_the_language(translating_app,
                                                                         libre_server):
    client = translating_app.test_client()
    example = fixture("runtime_output.text.api-dialog-responses_L64.json")
    translating_app.extensions["webhooks"].sessions.update("s-1", {"language": "es"})
    reply = post(client, session_only(example, "s-1"))
    assert reply["output"]["generic"][0]["text"] == translate(
        "OK, you want to fly to Boston next Monday.", "en", "es")
    # Unknown session, or no context at all: the reply goes out as the assistant wrote it.
    assert post(client, session_only(example, "s-unknown"))["output"] == example["output"]
    assert dumps(post(client, example)) == dumps(example)
    assert libre_server.calls == 1


def test_the_context_variable_wins_over_the_session_memory(translating_app, libre_server):
    translating_app.extensions["webhooks"].sessions.update("s-2", {"language": "fr"})
    sent = with_session(fixture("runtime_output.text.api-dialog-responses_L64.json"), "de", "s-2")
    reply = post(translating_app.test_client(), sent)
    assert reply["output"]["generic"][0]["text"].startswith("[en>de] ")


def test_a_malformed_language_variable_is_ignored(client, libre_server):
    sent = with_session(fixture("runtime_output.text.api-dialog-responses_L64.json"), "es")
    sent["context"]["skills"]["actions skill"]["skill_variables"][LANGUAGE_VARIABLE] = "<script>"
    assert post(client, sent) == sent
    assert libre_server.calls == 0


@pytest.mark.redis
def test_session_memory_and_cache_shared_through_redis(make_app, libre_server, redis_url,
                                                       redis_prefix):
    settings = dict(TRANSLATOR="libre", TRANSLATOR_URL=libre_server.url, REDIS_URL=redis_url,
                    REDIS_PREFIX=redis_prefix)
    # Three apps stand for three gunicorn workers (or instances): nothing shared in process.
    first, second, third = make_app(**settings), make_app(**settings), make_app(**settings)
    session_id = f"s-{uuid.uuid4().hex}"
    first.extensions["webhooks"].sessions.update(session_id, {"language": "es"})
    example = fixture("runtime_output.option.api-dialog-responses_L464.json")
    reply = post(second.test_client(), session_only(example, session_id))
    assert reply["output"]["generic"][0]["title"] == translate("What do you want to do?", "en", "es")
    assert libre_server.calls == 4
    # The offered values went to Redis too: the third app (the next pre-message call) sees them.
    assert third.extensions["webhooks"].sessions.get(session_id)["offered"] == [
        "hello", "time", "goodbye"]
    libre_server.reset_counts()
    again = post(third.test_client(), session_only(example, session_id))
    assert again["output"] == reply["output"]
    assert libre_server.calls == 0


# --- offered options --------------------------------------------------------------------------

def test_offered_options_are_remembered_and_cleared(translating_app):
    client = translating_app.test_client()
    sessions = translating_app.extensions["webhooks"].sessions
    options = with_session(fixture("runtime_output.option.api-dialog-responses_L464.json"), "es",
                           "s-opt")
    reply = post(client, options)
    assert sessions.get("s-opt")["offered"] == ["hello", "time", "goodbye"]
    assert reply["context"]["skills"]["actions skill"]["skill_variables"][OFFERED_VARIABLE] == [
        "hello", "time", "goodbye"]
    # The next reply offers nothing: what the last one offered is forgotten.
    text = session_only(fixture("runtime_output.text.api-dialog-responses_L64.json"), "s-opt")
    sessions.update("s-opt", {"language": "es"})
    post(client, text)
    assert sessions.get("s-opt")["offered"] == []
    # A context that carries the old values has them cleared there too.
    carried = with_session(fixture("runtime_output.text.api-dialog-responses_L64.json"), "es",
                           "s-opt")
    carried["context"]["skills"]["actions skill"]["skill_variables"][OFFERED_VARIABLE] = ["hello"]
    reply = post(client, carried)
    assert reply["context"]["skills"]["actions skill"]["skill_variables"][OFFERED_VARIABLE] == []


def test_offered_options_are_bounded(make_app, libre_server):
    app = make_app(TRANSLATOR="libre", TRANSLATOR_URL=libre_server.url, OFFERED_OPTIONS_MAX="2")
    post(app.test_client(), with_session(
        fixture("runtime_output.option.api-dialog-responses_L464.json"), "es", "s-max"))
    assert app.extensions["webhooks"].sessions.get("s-max")["offered"] == ["hello", "time"]


def test_english_session_records_no_offered_options(translating_app):
    sent = with_session(fixture("runtime_output.option.api-dialog-responses_L464.json"), "en",
                        "s-en")
    assert post(translating_app.test_client(), sent) == sent
    assert "offered" not in translating_app.extensions["webhooks"].sessions.get("s-en")


# --- content keys -----------------------------------------------------------------------------

@pytest.fixture
def content_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    folder = tmp_path / "content"
    folder.mkdir()
    (folder / "en.json").write_text(json.dumps({
        "hours": "We are open from 9:00 to 17:00.",
        "returns": [{"response_type": "text", "text": "Returns are free for 30 days."},
                    {"response_type": "image", "source": "https://example.com/returns.png",
                     "title": "Your return label"}]}))
    (folder / "es.json").write_text(json.dumps({"hours": "Abrimos de 9:00 a 17:00."}))
    return folder


@pytest.fixture
def content_client(make_app, libre_server, content_dir):
    return make_app(TRANSLATOR="libre", TRANSLATOR_URL=libre_server.url,
                    CONTENT_DIR=str(content_dir)).test_client()


def keyed(*items: dict[str, Any]) -> dict[str, Any]:
    return {"output": {"generic": [{"response_type": "text", "text": "Here you go:"}, *items]}}


HOURS_ITEM = {"response_type": "user_defined", "user_defined": {"content_key": "hours"}}


def test_content_in_the_session_language_is_not_machine_translated(content_client, libre_server):
    reply = post(content_client, with_session(keyed(HOURS_ITEM), "es"))
    assert reply["output"]["generic"] == [
        {"response_type": "text", "text": translate("Here you go:", "en", "es")},
        {"response_type": "text", "text": "Abrimos de 9:00 a 17:00."}]
    assert libre_server.texts() == ["Here you go:"]


def test_content_missing_in_the_session_language_is_translated(content_client, libre_server):
    placeholder = {"response_type": "text", "text": "{{content:returns}}"}
    reply = post(content_client, with_session(keyed(placeholder), "es"))
    assert reply["output"]["generic"][1:] == [
        {"response_type": "text", "text": translate("Returns are free for 30 days.", "en", "es")},
        {"response_type": "image", "source": "https://example.com/returns.png",
         "title": translate("Your return label", "en", "es")}]


def test_content_per_language(content_client, libre_server):
    english = post(content_client, with_session(keyed(HOURS_ITEM), "en"))
    assert english["output"]["generic"][1]["text"] == "We are open from 9:00 to 17:00."
    # A regional form of Spanish gets the Spanish content.
    mexican = post(content_client, with_session(keyed(HOURS_ITEM), "es-mx"))
    assert mexican["output"]["generic"][1]["text"] == "Abrimos de 9:00 a 17:00."
    # No known language: the assistant's content, untranslated.
    unknown = post(content_client, keyed(HOURS_ITEM))
    assert unknown["output"]["generic"][1]["text"] == "We are open from 9:00 to 17:00."
    french = post(content_client, with_session(keyed(HOURS_ITEM), "fr"))
    assert french["output"]["generic"][1]["text"] == translate(
        "We are open from 9:00 to 17:00.", "en", "fr")


def test_a_missing_content_key_leaves_the_item_and_warns(content_client, libre_server, caplog):
    missing = {"response_type": "user_defined", "user_defined": {"content_key": "no_such_key"}}
    sent = with_session(keyed(missing), "es")
    with caplog.at_level(logging.WARNING):
        reply = post(content_client, sent)
    assert reply["output"]["generic"][1] == missing
    warning = next(r for r in caplog.records if "content key not found" in r.getMessage())
    assert warning.fields["content_key"] == "no_such_key"


def test_content_keys_without_a_store_stay(client):
    sent = with_session(keyed(HOURS_ITEM), "en")
    assert post(client, sent) == sent


# --- input the webhook does not expect -----------------------------------------------------------

@pytest.mark.parametrize("output", [None, "text", [], {"generic": "not a list"},
                                    {"generic": [None, 3, "x", {"response_type": None}]},
                                    {"generic": [{"response_type": "text", "text": None}]}])
def test_odd_outputs_pass_through(client, libre_server, output):
    sent = with_session({"output": output}, "es")
    assert post(client, sent) == sent
    assert libre_server.calls == 0
