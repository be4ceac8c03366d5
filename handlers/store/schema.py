"""What the log store keeps and where: the table and its row, the database URL, the engine.

Everything here is declared once and shared: the event store writes these rows, the reports
read them, and tests and benchmarks count them. The engine's options carry the durability and
deadline settings of each backend (SQLite's WAL with synchronous=FULL and busy timeout;
PostgreSQL's statement, lock and TCP timeouts), so they are in one place to read.
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (BigInteger, Boolean, Column, DateTime, Float, Index, Integer, MetaData,
                        String, Table, Text, UniqueConstraint, create_engine, event)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from ..settings import SettingsError

# 2: the explorer's columns (original_text, environment, translation_failed, end_reason) and
# its covering index; `upgrade.py` brings a version 1 database there in place.
# 3: the overview's hourly roll-up tables (log_hourly, log_session_hours, log_rolled_hours),
# created empty and filled by the readers (rollup.py).
# 4: the quality report's share of that roll-up (quality_rollup.py); the hours a version 3
# database rolled up are rolled up again, with it.
SCHEMA_VERSION = 4
# Seconds a log request may spend on the database (pool, connect, statement, locks) before the
# webhook gives up and answers 503 (DATABASE_TIMEOUT): the bound is 2 s from a silent
# partition, and the watchdog that enforces it looks every WATCHDOG_PERIOD seconds.
DEFAULT_TIMEOUT = 1.5
# Work that no request waits on (the schema at start-up) gets this long.
STARTUP_TIMEOUT = 10.0
MAX_ID_LENGTH = 255

metadata = MetaData()

events = Table(
    "log_events", metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
           autoincrement=True),
    Column("event", String(32), nullable=False),
    Column("idempotency_key", String(MAX_ID_LENGTH), nullable=False),
    Column("received_at", DateTime(), nullable=False),
    Column("request_timestamp", DateTime()),
    Column("response_timestamp", DateTime()),
    Column("assistant_id", String(MAX_ID_LENGTH)),
    Column("skill_id", String(MAX_ID_LENGTH)),
    Column("session_id", String(MAX_ID_LENGTH)),
    Column("customer_id", String(MAX_ID_LENGTH)),
    Column("customer_text", Text()),
    Column("reply_text", Text()),
    Column("intent", String(MAX_ID_LENGTH)),
    Column("intent_confidence", Float()),
    Column("language", String(32)),
    Column("agent_transfer", Boolean()),
    # Version 2, for the explorer: the customer's words before translation (the pre-message
    # webhook's original_input), the environment (environment_id, else the snapshot), whether
    # translation failed open, and a call's end reason.
    Column("original_text", Text()),
    Column("environment", String(MAX_ID_LENGTH)),
    Column("translation_failed", Boolean()),
    Column("end_reason", String(64)),
    # The event as the assistant sent it (JSON text), so fields IBM adds later are never lost.
    Column("raw", Text(), nullable=False),
    UniqueConstraint("event", "idempotency_key", name="uq_log_events_key"),
)
# received_at: retention, export and stats periods; session_id: `export --session`. No index
# on assistant_id: a deployment has a handful of assistants, so it would not narrow a scan,
# and every index costs each insert.
Index("ix_log_events_received_at", events.c.received_at)
Index("ix_log_events_session_id", events.c.session_id)
# The explorer's overview and session list: a period of one event type, read from the index
# alone (no visit to the rows and their raw JSON), so a million messages count in well under
# a second; newest first for the keyset-paginated session list.
Index("ix_log_events_overview", events.c.event, events.c.received_at, events.c.language,
      events.c.translation_failed, events.c.session_id, events.c.assistant_id,
      events.c.environment)

# Version 3: what the explorer's overview (and `logs stats`) reads for whole past hours instead
# of the events, filled by the readers the first time a period asks for an hour (rollup.py).
# log_hourly: the count of each hour's events by the overview's dimensions; `flag` is
# translation_failed for a message, agent_transfer for a call.
hourly = Table(
    "log_hourly", metadata,
    Column("hour", DateTime(), nullable=False),
    Column("event", String(32), nullable=False),
    Column("assistant_id", String(MAX_ID_LENGTH)),
    Column("environment", String(MAX_ID_LENGTH)),
    Column("language", String(32)),
    Column("end_reason", String(64)),
    Column("flag", Boolean()),
    Column("n", Integer(), nullable=False),
)
Index("ix_log_hourly_hour", hourly.c.hour)
# Sessions cannot be summed over hours (one spans several): each hour's sessions, with the
# dimensions the overview filters on, so a period's sessions are one count(DISTINCT) over far
# fewer rows than its messages; and what the session list shows of each (its messages, failures,
# first and last message in the hour), so the list groups these rows instead of every message.
session_hours = Table(
    "log_session_hours", metadata,
    Column("hour", DateTime(), nullable=False),
    Column("session_id", String(MAX_ID_LENGTH), nullable=False),
    Column("assistant_id", String(MAX_ID_LENGTH)),
    Column("environment", String(MAX_ID_LENGTH)),
    Column("language", String(32)),
    Column("first_at", DateTime(), nullable=False),
    Column("last_at", DateTime(), nullable=False),
    Column("messages", Integer(), nullable=False),
    Column("failed", Integer(), nullable=False),
)
# Every column: the session count and the session list read the index alone (on SQLite, a
# visit to each row from the index cost the 30-day list a third of its time).
Index("ix_log_session_hours", *session_hours.c)
# The hours the two tables above hold (an hour with no events is rolled up too).
rolled_hours = Table(
    "log_rolled_hours", metadata,
    Column("hour", DateTime(), primary_key=True),
)

schema_version = Table(
    "log_schema_version", metadata,
    Column("version", Integer(), primary_key=True, autoincrement=False),
    Column("applied_at", DateTime(), nullable=False),
)


INSERT_COLUMNS = tuple(column.name for column in events.columns if column.name != "id")


# The extracted columns, in the order `export --format csv` writes them.
COLUMNS = tuple(column.name for column in events.columns if column.name != "raw")


class StoreUnavailable(Exception):
    """The database did not take or give the events (down, unreachable, locked, timed out)."""


def utcnow() -> datetime:
    """Naive UTC: what every timestamp column holds, on SQLite and PostgreSQL alike."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass
class LogEvent:
    """One row to store: the extracted columns and the raw event (JSON text)."""

    event: str
    idempotency_key: str
    raw: str
    received_at: datetime = field(default_factory=utcnow)
    request_timestamp: datetime | None = None
    response_timestamp: datetime | None = None
    assistant_id: str | None = None
    skill_id: str | None = None
    session_id: str | None = None
    customer_id: str | None = None
    customer_text: str | None = None
    reply_text: str | None = None
    intent: str | None = None
    intent_confidence: float | None = None
    language: str | None = None
    agent_transfer: bool | None = None
    original_text: str | None = None
    environment: str | None = None
    translation_failed: bool | None = None
    end_reason: str | None = None

    def row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in COLUMNS if name != "id"} | {"raw": self.raw}


def default_url(instance_path: str) -> str:
    """A SQLite file in the app's instance folder: works with no setup at all."""
    os.makedirs(instance_path, exist_ok=True)
    return "sqlite:///" + os.path.join(instance_path, "events.sqlite3")


def normalize_url(url: str) -> str:
    """PostgreSQL goes through psycopg 3: accept the `postgres://` and `postgresql://` spellings
    platforms hand out, and rewrite them to `postgresql+psycopg://`."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def safe_url(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid database URL>"


def build_engine(url: str, timeout: float) -> Engine:
    """The engine for `url`, every wait of which ends within `timeout` seconds (pool checkout,
    SQLite's busy handler, PostgreSQL's connect, statement and lock timeouts), since a log
    request must answer within its budget; a URL the kit cannot use stops the start."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise SettingsError(f"DATABASE_URL={safe_url(url)!r} is not a database URL") from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise SettingsError(f"DATABASE_URL uses {backend!r}; the kit supports sqlite and "
                            "postgresql (postgresql+psycopg://user:password@host/db)")
    # hide_parameters: a failed statement's message never carries an event's text.
    options: dict[str, Any] = {"pool_recycle": 1800, "hide_parameters": True}
    if backend != "sqlite" or _sqlite_file(parsed):
        # A file or a server gets a QueuePool, whose checkout wait is bounded. In-memory
        # SQLite gets SQLAlchemy's SingletonThreadPool (one connection per thread, nothing to
        # wait for), which refuses the argument (the Dockerfile's build step uses one).
        options["pool_timeout"] = timeout
    if backend == "sqlite":
        # Without a timeout in the URL, pysqlite's own busy timeout defaults to 5 s too.
        options["connect_args"] = {"timeout": timeout}
    else:
        millis = int(timeout * 1000)
        # libpq options: appended to any the URL carries (e.g. a search_path), not replacing them.
        server = f"-c statement_timeout={millis} -c lock_timeout={millis} " \
                 f"-c idle_in_transaction_session_timeout={millis * 6}"
        query = parsed.query
        options["connect_args"] = {
            "connect_timeout": query.get("connect_timeout", str(max(2, int(timeout)))),
            "options": (str(query.get("options", "")) + " " + server).strip(),
            # A dead peer (network cut) is noticed after `timeout` when data is waiting for its
            # acknowledgement, and within about 8 s by keepalives when a pooled connection is
            # idle, not after the kernel's minutes. (Neither fires when something on the path
            # acknowledges and then drops everything: the watchdog's deadline covers that.)
            "tcp_user_timeout": query.get("tcp_user_timeout", str(millis)),
            "keepalives": "1", "keepalives_idle": "5", "keepalives_interval": "1",
            "keepalives_count": "3",
            "application_name": query.get("application_name", "watson-webhooks"),
        }
        if "prepare_threshold" in query:
            options["connect_args"]["prepare_threshold"] = _prepare_threshold(
                str(query["prepare_threshold"]))
            parsed = parsed.difference_update_query(["prepare_threshold"])
        options["pool_size"] = 10
        options["max_overflow"] = 10
    try:
        engine = create_engine(parsed, **options)
    except (NoSuchModuleError, ArgumentError, ImportError) as exc:
        raise SettingsError(f"DATABASE_URL={safe_url(url)!r} cannot be used: "
                            f"{type(exc).__name__}") from None
    if backend == "sqlite":
        _configure_sqlite(engine, timeout)
    # Connections must not cross gunicorn's fork (the app is preloaded in the master).
    engine_ref = weakref.ref(engine)
    os.register_at_fork(after_in_child=lambda: (e := engine_ref()) and e.dispose(close=False))
    return engine


def _sqlite_file(url: Any) -> bool:
    """Whether a SQLite URL names a file (as SQLAlchemy decides which pool to use): not
    `sqlite://`, `:memory:` or a `mode=memory` URI."""
    return bool(url.database) and url.database != ":memory:" \
        and url.query.get("mode") != "memory"


def _prepare_threshold(value: str) -> int | None:
    """psycopg's `prepare_threshold` from the URL: after how many runs on a connection a query
    is prepared on the server (psycopg's default: 5); `none` never prepares, as PgBouncer in
    transaction mode before 1.21 (or without `max_prepared_statements`) requires."""
    if value.lower() == "none":
        return None
    if not (value.isascii() and value.isdigit()):
        raise SettingsError(f"DATABASE_URL has prepare_threshold={value!r}; expected a number "
                            "of runs (0 or more) or none")
    return int(value)


def _configure_sqlite(engine: Engine, timeout: float) -> None:
    """WAL + synchronous=FULL + busy timeout on every connection; explicit transactions."""

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own transaction handling skips BEGIN before SELECT and DDL; take it over
        # (SQLAlchemy's documented recipe) so a transaction means one transaction.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        connection.connection.dbapi_connection.execute("BEGIN")  # type: ignore[union-attr]
