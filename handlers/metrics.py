"""Prometheus metrics at `/metrics` (METRICS=on): what each webhook decided and how long it took,
how translation went, where each turn's language came from, and how the log store writes.

prometheus-client keeps its values per process, and under gunicorn every worker is a process, so
the kit runs it in multiprocess mode: each worker writes its values to files in
`PROMETHEUS_MULTIPROC_DIR`, and a scrape of any worker sums every worker's files. The server's
gunicorn settings (server/gunicorn_conf.py) make that directory when it is not set, empty it when
gunicorn starts (values of an earlier run would be summed in), drop a dead worker's live gauges
and merge its counters and histograms into one file (handlers/metrics_folder.py), so the folder
stays small however often workers restart. Without the variable (`flask run`, one process) the
values are kept in memory.

Recording is a no-op until an app with METRICS=on is created in the process: an app without
metrics imports no prometheus-client and pays one check per call site. The names and a few
PromQL queries are in docs/metrics.md.
"""

from __future__ import annotations

import hmac
import os
import time
from types import SimpleNamespace
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request

from .envelope import error_response
from .requestlog import started_at

bp = Blueprint("metrics", __name__)

# The blueprints whose requests are counted, and the webhook label each one has (health checks,
# the explorer and /metrics itself are not). The log webhook's label is "log", as published.
WEBHOOK_BLUEPRINTS = {"premessage": "premessage", "postmessage": "postmessage", "logs": "log",
                      "orchestrate": "orchestrate"}
# Webhook durations: mostly milliseconds, up to the assistant's 30 s limit.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
PROVIDER_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}

_m: SimpleNamespace | None = None  # the metric objects, once an app turned metrics on


def _define() -> SimpleNamespace:
    """The kit's metrics, made once per process. Imported here, not at the top: an app without
    METRICS=on never loads prometheus-client."""
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    registry = CollectorRegistry(auto_describe=True)
    options: dict[str, Any] = {"registry": registry}
    return SimpleNamespace(
        registry=registry,
        requests=Counter("webhook_requests_total",
                         "Webhook requests by webhook, HTTP status and the decision that ended "
                         "them", ["webhook", "status", "decision"], **options),
        duration=Histogram("webhook_request_duration_seconds",
                           "Time from the request's arrival to its answer",
                           ["webhook"], buckets=DURATION_BUCKETS, **options),
        provider_calls=Counter("translation_provider_calls_total",
                               "Calls to the translation provider by outcome (ok, timeout, "
                               "error, breaker_open)", ["provider", "outcome"], **options),
        provider_duration=Histogram("translation_provider_duration_seconds",
                                    "Time a provider call took, to its answer or failure",
                                    ["provider"], buckets=PROVIDER_BUCKETS, **options),
        strings=Counter("translation_strings_total",
                        "Strings translated, by where the translation came from (memory, "
                        "cache, redis, provider)", ["provider", "source"], **options),
        fail_open=Counter("translation_fail_open_strings_total",
                          "Strings left in their original language, by reason",
                          ["provider", "reason"], **options),
        breaker=Gauge("translation_breaker_state",
                      "The worker's circuit breaker: 0 closed, 1 half open, 2 open",
                      ["provider"], multiprocess_mode="liveall", **options),
        stuck=Gauge("translation_stuck_threads",
                    "Pool threads held by provider calls abandoned at their deadline",
                    ["provider"], multiprocess_mode="livesum", **options),
        languages=Counter("language_detections_total",
                          "Pre-message turns by language and where the decision came from "
                          "(chosen, detected, session, locale, default)",
                          ["language", "source"], **options),
        writes=Counter("log_store_writes_total",
                       "Events the log webhook wrote, by outcome (new, duplicate, failed)",
                       ["outcome"], **options),
        rows=Counter("log_store_rows_total", "New rows in the log store by event type",
                     ["event"], **options),
        commit=Histogram("log_store_commit_duration_seconds",
                         "Time one transaction of the log store took (a batch of events)",
                         buckets=COMMIT_BUCKETS, **options),
        batch=Histogram("log_store_commit_batch_rows",
                        "Events written in one transaction (group commit)",
                        buckets=BATCH_BUCKETS, **options),
        unavailable=Counter("log_store_unavailable_total",
                            "Log webhook requests answered 503 store_unavailable", **options),
    )


def init_app(app: Flask) -> None:
    """Serve /metrics and count every webhook request, when METRICS=on."""
    global _m
    settings = app.config["WEBHOOK_SETTINGS"]
    if not settings.metrics:
        return
    if _m is None:
        _m = _define()
    app.register_blueprint(bp)
    app.after_request(count_request)


def count_request(response: Response) -> Response:
    """After every request: a webhook's count by status and decision, and its duration."""
    if _m is None:
        return response
    webhook = WEBHOOK_BLUEPRINTS.get(request.blueprint or "")
    if webhook is None:
        return response
    turn = getattr(g, "turn", None)
    ended = decision(turn, getattr(g, "error", None))
    _m.requests.labels(webhook, str(response.status_code), ended).inc()
    _m.duration.labels(webhook).observe(time.monotonic() - started_at(request.environ))
    if turn is None:
        return response
    if turn.webhook == "premessage" and turn.language:
        _m.languages.labels(turn.language, turn.language_from or "unknown").inc()
    if turn.webhook == "logs":
        if turn.stored:
            _m.writes.labels(turn.stored).inc()
            if turn.stored == "new" and turn.log_event is not None:
                _m.rows.labels(turn.log_event.event).inc()
        elif ended == "store_unavailable":
            _m.writes.labels("failed").inc()
            _m.unavailable.inc()
    return response


def decision(turn: Any, error: str | None) -> str:
    """What ended a request, as a short code: the error's, the step that answered at once, why
    the message was left alone, whether the log event was new, else "processed"."""
    if error:
        return error
    if turn is None:
        return "processed"
    return (turn.notes.get("error") or turn.notes.get("answered_by") or turn.skipped or turn.stored
            or ("translation_failed" if turn.translation_failed else "processed"))


@bp.get("/metrics")
def metrics() -> Response:
    """The Prometheus text format: every worker's values under gunicorn."""
    token = current_app.config["WEBHOOK_SETTINGS"].metrics_token
    if token:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            g.error = "unauthorized"
            return error_response(401, "unauthorized", "METRICS_TOKEN is required as a bearer "
                                  "token", {"WWW-Authenticate": 'Bearer realm="metrics"'})
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    assert _m is not None
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        from prometheus_client import multiprocess

        from .metrics_folder import scrape_lock

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        with scrape_lock(folder):   # no dead worker's files merged away mid-read
            body = generate_latest(registry)
    else:
        body = generate_latest(_m.registry)
    response = Response(body, content_type=CONTENT_TYPE_LATEST)
    response.headers["Cache-Control"] = "no-store"
    return response


# --- what the translator and the log store record (no-ops while metrics are off) --------------

def provider_call(provider: str, outcome: str) -> None:
    if _m is not None:
        _m.provider_calls.labels(provider, outcome).inc()


def provider_latency(provider: str, seconds: float) -> None:
    if _m is not None:
        _m.provider_duration.labels(provider).observe(seconds)


def strings_served(provider: str, source: str, count: int) -> None:
    if _m is not None and count:
        _m.strings.labels(provider, source).inc(count)


def strings_failed(provider: str, reasons: dict[str, int]) -> None:
    if _m is not None:
        for reason, count in reasons.items():
            _m.fail_open.labels(provider, reason).inc(count)


def breaker_state(provider: str, state: str) -> None:
    if _m is not None:
        _m.breaker.labels(provider).set(BREAKER_STATES[state])


def stuck_threads(provider: str, count: int) -> None:
    if _m is not None:
        _m.stuck.labels(provider).set(count)


def store_commit(rows: int, seconds: float) -> None:
    if _m is not None:
        _m.commit.observe(seconds)
        _m.batch.observe(rows)
