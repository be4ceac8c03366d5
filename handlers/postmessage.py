"""The post-message webhook: runs after the assistant built its reply, before the channel gets it.

Reference behaviour: put the reply into the customer's language. The steps below run in order;
each opens with the condition under which it acts.
"""

from __future__ import annotations

from flask import Blueprint, Response

from .auth import protect
from .envelope import payload_reply
from .pipeline import Step, run_steps, start_turn

bp = Blueprint("postmessage", __name__)
protect(bp, "postmessage")
ACCEPTED_EVENTS = ("message_processed",)

POSTMESSAGE_STEPS: list[Step] = []


@bp.post("/webhooks/postmessage")
def postmessage() -> Response:
    turn = start_turn("postmessage", ACCEPTED_EVENTS)
    return run_steps(POSTMESSAGE_STEPS, turn.payload, turn) or payload_reply(turn.payload)
