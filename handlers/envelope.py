"""The webhook envelope: reading `{"event": ..., "payload": ...}`, the JSON answers and errors.

The assistant may send no Content-Type at all, so the body is parsed as JSON whatever the header
says. Every answer, error or not, is `application/json`; errors are
`{"error": "<short code>", "detail": "<what is wrong>"}` and never echo the payload.

Only standard JSON gets in: `NaN`, `Infinity` and numbers too large for a float (`1e999`) are
refused, as is nesting deeper than `MAX_JSON_DEPTH`, so nothing later (the encoder, the recursive
walkers, `logs export`) meets a value it cannot write back. A lone surrogate escape (`"\\ud800"`)
is valid JSON and is accepted: answers carrying one are written with that character escaped.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from flask import Request, Response

SKIP_PROCESSING_HEADER = "X-Watson-Assistant-Webhook-Return"
# Deepest nesting of arrays and objects a body may have. The assistant's payloads nest about 10
# levels; the kit's recursive walkers (redaction, the reply's fields) and the JSON encoder need
# Python stack frames per level, and the interpreter has about 1,000.
MAX_JSON_DEPTH = 128
# Longer session ids are replaced by a digest (the assistant's are 36-character UUIDs): an id is
# a key of every session cache and appears in each request's log line.
MAX_SESSION_ID_CHARS = 128
_SURROGATE = re.compile("[\ud800-\udfff]")


class WebhookError(Exception):
    """A request the kit refuses; becomes a JSON error answer with `status`. `reason`, a code
    such as "expired", goes only to the request's log line (auth.py's refusals say there which
    check failed, never what the caller sent)."""

    def __init__(self, status: int, error: str, detail: str,
                 headers: dict[str, str] | None = None, reason: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers or {}
        self.reason = reason


# One encoder made once (json.dumps with options builds a new one on every call) for every
# answer: compact, non-ASCII written as is. `compact_json(obj)` is `json.dumps(obj,
# ensure_ascii=False, separators=(",", ":"))`.
compact_json: Callable[[Any], str] = json.JSONEncoder(ensure_ascii=False,
                                                      separators=(",", ":")).encode


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Serialise `body` compactly; the assistant reads JSON whatever we say, but we say it.

    A lone surrogate (valid in a JSON string escape, not in UTF-8) is written back escaped."""
    text = compact_json(body)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        data = json.dumps(body, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    return Response(data, status=status, headers=headers, content_type="application/json")


def has_lone_surrogate(text: str) -> bool:
    """Whether `text` holds a code point UTF-8 cannot carry: not text to detect or translate."""
    return not text.isascii() and _SURROGATE.search(text) is not None


def error_response(status: int, error: str, detail: str,
                   headers: dict[str, str] | None = None) -> Response:
    return json_response({"error": error, "detail": detail}, status, headers)


def read_event(request: Request, accepted_events: Iterable[str]
               ) -> tuple[str, dict[str, Any], dict[str, Any], bytes]:
    """Parse and check the envelope; return (event name, payload, whole body, the bytes received).

    Raises `WebhookError` (400) for anything that is not the contract, 413 for a body over
    MAX_CONTENT_LENGTH (Flask raises that itself when the Content-Length says so).
    """
    body, raw = read_json_object(request)
    accepted = tuple(accepted_events)
    event = body.get("event")
    name = event.get("name") if isinstance(event, dict) else None
    if not isinstance(name, str) or not name:
        raise WebhookError(400, "missing_event",
                           'the body has no "event": {"name": ...}; this endpoint takes '
                           + " or ".join(accepted))
    if name not in accepted:
        raise WebhookError(400, "wrong_event",
                           f"event {name[:64]!r} is not handled here; this endpoint takes "
                           + " or ".join(accepted))
    return name, payload_of(body), body, raw


def payload_of(body: dict[str, Any]) -> dict[str, Any]:
    """The body's `payload` object (the assistant's webhooks and Orchestrate's plug-ins alike)."""
    if "payload" not in body:
        raise WebhookError(400, "missing_payload", 'the body has no "payload"')
    payload = body["payload"]
    if not isinstance(payload, dict):
        raise WebhookError(400, "payload_not_an_object",
                           f'"payload" is a JSON {type(payload).__name__}, expected an object')
    return payload


def read_json_object(request: Request) -> tuple[dict[str, Any], bytes]:
    """The body as a JSON object, and its bytes; a 400 or 413 `WebhookError` for anything else
    (what every endpoint taking JSON checks before its own contract)."""
    raw = request.get_data(cache=False)
    if _cut_at_the_limit(request, raw):
        raise WebhookError(413, "payload_too_large",
                           f"the body is larger than MAX_CONTENT_LENGTH "
                           f"({request.max_content_length} bytes)")
    if not raw or not raw.strip():
        raise WebhookError(400, "empty_body", "the request has no body; expected a JSON object")
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise WebhookError(400, "not_an_object",
                           f"the body is a JSON {type(body).__name__}, expected an object")
    return body, raw


class _NotStandardJson(ValueError):
    """NaN, Infinity or a number beyond a float's range: Python reads them, JSON has none."""


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotStandardJson(text)
    return value


def _no_constant(name: str) -> Any:
    raise _NotStandardJson(name)


# One decoder for every request (json.loads with options would build one per call).
_DECODER = json.JSONDecoder(parse_float=_finite_float, parse_constant=_no_constant)


def parse_json(raw: bytes) -> Any:
    """The body as standard JSON (UTF-8, -16 or -32, as json.loads reads bytes), or a 400
    `invalid_json` that says what is wrong without quoting the body."""
    try:
        body = _DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))
    except _NotStandardJson:
        raise WebhookError(400, "invalid_json", "the body is not standard JSON "
                           "(NaN, Infinity or a number out of range)") from None
    except RecursionError:
        raise _too_deep_error() from None
    except (ValueError, UnicodeDecodeError) as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise WebhookError(400, "invalid_json", f"the body is not valid JSON{where}") from None
    # Counting brackets is cheap and bounds the depth: only a body with many walks the tree.
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and _too_deep(body):
        raise _too_deep_error()
    return body


def _too_deep_error() -> WebhookError:
    return WebhookError(400, "invalid_json",
                        f"the body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels")


def _too_deep(value: Any) -> bool:
    """Whether `value` nests deeper than MAX_JSON_DEPTH (iterative: it must not recurse)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        if depth > MAX_JSON_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict)
                                                      else node))
    return False


def _cut_at_the_limit(request: Request, raw: bytes) -> bool:
    """Whether a body without Content-Length (chunked) went on past MAX_CONTENT_LENGTH.

    Werkzeug stops reading such a body at the limit and hands back what it read, which would
    then be refused as cut JSON; one more byte from the server's stream tells the two apart."""
    limit = request.max_content_length
    if limit is None or len(raw) < limit or request.content_length is not None:
        return False
    stream = request.environ.get("wsgi.input")
    try:
        return bool(stream is not None and stream.read(1))
    except (OSError, ValueError):
        return False


@dataclass(frozen=True)
class Answer:
    """What a step answers instead of letting the turn go on, as data: the JSON body and its
    HTTP status. A skip-processing answer (`skip_processing`) is sent by the assistant straight
    to the channel. Each blueprint renders an Answer (`render`); the Orchestrate plug-ins map it
    to their own result, so a step works unchanged behind both."""

    body: dict[str, Any]
    status: int = 200
    skip_processing: bool = False
    # Seconds after which the caller may send the request again (an answer saying "not now").
    retry_after: int | None = None


def render(answer: Answer) -> Response:
    """The HTTP response for an Answer: its body as JSON, its status and headers."""
    headers: dict[str, str] = {}
    if answer.skip_processing:
        headers[SKIP_PROCESSING_HEADER] = "true"
    if answer.retry_after is not None:
        headers["Retry-After"] = str(answer.retry_after)
    return json_response(answer.body, answer.status, headers)


def payload_reply(payload: dict[str, Any]) -> Answer:
    """The normal pre/post-message answer: the (modified) payload in its envelope."""
    return Answer({"payload": payload})


def skip_processing(text: str | None = None, *, generic: list[dict[str, Any]] | None = None,
                    user_id: str | None = None,
                    user_defined: dict[str, Any] | None = None) -> Answer:
    """Answer the customer directly from the pre-message webhook; the assistant skips the turn
    and sends this body, unwrapped, straight to the channel. `user_defined`:
    `output.user_defined`, what the reply says of itself to whoever reads it later (the log
    store's report counts the unsupported-language replies from it)."""
    items = list(generic or [])
    if text is not None:
        items.insert(0, {"response_type": "text", "text": text})
    body: dict[str, Any] = {"output": {"generic": items}}
    if user_defined:
        body["output"]["user_defined"] = user_defined
    if user_id:
        body["user_id"] = user_id
    return Answer(body, skip_processing=True)


def session_id_of(payload: dict[str, Any]) -> str | None:
    """The assistant's session id wherever the event keeps it (context, or a log record)."""
    context = payload.get("context")
    found = None
    if isinstance(context, dict):
        global_ = context.get("global")
        if isinstance(global_, dict) and isinstance(global_.get("session_id"), str):
            found = global_["session_id"]
    for key in ("session_id", "global_session_id"):
        if found is None and isinstance(payload.get(key), str):
            found = payload[key]
    if found is not None and len(found) > MAX_SESSION_ID_CHARS:
        return "sha256:" + digest(found)
    return found


def digest(text: str) -> str:
    """sha256 hex of any str, lone surrogates included: a bounded key for an unbounded one."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
