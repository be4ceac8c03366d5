"""The request log's writer: lines queued and written together, never lost on a normal exit,
never written twice across gunicorn's fork, warnings and errors at once."""

from __future__ import annotations

import logging
import os
import pathlib
import subprocess
import sys
import time

from handlers.logsetup import JsonFormatter, LineHandler

REPO = pathlib.Path(__file__).resolve().parent.parent


def handler_on(path: pathlib.Path) -> tuple[LineHandler, logging.Logger, object]:
    stream = open(path, "w")
    handler = LineHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(f"test.requestlog.{path.name}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return handler, logger, stream


def wait_for_lines(path: pathlib.Path, count: int, seconds: float = 5.0) -> list[str]:
    deadline = time.monotonic() + seconds
    while True:
        lines = path.read_text().splitlines()
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.02)


def test_queued_lines_are_written_by_the_handler_within_its_interval(tmp_path):
    path = tmp_path / "log"
    handler, logger, stream = handler_on(path)
    for number in range(5):
        logger.info("line %d", number)
    lines = wait_for_lines(path, 5, seconds=LineHandler.FLUSH_INTERVAL * 20)
    assert [line.split('"message": "')[1].split('"')[0] for line in lines] == \
        [f"line {number}" for number in range(5)]
    logger.removeHandler(handler)
    stream.close()


def test_a_warning_is_written_at_once_after_the_lines_queued_before_it(tmp_path):
    path = tmp_path / "log"
    handler, logger, stream = handler_on(path)
    handler.FLUSH_INTERVAL = 60.0        # the writer thread would not write them in time
    logger.info("before")
    logger.warning("the warning")
    lines = path.read_text().splitlines()
    assert [line.split('"level": "')[1].split('"')[0] for line in lines] == ["info", "warning"]
    logger.removeHandler(handler)
    stream.close()


def test_a_normal_exit_writes_what_was_queued(tmp_path):
    program = (
        "import logging, sys\n"
        "from handlers.logsetup import configure_logging\n"
        "configure_logging('INFO')\n"
        "for n in range(3):\n"
        "    logging.getLogger('x').info('queued %d', n)\n"
        "sys.exit(0)\n")
    done = subprocess.run([sys.executable, "-c", program], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0
    assert len([line for line in done.stderr.splitlines() if "queued" in line]) == 3


def test_a_forked_child_does_not_write_its_parents_queued_lines(tmp_path):
    path = tmp_path / "log"
    handler, logger, stream = handler_on(path)
    handler.FLUSH_INTERVAL = 60.0
    logger.info("parent, before the fork")
    child = os.fork()
    if child == 0:                          # the child: log one line of its own and leave
        try:
            logger.info("child")
            handler.flush()
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    handler.flush()
    lines = path.read_text().splitlines()
    assert sorted(line.split('"message": "')[1].split('"')[0] for line in lines) == \
        ["child", "parent, before the fork"]
    logger.removeHandler(handler)
    stream.close()
