"""The log webhook: every message/response pair (`message_logged`) and every phone call record
(`cdr_logged`), stored durably. The assistant ignores the body of our answer; a 2xx means "kept".

The steps, in order:

1. `extract_fields`       the columns worth querying (ids, times, texts, top intent, language)
                          and the idempotency key, from the event as received (the mapping is
                          the store's: handlers/store/rows.py)
2. `redact_personal_data` with LOG_REDACT, masks e-mails, phones, cards, IBANs, national ids in
                          those columns and in the raw copy, before anything is written
3. `store_event`          inserts the row (a duplicate key stores nothing) and returns only once
                          it is committed; 503 `store_unavailable` if it could not be

The row's raw copy is derived from the event the steps leave in `turn.body`, when the row is
stored (`handlers/store/rows.py`, `raw_copy`): the text received while it still says that event,
else the event written out. A step of yours that changes the event changes `turn.body` (in place
or by replacing it), and the change is what is stored.

IBM documents no retries for this webhook: a 503 tells whoever reads the assistant's logs that
the event was not kept, and a 2xx is never sent for an event that is not on disk.
"""

from __future__ import annotations

from flask import Blueprint, Response

from .auth import protect
from .envelope import Answer, render
from .pipeline import Step, Turn, run_steps, start_turn
from .redact import redact_json, redact_text
from .store import StoreUnavailable, events
from .store.rows import new_row, raw_copy

bp = Blueprint("logs", __name__)
protect(bp, "logs")
ACCEPTED_EVENTS = ("message_logged", "cdr_logged")
# The columns redaction scans: every one holding what the customer or the assistant's variables
# may set. The ids (session, assistant, skill, environment) come from where IBM puts its own.
TEXT_COLUMNS = ("customer_text", "original_text", "reply_text", "customer_id", "intent",
                "language", "end_reason")
COLUMN_WIDTHS = {name: events.c[name].type.length for name in TEXT_COLUMNS
                 if getattr(events.c[name].type, "length", None)}


# --- the steps ----------------------------------------------------------------------------

def extract_fields(turn: Turn) -> Answer | None:
    """Build the row: the columns analysts query and the key that makes resends harmless (the
    raw copy is added when it is stored). Every event gets one: this step has no condition."""
    settings = turn.settings
    turn.log_event = new_row(turn.event, turn.payload, raw="",
                             language_variable=settings.language_variable,
                             original_variable=settings.original_input_variable,
                             failed_variable=settings.translation_failed_variable)
    return None


def redact_personal_data(turn: Turn) -> Answer | None:
    """Mask personal data in the columns and in the event (`turn.body`, whence the raw copy)
    before anything touches the disk."""
    item = turn.log_event
    if not turn.settings.log_redact or item is None:
        return None
    masked = 0
    for name in TEXT_COLUMNS:
        value = getattr(item, name)
        if value:
            value, count = redact_text(value)
            # a label may be longer than what it replaced: keep within the column's width
            setattr(item, name, value[:COLUMN_WIDTHS.get(name)])
            masked += count
    turn.body, count = redact_json(turn.body)
    turn.payload = turn.body["payload"]
    turn.notes["redacted"] = masked + count
    return None


def store_event(turn: Turn) -> Answer | None:
    """Commit the row; answer 503 if it may not be kept, so nobody takes it as stored."""
    item, store = turn.log_event, turn.services.store
    if item is None or store is None:  # a list without extract_fields: never answer "kept"
        raise RuntimeError("store_event runs after extract_fields, with the log store built")
    # With redaction the raw copy is always the event written out, never the text received.
    item.raw = raw_copy(turn.body, turn.received, keep_received=not turn.settings.log_redact)
    try:
        stored = store.add(item)
    except StoreUnavailable as exc:
        turn.notes["store_error"] = str(exc)[:64]
        turn.notes["error"] = "store_unavailable"
        return Answer({"error": "store_unavailable",
                       "detail": "the log store did not accept the event; it was not kept"},
                      503, retry_after=5)
    turn.stored = turn.notes["stored"] = "new" if stored else "duplicate"
    return None


LOG_STEPS: list[Step] = [extract_fields, redact_personal_data, store_event]


@bp.post("/webhooks/logs")
def logs() -> Response:
    turn = start_turn("logs", ACCEPTED_EVENTS)
    return render(run_steps(turn.services.steps["logs"], turn) or Answer(
        {"accepted": True, "duplicate": turn.stored == "duplicate"}))
