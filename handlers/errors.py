"""The app's own answers when no step answered: every error as the kit's JSON error body, with its
code noted for the request's log line, and OPTIONS as JSON. An unexpected exception answers a
bare 500; the log names the exception's type and where it was raised, not its message (which
may quote the customer's text).
"""

from __future__ import annotations

import logging
import traceback

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from .envelope import WebhookError, compact_json, error_response

log = logging.getLogger("handlers.request")


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    return f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno} in {last.name}"


def options_as_json(response: Response) -> Response:
    """Flask answers OPTIONS itself with an empty text/html body; every answer of the kit is JSON."""
    if request.method == "OPTIONS" and response.status_code == 200 and not response.is_json:
        response.set_data(compact_json({"allow": sorted(response.allow)}))
        response.content_type = "application/json"
    return response


def init_app(app: Flask) -> None:
    """Register the error answers and the JSON answer to OPTIONS."""
    app.after_request(options_as_json)

    @app.errorhandler(WebhookError)
    def webhook_error(exc: WebhookError) -> Response:
        g.error = exc.error
        g.reason = exc.reason
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
