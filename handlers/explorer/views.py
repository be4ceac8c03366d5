"""The explorer's pages: overview (/explorer/), sessions (/explorer/sessions), one session
(/explorer/session?id=<id>), actions (/explorer/actions) and unrecognized requests
(/explorer/unrecognized).

Access and headers are guard.py's: it runs before every request under /explorer/, these pages
only see requests it let through.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for
from markupsafe import Markup, escape

from ..envelope import error_response
from ..store import Filters, StoreUnavailable, utcnow
from ..store.reports import PAGE_SIZE
from . import charts, guard, quality

bp = Blueprint("explorer", __name__, url_prefix=guard.PREFIX, template_folder="templates",
               static_folder="static")
bp.before_app_request(guard.guard)
bp.after_app_request(guard.secure)

PERIODS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
# What the redaction of LOG_REDACT leaves in a text (handlers/redact.py).
REDACTED = re.compile(r"\[(email|iban|card|national_id|phone|unscanned)\]")
MAX_FILTER = 255
# The last day a custom period may name: the period ends the day after `until`, which must exist.
LAST_DAY = date.max - timedelta(days=1)
# The furthest page of unrecognized requests (offset pagination: each page re-reads the ones
# before it, so the list stops where a reader would have narrowed the period anyway).
MAX_OFFSET = 10_000


class BadInput(ValueError):
    """A query parameter the explorer cannot use: answered 400, nothing echoed."""


@bp.errorhandler(BadInput)
def bad_input(exc: BadInput) -> Response:
    return error_response(400, "bad_request", str(exc))


@bp.errorhandler(StoreUnavailable)
def store_unavailable(_exc: StoreUnavailable) -> Response:
    return error_response(503, "store_unavailable", "the log store did not answer; try again",
                          {"Retry-After": "5"})


@bp.app_template_filter("redacted")
def show_redacted(value: str | None) -> Markup:
    """The text, escaped, with what LOG_REDACT masked shown as redacted."""
    text = str(escape(value or ""))
    return Markup(REDACTED.sub(r'<span class="redacted">redacted \1</span>', text))


@bp.app_template_filter("isolated")
def isolated(value: Any) -> Markup:
    """Stored text (a customer's words, an id), escaped, in a `<bdi>`: its own direction, so a
    right-to-left override or an Arabic word inside cannot reorder what is shown beside it."""
    return Markup("<bdi>{}</bdi>").format("" if value is None else value)


@bp.get("/")
def overview() -> str:
    store = _store()
    view = _view()
    settings = current_app.config["WEBHOOK_SETTINGS"]
    # The quality report on a thread of its own while this one counts the overview: both wait
    # mostly on the database, so the page takes the longer of the two, not their sum (30 days
    # of bench/quality.py's 200,000 events on SQLite: median 0.92-1.04 s -> 0.71-0.76 s).
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(store.reports.quality_report, **_quality_query(view))
        figures = store.reports.overview(view["filters"], settings.supported_languages,
                                         view["bucket"])
        report = pending.result()
    series = figures["per_" + view["bucket"]]
    bars = charts.columns(series, charts.slots(view["since"], view["until"], view["bucket"]))
    rows = quality.language_rows(report, settings.assistant_language,
                                 _reference(report, view, settings.assistant_language))
    return render_template("explorer/overview.html", figures=figures, bars=bars, view=view,
                           share=charts.share, chart=charts, quality=rows,
                           assistant_language=settings.assistant_language)


@bp.get("/actions")
def actions() -> str:
    view = _view()
    settings = current_app.config["WEBHOOK_SETTINGS"]
    report = _quality(view)
    return render_template("explorer/actions.html", view=view, report=report,
                           tables=quality.action_rows(report, settings.assistant_language),
                           reasons=quality.REASONS, assistant_language=settings.assistant_language)


@bp.get("/unrecognized")
def unrecognized() -> str:
    view = _view()
    offset = _offset()
    filters = view["filters"]
    rows = _store().reports.unrecognized_requests(
        filters.since, filters.until, assistant=filters.assistant,
        environment=filters.environment, language=filters.language, limit=PAGE_SIZE + 1,
        offset=offset)
    more = len(rows) > PAGE_SIZE and offset + PAGE_SIZE <= MAX_OFFSET
    return render_template("explorer/unrecognized.html", view=view, rows=rows[:PAGE_SIZE],
                           offset=offset,
                           next_args=dict(view["args"], offset=offset + PAGE_SIZE) if more
                           else None)


def _quality(view: dict[str, Any], language: str | None = None) -> dict[str, Any]:
    """The quality report for the view's period and filters (or another `language`)."""
    return _store().reports.quality_report(**_quality_query(view, language))


def _quality_query(view: dict[str, Any], language: str | None = None) -> dict[str, Any]:
    filters = view["filters"]
    return {"since": filters.since, "until": filters.until, "assistant": filters.assistant,
            "environment": filters.environment, "language": language or filters.language,
            "assistant_language": current_app.config["WEBHOOK_SETTINGS"].assistant_language}


def _reference(report: dict[str, Any], view: dict[str, Any],
               assistant_language: str) -> dict[str, Any] | None:
    """The assistant language's figures for the gaps, when a language filter left them out of
    `report`: the same period and filters, in that language."""
    if assistant_language in report["languages"] or not view["filters"].language:
        return None
    return _quality(view, assistant_language)["languages"].get(assistant_language)


@bp.get("/sessions")
def sessions() -> str:
    store = _store()
    view = _view()
    search = _text("q", 200)
    failed = request.args.get("failed") == "1"
    after = _cursor(request.args.get("after"))
    rows = store.reports.sessions(view["filters"], failed_only=failed, search=search, after=after,
                          limit=PAGE_SIZE + 1)
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    next_args = None
    if more:
        last = rows[-1]
        next_args = dict(view["args"], failed="1" if failed else "", q=search,
                         after=f"{last.last_at.isoformat()}|{last.session_id}")
    return render_template("explorer/sessions.html", rows=rows, view=view, search=search,
                           failed=failed, next_args=next_args)


@bp.get("/session")
def transcript() -> tuple[str, int] | str:
    """One session, its id in the query: in the path, ids such as `..` or `a//b` would be
    rewritten by the browser (dot segments, even percent-encoded) before they were sent."""
    session_id = request.args.get("id", "")
    if not session_id:
        raise BadInput("id (the session id) is required")
    if len(session_id) > MAX_FILTER:
        raise BadInput("a session id has at most 255 characters")
    rows = _store().reports.transcript(session_id)
    turns = [_turn(row) for row in rows]
    status = 200 if rows else 404
    return render_template("explorer/transcript.html", session_id=session_id, turns=turns), status


@bp.get("/sessions/<path:session_id>")
def old_transcript_link(session_id: str) -> Response:
    """Where transcripts were before: links saved then still open (ids without dot segments)."""
    return redirect(url_for("explorer.transcript", id=session_id), 308)


def _turn(row: Any) -> dict[str, Any]:
    elapsed = None
    if row.request_timestamp and row.response_timestamp:
        elapsed = int((row.response_timestamp - row.request_timestamp).total_seconds() * 1000)
    return {"row": row, "elapsed_ms": elapsed, "call": row.event == "cdr_logged",
            # Without a translation, what the customer wrote is what the assistant received.
            "wrote": row.original_text or row.customer_text}


def _store() -> Any:
    return current_app.extensions["webhooks"].store


def _text(name: str, limit: int = MAX_FILTER) -> str:
    value = request.args.get(name, "").strip()
    if len(value) > limit:
        raise BadInput(f"{name} has at most {limit} characters")
    return value


def _day(name: str) -> date:
    try:
        day = date.fromisoformat(request.args.get(name, ""))
    except ValueError:
        raise BadInput(f"{name} must be a date (YYYY-MM-DD)") from None
    if day > LAST_DAY:
        raise BadInput(f"{name} must be a day up to {LAST_DAY}")
    return day


def _view() -> dict[str, Any]:
    """The period and filters of the query string, as the store's Filters and as the links'
    query arguments. A custom period is whole days, `until` included (as `logs stats
    --since D1 --until D2` counts them)."""
    period = request.args.get("period", "24h")
    now = utcnow()
    if period in PERIODS:
        since, until = now - PERIODS[period], now
    elif period == "custom":
        first, last = _day("since"), _day("until")
        if last < first:
            raise BadInput("until must not be before since")
        since = datetime.combine(first, datetime.min.time())
        until = datetime.combine(last, datetime.min.time()) + timedelta(days=1)
    else:
        raise BadInput("period must be 24h, 7d, 30d or custom")
    assistant, environment, language = _text("assistant"), _text("environment"), _text("language", 32)
    bucket = "hour" if until - since <= timedelta(hours=48) else "day"
    args = {"period": period, "assistant": assistant, "environment": environment,
            "language": language}
    if period == "custom":
        args |= {"since": since.date().isoformat(),
                 "until": (until - timedelta(days=1)).date().isoformat()}
    return {"filters": Filters(since, until, assistant or None, environment or None,
                               language or None),
            "since": since, "until": until, "bucket": bucket, "period": period, "args": args,
            "query": {key: value for key, value in args.items() if value}}


def _offset() -> int:
    value = request.args.get("offset", "0") or "0"
    if not (value.isascii() and value.isdigit()) or int(value) > MAX_OFFSET:
        raise BadInput(f"offset must be a whole number from 0 to {MAX_OFFSET}")
    return int(value)


def _cursor(value: str | None) -> tuple[datetime, str] | None:
    if not value:
        return None
    moment, _, session = value.partition("|")
    try:
        after = datetime.fromisoformat(moment)
    except ValueError:
        raise BadInput("after is not a cursor this page gave") from None
    if after.tzinfo is not None or len(session) > MAX_FILTER:
        raise BadInput("after is not a cursor this page gave")
    return after, session


@bp.app_template_global("explorer_url")
def explorer_url(endpoint: str, **args: Any) -> str:
    """A link keeping the non-empty arguments only."""
    return url_for(endpoint, **{key: value for key, value in args.items() if value})
