"""One JSON log line per request.

The line says which endpoint, which event, the status, how long it took and which session; plus
the steps' `turn.notes` (codes and counts) and the error code a failed request answered
(errors.py). It never holds the message text or a credential, so the logs can go to any
aggregator.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask, Response, g, request

log = logging.getLogger("handlers.request")


STARTED = "handlers.started"


class _Clock:
    """WSGI middleware noting when a request arrived (in `environ[STARTED]`), before Flask routes
    it, so the duration covers the routing too."""

    def __init__(self, wsgi_app: Any) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        environ[STARTED] = time.monotonic()
        return self.wsgi_app(environ, start_response)


def started_at(environ: dict[str, Any]) -> float:
    """When the request arrived (time.monotonic()); now if it did not come through the app."""
    return environ.get(STARTED) or time.monotonic()


def init_app(app: Flask) -> None:
    """Time every request from its arrival and log its line once it is answered."""
    app.wsgi_app = _Clock(app.wsgi_app)  # type: ignore[method-assign]

    @app.after_request
    def log_request(response: Response) -> Response:
        path = request.path
        if path in ("/healthz", "/readyz") and response.status_code < 400:
            return response
        if not log.isEnabledFor(logging.INFO):
            return response
        fields: dict[str, Any] = {
            "endpoint": path,
            "method": request.method,
            "status": response.status_code,
            "duration_ms": round((time.monotonic() - started_at(request.environ)) * 1000, 2),
        }
        turn = g.get("turn")
        if turn is not None:
            fields["event"] = turn.event
            fields["session_id"] = turn.session_id
            fields.update(turn.notes)
        error = g.get("error")
        if error:
            fields["error"] = error
        reason = g.get("reason")
        if reason:
            fields["reason"] = reason
        log.info("request", extra={"fields": fields})
        return response
