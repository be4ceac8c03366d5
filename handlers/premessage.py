"""The pre-message webhook: runs before the assistant reads each customer message.

Reference behaviour: work out the customer's language and hand the assistant the message in its
own language. The steps below run in order; each opens with the condition under which it acts.
"""

from __future__ import annotations

from flask import Blueprint, Response

from .auth import protect
from .envelope import payload_reply
from .pipeline import Step, run_steps, start_turn

bp = Blueprint("premessage", __name__)
protect(bp, "premessage")
ACCEPTED_EVENTS = ("message_received",)

PREMESSAGE_STEPS: list[Step] = []


@bp.post("/webhooks/premessage")
def premessage() -> Response:
    turn = start_turn("premessage", ACCEPTED_EVENTS)
    return run_steps(PREMESSAGE_STEPS, turn.payload, turn) or payload_reply(turn.payload)
