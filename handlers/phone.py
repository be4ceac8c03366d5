"""Phone calls in the customer's language: which language a call speaks, the voice and speech
model for it, the commands that switch them, the call record's tag, and handoff by language.

A caller's words reach the kit as a transcript made by the speech-to-text model the call is
configured for, so a transcript is always "in" that model's language and detecting the language
from it proves nothing. The call's language comes instead from what the call itself says
(`call_language`): a choice the assistant made (a DTMF or spoken language menu sets
CHOSEN_LANGUAGE_VARIABLE), a SIP INVITE header the caller's IVR set (PHONE_LANGUAGE_HEADER), the
number dialled (PHONE_NUMBER_LANGUAGES), what the session memory remembers of the call, else
ASSISTANT_LANGUAGE.

A language is spoken only when IBM's services have a voice and a telephony model for it
(`BUILT_IN_LANGUAGES`, or PHONE_LANGUAGES); a caller in another language hears the assistant's
language (`phone_language_unavailable`). When the call's language differs from the one the call is
configured for, the post-message webhook adds IBM's two documented commands around the reply: a
`text_to_speech` configure before the first spoken item and a `speech_to_text` configure (merge)
after it, both only for the phone channel.

Sources (IBM docs): watsonx Assistant "Handling phone interactions" (phone-actions), "Phone
integration context variables" (phone-context), "Integration variables" (integration-variables);
Speech to Text "Next-generation languages and models" (models-ng); Text to Speech "Languages and
voices" (voices). Everything here is plain data in, plain data out: no Flask, no I/O.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from .context import read_variable, skill_variables, write_variable
from .language import ENDONYMS, language_tag, normalise_code
from .settings.phone import digits

if TYPE_CHECKING:
    from .settings import Settings

VOICE = "voice_telephony"
# The filter that keeps a response item off every channel but the phone (response-types-reference).
PHONE_ONLY = [{"channel": VOICE}]

# Every language IBM both speaks and transcribes on the phone: a next-generation telephony model
# (models-ng; the previous-generation *_NarrowbandModel models were discontinued in August 2023)
# and an enhanced neural V3 voice (voices). Arabic, Chinese, Czech and Swedish have a model but lost
# their voices in March 2023; Russian and Turkish have neither. The Dutch voice is beta.
BUILT_IN_LANGUAGES: dict[str, dict[str, str]] = {
    "de": {"model": "de-DE_Telephony", "voice": "de-DE_BirgitV3Voice"},
    "en": {"model": "en-US_Telephony", "voice": "en-US_AllisonV3Voice"},
    "es": {"model": "es-ES_Telephony", "voice": "es-ES_EnriqueV3Voice"},
    "fr": {"model": "fr-FR_Telephony", "voice": "fr-FR_ReneeV3Voice"},
    "it": {"model": "it-IT_Telephony", "voice": "it-IT_FrancescaV3Voice"},
    "ja": {"model": "ja-JP_Telephony", "voice": "ja-JP_EmiV3Voice"},
    "ko": {"model": "ko-KR_Telephony", "voice": "ko-KR_JinV3Voice"},
    "nl": {"model": "nl-NL_Telephony", "voice": "nl-NL_MerelV3Voice"},
    "pt": {"model": "pt-BR_Telephony", "voice": "pt-BR_IsabelaV3Voice"},
}

# The session memory's keys for a call: the call's language (its presence marks the session as a
# call, for turns whose payload does not say so), and the language the call is configured for.
CALL_KEY = "call_language"
CONFIGURED_KEY = "phone_language"
# The context variable (beside LANGUAGE_VARIABLE) holding the language the call is configured for.
CONFIGURED_VARIABLE = "phone_language"

# Response types the phone reads aloud; the commands, pauses and custom items are not spoken.
SPOKEN_TYPES = frozenset({"text", "option", "suggestion", "connect_to_agent", "search",
                          "conversational_search", "conversation_search"})


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def call_context(payload: dict[str, Any]) -> dict[str, Any]:
    """`context.integrations.voice_telephony` as the phone channel sent it ({} when absent)."""
    return _dict(_dict(_dict(payload.get("context")).get("integrations")).get(VOICE))


def is_voice_turn(payload: dict[str, Any], session: Mapping[str, Any]) -> bool:
    """Whether this turn belongs to a phone call: the channel's per-turn input
    (`input.integrations.voice_telephony`) or call context is there, or the session memory
    remembers the call (a reply's payload may carry neither)."""
    turn_input = _dict(_dict(payload.get("input")).get("integrations")).get(VOICE)
    return isinstance(turn_input, dict) or bool(call_context(payload)) or bool(session.get(CALL_KEY))


def sip_header(payload: dict[str, Any], name: str) -> str | None:
    """A SIP INVITE header's value from `sip_custom_invite_headers`, the name compared without
    regard to case (IBM's own example spells them in lower case)."""
    headers = _dict(call_context(payload).get("sip_custom_invite_headers"))
    wanted = name.lower()
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == wanted and isinstance(value, str):
            return value
    return None


def dialled_language(payload: dict[str, Any], numbers: Mapping[str, str]) -> str | None:
    """The language PHONE_NUMBER_LANGUAGES gives the number the caller dialled
    (`assistant_phone_number`); `numbers` maps digits to a language."""
    number = call_context(payload).get("assistant_phone_number")
    return numbers.get(digits(number)) if isinstance(number, str) and number else None


def call_language(payload: dict[str, Any], settings: Settings,
                  session: Mapping[str, Any]) -> tuple[str, str]:
    """The call's language and where it came from: "chosen" (CHOSEN_LANGUAGE_VARIABLE), "sip"
    (the PHONE_LANGUAGE_HEADER header), "number" (PHONE_NUMBER_LANGUAGES), "session" (what an
    earlier turn of the call decided: the session memory, else LANGUAGE_VARIABLE), else
    ASSISTANT_LANGUAGE ("default"). Never the words of the turn: a transcript is in the language
    of the model that made it."""
    languages = settings.languages
    chosen = normalise_code(read_variable(payload, settings.chosen_language_variable,
                                          settings.skill_type), languages)
    if chosen:
        return chosen, "chosen"
    if settings.phone_language_header:
        header = normalise_code(sip_header(payload, settings.phone_language_header), languages)
        if header:
            return header, "sip"
    number = dialled_language(payload, settings.phone_number_languages)
    if number:
        return number, "number"
    remembered = normalise_code(session.get(CALL_KEY), languages) or normalise_code(
        read_variable(payload, settings.language_variable, settings.skill_type), languages)
    if remembered:
        return remembered, "session"
    return settings.assistant_language, "default"


def configured_language(payload: dict[str, Any], settings: Settings,
                        session: Mapping[str, Any]) -> str:
    """The language the call's voice and speech model are set for: the one the kit last switched
    to (context, else session memory), else the assistant's (the phone integration's own)."""
    for value in (read_variable(payload, CONFIGURED_VARIABLE, settings.skill_type),
                  session.get(CONFIGURED_KEY)):
        code = language_tag(value)
        if code:
            return code
    return settings.assistant_language


@dataclass(frozen=True)
class Switch:
    """What a phone turn decides: the caller's language, the language the reply is spoken in,
    the one the call was configured for, and the decision's name for the log line."""

    language: str
    spoken: str
    configured: str
    decision: str  # "switched", "kept" or "phone_language_unavailable"
    source: str = "default"  # where the call's language came from (`call_language`)

    @property
    def configure(self) -> bool:
        """Whether the call's voice and speech model must change on this turn."""
        return self.spoken != self.configured


def decide_switch(language: str, configured: str, settings: Settings,
                  source: str = "default") -> Switch:
    """A language with a voice (and served) is spoken; any other is answered in the assistant's
    language, which the call is switched back to if it was elsewhere."""
    assistant = settings.assistant_language
    if language in phone_languages(settings) and language in settings.supported_languages:
        return Switch(language, language, configured,
                      "kept" if language == configured else "switched", source)
    return Switch(language, assistant, configured, "phone_language_unavailable", source)


def read_call(payload: dict[str, Any], settings: Settings,
              session: Mapping[str, Any]) -> Switch | None:
    """What a phone turn decides (its language, spoken and configured), None off the phone."""
    if not is_voice_turn(payload, session):
        return None
    language, source = call_language(payload, settings, session)
    return decide_switch(language, configured_language(payload, settings, session), settings,
                         source)


def phone_languages(settings: Settings) -> dict[str, dict[str, str]]:
    """The voice and model per language: the built-in table, PHONE_LANGUAGES' entries replacing
    or adding to it."""
    return {**BUILT_IN_LANGUAGES, **settings.phone_languages}


def languages_without_voice(settings: Settings) -> list[str]:
    """SUPPORTED_LANGUAGES that a call cannot speak (no entry in the phone languages table)."""
    table = phone_languages(settings)
    return [code for code in settings.supported_languages if code not in table]


# --- the commands, in IBM's documented shapes (phone-actions) ----------------------------------

def text_to_speech_command(voice: str) -> dict[str, Any]:
    return {"response_type": "text_to_speech",
            "command_info": {"type": "configure",
                             "parameters": {"synthesize": {"voice": voice}}},
            "channels": copy.deepcopy(PHONE_ONLY)}


def speech_to_text_command(model: str) -> dict[str, Any]:
    """`merge`, not the default `replace`: a custom language model or other recognition setting
    the assistant set earlier survives the change of model (only root-level fields are replaced)."""
    return {"response_type": "speech_to_text",
            "command_info": {"type": "configure",
                             "parameters": {"update_strategy": "merge",
                                            "narrowband_recognize": {"model": model}}},
            "channels": copy.deepcopy(PHONE_ONLY)}


def is_spoken(item: Any) -> bool:
    """Whether the phone reads this item aloud: a readable type, not kept off the phone by a
    channel filter."""
    if not isinstance(item, dict) or item.get("response_type") not in SPOKEN_TYPES:
        return False
    channels = item.get("channels")
    if not isinstance(channels, list) or not channels:
        return True
    return any(isinstance(c, dict) and c.get("channel") == VOICE for c in channels)


def add_switch_commands(generic: list[Any], entry: Mapping[str, str]) -> None:
    """The voice before the first spoken item (so the reply is read in the new voice; at the
    start when nothing is spoken) and the speech model after the reply (the caller's next words),
    in place. Commands are processed in order (phone-actions, "Defining a sequence")."""
    first = next((index for index, item in enumerate(generic) if is_spoken(item)), 0)
    generic.insert(first, text_to_speech_command(entry["voice"]))
    generic.append(speech_to_text_command(entry["model"]))


def record_configured(payload: dict[str, Any], language: str, settings: Settings) -> None:
    """Keep the language the call is now configured for in the context (the session memory is
    the caller's to update), so later turns add no command."""
    write_variable(payload, CONFIGURED_VARIABLE, language, settings.skill_type)


def merge_cdr_custom_data(payload: dict[str, Any], values: Mapping[str, Any]) -> bool:
    """Merge `values` into `context.integrations.voice_telephony.cdr_custom_data`, keeping every
    key already there; the channel merges it into the call's `cdr_logged` record
    (integration-variables). False when the context is not an object."""
    node: Any = payload
    for key in ("context", "integrations", VOICE, "cdr_custom_data"):
        if node.get(key) is None:
            node[key] = {}
        node = node[key]
        if not isinstance(node, dict):
            return False
    node.update(values)
    return True


# --- handoff by language -----------------------------------------------------------------------

def merged(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `extra` merged in: objects merged key by key, any other value replaced."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def handoff_items(generic: list[Any]) -> list[dict[str, Any]]:
    return [item for item in generic
            if isinstance(item, dict) and item.get("response_type") == "connect_to_agent"]


def merge_target(item: dict[str, Any], target: Mapping[str, Any]) -> bool:
    """Merge `target` (HANDOFF_TARGETS for the customer's language) into the item's
    `transfer_info.target`, leaving its other keys as the assistant wrote them."""
    info = item.get("transfer_info")
    if info is None:
        info = item["transfer_info"] = {}
    if not isinstance(info, dict) or not isinstance(info.get("target") or {}, dict):
        return False   # a target of the assistant's that is not an object: left as written
    info["target"] = merged(info.get("target") or {}, target)
    return True


def handoff_note(language: str, words: str | None) -> str:
    """The line for the human agent, in the assistant's language: the customer's language and
    their last words as they wrote or said them."""
    name = ENDONYMS.get(language, language)
    note = f"Customer's language: {name} ({language})."
    if words:
        note += f' Their last words: "{" ".join(words.split())}"'
    return note


def add_handoff_note(item: dict[str, Any], note: str) -> bool:
    """Append the note as a line of `message_to_human_agent` (once: a repeated reply is left)."""
    message = item.get("message_to_human_agent")
    if message is not None and not isinstance(message, str):
        return False
    message = message or ""
    if note in message:
        return False
    item["message_to_human_agent"] = f"{message}\n{note}" if message else note
    return True


def words_as_typed(payload: dict[str, Any], settings: Settings) -> str | None:
    """The customer's last message as typed, which the pre-message step kept when it translated
    it (ORIGINAL_INPUT_VARIABLE)."""
    value = (skill_variables(payload, settings.skill_type) or {}).get(
        settings.original_input_variable)
    return value if isinstance(value, str) and value.strip() else None
