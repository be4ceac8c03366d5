"""Channel inputs and channel replies end to end, on IBM's published phone and web chat bodies
(tests/fixtures/phone_*, web_chat_*; sources in tests/fixtures/SOURCES.md): the phone channel's
control inputs pass untouched and keep the language, the SMS a caller sends is translated in
place, and the readable text of known custom responses is translated in post-message."""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

import pytest

from handlers import channels, fields
from tests.conftest import fixture
from testsupport.libre_server import mark, translate

DIALOG = "main skill"


def phone_event(name: str, *, language: str | None = "es", text: str | None = None,
                flags: dict[str, Any] | None = None) -> dict[str, Any]:
    """A message_received body wrapping one of IBM's phone turn examples, in a session whose
    language the pre-message step already recorded."""
    payload = fixture(name)
    if text is not None:
        payload["input"]["text"] = text
    if flags:
        payload["input"].setdefault("integrations", {}).setdefault(
            "voice_telephony", {}).update(flags)
    context = payload.setdefault("context", {})
    context.setdefault("global", {"system": {}, "session_id": "call-1"})
    variables = context.setdefault("skills", {}).setdefault(DIALOG, {}).setdefault(
        "user_defined", {})
    if language:
        variables["customer_language"] = language
    return {"event": {"name": "message_received"}, "options": {}, "payload": payload}


def post(client: Any, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = client.post(path, data=json.dumps(body))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()["payload"]


def request_fields(caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    return [r for r in caplog.records if r.name == "handlers.request"][-1].fields  # type: ignore


@pytest.fixture
def phone(make_app, libre_server):
    """A pre-message app for a dialog assistant (the phone examples use "main skill")."""
    return make_app(TRANSLATOR="libre", TRANSLATOR_URL=libre_server.url,
                    SKILL_TYPE="dialog").test_client()


@pytest.mark.parametrize("keyword", sorted(channels.CONTROL_INPUTS))
def test_a_control_keyword_in_a_spanish_session_passes_untouched(phone, libre_server, caplog,
                                                                  keyword):
    body = phone_event("phone_sms_received.phone-actions.json", text=keyword)
    body["payload"]["input"]["integrations"]["voice_telephony"].pop("sms_message")
    before = copy.deepcopy(body["payload"]["input"])
    with caplog.at_level(logging.INFO, logger="handlers.request"):
        payload = post(phone, "/webhooks/premessage", body)
    assert payload["input"] == before
    variables = payload["context"]["skills"][DIALOG]["user_defined"]
    assert variables["customer_language"] == "es"
    assert "original_input" not in variables
    assert libre_server.calls == 0
    logged = request_fields(caplog)
    assert logged["skipped"] == "channel_input" and "detected" not in logged
    assert logged["language_from"] == "session"


@pytest.mark.parametrize("flag", [flag for _, flag in channels.CONTROL_FLAGS])
def test_a_voice_telephony_flag_marks_a_control_input(phone, libre_server, flag):
    # IBM's docs: the timeout text "includes the word" vgw...; DTMF input is the digits keyed.
    text = "1 2 3 4 #" if flag == "is_dtmf" else "vgwPostResponseTimeout please"
    body = phone_event("phone_turn_agent.phone-context.json", text=text, flags={flag: True})
    payload = post(phone, "/webhooks/premessage", body)
    assert payload["input"]["text"] == text
    assert payload["context"]["skills"][DIALOG]["user_defined"]["customer_language"] == "es"
    assert libre_server.calls == 0


def test_without_a_session_a_control_keyword_sets_no_language(phone, libre_server):
    body = phone_event("phone_sms_received.phone-actions.json", language=None,
                       text="vgwNoInputTurn")
    body["payload"]["input"]["integrations"]["voice_telephony"].pop("sms_message")
    payload = post(phone, "/webhooks/premessage", body)
    assert "customer_language" not in payload["context"]["skills"][DIALOG]["user_defined"]
    assert libre_server.calls == 0


def test_the_sms_text_is_translated_in_place_and_the_keyword_kept(phone, libre_server, caplog):
    sms = "Quiero cambiar la dirección de envío de mi pedido"
    body = phone_event("phone_sms_received.phone-actions.json")
    body["payload"]["input"]["integrations"]["voice_telephony"]["sms_message"] = sms
    with caplog.at_level(logging.INFO, logger="handlers.request"):
        payload = post(phone, "/webhooks/premessage", body)
    assert payload["input"]["text"] == "vgwSMSMessage"
    assert payload["input"]["integrations"]["voice_telephony"]["sms_message"] == \
        "I want to change the shipping address of my order"
    assert [(r["source"], r["target"]) for r in libre_server.requests] == [("es", "en")]
    assert payload["context"]["skills"][DIALOG]["user_defined"]["customer_language"] == "es"
    assert request_fields(caplog)["detected"] == "es"  # the SMS was detected, not the keyword


def test_an_sms_in_the_assistant_language_is_left_alone(phone, libre_server):
    # IBM's own example: an English street address in an English call.
    body = phone_event("phone_sms_received.phone-actions.json", language="en")
    before = copy.deepcopy(body["payload"]["input"])
    payload = post(phone, "/webhooks/premessage", body)
    assert payload["input"] == before
    assert libre_server.calls == 0


def test_set_as_input_text_translates_the_text_once(phone, libre_server):
    sms = "Quiero cambiar la dirección de envío de mi pedido"
    body = phone_event("phone_sms_set_as_input_text.phone-actions.json", text=sms)
    body["payload"]["input"]["integrations"]["voice_telephony"]["sms_message"] = sms
    payload = post(phone, "/webhooks/premessage", body)
    english = "I want to change the shipping address of my order"
    assert payload["input"]["text"] == english
    assert payload["input"]["integrations"]["voice_telephony"]["sms_message"] == english
    assert libre_server.calls == 1


def test_a_one_word_first_turn_on_the_phone_opens_an_english_session(phone, libre_server):
    # IBM's phone-context example: the caller says "agent", no locale, no session language yet.
    body = phone_event("phone_turn_agent.phone-context.json", language=None)
    payload = post(phone, "/webhooks/premessage", body)
    assert payload["input"]["text"] == "agent "
    assert payload["context"]["skills"][DIALOG]["user_defined"]["customer_language"] == "en"
    assert libre_server.calls == 0


# --- post-message: the readable text of known custom responses ---------------------------------

def reply(generic: list[Any], language: str = "es") -> dict[str, Any]:
    return {"event": {"name": "message_processed"}, "options": {},
            "payload": {"output": {"generic": generic},
                        "context": {"global": {"session_id": "call-1", "system": {}},
                                    "skills": {"actions skill": {"skill_variables": {
                                        "customer_language": language}}}}}}


@pytest.fixture
def replies(make_app, libre_server):
    return make_app(TRANSLATOR="libre", TRANSLATOR_URL=libre_server.url).test_client()


def test_the_sms_vgw_act_send_sms_sends_is_translated(replies):
    generic = fixture("phone_send_sms.phone-actions.generic.json")["generic"]
    payload = post(replies, "/webhooks/postmessage", reply(copy.deepcopy(generic)))
    action = payload["output"]["generic"][1]["user_defined"]["vgwAction"]
    assert action["command"] == "vgwActSendSMS"
    message = generic[1]["user_defined"]["vgwAction"]["parameters"]["message"]
    assert action["parameters"] == {"message": translate(message, "en", "es")}


def test_the_web_chat_carousel_titles_and_descriptions_are_translated(replies):
    generic = fixture("web_chat_carousel.user_defined.json")["generic"]
    payload = post(replies, "/webhooks/postmessage", reply(copy.deepcopy(generic)))
    custom = payload["output"]["generic"][0]
    assert custom["response_type"] == "user_defined"
    assert custom["user_defined"]["user_defined_type"] == "carousel"
    for old, new in zip(generic[0]["user_defined"]["carousel_data"],
                        custom["user_defined"]["carousel_data"]):
        assert new["url"] == old["url"]
        for name in ("title", "description", "alt"):
            assert new[name] == translate(old[name], "en", "es"), name


def test_citation_bodies_are_translated_and_their_urls_kept(replies):
    item = {"response_type": "conversational_search", "text": "Returns take 30 days.",
            "citations_title": "How do we know?",
            "citations": [{"title": "Returns policy", "url": "https://example.com/returns",
                           "body": "You can return any item within 30 days.",
                           "search_result_idx": 0, "ranges": [{"start": 0, "end": 21}]}]}
    payload = post(replies, "/webhooks/postmessage", reply([copy.deepcopy(item)]))
    citation = payload["output"]["generic"][0]["citations"][0]
    assert citation["body"] == translate("You can return any item within 30 days.", "en", "es")
    assert citation["url"] == "https://example.com/returns"
    assert citation["search_result_idx"] == 0


def test_a_custom_response_type_of_ones_own_is_added_in_one_place(monkeypatch):
    def coupon(user_defined: dict[str, Any], out: list[fields.Slot]) -> None:
        fields._string(user_defined, "headline", out)

    monkeypatch.setitem(fields.USER_DEFINED_SHAPES, "coupon", coupon)
    items = [{"response_type": "user_defined",
              "user_defined": {"user_defined_type": "coupon", "headline": "Ten percent off",
                               "code": "SAVE10", "url": "https://example.com/c"}},
             {"response_type": "user_defined",
              "user_defined": {"user_defined_type": "unknown", "headline": "Left alone"}}]
    assert fields.wanted(fields.find_texts(items)) == ["Ten percent off"]


def test_other_user_defined_content_and_commands_are_never_sent():
    items = [{"response_type": "user_defined", "user_defined": {"vgwAction": {
                 "command": "vgwActPlayText", "parameters": {"message": "not an SMS"}}}},
             {"response_type": "user_defined", "user_defined": {"vgwActionSequence": [
                 {"command": "vgwActSendSMS", "parameters": {
                     "message": "Your code", "userPhoneNumber": "+18885551234",
                     "mediaURL": ["https://example.com/a.gif"]}}]}},
             {"response_type": "user_defined", "user_defined": {"content_key": "hours"}}]
    assert fields.wanted(fields.find_texts(items)) == ["Your code"]


def test_unknown_marker_is_what_the_stand_in_answers():
    # The expected translations above come from the stand-in's marker, not written by hand.
    assert translate("Ten", "en", "es") == mark("Ten", "en", "es")
