"""Command-line tools under `flask --app handlers ...`.

Each concern registers its own click group here (`logs` for the event store); small utilities
such as `sign-jwt` live in this module.
"""

from __future__ import annotations

import contextlib
import csv
import json
import sys
import time
from datetime import date, datetime, timedelta, timezone
from typing import Any

import click
import jwt
from flask import Flask, current_app
from flask.cli import with_appcontext
from flask.cli import AppGroup


@click.command("sign-jwt")
@click.option("--secret", help="Signing secret (default: the configured secret of --webhook).")
@click.option("--webhook", type=click.Choice(["premessage", "postmessage", "logs", "log"]),
              default="logs", show_default=True,
              help="Whose configured secret to sign with (log: the same as logs).")
@click.option("--ttl", type=click.IntRange(min=1), default=300, show_default=True,
              help="Seconds until the token expires.")
@click.option("--bearer/--raw", default=False,
              help="Prefix the value with 'Bearer ' (the assistant itself sends it raw).")
@with_appcontext
def sign_jwt(secret: str | None, webhook: str, ttl: int, bearer: bool) -> None:
    """Print an Authorization value signed like the assistant's, for curl:

    curl -H "Authorization: $(flask --app handlers sign-jwt)" ...
    """
    settings = current_app.config["WEBHOOK_SETTINGS"]
    secret = secret or settings.auth_for(webhook).secret
    if not secret:
        raise click.UsageError(f"no secret: pass --secret or configure one for the {webhook} "
                               "webhook (WEBHOOK_SECRET or its per-webhook override)")
    now = int(time.time())
    token = jwt.encode({"iat": now, "exp": now + ttl}, secret, algorithm="HS256")
    click.echo(("Bearer " if bearer else "") + token)


# --- logs: the log webhook's event store ------------------------------------------------------

logs_cli = AppGroup("logs", help="The log webhook's event store: init-db, export, stats, "
                                 "report, purge.")


class When(click.ParamType):
    """A date (`2024-05-01`, a whole day) or an ISO 8601 time (`2024-05-01T12:00:00Z`), UTC
    unless it carries an offset."""

    name = "DATE"

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[datetime, bool]:
        if isinstance(value, tuple):
            return value
        text = str(value).strip()
        try:
            if len(text) == 10:
                return datetime.combine(date.fromisoformat(text), datetime.min.time()), True
            moment = datetime.fromisoformat(text)
        except ValueError:
            self.fail(f"{value!r} is not a date (YYYY-MM-DD) or an ISO 8601 time", param, ctx)
        if moment.tzinfo is not None:
            moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
        return moment, False


def _period(since: tuple[datetime, bool] | None,
            until: tuple[datetime, bool] | None) -> tuple[datetime | None, datetime | None]:
    """`--since` inclusive; `--until` exclusive, except that a bare date includes that day."""
    start = since[0] if since else None
    end = None
    if until:
        end = until[0] + timedelta(days=1) if until[1] else until[0]
    if start and end and end <= start:
        raise click.BadParameter("--until must be after --since", param_hint="--until")
    return start, end


def _event_store() -> Any:
    return current_app.extensions["webhooks"].store


def _fail_unavailable(exc: Exception) -> None:
    raise click.ClickException(f"the log store did not answer ({exc}); check DATABASE_URL")


# A spreadsheet reads a cell starting with one of these as a formula (OWASP, CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_value(value: Any) -> Any:
    """A cell: times in ISO 8601 UTC, booleans as true/false, numbers as they are; text that a
    spreadsheet would run as a formula gets a leading `'`, so it is shown as the text it is."""
    if isinstance(value, datetime):
        return value.isoformat() + "Z"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return "" if value is None else value


since_option = click.option("--since", type=When(), help="From this date/time (UTC, inclusive).")
until_option = click.option("--until", type=When(),
                            help="Up to this time (exclusive); a bare date includes that day.")


@logs_cli.command("init-db")
def init_db() -> None:
    """Create the event store's tables (if missing), record the schema version and fill the
    explorer's hourly roll-up of the stored events."""
    from .store import StoreUnavailable, safe_url

    store = _event_store()
    try:
        version = store.create_schema()
        rolled = store.reports.roll_up()
    except StoreUnavailable as exc:
        _fail_unavailable(exc)
    click.echo(f"log store ready: {safe_url(store.url)} ({store.dialect}, "
               f"schema version {version}); explorer roll-up: {rolled} hours")


@logs_cli.command("export")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "ibm-logs"]),
              default="jsonl", show_default=True,
              help="jsonl: the raw events, one per line; csv: the extracted columns; ibm-logs: "
                   "the messages as {\"logs\": [...]} for IBM's log notebooks.")
@since_option
@until_option
@click.option("--session", help="Only this session id.")
@click.option("--assistant", help="Only this assistant id.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
              help="Write to this file instead of stdout (with a progress bar on a terminal).")
def export(fmt: str, since: Any, until: Any, session: str | None, assistant: str | None,
           output: str | None) -> None:
    """Stream events, oldest first, in constant memory whatever the table size.

    \b
    flask --app handlers logs export --since 2024-05-01 > may.jsonl
    flask --app handlers logs export --format csv --session SESSION_ID -o session.csv
    flask --app handlers logs export --format ibm-logs -o logs.json
    """
    from .store import COLUMNS, StoreUnavailable

    start, end = _period(since, until)
    store = _event_store()
    query = {"since": start, "until": end, "session": session, "assistant": assistant}
    show_progress = bool(output) and sys.stderr.isatty()
    try:
        total = store.reports.count(**query) if show_progress else None
        target = open(output, "w", encoding="utf-8", newline="") if output else \
            contextlib.nullcontext(sys.stdout)
        # click's own bar (Flask brings click), so the server image needs no progress library.
        bar = click.progressbar(length=total or 0, label="events", show_pos=True,
                                file=sys.stderr) if show_progress else contextlib.nullcontext()
        with target as out, bar as progress:
            # Every text cell quoted (numbers are not), as OWASP advises: a CR or LF inside one
            # stays inside its record on every Python (QUOTE_MINIMAL left a lone CR unquoted
            # before 3.11.9 when the line ends in LF), and a `;` cannot start a new cell for a
            # spreadsheet whose locale separates with it.
            writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC) \
                if fmt == "csv" else None
            if fmt == "ibm-logs":
                from .ibm_export import write_ibm_logs

                rows = store.reports.iter_events(**query, columns=["event", "raw"])
                write_ibm_logs(_counted(rows, progress), out)
                return
            if writer is not None:
                writer.writerow(COLUMNS)
            for row in store.reports.iter_events(**query, columns=COLUMNS if writer else ["raw"]):
                if writer is not None:
                    writer.writerow([_csv_value(value) for value in row])
                else:
                    out.write(row.raw)
                    out.write("\n")
                if progress is not None:
                    progress.update(1)
    except StoreUnavailable as exc:
        _fail_unavailable(exc)


def _counted(rows: Any, progress: Any) -> Any:
    """The rows, moving the progress bar (None: no bar) one step each."""
    for row in rows:
        yield row
        if progress is not None:
            progress.update(1)


@logs_cli.command("stats")
@since_option
@until_option
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True,
              help="How many intents to list.")
def stats(since: Any, until: Any, fmt: str, top: int) -> None:
    """Events per day, sessions, messages per session, languages, top intents, and the share of
    replies that offered a transfer to a human agent."""
    from .store import StoreUnavailable

    start, end = _period(since, until)
    try:
        figures = _event_store().reports.stats(
            start, end, top=top,
            supported=current_app.config["WEBHOOK_SETTINGS"].supported_languages)
    except StoreUnavailable as exc:
        _fail_unavailable(exc)
    if fmt == "json":
        click.echo(json.dumps(figures, indent=2))
        return
    click.echo("events per day:")
    for day, counts in figures["events_per_day"].items():
        click.echo(f"  {day}  " + "  ".join(f"{name} {n}" for name, n in sorted(counts.items())))
    if not figures["events_per_day"]:
        click.echo("  (none)")
    spread = figures["messages_per_session"]
    click.echo(f"messages: {figures['messages']}   sessions: {figures['sessions']}   "
               f"messages per session: mean {spread['mean']}, min {spread['min']}, "
               f"max {spread['max']}")
    click.echo("languages: " + (", ".join(f"{code} {n}" for code, n in
                                        figures["languages"].items()) or "(none)"))
    click.echo(f"translation failures: {figures['translation_failures']}   "
               f"unsupported-language replies: {figures['unsupported_language_replies']}")
    click.echo("top intents:")
    for item in figures["top_intents"]:
        click.echo(f"  {item['count']:>8}  {item['intent']}")
    if not figures["top_intents"]:
        click.echo("  (none)")
    transfer = figures["agent_transfer_offered"]
    click.echo(f"replies offering an agent transfer: {transfer['replies']} "
               f"({transfer['share']:.1%})")
    calls = figures["calls"]
    click.echo(f"phone calls: {calls['count']} ({calls['transferred']} transferred)")
    if calls["end_reasons"]:
        click.echo("call end reasons: " + ", ".join(f"{reason} {n}" for reason, n in
                                                    calls["end_reasons"].items()))
        click.echo("call languages: " + ", ".join(f"{code} {n}" for code, n in
                                                  calls["languages"].items()))


@logs_cli.command("report")
@since_option
@until_option
@click.option("--assistant", help="Only this assistant id.")
@click.option("--environment", help="Only this environment id.")
@click.option("--language", help="Only the conversations in this customer language.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def quality_report(since: Any, until: Any, assistant: str | None, environment: str | None,
                   language: str | None, fmt: str) -> None:
    """Quality by language: conversations, containment, recognition, action completion (with
    the reasons actions were not completed), translation failures and unsupported-language
    replies per customer language, and per action. The last 30 days by default."""
    from .store import StoreUnavailable, utcnow

    start, end = _period(since, until)
    end = end or utcnow()
    start = start or end - timedelta(days=30)
    try:
        figures = _event_store().reports.quality_report(
            start, end, assistant=assistant, environment=environment, language=language,
            assistant_language=current_app.config["WEBHOOK_SETTINGS"].assistant_language)
    except StoreUnavailable as exc:
        _fail_unavailable(exc)
    if fmt == "json":
        click.echo(json.dumps(figures, indent=2))
        return
    from .quality_table import table

    click.echo(table(figures))


@logs_cli.command("purge")
@click.option("--older-than", "days", type=click.IntRange(min=0), required=True, metavar="DAYS",
              help="Delete events received more than DAYS days ago.")
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
def purge(days: int, dry_run: bool) -> None:
    """Delete old events now (LOG_RETENTION_DAYS does the same automatically, hourly)."""
    from .store import StoreUnavailable, utcnow

    store = _event_store()
    try:
        if dry_run:
            count = store.reports.count(until=utcnow() - timedelta(days=days))
            click.echo(f"{count} events received more than {days} days ago would be deleted")
            return
        deleted = store.retention.purge(days)
    except StoreUnavailable as exc:
        _fail_unavailable(exc)
    click.echo(f"deleted {deleted} events received more than {days} days ago")


def init_app(app: Flask) -> None:
    """Register the kit's click commands on the app."""
    app.cli.add_command(sign_jwt)
    app.cli.add_command(logs_cli)
