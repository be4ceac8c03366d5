"""The post-message webhook: runs after the assistant built its reply, before the channel gets it.

Reference behaviour: put the reply into the customer's language. The steps below run in order;
each opens with the condition under which it acts.

1. `read_customer_language`: the language the pre-message step recorded, from its context
   variable, else the session memory. With neither, the reply goes out as the assistant wrote it.
2. `read_call_language`: on a phone call, the language the reply is spoken in instead: the
   call's (`handlers.phone`), or the assistant's when IBM has no voice for it.
3. `resolve_content_keys`: items that name a key of the content store are replaced by its
   content, in the customer's language when the store has it (then it is not machine-translated).
4. `translate_reply`: every string a person reads (see `handlers.fields`) goes to the translator
   once, all at once, under the request's TRANSLATION_TIMEOUT; whatever is not back in time stays
   in the assistant's language.
5. `switch_call_voice`: on a phone call whose language differs from the one the call is set for,
   IBM's `text_to_speech` and `speech_to_text` configure commands around the reply.
6. `tag_call_record`: on a phone call, the caller's language into the call's `cdr_custom_data`.
7. `route_handoff`: a transfer to a human agent goes to HANDOFF_TARGETS' target for the
   customer's language, with a note of the language and their last words (HANDOFF_NOTE).
8. `remember_offered_options`: the values a click on this reply would send back, so the
   pre-message step knows a click is not a change of language.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Blueprint, Response

from . import fields
from .auth import protect
from .context import read_variable, write_variable
from .envelope import Answer, payload_reply, render
from .glossary import rules_for
from .language import normalise_code
from .phone import (CALL_KEY, CONFIGURED_KEY, add_handoff_note, add_switch_commands,
                    words_as_typed, handoff_items, handoff_note, merge_cdr_custom_data,
                    merge_target, phone_languages, read_call, record_configured)
from .pipeline import Step, Turn, run_steps, start_turn

bp = Blueprint("postmessage", __name__)
protect(bp, "postmessage")
ACCEPTED_EVENTS = ("message_processed",)
log = logging.getLogger(__name__)

CONTENT_PLACEHOLDER = re.compile(r"^\s*\{\{\s*content\s*:\s*([^{}\s]+)\s*\}\}\s*$")


# --- what the steps share -----------------------------------------------------------------------

def is_assistant_language(language: str, turn: Turn) -> bool:
    """True for the assistant's own language, also in a regional form ("en-gb" for "en")."""
    assistant = turn.settings.assistant_language
    return language == assistant or language.split("-")[0] == assistant


def _generic(payload: dict[str, Any]) -> list[Any] | None:
    output = payload.get("output")
    generic = output.get("generic") if isinstance(output, dict) else None
    return generic if isinstance(generic, list) else None


def content_key_of(item: Any) -> str | None:
    """The content key an item names: `{"response_type": "user_defined", "user_defined":
    {"content_key": KEY}}`, or a text item whose whole text is `{{content:KEY}}`."""
    if not isinstance(item, dict):
        return None
    if item.get("response_type") == "user_defined" and isinstance(item.get("user_defined"), dict):
        key = item["user_defined"].get("content_key")
        return key.strip() if isinstance(key, str) and key.strip() else None
    if item.get("response_type") == "text" and isinstance(item.get("text"), str):
        match = CONTENT_PLACEHOLDER.match(item["text"])
        return match.group(1) if match else None
    return None


# --- the steps ----------------------------------------------------------------------------------

def read_customer_language(turn: Turn) -> Answer | None:
    """The customer's language (among LANGUAGES), as the pre-message step recorded it: its
    context variable, else the session memory by session id. Unknown leaves `turn.language`
    None, and the later steps leave the reply as the assistant wrote it."""
    settings = turn.settings
    variable = read_variable(turn.payload, settings.language_variable, settings.skill_type)
    language = normalise_code(variable, settings.languages)
    turn.language_from = "context"
    if language is None:
        language = normalise_code(turn.session_record().get("language"), settings.languages)
        turn.language_from = "session" if language else "unknown"
    turn.language = language
    turn.notes["language_from"] = turn.language_from
    return None


def read_call_language(turn: Turn) -> Answer | None:
    """On a phone call, the reply is spoken in the call's language, read again from the reply:
    an action may just have set CHOSEN_LANGUAGE_VARIABLE (the caller pressed 2 for Spanish). A
    language IBM has no voice for is answered in the assistant's language."""
    session = turn.session_record()
    call = turn.call = read_call(turn.payload, turn.settings, session)
    if call is None:
        return None
    turn.language, turn.language_from = call.spoken, call.source
    notes = turn.notes
    notes["call_language"], notes["language_from"], notes["phone"] = \
        call.language, call.source, call.decision
    if turn.session_id and turn.services.sessions is not None \
            and session.get(CALL_KEY) != call.language:
        turn.services.sessions.update(turn.session_id, {CALL_KEY: call.language})
    return None


def resolve_content_keys(turn: Turn) -> Answer | None:
    """Replace items that name a content key by the store's content for it, in the customer's
    language when the store has that, else in the assistant's (translated by the next step)."""
    store = turn.services.content
    generic = _generic(turn.payload)
    if store is None or not len(store) or not generic:
        return None
    if not any(content_key_of(item) for item in generic):
        return None
    language = turn.language
    assistant = turn.settings.assistant_language
    found = missing = 0
    resolved: list[Any] = []
    for item in generic:
        key = content_key_of(item)
        hit = store.lookup(key, [language, assistant]) if key else None
        if hit is None:
            if key:
                missing += 1
                # The key comes from the assistant's design, not from the customer.
                log.warning("content key not found; item left as it is",
                            extra={"fields": {"content_key": key[:100], "language": language}})
            resolved.append(item)
            continue
        found += 1
        written_in, items = hit
        if not is_assistant_language(written_in, turn):
            # Written in the customer's language: no machine translation for these items.
            turn.localized_items.update(id(new) for new in items)
        resolved.extend(items)
    generic[:] = resolved
    turn.notes["content_keys"] = found
    if missing:
        turn.notes["content_missing"] = missing
    return None


def translate_reply(turn: Turn) -> Answer | None:
    """Translate every string of the reply a person reads into the customer's language.

    Distinct strings go to the translator once, together, under what is left of
    TRANSLATION_TIMEOUT; each string not translated in time stays as the assistant wrote it."""
    output = turn.payload.get("output")
    translator = turn.services.translator
    if not isinstance(output, dict) or translator is None:
        return None
    language = turn.language
    if not language or is_assistant_language(language, turn):
        return None
    localized = turn.localized_items
    slots = fields.find_output_texts(output, skip=lambda item: id(item) in localized)
    fields.mask_slots(slots, rules_for(turn.services.glossary, turn.settings.assistant_language,
                                       language))
    wanted = fields.wanted(slots)
    if not wanted:
        done, _ = fields.apply(slots, {})  # fixed glossary terms only: no provider needed
        if done:
            turn.translated = True
            turn.notes["translated"] = done
        return None
    try:
        translations = translator.translate_many(wanted, turn.settings.assistant_language,
                                                 language, max(0.0, turn.seconds_left()),
                                                 notes=turn.notes)
    except Exception as exc:  # the translator fails open itself; this is the last safety net
        log.error("translation failed; reply left in the assistant's language",
                  extra={"fields": {"exception": type(exc).__name__}})
        translations = {}
    done, kept = fields.apply(slots, translations)
    turn.translated = done > 0
    turn.notes["translated"] = done
    if kept:
        turn.notes["untranslated"] = kept
    return None


def switch_call_voice(turn: Turn) -> Answer | None:
    """A phone call whose spoken language is not the one it is configured for: the voice changes
    before the first spoken item, the speech model after the reply (IBM's documented commands,
    for the phone channel only), and the new language is recorded so later turns add nothing."""
    switch = turn.call
    generic = _generic(turn.payload)
    entry = phone_languages(turn.settings).get(switch.spoken) if switch else None
    if switch is None or not switch.configure or generic is None or entry is None:
        return None
    add_switch_commands(generic, entry)
    record_configured(turn.payload, switch.spoken, turn.settings)
    if turn.session_id and turn.services.sessions is not None:
        turn.services.sessions.update(turn.session_id, {CONFIGURED_KEY: switch.spoken})
    turn.notes["phone_switched_to"] = switch.spoken
    return None


def tag_call_record(turn: Turn) -> Answer | None:
    """A phone call: the caller's language, and whether this reply was translated, merged into
    the call's `cdr_custom_data` (keys already there kept), so every `cdr_logged` record of the
    call says its language."""
    if turn.call is None:
        return None
    merge_cdr_custom_data(turn.payload, {"customer_language": turn.call.language,
                                         "translated": turn.translated})
    return None


def route_handoff(turn: Turn) -> Answer | None:
    """A transfer to a human agent, on any channel: HANDOFF_TARGETS' fields for the customer's
    language merged into `transfer_info.target` (a Zendesk department, a Salesforce button, a SIP
    URI), and, for a customer in another language than the agent's (the assistant's), one line
    with their language and last words as typed appended to `message_to_human_agent`."""
    items = handoff_items(_generic(turn.payload) or [])
    if not items:
        return None
    language = turn.call.language if turn.call else turn.language
    if not language:
        return None
    settings = turn.settings
    target = settings.handoff_targets.get(language)
    routed = sum(merge_target(item, target) for item in items) if target else 0
    noted = 0
    if settings.handoff_note and not is_assistant_language(language, turn):
        note = handoff_note(language, words_as_typed(turn.payload, settings))
        noted = sum(add_handoff_note(item, note) for item in items)
    turn.notes["handoff_language"] = language
    turn.notes["handoff_routed"], turn.notes["handoff_noted"] = routed, noted
    return None


def remember_offered_options(turn: Turn) -> Answer | None:
    """Record the values a click on this reply sends back (bounded by OFFERED_OPTIONS_MAX), in
    the session memory and the context, so the pre-message step passes a click through and keeps
    the customer's language. Only for a customer in another language than the assistant's: a click
    in the assistant's own language needs no recognising."""
    payload = turn.payload
    generic = _generic(payload)
    language = turn.language
    if generic is None or not language or is_assistant_language(language, turn):
        return None
    settings = turn.settings
    values = fields.offered_values(generic, settings.offered_options_max)
    in_context = read_variable(payload, settings.offered_options_variable, settings.skill_type)
    if not values and not in_context and not turn.session_record().get("offered"):
        return None  # nothing offered now, and nothing left over from an earlier reply
    if turn.session_id and turn.services.sessions is not None:
        turn.services.sessions.update(turn.session_id, {"offered": values})
    if isinstance(payload.get("context"), dict) and (values or in_context is not None):
        write_variable(payload, settings.offered_options_variable, values, settings.skill_type)
    turn.notes["offered"] = len(values)
    return None


POSTMESSAGE_STEPS: list[Step] = [read_customer_language, read_call_language, resolve_content_keys,
                                 translate_reply, switch_call_voice, tag_call_record,
                                 route_handoff, remember_offered_options]


@bp.post("/webhooks/postmessage")
def postmessage() -> Response:
    turn = start_turn("postmessage", ACCEPTED_EVENTS)
    return render(run_steps(turn.services.steps["postmessage"], turn)
                  or payload_reply(turn.payload))
