"""A threaded TCP proxy on 127.0.0.1 in front of a real server (PostgreSQL in the tests), that can
fail the way networks fail:

- `cut()`: every open connection is reset (both sides closed with RST: SO_LINGER 0), and while
  cut, new connections are accepted and reset at once (a peer that restarted, a firewall that
  rejects);
- `blackhole()`: every socket stays open and new connections are accepted, but nothing is
  forwarded and nothing is answered (a silent partition: the kernel on the proxy's side still
  acknowledges every packet, so no TCP timeout or keepalive on the client ever fires);
- `heal()`: forwarding again. What arrived during a blackhole is delivered then, as TCP would
  retransmit it once the path is back, so a statement the client gave up on may still run.

Loopback only; every thread ends within a fraction of a second of `close()`.

    with TcpProxy("127.0.0.1", 5432) as proxy:
        url = f"postgresql://postgres@127.0.0.1:{proxy.port}/test"
        proxy.blackhole(); ...; proxy.heal()
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
from typing import Any

FORWARD, BLACKHOLE, CUT = "forward", "blackhole", "cut"
POLL = 0.05      # how often a blocked thread looks at the proxy's state


def _reset(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class TcpProxy:
    """See the module's docstring. `port` is where clients connect; `connections` counts the
    connections accepted so far."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.state = FORWARD
        self.connections = 0
        self._changed = threading.Condition()
        self._closed = False
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._threads: list[threading.Thread] = []
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.listener.settimeout(POLL)
        self.port: int = self.listener.getsockname()[1]
        self._start(self._accept)

    # --- the switches ------------------------------------------------------------------------

    def blackhole(self) -> None:
        self._set(BLACKHOLE)

    def heal(self) -> None:
        self._set(FORWARD)

    def cut(self) -> None:
        with self._changed:
            self.state = CUT
            pairs, self._pairs = self._pairs, []
            self._changed.notify_all()
        for client, server in pairs:
            _reset(client)
            _reset(server)

    def close(self) -> None:
        with self._changed:
            self._closed = True
            pairs, self._pairs = self._pairs, []
            self._changed.notify_all()
        with contextlib.suppress(OSError):
            self.listener.close()
        for client, server in pairs:
            _reset(client)
            _reset(server)
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> "TcpProxy":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _set(self, state: str) -> None:
        with self._changed:
            self.state = state
            self._changed.notify_all()

    # --- the relay ---------------------------------------------------------------------------

    def _start(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            if self.state == CUT:
                _reset(client)
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            client.settimeout(None)     # blocking; the pumps wait in select()
            server.settimeout(None)
            with self._changed:
                self._pairs.append((client, server))
            self._start(self._pump, client, server)
            self._start(self._pump, server, client)

    def _hold(self) -> bool:
        """Wait while blackholed; False when the data must not be forwarded any more."""
        with self._changed:
            while self.state == BLACKHOLE and not self._closed:
                self._changed.wait(POLL)
            return self.state == FORWARD and not self._closed

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        while not self._closed:
            try:
                readable, _, _ = select.select([source], [], [], POLL)
                if not readable:
                    continue
                data = source.recv(65536)
            except (OSError, ValueError):    # closed by cut() or close()
                break
            if not self._hold():
                break
            if not data:
                break
            try:
                sink.sendall(data)
            except OSError:
                break
        # One side ended (or the pair was cut): end the other, unless it is being reset.
        if self.state != CUT:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
