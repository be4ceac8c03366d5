"""The webhook envelope: reading `{"event": ..., "payload": ...}`, the JSON answers and errors.

The assistant may send no Content-Type at all, so the body is parsed as JSON whatever the header
says. Every answer, error or not, is `application/json`; errors are
`{"error": "<short code>", "detail": "<what is wrong>"}` and never echo the payload.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable

from flask import Request, Response

SKIP_PROCESSING_HEADER = "X-Watson-Assistant-Webhook-Return"


class WebhookError(Exception):
    """A request the kit refuses; becomes a JSON error answer with `status`."""

    def __init__(self, status: int, error: str, detail: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers or {}


def make_encoder(separators: tuple[str, str] = (",", ":"),
                 default: Callable[[Any], Any] | None = None) -> Callable[[Any], str]:
    """`json.dumps(obj, ensure_ascii=False, separators=..., default=...)`, same output, minus
    building an encoder on every call (json.dumps does, whenever it is given options): every
    request encodes its answer and its log line, so the encoder is made once.

    The C encoder is built without the cycle check: what it encodes comes from JSON or from our
    own dicts, and a cycle would still end in an error (RecursionError instead of ValueError).
    """
    encoder = json.JSONEncoder(ensure_ascii=False, separators=separators, default=default)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator (another Python): the plain encoder, still made once
        return encoder.encode
    c_encode = make(None, encoder.default, json.encoder.encode_basestring, None, separators[1],
                    separators[0], False, False, True)

    def encode(obj: Any) -> str:
        if isinstance(obj, str):
            return encoder.encode(obj)
        return "".join(c_encode(obj, 0))

    return encode


compact_json = make_encoder()


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Serialise `body` compactly; the assistant reads JSON whatever we say, but we say it."""
    return Response(compact_json(body), status=status, headers=headers,
                    content_type="application/json")


def error_response(status: int, error: str, detail: str,
                   headers: dict[str, str] | None = None) -> Response:
    return json_response({"error": error, "detail": detail}, status, headers)


def read_event(request: Request, accepted_events: Iterable[str]
               ) -> tuple[str, dict[str, Any], dict[str, Any], bytes]:
    """Parse and check the envelope; return (event name, payload, whole body, the bytes received).

    Raises `WebhookError` (400) for anything that is not the contract; Flask raises 413 itself
    when the body is over MAX_CONTENT_LENGTH.
    """
    raw = request.get_data(cache=False)
    if not raw or not raw.strip():
        raise WebhookError(400, "empty_body", "the request has no body; expected a JSON object")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise WebhookError(400, "invalid_json", f"the body is not valid JSON{where}") from None
    if not isinstance(body, dict):
        raise WebhookError(400, "not_an_object",
                           f"the body is a JSON {type(body).__name__}, expected an object")
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
    if "payload" not in body:
        raise WebhookError(400, "missing_payload", 'the body has no "payload"')
    payload = body["payload"]
    if not isinstance(payload, dict):
        raise WebhookError(400, "payload_not_an_object",
                           f'"payload" is a JSON {type(payload).__name__}, expected an object')
    return name, payload, body, raw


def payload_reply(payload: dict[str, Any]) -> Response:
    """The normal pre/post-message answer: the (modified) payload in its envelope."""
    return json_response({"payload": payload})


def skip_processing(text: str | None = None, *, generic: list[dict[str, Any]] | None = None,
                    user_id: str | None = None) -> Response:
    """Answer the customer directly from the pre-message webhook; the assistant skips the turn.

    The header makes the assistant send this body, unwrapped, straight to the channel.
    """
    items = list(generic or [])
    if text is not None:
        items.insert(0, {"response_type": "text", "text": text})
    body: dict[str, Any] = {"output": {"generic": items}}
    if user_id:
        body["user_id"] = user_id
    return json_response(body, headers={SKIP_PROCESSING_HEADER: "true"})


def session_id_of(payload: dict[str, Any]) -> str | None:
    """The assistant's session id wherever the event keeps it (context, or a log record)."""
    context = payload.get("context")
    if isinstance(context, dict):
        global_ = context.get("global")
        if isinstance(global_, dict) and isinstance(global_.get("session_id"), str):
            return global_["session_id"]
    for key in ("session_id", "global_session_id"):
        if isinstance(payload.get(key), str):
            return payload[key]
    return None
