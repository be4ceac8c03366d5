"""The log webhook: every message/response pair (`message_logged`) and every phone call record
(`cdr_logged`), stored durably. The assistant ignores the body of our answer; a 2xx means "kept".
"""

from __future__ import annotations

from flask import Blueprint, Response

from .auth import protect
from .envelope import json_response
from .pipeline import Step, run_steps, start_turn

bp = Blueprint("logs", __name__)
protect(bp, "log")
ACCEPTED_EVENTS = ("message_logged", "cdr_logged")

LOG_STEPS: list[Step] = []


@bp.post("/webhooks/logs")
def logs() -> Response:
    turn = start_turn("log", ACCEPTED_EVENTS)
    return run_steps(LOG_STEPS, turn.payload, turn) or json_response({"accepted": True})
