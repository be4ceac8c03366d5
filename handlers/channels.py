"""What channels put into a message besides the customer's words, and where their readable text is.

Pre-message: a channel sends some turns that no customer typed. IBM's phone integration sends
its events as `input.text` ("vgwSMSMessage", "vgwPostResponseTimeout", ...) and the assistant's
actions match those words literally, so they must reach it as they are: not detected, not
translated, and they never change the conversation's language. It flags others in
`input.integrations.voice_telephony` (a timeout, a DTMF key press). `control_input` recognises
both. The text a caller sent by SMS during a call arrives beside the keyword, in
`input.integrations.voice_telephony.sms_message`; `channel_texts` finds it so the pre-message
step can detect and translate it in place.

Sources: "Handling phone interactions" (phone-actions, #phone-actions-sms) and "Phone integration
context variables" (phone-context) in IBM's watsonx Assistant docs; copies in tests/fixtures.

To recognise another channel's control input, add its exact text to `CONTROL_INPUTS` (or its
boolean flag to `CONTROL_FLAGS`); to detect and translate another channel field holding a
customer's text, add its path under `input.integrations` to `TEXT_FIELDS`.
"""

from __future__ import annotations

from typing import Any

# input.text values a channel sends on its own, matched exactly (after trimming spaces).
CONTROL_INPUTS: dict[str, str] = {
    "vgwSMSMessage": "voice_telephony",            # the caller sent an SMS (text: sms_message)
    "vgwSMSFailed": "voice_telephony",             # an SMS to the caller could not be sent
    "vgwNoInputTurn": "voice_telephony",           # a turn forced without caller input
    "vgwPostResponseTimeout": "voice_telephony",   # the caller said nothing after the reply
    "vgwFinalUtteranceTimeout": "voice_telephony",  # no final utterance from speech to text
    "vgwHangUp": "voice_telephony",                # the caller hung up
}

# (integration, flag): a true flag in input.integrations.<integration> marks a control input
# whatever input.text holds (the timeout words, or the digits a caller keyed in).
CONTROL_FLAGS: tuple[tuple[str, str], ...] = (
    ("voice_telephony", "post_response_timeout_occurred"),
    ("voice_telephony", "final_utterance_timeout_occurred"),
    ("voice_telephony", "is_dtmf"),
)

# (integration, field): a customer's own text that a channel sends beside input.text.
TEXT_FIELDS: tuple[tuple[str, str], ...] = (
    ("voice_telephony", "sms_message"),
)


def _integrations(payload: dict[str, Any]) -> dict[str, Any]:
    input_ = payload.get("input")
    integrations = input_.get("integrations") if isinstance(input_, dict) else None
    return integrations if isinstance(integrations, dict) else {}


def control_input(payload: dict[str, Any]) -> str | None:
    """The integration whose control input this turn is ("voice_telephony"), or None when the
    input is the customer's own words."""
    input_ = payload.get("input")
    text = input_.get("text") if isinstance(input_, dict) else None
    if isinstance(text, str) and text.strip() in CONTROL_INPUTS:
        return CONTROL_INPUTS[text.strip()]
    integrations = _integrations(payload)
    for integration, flag in CONTROL_FLAGS:
        values = integrations.get(integration)
        if isinstance(values, dict) and values.get(flag) is True:
            return integration
    return None


def channel_texts(payload: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """Where the customer's texts sent beside input.text are: (holder, key) pairs whose value is
    a non-blank string."""
    found: list[tuple[dict[str, Any], str]] = []
    integrations = _integrations(payload)
    for integration, name in TEXT_FIELDS:
        holder = integrations.get(integration)
        if isinstance(holder, dict) and isinstance(holder.get(name), str) \
                and holder[name].strip():
            found.append((holder, name))
    return found
