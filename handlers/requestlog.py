"""One JSON log line per request, and the app's error answers.

The line says which endpoint, which event, the status, how long it took and which session; plus
the steps' `turn.notes` (codes and counts). It never holds the message text or a credential, so
the logs can go to any aggregator. Unexpected exceptions answer a bare 500 JSON error; the log
line names the exception's type and where it was raised, not its message (which may quote text).
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from .envelope import WebhookError, error_response

log = logging.getLogger("handlers.request")


class JsonFormatter(logging.Formatter):
    """Log records as one JSON object per line; extra fields come from `record.fields`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(level: str) -> None:
    """JSON lines on stderr for the whole process (gunicorn's access log is off in favour of these)."""
    root = logging.getLogger()
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    root.setLevel(level)
    logging.Formatter.converter = time.gmtime


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    return f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno} in {last.name}"


def init_app(app: Flask) -> None:
    @app.before_request
    def start_clock() -> None:
        g.started = time.monotonic()

    @app.after_request
    def log_request(response: Response) -> Response:
        if request.path in ("/healthz", "/readyz") and response.status_code < 400:
            return response
        turn = g.get("turn")
        fields: dict[str, Any] = {
            "endpoint": request.path,
            "method": request.method,
            "status": response.status_code,
            "duration_ms": round((time.monotonic() - g.get("started", time.monotonic())) * 1000, 2),
        }
        if turn is not None:
            fields["event"] = turn.event
            fields["session_id"] = turn.session_id
            fields.update(turn.notes)
        if g.get("error"):
            fields["error"] = g.error
        log.info("request", extra={"fields": fields})
        return response

    @app.errorhandler(WebhookError)
    def webhook_error(exc: WebhookError) -> Response:
        g.error = exc.error
        return error_response(exc.status, exc.error, exc.detail, exc.headers)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        names = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
        details = {413: f"the body is larger than MAX_CONTENT_LENGTH "
                        f"({app.config.get('MAX_CONTENT_LENGTH')} bytes)"}
        error = names.get(code, (exc.name or "error").lower().replace(" ", "_"))
        g.error = error
        response = error_response(code, error, details.get(code, exc.description or exc.name))
        if code == 405 and exc.get_headers():
            allow = dict(exc.get_headers()).get("Allow")
            if allow:
                response.headers["Allow"] = allow
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        g.error = "internal_error"
        log.error("unhandled exception", extra={"fields": {
            "endpoint": request.path, "exception": type(exc).__name__, "where": _where(exc)}})
        return error_response(500, "internal_error",
                              "the webhook failed unexpectedly; the event was not processed")
