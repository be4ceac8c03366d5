"""Phone calls through both webhooks (Flask test client), turn after turn, from IBM's published
phone bodies: the phone-context example turn (tests/fixtures/phone_turn_agent.phone-context.json,
a dialog assistant's "main skill") and the integration-variables voice_telephony context. A
stand-in assistant answers each turn; the next turn carries the context the reply left, as the
channel would send it back."""

from __future__ import annotations

import copy
import json
import logging
import uuid
from typing import Any

import pytest

from handlers.phone import BUILT_IN_LANGUAGES
from tests.conftest import fixture
from testsupport.libre_server import mark, translate

DIALOG = "main skill"
PHONE_ONLY = [{"channel": "voice_telephony"}]


def tts(voice: str) -> dict[str, Any]:
    """The text_to_speech item, as IBM's response-types reference prints it, with this voice."""
    item = fixture("runtime_or_editor.text_to_speech.response-types-reference_L1261.json")
    item = item["generic"][0]
    item["command_info"]["parameters"]["synthesize"]["voice"] = voice
    return item


def stt(model: str) -> dict[str, Any]:
    """The speech_to_text item of the reference, the model next-generation, merged."""
    item = fixture("runtime_or_editor.speech_to_text.response-types-reference_L986.json")
    item = item["generic"][0]
    item["command_info"]["parameters"] = {"narrowband_recognize": {"model": model},
                                          "update_strategy": "merge"}
    return item


def text(words: str) -> dict[str, Any]:
    return {"response_type": "text", "text": words}


class Call:
    """One phone call: IBM's example turn and context, a session id, and what each webhook
    answered (the request log line's fields too)."""

    def __init__(self, client: Any, caplog: pytest.LogCaptureFixture, *,
                 headers: dict[str, str] | None = None, number: str = "18882346789",
                 channel_context_in_reply: bool = True) -> None:
        self.client, self.caplog = client, caplog
        turn = fixture("phone_turn_agent.phone-context.json")
        self.context = turn["context"]
        self.context["global"] = {"system": {"turn_count": 0}, "session_id": str(uuid.uuid4())}
        voice = self.context["integrations"]["voice_telephony"]
        voice["assistant_phone_number"] = number
        if headers is not None:
            voice["sip_custom_invite_headers"] = headers
        self.turn_input = turn["input"]
        self.channel_context_in_reply = channel_context_in_reply
        self.logged: dict[str, dict[str, Any]] = {}

    def post(self, path: str, event: str, payload: dict[str, Any]) -> dict[str, Any]:
        with self.caplog.at_level(logging.INFO, logger="handlers.request"):
            answer = self.client.post(path, data=json.dumps(
                {"event": {"name": event}, "options": {}, "payload": payload}))
        assert answer.status_code == 200, answer.get_data(as_text=True)
        records = [r for r in self.caplog.records if r.name == "handlers.request"]
        self.logged[path.rsplit("/", 1)[1]] = records[-1].fields  # type: ignore[attr-defined]
        return answer.get_json()["payload"]

    def say(self, words: str, reply: list[dict[str, Any]], *, dtmf: bool = False,
            sets: dict[str, Any] | None = None) -> dict[str, Any]:
        """One turn: the caller's words (a transcript, or keys pressed), the assistant's reply
        (setting the dialog variables `sets`), both webhooks; the post-message answer."""
        self.context["global"]["system"]["turn_count"] += 1
        turn_input = copy.deepcopy(self.turn_input)
        turn_input["text"] = words
        voice = turn_input["integrations"]["voice_telephony"]
        voice["is_dtmf"] = dtmf
        voice["speech_to_text_result"]["results"][0]["alternatives"][0]["transcript"] = words
        self.received = self.post("/webhooks/premessage", "message_received",
                                  {"input": turn_input, "context": copy.deepcopy(self.context)})
        context = copy.deepcopy(self.received["context"])
        context["skills"][DIALOG]["user_defined"].update(sets or {})
        if not self.channel_context_in_reply:
            context.pop("integrations")
        answered = self.post("/webhooks/postmessage", "message_processed",
                             {"output": {"generic": copy.deepcopy(reply)}, "context": context,
                              "user_id": "caller"})
        answered["context"].setdefault("integrations", self.context["integrations"])
        self.context = answered["context"]
        return answered

    @property
    def variables(self) -> dict[str, Any]:
        return self.context["skills"][DIALOG]["user_defined"]


@pytest.fixture
def make_client(make_app, libre_server):
    def build(**settings: Any) -> Any:
        return make_app(TRANSLATOR="libre", TRANSLATOR_URL=libre_server.url, SKILL_TYPE="dialog",
                        **settings).test_client()
    return build


MENU = [text("For English, press 1. Para español, oprima 2.")]
HELP = [text("How can I help you?")]
SPANISH = "Quiero cambiar la dirección de envío de mi pedido"
ES, EN = BUILT_IN_LANGUAGES["es"], BUILT_IN_LANGUAGES["en"]


def test_a_dtmf_menu_switches_the_call_to_spanish_once(make_client, libre_server, caplog):
    call = Call(make_client(), caplog)
    first = call.say("", MENU)   # the call opens: no words yet
    assert first["output"]["generic"] == MENU
    assert call.logged["postmessage"]["phone"] == "kept"
    assert libre_server.calls == 0

    # The caller presses 2; the assistant's menu sets the chosen language and answers.
    reply = call.say("2", HELP, dtmf=True, sets={"chosen_language": "es"})
    assert call.received["input"]["text"] == "2"       # keys pressed pass untouched
    assert reply["output"]["generic"] == [tts(ES["voice"]), text("¿Cómo puedo ayudarte?"),
                                          stt(ES["model"])]
    assert reply["output"]["generic"][0]["channels"] == PHONE_ONLY
    assert call.logged["postmessage"]["phone"] == "switched"
    assert call.variables["phone_language"] == "es"

    # From now on the transcript (made by the Spanish model) is translated, never detected, and
    # the reply needs no command.
    reply = call.say(SPANISH, [text("Sure. What is the new address?")])
    assert call.received["input"]["text"] == "I want to change the shipping address of my order"
    assert call.received["context"]["skills"][DIALOG]["user_defined"]["original_input"] == SPANISH
    assert "detected" not in call.logged["premessage"]
    assert call.logged["premessage"]["language_from"] == "chosen"
    assert reply["output"]["generic"] == [text(mark("Sure. What is the new address?", "en",
                                                    "es"))]
    assert call.logged["postmessage"]["phone"] == "kept"


def test_a_sip_header_switches_the_call_from_its_first_turn(make_client, libre_server, caplog):
    client = make_client(PHONE_LANGUAGE_HEADER="X-Customer-Language")
    call = Call(client, caplog, headers={"x-customer-language": "es-ES"})
    reply = call.say("", HELP)
    assert call.logged["premessage"]["language_from"] == "sip"
    assert reply["output"]["generic"] == [tts(ES["voice"]), text("¿Cómo puedo ayudarte?"),
                                          stt(ES["model"])]
    again = call.say("Sí", [text("Yes")])
    assert again["output"]["generic"] == [text("Sí")]


def test_the_dialled_number_switches_the_call(make_client, caplog):
    client = make_client(PHONE_NUMBER_LANGUAGES="+1 888 234 6789=es,+33170000000=fr")
    call = Call(client, caplog)
    reply = call.say("", HELP)
    assert call.logged["postmessage"]["language_from"] == "number"
    assert [item["response_type"] for item in reply["output"]["generic"]] == [
        "text_to_speech", "text", "speech_to_text"]
    elsewhere = Call(client, caplog, number="+18005550100")
    assert elsewhere.say("", HELP)["output"]["generic"] == HELP


def test_switching_back_to_english(make_client, caplog):
    call = Call(make_client(), caplog)
    call.say("2", HELP, dtmf=True, sets={"chosen_language": "es"})
    reply = call.say("1", HELP, dtmf=True, sets={"chosen_language": "en"})
    assert reply["output"]["generic"] == [tts(EN["voice"]), text("How can I help you?"),
                                          stt(EN["model"])]
    assert call.variables["phone_language"] == "en"
    assert call.say("Hello", HELP)["output"]["generic"] == HELP


def test_a_language_without_a_voice_is_answered_in_the_assistants(make_client, libre_server,
                                                                   caplog):
    client = make_client(PHONE_LANGUAGE_HEADER="X-Customer-Language")
    call = Call(client, caplog, headers={"X-Customer-Language": "ru"})
    reply = call.say("", HELP)
    assert reply["output"]["generic"] == HELP
    assert call.logged["postmessage"]["phone"] == "phone_language_unavailable"
    assert call.logged["premessage"]["call_language"] == "ru"
    assert libre_server.calls == 0
    record = reply["context"]["integrations"]["voice_telephony"]["cdr_custom_data"]
    assert record == {"customer_language": "ru", "translated": False}


def test_the_session_memory_knows_the_call_when_the_reply_does_not_say_it(make_client, caplog):
    call = Call(make_client(), caplog, channel_context_in_reply=False)
    reply = call.say("2", HELP, dtmf=True, sets={"chosen_language": "es"})
    assert [item["response_type"] for item in reply["output"]["generic"]] == [
        "text_to_speech", "text", "speech_to_text"]
    assert call.say("Sí", HELP)["output"]["generic"] == [text("¿Cómo puedo ayudarte?")]


def test_web_chat_never_gets_a_command(make_client, libre_server):
    client = make_client()
    body = fixture("post_message_request.message_processed.main_skill.classic.json")
    body["payload"]["context"]["skills"][DIALOG]["user_defined"] = {"customer_language": "es",
                                                                    "chosen_language": "es"}
    answer = client.post("/webhooks/postmessage", data=json.dumps(body)).get_json()["payload"]
    kinds = [item["response_type"] for item in answer["output"]["generic"]]
    assert "text_to_speech" not in kinds and "speech_to_text" not in kinds
    assert libre_server.calls > 0                         # translated all the same
    assert "integrations" not in answer["context"]


def test_ssml_reaches_the_caller_intact_and_commands_in_the_reply_pass_untouched(
        make_client, caplog):
    call = Call(make_client(), caplog)
    call.say("2", HELP, dtmf=True, sets={"chosen_language": "es"})
    ssml = ('Your code is <say-as interpret-as="digits">4821</say-as>.<break time="500ms"/> '
            '<prosody rate="slow">Please write it down</prosody>, '
            '<emphasis level="strong">now</emphasis>.')
    own = [{"response_type": "text_to_speech", "command_info": {"type": "disable_barge_in"},
            "channels": PHONE_ONLY},
           text(ssml),
           {"response_type": "speech_to_text", "command_info": {
               "type": "configure", "parameters": {"update_strategy": "merge_once",
                                                   "narrowband_recognize": {"grammar_name": "x"}}}}]
    reply = call.say("Sí", own)
    generic = reply["output"]["generic"]
    assert generic[0] == own[0] and generic[2] == own[2]
    spoken = generic[1]["text"]
    for tag in ('<say-as interpret-as="digits">4821</say-as>', '<break time="500ms"/>',
                '<prosody rate="slow">', '</prosody>', '<emphasis level="strong">',
                '</emphasis>'):
        assert tag in spoken
    assert spoken.startswith("[en>es]")


def test_cdr_custom_data_is_merged_keeping_what_the_assistant_put_there(make_client, caplog):
    call = Call(make_client(), caplog)
    call.context["integrations"]["voice_telephony"].update(
        fixture("context.integrations.voice_telephony.cdr_custom_data.json")
        ["context"]["integrations"]["voice_telephony"])
    call.say("", MENU)
    reply = call.say("2", HELP, dtmf=True, sets={"chosen_language": "es"})
    assert reply["context"]["integrations"]["voice_telephony"]["cdr_custom_data"] == {
        "key1": "value1", "key2": "value2", "customer_language": "es", "translated": True}
    voice = reply["context"]["integrations"]["voice_telephony"]
    assert voice["sip_call_id"] == "QjryZsuAS4"           # the channel's own keys untouched


def test_a_handoff_is_routed_by_language_with_a_note(make_client, tmp_path, caplog):
    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps({"es": {"service_desk": {"sip": {
        "uri": "sip:agentes-es\\@example.com",
        "transfer_headers": [{"name": "X-Customer-Language", "value": "es"}]}}}}))
    call = Call(make_client(HANDOFF_TARGETS=str(targets)), caplog)
    call.say("2", HELP, dtmf=True, sets={"chosen_language": "es"})
    handoff = fixture("runtime_or_editor.connect_to_agent.response-types-reference_L498.json")
    item = handoff["generic"][0]
    item["transfer_info"] = {"target": {"service_desk": {"sip": {
        "uri": "sip:agents\\@example.com", "transfer_method": "refer"}}}}
    reply = call.say("Quiero hablar con una persona", [item])
    routed = reply["output"]["generic"][0]
    assert routed["transfer_info"]["target"]["service_desk"]["sip"] == {
        "uri": "sip:agentes-es\\@example.com", "transfer_method": "refer",
        "transfer_headers": [{"name": "X-Customer-Language", "value": "es"}]}
    assert routed["message_to_human_agent"] == (
        "User asked to speak to an agent.\nCustomer's language: español (es). "
        'Their last words: "Quiero hablar con una persona"')
    assert routed["agent_available"]["message"] == translate(
        "Please wait while I connect you to an agent.", "en", "es")
    assert call.logged["postmessage"]["handoff_routed"] == 1


def test_a_web_chat_handoff_is_routed_and_an_english_one_left_alone(make_client, tmp_path):
    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps({"fr": {"zendesk": {"department": "Support français"}}}))
    client = make_client(HANDOFF_TARGETS=str(targets), HANDOFF_NOTE="off")
    body = {"event": {"name": "message_processed"}, "options": {}, "payload": fixture(
        "runtime_or_editor.channel_transfer+connect_to_agent.response-types-reference_L419.json")}
    body["payload"] = {"output": body["payload"],
                       "context": {"skills": {DIALOG: {"user_defined": {}}}}}
    for language, department in (("fr", "Support français"), ("en", "Payments department")):
        sent = copy.deepcopy(body)
        sent["payload"]["context"]["skills"][DIALOG]["user_defined"]["customer_language"] = \
            language
        answer = client.post("/webhooks/postmessage", data=json.dumps(sent)).get_json()
        item = answer["payload"]["output"]["generic"][1]
        assert item["transfer_info"]["target"] == {"zendesk": {"department": department}}
        assert item["message_to_human_agent"] == "User asked to speak to an agent."


def test_an_sms_during_the_call_keeps_its_own_detection(make_client, libre_server, caplog):
    # (A language the caller chose in a menu would win here too: an explicit choice always does.)
    call = Call(make_client(PHONE_LANGUAGE_HEADER="X-Customer-Language"), caplog,
                headers={"X-Customer-Language": "es"})
    call.say("", HELP)
    sms = fixture("phone_sms_received.phone-actions.json")
    sms["input"]["integrations"]["voice_telephony"]["sms_message"] = \
        "Bonjour, je voudrais suivre ma commande"
    sms["context"] = copy.deepcopy(call.context)
    received = call.post("/webhooks/premessage", "message_received", sms)
    assert received["input"]["integrations"]["voice_telephony"]["sms_message"] == \
        "Hello, I would like to track my order"
    assert call.logged["premessage"]["detected"] == "fr"
    # The reply is still spoken in the call's language, with no command.
    reply = call.say("Sí", HELP)
    assert reply["output"]["generic"] == [text("¿Cómo puedo ayudarte?")]


@pytest.mark.parametrize("voice", ["a string", ["list"], {"sip_custom_invite_headers": "x",
                                                         "assistant_phone_number": 12,
                                                         "cdr_custom_data": "not an object"}])
def test_odd_phone_shapes_are_answered_and_left_as_they_are(make_client, voice):
    client = make_client(PHONE_LANGUAGE_HEADER="X-Customer-Language",
                         PHONE_NUMBER_LANGUAGES="+18882346789=es")
    context = {"integrations": {"voice_telephony": voice}, "skills": {DIALOG: {"user_defined": {
        "chosen_language": "es", "phone_language": ["not", "a", "language"]}}}}
    for path, event, payload in (
            ("/webhooks/premessage", "message_received",
             {"input": {"text": "hola", "integrations": {"voice_telephony": voice}},
              "context": copy.deepcopy(context)}),
            ("/webhooks/postmessage", "message_processed",
             {"output": {"generic": ["odd", {"response_type": "connect_to_agent",
                                             "transfer_info": "opaque",
                                             "message_to_human_agent": 7}]},
              "context": copy.deepcopy(context)})):
        answer = client.post(path, data=json.dumps({"event": {"name": event}, "payload": payload}))
        assert answer.status_code == 200, answer.get_data(as_text=True)
        reply = answer.get_json()["payload"]
        assert reply["context"]["integrations"]["voice_telephony"] == voice
        if path.endswith("postmessage"):
            handoff = [item for item in reply["output"]["generic"]
                       if isinstance(item, dict) and item["response_type"] == "connect_to_agent"]
            assert handoff == [payload["output"]["generic"][1]]


def test_the_call_record_the_channel_logs_is_stored_with_the_callers_language(make_app, caplog):
    app = make_app(SKILL_TYPE="dialog")
    call = Call(app.test_client(), caplog)
    reply = call.say("2", HELP, dtmf=True, sets={"chosen_language": "es"})
    tagged = reply["context"]["integrations"]["voice_telephony"]["cdr_custom_data"]
    # The channel merges cdr_custom_data into the record as injected_custom_data (webhook-log).
    body = fixture("log_webhook_request.cdr_logged.full.json")
    body["payload"]["injected_custom_data"] = {
        **fixture("log_webhook_cdr_logged.injected_custom_data.merged.payload_fragment.json")
        ["injected_custom_data"], **tagged}
    session = body["payload"]["assistant_interaction_summaries"][0]["session_id"]
    assert app.test_client().post("/webhooks/logs", json=body).status_code == 200
    [record] = app.extensions["webhooks"].store.reports.transcript(session)
    assert (record.event, record.language) == ("cdr_logged", "es")
