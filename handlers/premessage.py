"""The pre-message webhook: runs before the assistant reads each customer message.

Reference behaviour: work out the customer's language and hand the assistant the message in its
own language. The steps below run in order; each opens with the condition under which it acts:

1. `mark_untranslatable`  no text, TRANSLATION_OFF_VARIABLE true, not a text message, longer
                          than the assistant takes, not Unicode text (a lone surrogate), no
                          letters, a value the assistant just offered (a click), or a channel's
                          control input (`handlers.channels`): marks the turn skipped, nothing
                          to translate
2. `detect_language`      the conversation-aware language of this turn (for a control input,
                          of the SMS it carries, if any)
3. `reply_if_unsupported` a language not in SUPPORTED_LANGUAGES: answer at once (skip processing)
4. `translate_input`      into ASSISTANT_LANGUAGE, numbers and glossary terms masked, failing
                          open
5. `translate_channel_texts` the customer's text a channel sends beside input.text (an SMS)
6. `remember_language`    into the context (the payload's skill) and the session memory

Steps tell each other what they found through the Turn's typed fields (`turn.skipped`,
`turn.language`, `turn.translated`, ...); `turn.notes` only feeds the request's log line (codes,
never text).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from .auth import protect
from .channels import channel_texts, control_input
from .context import is_true, locale_language, read_variable, skill_variables, write_variable
from .envelope import Answer, has_lone_surrogate, payload_reply, render, skip_processing
from .glossary import rules_for
from .language import ENDONYMS, choose_language, has_letters, normalise_code
from .masking import mask, unmask
from .pipeline import Step, Turn, run_steps, start_turn
from .settings import Settings

bp = Blueprint("premessage", __name__)
protect(bp, "premessage")
ACCEPTED_EVENTS = ("message_received",)
# The assistant takes at most 2,048 characters of input; a longer text cannot be a customer's
# message and is passed on untouched, neither scanned nor translated.
MAX_INPUT_CHARS = 2048


def input_text(payload: dict[str, Any]) -> str | None:
    """The customer's text, or None when the input holds none."""
    input_ = payload.get("input")
    text = input_.get("text") if isinstance(input_, dict) else None
    return text if isinstance(text, str) else None


def variable(turn: Turn, name: str) -> Any:
    return read_variable(turn.payload, name, turn.settings.skill_type)


def last_offered_values(turn: Turn) -> set[str]:
    """The option/suggestion values the last reply showed, as post-message remembered them
    (`fields.offered_values` of that reply) in the context and the session memory."""
    values: set[str] = set()
    for source in (variable(turn, turn.settings.offered_options_variable),
                   turn.session_record().get("offered")):
        for value in source if isinstance(source, list) else ():
            if isinstance(value, dict):  # an option value as the assistant sends it back
                input_ = value.get("input")
                value = input_.get("text") if isinstance(input_, dict) else None
            if isinstance(value, str) and value.strip():
                values.add(value.strip())
    return values


def skip_reason(turn: Turn) -> str | None:
    """Why this message must be left alone, or None when it is a message to work on."""
    payload = turn.payload
    text = input_text(payload)
    if text is None or not text.strip():
        return "no_text"
    if is_true(payload, turn.settings.translation_off_variable, turn.settings.skill_type):
        return "translation_off"  # an action collecting a name or an address: keep it as typed
    if control_input(payload):
        return "channel_input"  # a channel's own event: the assistant matches it literally
    if payload["input"].get("message_type", "text") != "text":
        return "not_text"
    if len(text) > MAX_INPUT_CHARS:
        return "too_long"
    if has_lone_surrogate(text):
        return "not_unicode"  # valid JSON, but not text a detector or translator can read
    if not has_letters(text):
        return "no_letters"  # digits, emoji, punctuation, a URL or an e-mail address
    if text.strip() in last_offered_values(turn):
        return "offered_value"  # a click: the value comes back in the assistant's language
    return None


def mark_untranslatable(turn: Turn) -> Answer | None:
    """Only labels: `turn.skipped` says why the message is left alone, and the later steps then
    detect and translate nothing (the session keeps its language)."""
    reason = skip_reason(turn)
    if reason is None:
        return None
    turn.skipped = turn.notes["skipped"] = reason
    return None


def known_languages(turn: Turn) -> tuple[str | None, str | None, str | None]:
    """What the conversation already says about the language: (an explicit choice, the
    session's language from the context or the session memory, the locale's hint)."""
    settings = turn.settings
    languages = settings.languages
    chosen = normalise_code(variable(turn, settings.chosen_language_variable), languages)
    session = (normalise_code(variable(turn, settings.language_variable), languages)
               or normalise_code(turn.session_record().get("language"), languages))
    hint = normalise_code(locale_language(turn.payload), languages)
    return chosen, session, hint


def customer_words(turn: Turn) -> str | None:
    """The text to detect this turn's language from: the input, or for a channel's control
    input the customer's text it carries (an SMS sent during a call); None when there is none."""
    if not turn.skipped:
        return input_text(turn.payload)
    if turn.skipped == "channel_input":
        texts = [holder[key] for holder, key in channel_texts(turn.payload)]
        text = " ".join(texts)
        if text and len(text) <= MAX_INPUT_CHARS and not has_lone_surrogate(text) \
                and has_letters(text):
            return text
    return None


def detect_language(turn: Turn) -> Answer | None:
    """The turn's language: an explicit choice, else the conversation-aware policy."""
    chosen, session, hint = known_languages(turn)
    words = customer_words(turn)
    if words is None and not (chosen or session or hint):
        return None  # nothing said, nothing known: leave the language unset
    settings = turn.settings
    detection = None
    if words is not None and turn.services.detector is not None:
        detection = turn.services.detector.detect(words)
        turn.notes["detected"] = detection.language
        turn.notes["confidence"] = detection.confidence
    turn.language, turn.language_from = choose_language(
        detection, chosen=chosen, session=session, hint=hint,
        min_confidence=settings.language_min_confidence, default=settings.assistant_language,
        text=words)
    turn.notes["language"] = turn.language
    turn.notes["language_from"] = turn.language_from
    return None


def unsupported_reply(settings: Settings) -> str:
    """UNSUPPORTED_LANGUAGE_REPLY, else a default naming the supported languages in their own
    words, so the customer finds theirs."""
    if settings.unsupported_language_reply:
        return settings.unsupported_language_reply
    names = [ENDONYMS.get(code, code) for code in settings.supported_languages]
    return "Sorry, I can only help in: " + ", ".join(names) + "."


def reply_if_unsupported(turn: Turn) -> Answer | None:
    """A language the assistant does not serve: answer directly, the assistant skips the turn.
    The reply is marked (`output.user_defined.unsupported_language`, with the customer's
    language), so that the logged turn is counted as one (`flask logs report`)."""
    if turn.language is None or turn.language in turn.settings.supported_languages:
        return None
    turn.notes["unsupported"] = True
    user_id = turn.payload.get("user_id")
    return skip_processing(unsupported_reply(turn.settings),
                           user_id=user_id if isinstance(user_id, str) else None,
                           user_defined={"unsupported_language": True,
                                         "customer_language": turn.language})


def translate_masked(turn: Turn, text: str) -> tuple[str | None, bool]:
    """`text` in the assistant's language, and whether it needed translating at all.

    Numbers and glossary terms never reach the provider: they are masked and put back once the
    rest is translated (a fixed term as the assistant's phrase). Text that is nothing but those
    needs no provider: (its fixed terms replaced, True), or (None, False) when it stays as it is.
    None with True: the translator failed."""
    settings = turn.settings
    masked = mask(text, rules_for(turn.services.glossary, turn.language or "",
                                  settings.assistant_language))
    if not masked.translatable:
        fixed = masked.untranslated()
        return fixed, fixed is not None
    translator = turn.services.translator
    got = translator.translate(masked.text, turn.language or "", settings.assistant_language,
                               max(0.0, turn.seconds_left()),
                               notes=turn.notes) if translator is not None else None
    return (unmask(masked, got) if got is not None else None), True


def translate_input(turn: Turn) -> Answer | None:
    """Hand the assistant the message in its own language; on any failure, the original goes on."""
    settings = turn.settings
    translator = turn.services.translator
    if turn.skipped or turn.language in (None, settings.assistant_language) or translator is None:
        return None
    payload = turn.payload
    text = input_text(payload) or ""
    translated, needed = translate_masked(turn, text)
    if not needed:
        return None  # nothing but numbers and kept terms: it goes on as typed
    turn.translated = translated is not None
    turn.notes["translated"] = turn.translated
    if translated is None:
        if translator.provider is not None:  # TRANSLATOR=none is no failure
            turn.translation_failed = True
            turn.notes["translation_failed"] = True
            write_variable(payload, settings.translation_failed_variable, True, settings.skill_type)
        return None
    payload["input"]["text"] = translated
    write_variable(payload, settings.original_input_variable, text, settings.skill_type)
    return None


def translate_channel_texts(turn: Turn) -> Answer | None:
    """The customer's texts a channel sends beside input.text (`handlers.channels.TEXT_FIELDS`,
    the SMS of a phone call) go to the assistant in its language, in place, failing open; the
    control keyword in input.text stays as it is."""
    settings = turn.settings
    translator = turn.services.translator
    if turn.language in (None, settings.assistant_language) or translator is None:
        return None
    original = input_text(turn.payload)
    for holder, key in channel_texts(turn.payload):
        text = holder[key]
        if turn.translated and text == variable(turn, settings.original_input_variable):
            holder[key] = original  # the same words as the input, already translated
            continue
        if len(text) > MAX_INPUT_CHARS or has_lone_surrogate(text) or not has_letters(text):
            continue
        translated, needed = translate_masked(turn, text)
        if not needed:
            continue
        turn.notes["channel_text_translated"] = translated is not None
        if translated is not None:
            holder[key] = translated
    return None


def remember_language(turn: Turn) -> Answer | None:
    """Keep the session language in the context and the session memory; drop stale variables."""
    settings = turn.settings
    if turn.language is None:
        return None
    write_variable(turn.payload, settings.language_variable, turn.language, settings.skill_type)
    variables = skill_variables(turn.payload, settings.skill_type) or {}
    if not turn.translated:
        variables.pop(settings.original_input_variable, None)  # last turn's words, not this one's
    if not turn.translation_failed:
        variables.pop(settings.translation_failed_variable, None)
    if turn.session_id and turn.services.sessions is not None:
        # every turn, so the session's TTL runs from its last message
        turn.services.sessions.update(turn.session_id, {"language": turn.language})
    return None


PREMESSAGE_STEPS: list[Step] = [mark_untranslatable, detect_language, reply_if_unsupported,
                                translate_input, translate_channel_texts, remember_language]


@bp.post("/webhooks/premessage")
def premessage() -> Response:
    turn = start_turn("premessage", ACCEPTED_EVENTS)
    return render(run_steps(turn.services.steps["premessage"], turn) or payload_reply(turn.payload))
