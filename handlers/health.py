"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

import logging

from flask import Blueprint, Response

from .envelope import json_response
from .pipeline import services

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process answers; touches nothing else, so it never fails because a dependency does."""
    return json_response({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    """Ready when the log store can write: without it the log webhook would answer 503 to every
    event. Bounded by the store's budget (DATABASE_TIMEOUT); see EventStore.check_writable."""
    store = services().store
    if store is None:   # WEBHOOKS without logs: nothing this app serves needs a dependency
        return json_response({"status": "ok", "store": "not served"})
    try:
        store.check_writable()
    except Exception as exc:
        log.warning("readiness check failed: log store: %s", type(exc).__name__)
        return json_response({"status": "unavailable", "store": "cannot write"}, 503)
    return json_response({"status": "ok", "store": store.dialect})
