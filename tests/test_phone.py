"""The phone's pure parts (handlers/phone.py, handlers/settings/phone.py, SSML masking), on the
phone bodies IBM publishes (tests/fixtures/phone_*.json, the docs' context examples)."""

from __future__ import annotations

import copy
import json
import logging

import pytest

from handlers import phone
from handlers.masking import mask, unmask
from handlers.settings import SettingsError, load_settings
from tests.conftest import fixture


def settings(**values):
    return load_settings(values, environ={})


def call(number="+18885556789", headers=None, variables=None):
    """A turn request shaped as integration-variables' voice_telephony example."""
    voice = {"private": {"user_phone_number": "+18595553456"}, "sip_call_id": "Aob2-2743",
             "assistant_phone_number": number}
    if headers is not None:
        voice["sip_custom_invite_headers"] = headers
    return {"input": {"text": "hola", "integrations": {"voice_telephony": {"is_dtmf": False}}},
            "context": {"integrations": {"voice_telephony": voice},
                        "skills": {"actions skill": {"skill_variables": variables or {}}}}}


# --- the table -----------------------------------------------------------------------------------

def test_every_built_in_language_has_a_telephony_model_and_a_v3_voice_of_its_language():
    assert set(phone.BUILT_IN_LANGUAGES) == {"de", "en", "es", "fr", "it", "ja", "ko", "nl", "pt"}
    for code, entry in phone.BUILT_IN_LANGUAGES.items():
        assert entry["model"].startswith(code + "-") and entry["model"].endswith("_Telephony")
        assert entry["voice"].startswith(code + "-") and entry["voice"].endswith("V3Voice")
        assert entry["model"].split("_")[0] == entry["voice"].split("_")[0]  # same locale
        assert "Narrowband" not in entry["model"]  # discontinued in August 2023


def test_languages_without_a_voice_are_the_supported_ones_outside_the_table():
    assert phone.languages_without_voice(settings()) == ["sv", "pl", "ru", "tr", "ar", "hi", "zh"]
    assert phone.languages_without_voice(settings(SUPPORTED_LANGUAGES="en,es")) == []


def test_the_start_up_log_names_the_supported_languages_without_a_voice(make_app, caplog):
    with caplog.at_level(logging.INFO, logger="handlers"):
        make_app(SUPPORTED_LANGUAGES="en,es,ru,zh")
    lines = [r.getMessage() for r in caplog.records if "no voice" in r.getMessage()]
    assert len(lines) == 1 and "ru,zh" in lines[0]


def test_phone_languages_file_replaces_and_adds_entries(tmp_path):
    path = tmp_path / "voices.json"
    path.write_text(json.dumps({"es": {"model": "es-LA_Telephony", "voice": "es-LA_SofiaV3Voice"},
                                "sv": {"model": "sv-SE_Telephony", "voice": "sv-SE_MyVoice"}}))
    s = settings(PHONE_LANGUAGES=str(path))
    table = phone.phone_languages(s)
    assert table["es"] == {"model": "es-LA_Telephony", "voice": "es-LA_SofiaV3Voice"}
    assert table["sv"]["voice"] == "sv-SE_MyVoice"
    assert table["fr"] == phone.BUILT_IN_LANGUAGES["fr"]
    assert "sv" not in phone.languages_without_voice(s)


@pytest.mark.parametrize("name, content, words", [
    ("PHONE_LANGUAGES", None, "cannot be read"),
    ("PHONE_LANGUAGES", "{not json", "not valid JSON"),
    ("PHONE_LANGUAGES", "[]", "not a JSON object"),
    ("PHONE_LANGUAGES", '{"es": {"voice": "es-ES_LauraV3Voice"}}', 'needs a "model"'),
    ("PHONE_LANGUAGES", '{"xx": {"model": "a", "voice": "b"}}', "not one of LANGUAGES"),
    ("HANDOFF_TARGETS", '{"es": "Spanish desk"}', "transfer_info.target"),
    ("HANDOFF_TARGETS", '{"qq": {"zendesk": {}}}', "not one of LANGUAGES"),
])
def test_a_wrong_file_stops_the_start_with_one_line_naming_it(tmp_path, name, content, words):
    path = tmp_path / "file.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SettingsError) as error:
        settings(**{name: str(path)})
    message = str(error.value)
    assert message.startswith(name) and words in message and "\n" not in message


@pytest.mark.parametrize("name, value, words", [
    ("PHONE_NUMBER_LANGUAGES", "+34911234567", "<number>=<language>"),
    ("PHONE_NUMBER_LANGUAGES", "=es", "<number>=<language>"),
    ("PHONE_NUMBER_LANGUAGES", "+34911234567=xx", "not one of LANGUAGES"),
    ("PHONE_LANGUAGE_HEADER", "X Customer: Language", "not a SIP header name"),
    ("HANDOFF_NOTE", "maybe", "not a boolean"),
])
def test_a_wrong_value_stops_the_start_naming_the_variable(name, value, words):
    with pytest.raises(SettingsError) as error:
        settings(**{name: value})
    assert name in str(error.value) and words in str(error.value)


def test_numbers_are_compared_by_their_digits():
    s = settings(PHONE_NUMBER_LANGUAGES="+34 911-234-567=es; +33170000000=FR")
    assert s.phone_number_languages == {"34911234567": "es", "33170000000": "fr"}
    assert phone.dialled_language(call("34911234567"), s.phone_number_languages) == "es"
    assert phone.dialled_language(call("+18885556789"), s.phone_number_languages) is None


# --- where the call's language comes from --------------------------------------------------------

def test_call_language_order_chosen_then_sip_then_number_then_session_then_default():
    s = settings(PHONE_LANGUAGE_HEADER="X-Customer-Language",
                 PHONE_NUMBER_LANGUAGES="+34911234567=es,+33170000000=fr")
    everything = call("+33170000000", {"x-customer-language": "de"}, {"chosen_language": "it"})
    assert phone.call_language(everything, s, {"call_language": "ja"}) == ("it", "chosen")
    no_choice = call("+33170000000", {"X-Customer-Language": "de-DE"})
    assert phone.call_language(no_choice, s, {"call_language": "ja"}) == ("de", "sip")
    assert phone.call_language(call("+33170000000"), s, {"call_language": "ja"}) == ("fr", "number")
    assert phone.call_language(call("+18885556789"), s, {"call_language": "ja"}) == ("ja", "session")
    assert phone.call_language(call("+18885556789"), s, {}) == ("en", "default")


def test_the_sip_header_is_read_only_when_named_and_a_language_the_kit_knows():
    headers = {"X-Customer-Language": "es"}
    assert phone.call_language(call(headers=headers), settings(), {}) == ("en", "default")
    s = settings(PHONE_LANGUAGE_HEADER="X-Customer-Language")
    assert phone.call_language(call(headers={"X-Customer-Language": "klingon"}), s, {}) \
        == ("en", "default")


def test_the_words_of_the_turn_never_decide_a_calls_language():
    turn = fixture("phone_turn_agent.phone-context.json")   # IBM's phone turn, "agent "
    turn["input"]["text"] = "Quiero hablar con un agente, por favor"
    assert phone.call_language(turn, settings(), {}) == ("en", "default")


def test_a_voice_turn_is_known_by_its_input_its_call_context_or_the_session():
    assert phone.is_voice_turn(fixture("phone_turn_agent.phone-context.json"), {})
    assert phone.is_voice_turn(fixture("phone_sms_received.phone-actions.json"), {})
    reply = {"output": {"generic": []}, "context": {"skills": {}}}
    assert not phone.is_voice_turn(reply, {})
    assert phone.is_voice_turn(reply, {"call_language": "es"})
    web = fixture("pre_message_request.message_received.json")["payload"]
    assert not phone.is_voice_turn(web, {"language": "es"})


# --- the switch decision -------------------------------------------------------------------------

def test_the_switch_decision():
    s = settings()
    assert phone.decide_switch("es", "en", s) == phone.Switch("es", "es", "en", "switched")
    assert phone.decide_switch("es", "en", s).configure
    assert not phone.decide_switch("es", "es", s).configure
    assert phone.decide_switch("es", "es", s).decision == "kept"
    back = phone.decide_switch("en", "es", s)
    assert (back.spoken, back.decision, back.configure) == ("en", "switched", True)
    russian = phone.decide_switch("ru", "en", s)
    assert (russian.spoken, russian.decision, russian.configure) == \
        ("en", "phone_language_unavailable", False)
    # A caller whose language lost its voice after a switch goes back to the assistant's.
    assert phone.decide_switch("ru", "es", s).configure
    unsupported = phone.decide_switch("es", "en", settings(SUPPORTED_LANGUAGES="en,fr"))
    assert unsupported.decision == "phone_language_unavailable"


def test_the_configured_language_is_the_recorded_one_else_the_assistants():
    s = settings()
    reply = {"context": {"skills": {"actions skill": {"skill_variables": {}}}}}
    assert phone.configured_language(reply, s, {}) == "en"
    assert phone.configured_language(reply, s, {"phone_language": "fr"}) == "fr"
    phone.record_configured(reply, "es", s)
    assert phone.configured_language(reply, s, {"phone_language": "fr"}) == "es"


# --- the commands --------------------------------------------------------------------------------

def test_the_commands_have_the_documented_shapes_with_the_phone_only_filter():
    tts = fixture("runtime_or_editor.text_to_speech.response-types-reference_L1261.json")
    stt = fixture("runtime_or_editor.speech_to_text.response-types-reference_L986.json")
    documented_tts = tts["generic"][0]
    documented_tts["command_info"]["parameters"]["synthesize"]["voice"] = "es-ES_EnriqueV3Voice"
    assert phone.text_to_speech_command("es-ES_EnriqueV3Voice") == documented_tts
    documented_stt = stt["generic"][0]
    parameters = documented_stt["command_info"]["parameters"]
    parameters["narrowband_recognize"] = {"model": "es-ES_Telephony"}
    parameters["update_strategy"] = "merge"
    assert phone.speech_to_text_command("es-ES_Telephony") == documented_stt


def test_the_voice_goes_before_the_first_spoken_item_and_the_model_after_the_reply():
    pause = {"response_type": "pause", "time": 500}
    web_only = {"response_type": "text", "text": "Click here", "channels": [{"channel": "chat"}]}
    text = {"response_type": "text", "text": "Hello"}
    option = {"response_type": "option", "title": "Pick", "options": []}
    generic = [pause, web_only, text, option]
    phone.add_switch_commands(generic, phone.BUILT_IN_LANGUAGES["fr"])
    kinds = [item["response_type"] for item in generic]
    assert kinds == ["pause", "text", "text_to_speech", "text", "option", "speech_to_text"]
    assert generic[2]["command_info"]["parameters"]["synthesize"]["voice"] == "fr-FR_ReneeV3Voice"
    assert generic[-1]["command_info"]["parameters"]["narrowband_recognize"]["model"] \
        == "fr-FR_Telephony"
    nothing_spoken = [{"response_type": "dtmf", "command_info": {"type": "collect"}}]
    phone.add_switch_commands(nothing_spoken, phone.BUILT_IN_LANGUAGES["fr"])
    assert [i["response_type"] for i in nothing_spoken] == ["text_to_speech", "dtmf",
                                                            "speech_to_text"]


# --- the call record -----------------------------------------------------------------------------

def test_cdr_custom_data_is_merged_keeping_the_keys_already_there():
    payload = fixture("context.integrations.voice_telephony.cdr_custom_data.json")
    assert phone.merge_cdr_custom_data(payload, {"customer_language": "es", "translated": True})
    assert payload["context"]["integrations"]["voice_telephony"]["cdr_custom_data"] == {
        "key1": "value1", "key2": "value2", "customer_language": "es", "translated": True}
    empty: dict = {}
    assert phone.merge_cdr_custom_data(empty, {"customer_language": "fr"})
    assert empty == {"context": {"integrations": {"voice_telephony": {
        "cdr_custom_data": {"customer_language": "fr"}}}}}
    assert not phone.merge_cdr_custom_data({"context": "opaque"}, {"customer_language": "fr"})


# --- handoff by language -------------------------------------------------------------------------

def test_a_target_is_merged_into_transfer_info_leaving_other_keys():
    generic = fixture("runtime_or_editor.channel_transfer+connect_to_agent"
                      ".response-types-reference_L419.json")["generic"]
    item = phone.handoff_items(generic)[0]
    assert phone.merge_target(item, {"zendesk": {"department": "Soporte en español"},
                                      "salesforce": {"button_id": "573Es"}})
    assert item["transfer_info"]["target"] == {
        "zendesk": {"department": "Soporte en español"}, "salesforce": {"button_id": "573Es"}}
    sip = {"response_type": "connect_to_agent", "transfer_info": {"target": {"service_desk": {
        "sip": {"uri": "sip:agents\\@example.com", "transfer_method": "refer"}}}}}
    phone.merge_target(sip, {"service_desk": {"sip": {"uri": "sip:es-agents\\@example.com"}}})
    assert sip["transfer_info"]["target"]["service_desk"]["sip"] == {
        "uri": "sip:es-agents\\@example.com", "transfer_method": "refer"}
    bare = copy.deepcopy(fixture("runtime_or_editor.connect_to_agent"
                                 ".response-types-reference_L498.json")["generic"][0])
    phone.merge_target(bare, {"zendesk": {"department": "fr"}})
    assert bare["transfer_info"] == {"target": {"zendesk": {"department": "fr"}}}
    empty = {"response_type": "connect_to_agent", "transfer_info": {"target": None}}
    assert phone.merge_target(empty, {"zendesk": {"department": "es"}})
    assert empty["transfer_info"] == {"target": {"zendesk": {"department": "es"}}}
    odd = {"response_type": "connect_to_agent", "transfer_info": {"target": "agents-es"}}
    assert not phone.merge_target(odd, {"zendesk": {"department": "es"}})
    assert odd["transfer_info"] == {"target": "agents-es"}


def test_the_note_is_one_line_appended_once():
    item = {"response_type": "connect_to_agent",
            "message_to_human_agent": "User asked to speak to an agent."}
    note = phone.handoff_note("es", "Quiero  hablar\ncon alguien")
    assert note == 'Customer\'s language: español (es). Their last words: "Quiero hablar con ' \
                   'alguien"'
    assert phone.add_handoff_note(item, note)
    assert not phone.add_handoff_note(item, note)
    assert item["message_to_human_agent"] == "User asked to speak to an agent.\n" + note
    assert phone.handoff_note("fr", None) == "Customer's language: français (fr)."


# --- SSML ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("ssml", [
    '<break time="500ms"/>', '<say-as interpret-as="digits">4821</say-as>',
    '<say-as interpret-as="letters">IBM</say-as>', '<prosody rate="slow">', '</prosody>',
    '<emphasis level="strong">', '</emphasis>', '<sub alias="World Wide Web">WWW</sub>'])
def test_ssml_is_masked_whole_and_comes_back_intact(ssml):
    text = f"Your code is {ssml} please note it"
    masked = mask(text)
    assert ssml in masked.spans and ssml not in masked.text
    translated = masked.text.replace("Your code is", "Su código es")
    assert unmask(masked, translated) == f"Su código es {ssml} please note it"
