"""Worked example: adding your own steps to the kit's webhooks.

The rule here: customers sometimes type e-mail addresses and card numbers. Neither the assistant,
nor the translation provider, nor the assistant's own logs should see them. So:

- `mask_personal_data` (pre-message, first step) replaces each one with a placeholder such as
  `{{email_1}}` and keeps the originals in the session memory (in process or Redis: never in the
  context, which the assistant stores and logs);
- `restore_personal_data` (post-message, last step) puts them back wherever the reply repeats a
  placeholder, after the reply was translated (the kit never translates `{{...}}` placeholders).

Run the kit with these steps added:

    flask --app "examples.custom_step:create_app()" run
    python -m server "examples.custom_step:create_app()"

Each step is a plain function `step(turn)` that opens with its condition and changes
`turn.payload` in place; `create_app` below is the kit's factory with the step lists extended.
That is all there is to it.

A step is unit-tested without an app: `Turn.for_test(payload)` is a Turn with the kit's services
built offline (a session memory in a temporary folder, no provider), and a second turn given
`services=` the first one's shares its session memory, as two requests of a conversation do:

    def test_a_card_number_never_leaves_the_session():
        said = Turn.for_test({"input": {"text": "my card is 4111 1111 1111 1111"},
                              "context": {"global": {"session_id": "s1"}}})
        assert mask_personal_data(said) is None
        assert said.payload["input"]["text"] == "my card is {{card_1}}"
        reply = Turn.for_test({"output": {"generic": [{"response_type": "text",
                                                       "text": "Card {{card_1}} is blocked"}]},
                               "context": {"global": {"session_id": "s1"}}},
                              "postmessage", services=said.services)
        restore_personal_data(reply)
        assert reply.payload["output"]["generic"][0]["text"] == "Card 4111 1111 1111 1111 is blocked"
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from flask import Flask

from handlers import create_app as create_kit_app
from handlers.pipeline import Answer, Turn
from handlers.postmessage import POSTMESSAGE_STEPS
from handlers.premessage import PREMESSAGE_STEPS
from handlers.redact import luhn_valid

# Both patterns start a match only where a run of their characters starts (the lookbehinds) and
# repeat a bounded number of times, so a 200 KB word costs one pass, not one pass per letter.
EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63})+\b")
CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
PLACEHOLDER = re.compile(r"\{\{(email|card)_(\d+)\}\}")
MEMORY_KEY = "masked_personal_data"


def is_card_number(number: str) -> bool:
    """Card numbers carry a Luhn check digit; other long digit runs (orders, phones) do not."""
    digits = "".join(d for d in number if d.isdigit())
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


def mask_personal_data(turn: Turn) -> Answer | None:
    """Replace e-mail addresses and card numbers in the customer's message by placeholders."""
    message = turn.payload.get("input")
    text = message.get("text") if isinstance(message, dict) else None
    sessions = turn.services.sessions
    if not isinstance(text, str) or not text or not turn.session_id or sessions is None:
        return None
    originals: dict[str, str] = {}

    def hide(kind: str) -> Any:
        def replace(match: re.Match[str]) -> str:
            if kind == "card" and not is_card_number(match.group(0)):
                return match.group(0)
            name = f"{kind}_{sum(1 for k in originals if k.startswith(kind)) + 1}"
            originals[name] = match.group(0)
            return "{{" + name + "}}"
        return replace

    masked = CARD.sub(hide("card"), EMAIL.sub(hide("email"), text))
    if not originals:
        return None
    message["text"] = masked
    sessions.update(turn.session_id, {MEMORY_KEY: originals})
    turn.notes["masked"] = len(originals)
    return None


def restore_personal_data(turn: Turn) -> Answer | None:
    """Put the customer's own e-mail addresses and card numbers back where the reply uses them."""
    originals = turn.session_record().get(MEMORY_KEY)
    output = turn.payload.get("output")
    if not originals or not isinstance(output, dict):
        return None

    def restore(value: Any) -> Any:
        if isinstance(value, str):
            return PLACEHOLDER.sub(lambda m: originals.get(f"{m[1]}_{m[2]}", m[0]), value)
        if isinstance(value, list):
            return [restore(item) for item in value]
        if isinstance(value, dict):
            return {key: restore(item) for key, item in value.items()}
        return value

    output["generic"] = restore(output.get("generic", []))
    return None


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The kit with the two steps added: masking first, restoring last."""
    return create_kit_app(config, steps={
        "premessage": [mask_personal_data, *PREMESSAGE_STEPS],
        "postmessage": [*POSTMESSAGE_STEPS, restore_personal_data],
    })
