"""The kit's gunicorn worker: gthread that gives a thread only to a request that has arrived.

gunicorn's gthread worker hands a connection to a thread as soon as its first byte arrives; the
thread then blocks reading the rest of the request, with no deadline. A few dozen clients that
send one byte and then nothing (slow, broken or hostile) hold every thread of every worker, and
normal requests wait forever. `RequestDeadlineWorker` reads each request in the worker's own
event loop instead, without blocking, and submits the connection to a thread only once the
whole request (headers and body) is buffered. A connection that has not sent its request within
`request_read_timeout` seconds (gunicorn_conf.py sets it from `REQUEST_READ_TIMEOUT`) gets a 408
and is closed. A request larger than `buffer_limit` goes to a thread when the limit is reached;
the thread reads the rest with every read bounded by what is left of the same deadline, and the
connection is closed after the answer. Everything a thread receives is handled as before (the
log webhook's durability is untouched).

It also answers gunicorn's own errors (a malformed request line or header, headers too large)
with the kit's JSON error body instead of gunicorn's HTML page, and without echoing the request.

A worker that is replaced (`max_requests`) or stopped (SIGTERM: a deploy, a reload) retires
instead of vanishing: gthread stops at once and closes every kept-alive connection, and a client
that had just sent its next request on one (wrk in every benchmark, a router's connection pool)
loses it. A retiring worker accepts nothing new, answers each connection's next request with
`Connection: close`, and exits once its connections are gone or after `retire_drain` seconds.

It does not terminate TLS (the platform's router does); it refuses to start with `certfile` set.
Pipelined requests (sent before the previous answer) wait for new bytes or the keep-alive timeout,
as in gthread itself.
"""

from __future__ import annotations

import contextlib
import errno
import math
import selectors
import socket
import sys
import time
from functools import partial
from typing import Any

from gunicorn import http
from gunicorn.http import errors
from gunicorn.util import write_nonblock
from gunicorn.workers.gthread import TConn, ThreadWorker

from handlers.envelope import compact_json

CHUNK = 64 * 1024


class RequestReader:
    """What gunicorn's request parser reads for one connection: the bytes the event loop buffered,
    then the socket itself, each read bounded by the request's deadline (end of data after it)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffered = b""
        self.deadline = math.inf
        self.complete = True

    def __iter__(self) -> RequestReader:
        return self

    def __next__(self) -> bytes:
        if self.buffered:
            data, self.buffered = self.buffered, b""
            return data
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise StopIteration
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(CHUNK)
        except TimeoutError:
            raise StopIteration from None
        finally:
            self.sock.settimeout(None)
        if not data:
            raise StopIteration
        return data


class BufferedConn(TConn):
    """gthread's connection whose parser reads from a `RequestReader` instead of the socket."""

    def __init__(self, cfg: Any, sock: socket.socket, client: Any, server: Any) -> None:
        super().__init__(cfg, sock, client, server)
        self.reader = RequestReader(self.sock)
        self.buffer = bytearray()
        self.deadline = math.inf

    def init(self) -> None:
        self.initialized = True
        self.sock.setblocking(True)
        if self.parser is None:
            self.parser = http.RequestParser(self.cfg, self.reader, self.client)


def request_state(data: bytes | bytearray, limit: int) -> str:
    """"wait" while `data` holds only part of a request; "complete" once it holds a whole one;
    "judge" when gunicorn's parser should see it now: over `limit` bytes, framing this function
    does not follow (let the parser refuse it), or `Expect: 100-continue` (the client waits for
    gunicorn's 100 Continue before it sends the body)."""
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        return "judge" if len(data) > limit else "wait"
    framing: dict[bytes, list[bytes]] = {}
    for line in bytes(data[:head_end]).split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name in (b"content-length", b"transfer-encoding", b"expect"):
            framing.setdefault(name, []).append(value.strip().lower())
    lengths = framing.get(b"content-length", [])
    codings = framing.get(b"transfer-encoding", [])
    if framing.get(b"expect") or len(lengths) > 1 or (lengths and codings):
        return "judge"
    body = head_end + 4
    if codings:
        if codings != [b"chunked"]:
            return "judge"
        end = chunked_end(data, body)
        if end == -1:
            return "judge"
    elif lengths:
        if not lengths[0].isdigit() or int(lengths[0]) > limit:
            return "judge"  # the parser refuses it, or the app (its MAX_CONTENT_LENGTH) or a thread
        end = body + int(lengths[0])
    else:
        end = body
    if end is not None and end <= len(data):
        return "complete"
    return "judge" if len(data) > limit else "wait"


def chunked_end(data: bytes | bytearray, pos: int) -> int | None:
    """Where a chunked body starting at `pos` ends (after its trailers), None if it has not all
    arrived, -1 if a chunk size is not hexadecimal (the parser answers that)."""
    while True:
        line_end = data.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = bytes(data[pos:line_end]).split(b";", 1)[0].strip()
        if not size or any(c not in b"0123456789abcdefABCDEF" for c in size):
            return -1
        if int(size, 16) == 0:
            trailers_end = data.find(b"\r\n\r\n", line_end)
            return None if trailers_end < 0 else trailers_end + 4
        pos = line_end + 2 + int(size, 16) + 2
        if pos > len(data):
            return None


# gunicorn's parse errors as the kit's JSON errors: (status, reason, error code, detail).
PARSE_ERRORS: list[tuple[type[BaseException], int, str, str, str]] = [
    (errors.LimitRequestHeaders, 431, "Request Header Fields Too Large", "header_fields_too_large",
     "the request's header fields are too many or too large"),
    (errors.LimitRequestLine, 414, "URI Too Long", "uri_too_long", "the request line is too long"),
    (errors.UnsupportedTransferCoding, 501, "Not Implemented", "unsupported_transfer_coding",
     "the Transfer-Encoding is not supported; send chunked or a Content-Length"),
    (errors.ForbiddenProxyRequest, 403, "Forbidden", "forbidden", "the proxy is not allowed"),
    (errors.ConfigurationProblem, 500, "Internal Server Error", "server_misconfigured",
     "the server's configuration refuses this request"),
    ((errors.InvalidRequestLine, errors.InvalidRequestMethod, errors.InvalidHTTPVersion),
     400, "Bad Request", "invalid_request_line", "the request line is not valid HTTP/1.x"),
    ((errors.InvalidHeader, errors.InvalidHeaderName, errors.ObsoleteFolding,
      errors.InvalidSchemeHeaders), 400, "Bad Request", "invalid_header",
     "a request header is not valid HTTP"),
    (errors.InvalidProxyLine, 400, "Bad Request", "invalid_proxy_line",
     "the PROXY protocol line is not valid"),
    ((errors.InvalidChunkSize, errors.ChunkMissingTerminator), 400, "Bad Request",
     "invalid_chunked_body", "the chunked body is not valid"),
]


def error_bytes(status: int, reason: str, error: str, detail: str) -> bytes:
    """A whole HTTP answer with the kit's JSON error body; the connection closes after it."""
    body = compact_json({"error": error, "detail": detail}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


class RequestDeadlineWorker(ThreadWorker):
    """gthread, reading each request in the event loop before a thread gets it (module docstring).

    Uses gthread's own structure: `accept` (new connections), `enqueue_req` (a kept-alive
    connection has data), `murder_keepalived` (the loop's periodic sweep), `handle` (a thread's
    work), `handle_error` (gunicorn's error answer) and `handle_exit` (SIGTERM) are overridden;
    the rest is gthread's. Two of gthread's private attributes are used because no public
    interface reaches them: `_lock` (around the selector, which gthread's threads also register
    kept-alive connections with, so this subclass's registrations must take the same lock) and
    `_keep` (the kept-alive connections a retiring worker closes). gunicorn is pinned exactly in
    requirements.in, and tests/test_gunicorn_hardening.py fails when an upgrade moves either.
    """

    request_read_timeout = 10.0
    buffer_limit = 1024 * 1024
    # How long a retiring worker waits for its connections' next requests; a connection idle
    # that long is closed (a busy client sends its next request within milliseconds).
    retire_drain = 5.0

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        if cfg.is_ssl:
            raise RuntimeError("server.worker.RequestDeadlineWorker does not terminate TLS: "
                               "unset certfile/keyfile and let the platform's router do it")
        super().check_config(cfg, log)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Connections whose request is being read, in deadline order (all get the same timeout).
        self.reading: dict[BufferedConn, float] = {}
        # gthread stops the moment it has served max_requests, dropping its kept-alive
        # connections; this worker counts them itself and retires (`retire`) instead.
        self.retire_after = self.max_requests
        self.max_requests = sys.maxsize
        self.retire_by: float | None = None
        self.listening = True
        self.stop_asked = False

    def retire(self, why: str) -> None:
        """Stop taking connections and close each one after its next answer (any thread)."""
        with self._lock:
            if self.retire_by is not None:
                return
            self.retire_by = time.monotonic() + self.retire_drain
        # gthread adds `Connection: close` to every answer once this many connections are kept.
        self.max_keepalived = 0
        self.log.info("Retiring worker (%s): its connections close after their next answer", why)

    def handle_exit(self, sig: int, frame: Any) -> None:
        """SIGTERM (gunicorn's graceful stop and reload): retire rather than stop at once. A
        signal handler only sets a flag: the loop's sweep retires (it takes a lock and logs)."""
        self.stop_asked = True

    def drain(self) -> None:
        """A retiring worker's part of the loop's sweep: stop listening; once no connection is
        left, or at the drain's end (closing what is left), end gthread's loop."""
        assert self.retire_by is not None
        if self.listening:
            self.listening = False
            with self._lock:
                for listener in self.sockets:
                    with contextlib.suppress(KeyError, ValueError):  # stopped before run()
                        self.poller.unregister(listener)
        if self.nr_conns > 0 and time.monotonic() < self.retire_by:
            return
        for conn in list(self.reading):
            self.drop(conn)
        with self._lock:
            idle = list(self._keep)
            self._keep.clear()
            for conn in idle:
                self.poller.unregister(conn.sock)
        for conn in idle:
            conn.close()
            self.nr_conns -= 1
        self.alive = False

    def accept(self, server: Any, listener: socket.socket) -> None:
        """gthread's accept, reading the request before a thread gets it; a worker on its way out
        (max_requests, shutdown) leaves new connections to the other workers and its successor."""
        if not self.alive or self.retire_by is not None:
            return
        try:
            sock, client = listener.accept()
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                return
            raise
        self.nr_conns += 1
        self.read_request(BufferedConn(self.cfg, sock, client, server))

    def enqueue_req(self, conn: BufferedConn) -> None:
        """gthread calls this when a kept-alive connection has data: read its request first."""
        self.read_request(conn)

    def read_request(self, conn: BufferedConn) -> None:
        conn.buffer = bytearray()
        conn.deadline = time.monotonic() + self.request_read_timeout
        self.reading[conn] = conn.deadline
        with self._lock:
            self.poller.register(conn.sock, selectors.EVENT_READ,
                                 partial(self.on_request_data, conn))

    def on_request_data(self, conn: BufferedConn, sock: socket.socket) -> None:
        try:
            data = conn.sock.recv(CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.drop(conn)
            return
        conn.buffer += data
        state = request_state(conn.buffer, self.buffer_limit)
        if state == "wait":
            return
        self.stop_reading(conn)
        conn.reader.buffered = bytes(conn.buffer)
        conn.reader.deadline = conn.deadline
        conn.reader.complete = state == "complete"
        conn.buffer = bytearray()
        super().enqueue_req(conn)

    def stop_reading(self, conn: BufferedConn) -> None:
        self.reading.pop(conn, None)
        with self._lock:
            try:
                self.poller.unregister(conn.sock)
            except (KeyError, ValueError):
                pass

    def drop(self, conn: BufferedConn, answer: bytes = b"") -> None:
        self.stop_reading(conn)
        if answer:
            try:
                conn.sock.send(answer)
            except OSError:
                pass
        conn.close()
        self.nr_conns -= 1

    def murder_keepalived(self) -> None:
        """gthread's sweep of idle kept-alive connections, plus requests past their deadline."""
        super().murder_keepalived()
        now = time.monotonic()
        late = []
        for conn, deadline in self.reading.items():
            if deadline > now:
                break
            late.append(conn)
        timeout = error_bytes(408, "Request Timeout", "request_timeout",
                              f"the request did not arrive within {self.request_read_timeout:g} s")
        for conn in late:
            self.log.debug("Closing a connection that did not send its request in time")
            # A connection that sent nothing at all is simply closed, as HTTP servers do.
            self.drop(conn, timeout if conn.buffer else b"")
        if self.stop_asked:
            self.retire("asked to stop")
        if self.retire_by is not None:
            self.drain()

    def handle(self, conn: BufferedConn) -> tuple[bool, BufferedConn]:
        """gthread's handling; a request the event loop did not buffer whole ends its connection
        (its remaining bytes are not a request the next loop could judge)."""
        if self.nr >= self.retire_after:
            self.retire(f"served {self.retire_after} requests")
        keepalive, conn = super().handle(conn)
        return keepalive and conn.reader.complete, conn

    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: BaseException) -> None:
        """gunicorn's error answer, as JSON; the log names the error, not the request's bytes."""
        ip = addr[0] if addr else ""
        for kinds, status, reason, error, detail in PARSE_ERRORS:
            if isinstance(exc, kinds):
                self.log.warning("Invalid request from ip=%s: %s", ip, error)
                break
        else:
            self.log.exception("Error handling request")
            status, reason, error, detail = (500, "Internal Server Error", "internal_error",
                                             "the server failed before the request reached the app")
        try:
            write_nonblock(client, error_bytes(status, reason, error, detail))
        except Exception:
            self.log.debug("Failed to send error message.")
