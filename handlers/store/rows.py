"""The row the store keeps for a log event: the columns worth querying, read from the event, the
key that makes a resend harmless, and the raw copy.

This is the store's own mapping: the log webhook builds its rows with it, and a schema upgrade
fills new columns of old rows with it, so both always agree.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime, timezone
from typing import Any

from ..context import is_true, read_variable
from .schema import MAX_ID_LENGTH, LogEvent, utcnow


# --- reading the event --------------------------------------------------------------------

def _get(node: Any, *path: str | int) -> Any:
    """`node[path[0]][path[1]]...`, or None as soon as a step is missing or of the wrong type."""
    for key in path:
        if isinstance(key, int):
            node = node[key] if isinstance(node, list) and -len(node) <= key < len(node) else None
        else:
            node = node.get(key) if isinstance(node, dict) else None
        if node is None:
            return None
    return node


def clean(value: Any, limit: int | None = None) -> str | None:
    """A string fit for any database: no NUL (PostgreSQL refuses it), no lone surrogate (not
    UTF-8), ids cut to the column's width. Anything but a non-empty string is None."""
    if not isinstance(value, str) or not value:
        return None
    if "\x00" in value:
        value = value.replace("\x00", "")
    if not value.isascii():
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value[:limit] if limit else value


def _id(value: Any) -> str | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    return clean(value, MAX_ID_LENGTH)


def _timestamp(value: Any) -> datetime | None:
    """IBM's ISO 8601 timestamps as naive UTC; None when absent or unreadable (the raw copy
    keeps whatever was sent)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return parsed


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def reply_texts(response: Any) -> str | None:
    """The reply's text items (`output.generic[].text`), one per line."""
    items = _get(response, "output", "generic")
    if not isinstance(items, list):
        return None
    texts = [item["text"] for item in items
             if isinstance(item, dict) and isinstance(item.get("text"), str) and item["text"]]
    return clean("\n".join(texts)) if texts else None


def offers_agent_transfer(response: Any) -> bool:
    items = _get(response, "output", "generic")
    return isinstance(items, list) and any(
        isinstance(item, dict) and item.get("response_type") == "connect_to_agent"
        for item in items)


def top_intent(response: Any) -> tuple[str | None, float | None]:
    """The intent with the highest confidence (the assistant lists them best first, but we do
    not rely on it)."""
    intents = _get(response, "output", "intents")
    best: tuple[str | None, float | None] = (None, None)
    if not isinstance(intents, list):
        return best
    for item in intents:
        name = _id(_get(item, "intent"))
        confidence = _number(_get(item, "confidence"))
        if name and (best[0] is None or (confidence or 0) > (best[1] or 0)):
            best = (name, confidence)
    return best


def idempotency_key(event: str, payload: dict[str, Any]) -> str:
    """`log_id` for a message, `global_session_id` for a call; else a hash of the payload, so
    the same body sent twice is still stored once."""
    field = {"message_logged": "log_id", "cdr_logged": "global_session_id"}[event]
    key = _id(payload.get(field))
    if key and len(key) < MAX_ID_LENGTH:
        return key
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(canonical.encode("ascii")).hexdigest()


def message_columns(payload: dict[str, Any], language_variable: str,
                    original_variable: str = "original_input",
                    failed_variable: str = "translation_failed") -> dict[str, Any]:
    response = payload.get("response")
    # What the pre-message webhook left in the context: the customer's words before
    # translation, and whether translation failed open (the explorer shows both).
    context = response if _get(response, "context") else None
    original = read_variable(context, original_variable) if context else None
    failed = bool(context) and is_true(context, failed_variable)
    intent, confidence = top_intent(response)
    # The customer's own language when the kit's pre-message webhook recorded it in the
    # context, else the assistant's (`language` of the log record).
    language = _get(response, "context") and read_variable(response, language_variable)
    if not isinstance(language, str) or not language.strip():
        language = payload.get("language")
    return {
        "request_timestamp": _timestamp(payload.get("request_timestamp")),
        "response_timestamp": _timestamp(payload.get("response_timestamp")),
        "assistant_id": _id(payload.get("assistant_id")),
        "skill_id": _id(payload.get("skill_id")),
        "session_id": _id(payload.get("session_id")),
        "customer_id": _id(payload.get("customer_id")),
        "customer_text": clean(_get(payload, "request", "input", "text")),
        "reply_text": reply_texts(response),
        "intent": intent,
        "intent_confidence": confidence,
        "language": clean(language, 32),
        "agent_transfer": offers_agent_transfer(response),
        "original_text": clean(original),
        "environment": _id(payload.get("environment_id")) or _id(payload.get("snapshot")),
        "translation_failed": failed,
    }


def call_columns(payload: dict[str, Any]) -> dict[str, Any]:
    summary = _get(payload, "assistant_interaction_summaries", 0)
    return {
        "request_timestamp": _timestamp(_get(payload, "call", "start_timestamp")),
        "response_timestamp": _timestamp(_get(payload, "call", "stop_timestamp")),
        "assistant_id": _id(_get(summary, "assistant_id")),
        "session_id": _id(_get(summary, "session_id")) or _id(payload.get("global_session_id")),
        "agent_transfer": payload.get("transfer_occurred") is True,
        "end_reason": clean(_get(payload, "call", "end_reason"), 64),
        # The caller's language, which the post-message webhook put in cdr_custom_data and the
        # phone channel merged into the record (docs/phone.md).
        "language": clean(_get(payload, "injected_custom_data", "customer_language"), 32),
    }


def received_text(received: bytes) -> str | None:
    """The body as the assistant sent it, when it can be kept as is: UTF-8 (as JSON is sent)
    and on one line, since `logs export` writes one event per line. Otherwise None, and the
    parsed event is written out again (the same JSON value, compact)."""
    try:
        text = received.decode("utf-8").strip(" \t\r\n")
    except UnicodeDecodeError:
        return None
    if "\n" in text or "\r" in text or text.startswith("\ufeff"):
        return None
    return text


def raw_copy(event: Any, received: bytes, keep_received: bool = True) -> str:
    """The raw copy of `event`, the event as the steps left it: the text received while that
    text still says exactly this event (kept as sent: its escapes, its spelling of numbers),
    else the event written out. So a step that changes the event, in place or by replacing it,
    has its change stored, and nothing has to remember it.

    `keep_received=False` always writes the event out: with redaction the text received may
    hold in clear a value the parse dropped (a key given twice keeps only its last value)."""
    text = received_text(received) if keep_received else None
    if text is not None and json.loads(text) == event:
        return text
    return raw_json(event)


def raw_json(body: Any) -> str:
    """The event as JSON text: compact, non-ASCII kept as is unless the body holds something
    UTF-8 cannot carry (a lone surrogate escape), then escaped."""
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(body, ensure_ascii=True, separators=(",", ":"))
    return text


def event_columns(event: str, payload: dict[str, Any], language_variable: str = "customer_language",
                  original_variable: str = "original_input",
                  failed_variable: str = "translation_failed") -> dict[str, Any]:
    """The queryable columns of a `message_logged` or `cdr_logged` event ({} for any other);
    the variable names are the context variables the pre-message webhook writes."""
    if event == "message_logged":
        return message_columns(payload, language_variable, original_variable, failed_variable)
    return call_columns(payload) if event == "cdr_logged" else {}


def new_row(event: str, payload: dict[str, Any], raw: str, received_at: datetime | None = None,
            **variables: str) -> LogEvent:
    """The row for an event: its columns (`variables` as `event_columns` takes them), its key,
    and `raw`, the raw copy."""
    return LogEvent(event=event, idempotency_key=idempotency_key(event, payload), raw=raw,
                    received_at=received_at or utcnow(),
                    **event_columns(event, payload, **variables))
