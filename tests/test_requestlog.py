"""The process's log lines: one JSON object per line on stderr, whatever logs them, written
before the process exits."""

from __future__ import annotations

import json
import logging
import pathlib
import subprocess
import sys

from handlers.logsetup import JsonFormatter

REPO = pathlib.Path(__file__).resolve().parent.parent


def test_a_record_is_one_json_line_with_its_fields() -> None:
    record = logging.LogRecord("handlers.request", logging.INFO, __file__, 1, "request %s",
                               ("done",), None)
    record.fields = {"status": 200, "language": "es", "when": pathlib.Path("x")}
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "request done" and parsed["level"] == "info"
    assert parsed["logger"] == "handlers.request"
    assert (parsed["status"], parsed["language"], parsed["when"]) == (200, "es", "x")
    assert parsed["time"].endswith("Z") and "T" in parsed["time"]


def test_every_line_of_a_process_reaches_stderr_as_json_before_it_exits() -> None:
    program = (
        "import logging, sys\n"
        "from handlers.logsetup import configure_logging\n"
        "configure_logging('INFO')\n"
        "configure_logging('INFO')\n"      # a second call adds no second handler
        "for n in range(3):\n"
        "    logging.getLogger('x').info('line %d', n)\n"
        "logging.getLogger('x').debug('not at INFO')\n"
        "sys.exit(0)\n")
    done = subprocess.run([sys.executable, "-c", program], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [line["message"] for line in lines] == ["line 0", "line 1", "line 2"]
