"""The process's logging: JSON lines on stderr, one object per line, so any aggregator reads the
fields (the request's line from requestlog.py, the warnings of the rest of the kit).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
import weakref
from typing import Any


class JsonFormatter(logging.Formatter):
    """Log records as one JSON object per line; extra fields come from `record.fields`."""

    _encode = staticmethod(json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "),
                                            default=str).encode)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._second: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        # Every request writes a line: format each second's timestamp once, not per line.
        if datefmt != "%Y-%m-%dT%H:%M:%S":
            return super().formatTime(record, datefmt)
        second = int(record.created)
        cached = self._second
        if cached[0] != second:
            cached = (second, time.strftime(datefmt, self.converter(record.created)))
            self._second = cached
        return cached[1]

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        return self._encode(line)


class LineHandler(logging.StreamHandler):
    """A StreamHandler that formats outside any lock and writes lines in batches.

    gunicorn's threads all log one line per request. Behind the standard handler's lock (held
    while formatting and writing) they queued on each other and on the GIL; and each write(2)
    lets go of the GIL, which under load costs a thread switch per line. So lines for a real
    file descriptor are queued in memory and written together by a thread of the handler's own
    at most `FLUSH_INTERVAL` seconds later; a warning or an error is written at once, with
    whatever is queued before it, and so is a queue over `FLUSH_BYTES`. A worker killed with
    SIGKILL loses the lines of its last interval; a normal exit writes them (logging flushes
    its handlers at exit). Streams without a descriptor (tests' StringIO) are written at once.
    """

    FLUSH_INTERVAL = 0.1
    FLUSH_BYTES = 64 * 1024

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._queued: list[bytes] = []
        self._queued_bytes = 0
        self._queue_lock = threading.Lock()
        self._write_lock = threading.Lock()   # one batch written at a time, in order
        self._wanted = threading.Event()
        self._writer: threading.Thread | None = None
        me = weakref.ref(self)
        # A forked worker starts empty: the parent writes its own queued lines, and a lock held
        # by one of its threads at the fork would never be let go in the child.
        os.register_at_fork(after_in_child=lambda: (h := me()) is not None and h._forked())

    def _forked(self) -> None:
        self._queued, self._queued_bytes = [], 0
        self._queue_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._wanted = threading.Event()
        self._writer = None

    def handle(self, record: logging.LogRecord) -> Any:
        accepted = self.filter(record)
        if accepted:
            self.emit(record)
        return accepted

    _fd_of: tuple[Any, int | None] = (None, None)

    def _fileno(self) -> int | None:
        """The stream's file descriptor (looked up once per stream), or None if it has none."""
        stream, fd = self._fd_of
        if stream is self.stream:
            return fd
        try:
            self.stream.flush()
            fd = self.stream.fileno()
        except (AttributeError, OSError, ValueError):
            fd = None  # io.UnsupportedOperation is an OSError and a ValueError
        self._fd_of = (self.stream, fd)
        return fd

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
            if self._fileno() is None:
                with self.lock:  # type: ignore[union-attr]
                    self.stream.write(line)
                    self.stream.flush()
                return
            data = line.encode(getattr(self.stream, "encoding", None) or "utf-8",
                               "backslashreplace")
            with self._queue_lock:
                was_empty = not self._queued
                self._queued.append(data)
                self._queued_bytes += len(data)
                at_once = record.levelno >= logging.WARNING \
                    or self._queued_bytes > self.FLUSH_BYTES
            if at_once:
                self.flush()
            elif was_empty:
                if self._writer is None:
                    self._start_writer()
                self._wanted.set()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        """Write every queued line now (also called by logging at exit)."""
        with self._write_lock:
            with self._queue_lock:
                data = b"".join(self._queued)
                self._queued, self._queued_bytes = [], 0
            fd = self._fileno() if data else None
            if fd is None:
                return
            try:
                while data:
                    data = data[os.write(fd, data):]
            except OSError:
                pass  # stderr closed or full: nothing better to do with a log line

    def _start_writer(self) -> None:
        with self._queue_lock:
            if self._writer is not None:
                return
            self._writer = threading.Thread(target=self._write_queued, name="log-writer",
                                            daemon=True)
        self._writer.start()

    def _write_queued(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            time.sleep(self.FLUSH_INTERVAL)   # let the interval's lines gather
            self.flush()


def configure_logging(level: str) -> None:
    """JSON lines on stderr for the whole process (gunicorn's access log is off in favour of these)."""
    root = logging.getLogger()
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        handler = LineHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    root.setLevel(level)
    logging.Formatter.converter = time.gmtime
