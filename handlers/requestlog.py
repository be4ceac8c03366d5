"""One JSON log line per request, and the app's error answers.

The line says which endpoint, which event, the status, how long it took and which session; plus
the steps' `turn.notes` (codes and counts). It never holds the message text or a credential, so
the logs can go to any aggregator. Unexpected exceptions answer a bare 500 JSON error; the log
line names the exception's type and where it was raised, not its message (which may quote text).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
import traceback
import weakref
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from .envelope import WebhookError, compact_json, error_response

log = logging.getLogger("handlers.request")


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


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    return f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno} in {last.name}"


STARTED = "handlers.started"


class _Clock:
    """WSGI middleware noting when a request arrived (in `environ[STARTED]`), before Flask routes
    it: cheaper than a before_request hook, and the duration then covers the routing too."""

    def __init__(self, wsgi_app: Any) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        environ[STARTED] = time.monotonic()
        return self.wsgi_app(environ, start_response)


def started_at(environ: dict[str, Any]) -> float:
    """When the request arrived (time.monotonic()); now if it did not come through the app."""
    return environ.get(STARTED) or time.monotonic()


def options_as_json(response: Response) -> Response:
    """Flask answers OPTIONS itself with an empty text/html body; every answer of the kit is JSON."""
    if request.method == "OPTIONS" and response.status_code == 200 and not response.is_json:
        response.set_data(compact_json({"allow": sorted(response.allow)}))
        response.content_type = "application/json"
    return response


def init_app(app: Flask) -> None:
    app.wsgi_app = _Clock(app.wsgi_app)  # type: ignore[method-assign]
    app.after_request(options_as_json)

    @app.after_request
    def log_request(response: Response) -> Response:
        req = request._get_current_object()  # type: ignore[attr-defined]
        path = req.path
        if path in ("/healthz", "/readyz") and response.status_code < 400:
            return response
        if not log.isEnabledFor(logging.INFO):
            return response
        ctx = g._get_current_object()  # type: ignore[attr-defined]
        fields: dict[str, Any] = {
            "endpoint": path,
            "method": req.method,
            "status": response.status_code,
            "duration_ms": round((time.monotonic() - started_at(req.environ)) * 1000, 2),
        }
        turn = getattr(ctx, "turn", None)
        if turn is not None:
            fields["event"] = turn.event
            fields["session_id"] = turn.session_id
            fields.update(turn.notes)
        error = getattr(ctx, "error", None)
        if error:
            fields["error"] = error
        reason = getattr(ctx, "reason", None)
        if reason:
            fields["reason"] = reason
        log.info("request", extra={"fields": fields})
        return response

    @app.errorhandler(WebhookError)
    def webhook_error(exc: WebhookError) -> Response:
        g.error = exc.error
        g.reason = exc.reason
        return error_response(exc.status, exc.error, exc.detail, exc.headers)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        names = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
        details = {413: f"the body is larger than MAX_CONTENT_LENGTH "
                        f"({app.config.get('MAX_CONTENT_LENGTH')} bytes)"}
        error = names.get(code, (exc.name or "error").lower().replace(" ", "_"))
        g.error = error
        response = error_response(code, error, details.get(code, exc.description or exc.name))
        if code == 405 and exc.get_headers():
            allow = dict(exc.get_headers()).get("Allow")
            if allow:
                response.headers["Allow"] = allow
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        g.error = "internal_error"
        log.error("unhandled exception", extra={"fields": {
            "endpoint": request.path, "exception": type(exc).__name__, "where": _where(exc)}})
        return error_response(500, "internal_error",
                              "the webhook failed unexpectedly; the event was not processed")
