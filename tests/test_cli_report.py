"""`flask --app handlers logs report` (the quality figures, JSON and table) and
`logs export --format ibm-logs` (read by IBM's own assistant-improve-toolkit), on SQLite and
PostgreSQL, over the quality fixture sessions."""

from __future__ import annotations

import json
import pathlib
from datetime import datetime, timedelta
from typing import Any

import pytest

from logs_support import message_body, pg_store_url, store_url  # noqa: F401
from quality_support import (EXPECTED_LANGUAGES, EXPECTED_UNRECOGNIZED, expected_report,
                             log_event, shifted)

# A past day: every hour of it is closed, so the report reads the roll-up.
DAY = datetime(2025, 3, 3)


@pytest.fixture
def log_app(make_app: Any, store_url: str) -> Any:
    app = make_app(DATABASE_URL=store_url, ASSISTANT_LANGUAGE="en",
                   SUPPORTED_LANGUAGES="en,es,fr,de,it,pt")
    app.extensions["webhooks"].store.add_many(
        [log_event(turn) for turn in shifted(DAY + timedelta(hours=9))])
    return app


def invoke(app: Any, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["logs", *args])


def test_report_json_is_the_hand_count(log_app: Any):
    result = invoke(log_app, "report", "--since", "2025-03-03", "--until", "2025-03-03",
                    "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == expected_report(DAY, DAY + timedelta(days=1))


def test_report_filters(log_app: Any):
    result = invoke(log_app, "report", "--since", "2025-03-03", "--until", "2025-03-04",
                    "--language", "es", "--format", "json")
    assert json.loads(result.output)["languages"] == {"es": EXPECTED_LANGUAGES["es"]}
    for option, value in (("--assistant", "nobody"), ("--environment", "nobody")):
        result = invoke(log_app, "report", "--since", "2025-03-03", "--until", "2025-03-03",
                        option, value,
                        "--format", "json")
        assert json.loads(result.output)["all"]["conversations"] == 0


def test_report_table_reads_in_a_terminal(log_app: Any):
    result = invoke(log_app, "report", "--since", "2025-03-03", "--until", "2025-03-03")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "quality by language, 2025-03-03T00:00:00Z to 2025-03-04T00:00:00Z"
    rows = {line.split()[0]: line.split() for line in lines[2:11] if line.strip()}
    assert rows["language"][:4] == ["language", "conversations", "containment", "recognition"]
    assert rows["es"][1:6] == ["2", "100.0%", "100.0%", "2", "50.0%"]
    assert rows["pt"][1:6] == ["1", "0.0%", "66.7%", "3", "-"]
    assert rows["all"][1:6] == ["8", "75.0%", "80.0%", "10", "42.9%"]
    assert any("Open an account (action_10)" in line and line.split()[:2] == ["1", "1"]
               for line in lines)


def test_report_refuses_what_it_cannot_read(log_app: Any):
    result = invoke(log_app, "report", "--since", "yesterday")
    assert result.exit_code == 2 and "is not a date" in result.output
    result = invoke(log_app, "report", "--format", "xml")
    assert result.exit_code == 2


def exported(app: Any, tmp_path: pathlib.Path, *args: str) -> dict[str, Any]:
    target = tmp_path / "logs.json"
    result = invoke(app, "export", "--format", "ibm-logs", "-o", str(target), *args)
    assert result.exit_code == 0, result.output
    return json.loads(target.read_text())


def test_ibm_logs_export_adds_the_v1_keys(log_app: Any, tmp_path: pathlib.Path):
    logs = exported(log_app, tmp_path)["logs"]
    assert len(logs) == 19
    dialog = [log for log in logs if log["session_id"] == "quality-dialog-pt"]
    assert dialog[1]["response"]["output"]["nodes_visited"] == [
        {"dialog_node": "node_hours", "title": "Hours", "conditions": "#hours"}]
    assert dialog[1]["response"]["output"]["text"] == ["We are open 9 to 5."]
    for log in logs:
        assert log["response"]["context"]["conversation_id"] == log["session_id"]
        assert log["response"]["output"]["generic"]        # the v2 payload is all there
    words = {log["request"]["input"].get("text") for log in logs}
    assert {received for _s, _o, received, _l in EXPECTED_UNRECOGNIZED} <= words
    assert exported(log_app, tmp_path, "--since", "2030-01-01") == {"logs": []}


def test_ibm_logs_export_is_read_by_ibms_toolkit(log_app: Any, tmp_path: pathlib.Path):
    """IBM's assistant-improve-toolkit (1.4.1, installed without its own pins) loads the export
    and its format_data builds the Measure notebook's table from it."""
    pandas = pytest.importorskip("pandas", reason="IBM's toolkit needs pandas")
    toolkit = pytest.importorskip("assistant_improve_toolkit.computation_func",
                                  reason="assistant-improve-toolkit is not installed")
    files = pytest.importorskip("assistant_improve_toolkit.watson_assistant_func")
    exported(log_app, tmp_path)
    logs = files.load_logs_from_file(str(tmp_path / "logs.json"))["logs"]
    table = toolkit.format_data(pandas.DataFrame(logs))
    assert len(table) == 19
    assert set(table["response.context.conversation_id"]) == {
        log["session_id"] for log in logs}
    hours = table[table["request_input"] == "What are your hours?"]
    assert list(hours["response.top_intent_intent"]) == ["hours"]
    assert list(hours["response_text"]) == [["We are open 9 to 5."]]


def test_raw_v2_logs_are_what_the_toolkit_cannot_read(tmp_path: pathlib.Path):
    """Why the export exists: the same toolkit on a payload as IBM sends it fails."""
    pandas = pytest.importorskip("pandas", reason="IBM's toolkit needs pandas")
    toolkit = pytest.importorskip("assistant_improve_toolkit.computation_func",
                                  reason="assistant-improve-toolkit is not installed")
    with pytest.raises(KeyError):
        toolkit.format_data(pandas.DataFrame([message_body()["payload"]]))
