"""The log webhook's event store, on SQLAlchemy Core (SQLite by default, PostgreSQL when
DATABASE_URL says so). Imported only when the log webhook is served.

Where things are:

| module | holds |
|---|---|
| schema.py | the table, the row (`LogEvent`), URLs, the engine and its options |
| rows.py | an event's row: its columns, idempotency key and raw copy |
| event_store.py | `EventStore`: add (durable, idempotent), readiness; composes the two below |
| retention.py | `store.retention`: the purge (`LOG_RETENTION_DAYS`, `logs purge`) |
| raw_insert.py | the insert of every event, at the driver's level (kept by measurement) |
| commit.py | group commit and SQLite's writer lock across processes |
| deadlines.py | the request's budget, the PostgreSQL watchdog, bounded connects |
| filters.py | `Filters`: the period and dimensions every report narrows to |
| reports.py | `store.reports`: count, export, stats for `flask logs ...`; the explorer's queries |
| rollup.py | the overview's hourly roll-up of past hours (schema version 3) |
| quality_facts.py, quality.py | the quality figures, pure: a turn's facts, parts, the report |
| quality_rollup.py | their share of the roll-up (schema version 4) |
| quality_reports.py | `store.reports.quality_report`, `.unrecognized_requests` |
| upgrade.py | schema version steps (an older database upgraded in place) |
"""

from .commit import GroupCommitter
from .event_store import PROBE_EVENT, EventStore
from .filters import Filters
from .retention import PURGE_BATCH
from .schema import (COLUMNS, MAX_ID_LENGTH, SCHEMA_VERSION, LogEvent, StoreUnavailable,
                     default_url, events, normalize_url, safe_url, schema_version, utcnow)

__all__ = ["COLUMNS", "MAX_ID_LENGTH", "PROBE_EVENT", "PURGE_BATCH", "SCHEMA_VERSION",
           "EventStore", "Filters", "GroupCommitter", "LogEvent", "StoreUnavailable", "default_url",
           "events", "normalize_url", "safe_url", "schema_version", "utcnow"]
