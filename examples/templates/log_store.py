"""Log webhook: keep every event watsonx Assistant logs, exactly once, in a SQLite file.

POST /webhooks/logs, on its own (`DATABASE_URL=sqlite:///events.sqlite3 WEBHOOK_SECRET=... flask
--app log_store run --port 8000`) or in your app (`app.register_blueprint(log_store.bp)`); the
assistant always signs log calls with the webhook's secret. Each row keeps the event as received;
read it with SQLite's JSON functions, e.g.
`SELECT json_extract(raw, '$.payload.request.input.text') FROM events`.
"""
import hashlib
import json
import os
import sqlite3
from contextlib import closing
from datetime import datetime, timezone

import jwt
from flask import Blueprint, Flask, Response, abort, current_app, jsonify, make_response, request

DATABASE_URL = os.environ.get("DATABASE_URL", "sqlite:///events.sqlite3")
WEBHOOK_SECRET = os.environ.get("WEBHOOK_SECRET")
if not DATABASE_URL.startswith("sqlite:///"):
    raise SystemExit("this template stores events in SQLite: DATABASE_URL=sqlite:///path")
DATABASE = DATABASE_URL.removeprefix("sqlite:///")  # sqlite:////abs/path or sqlite:///rel/path
ID_FIELDS = {"message_logged": "log_id", "cdr_logged": "global_session_id"}

bp = Blueprint("log_store", __name__)
with closing(sqlite3.connect(DATABASE)) as db:  # WAL: readers do not block the webhook's writes
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE IF NOT EXISTS events (event TEXT NOT NULL, id TEXT NOT NULL,"
               " received_at TEXT NOT NULL, raw TEXT NOT NULL, PRIMARY KEY (event, id))")


@bp.post("/webhooks/logs")
def logs() -> Response:
    event, payload = read_event(*ID_FIELDS)
    event_id = payload.get(ID_FIELDS[event])
    # The rule: each event is stored once, by log_id (a call record: global_session_id), and
    # committed before the assistant hears 200. With no usable id, the same body is the same event.
    if not (isinstance(event_id, str) and event_id.isascii() and event_id):  # IBM's are UUIDs
        event_id = "sha256:" + hashlib.sha256(request.get_data()).hexdigest()
    row = (event, event_id, datetime.now(timezone.utc).isoformat(), request.get_data(as_text=True))
    try:
        with closing(sqlite3.connect(DATABASE, timeout=5)) as db, db:  # `with db` commits
            db.execute("PRAGMA synchronous=FULL")  # committed means on disk
            stored = db.execute("INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?)", row).rowcount
    except sqlite3.Error as exc:  # never a 200 for an event that is not on disk
        current_app.logger.error("event not stored: %s", type(exc).__name__)
        return error(503, "store_unavailable", "the event was not stored; send it again later")
    return jsonify(accepted=True, duplicate=stored == 0)


@bp.before_request  # the blueprint's routes only: the other routes of your app are not affected
def check_signed_jwt() -> Response | None:
    """With WEBHOOK_SECRET set, only the assistant gets in (its "Signed JWT" authentication)."""
    token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    try:  # its claims are undocumented: the signature counts, and `exp` when there is one
        if WEBHOOK_SECRET:
            jwt.decode(token, WEBHOOK_SECRET, ["HS256"], leeway=30, options={"verify_aud": False})
    except jwt.PyJWTError:
        return error(401, "unauthorized", "a valid signed JWT is required in Authorization")


def read_event(*events: str) -> tuple[str, dict]:
    """The event's name and payload, whatever the Content-Type; anything else is a JSON 400."""
    try:  # int("NaN") raises: NaN and Infinity are not JSON
        body = json.loads(request.get_data(), parse_constant=int)
    except (ValueError, RecursionError):
        abort(error(400, "invalid_json", "the body is not valid JSON"))
    event = body.get("event") if isinstance(body, dict) else None
    name = event.get("name") if isinstance(event, dict) else None
    if name not in events or not isinstance(body.get("payload"), dict):
        abort(error(400, "not_the_event", f"expected a {' or '.join(events)} event and payload"))
    return name, body["payload"]


def error(status: int, code: str, detail: str) -> Response:
    """The kit's error shape, {"error": code, "detail": ...}; it never repeats the request."""
    return make_response(jsonify(error=code, detail=detail), status)


app = Flask(__name__)  # the template on its own (flask --app log_store run)
app.register_blueprint(bp)
