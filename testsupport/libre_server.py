"""A LibreTranslate-compatible HTTP server on 127.0.0.1, for tests and benchmarks.

It speaks the part of LibreTranslate's API the kit uses: `POST /translate` with `q` (a string or
a list), `source`, `target`, `format` and `api_key`, taken from the query string (what
deep-translator sends), a form body or a JSON body, answering `{"translatedText": ...}`.

Translations are deterministic and recognisable: a small phrase table of real translations, and
for any other text a reversible marker, `mark(text, source, target)` = "[es>en] text", that tests
compute instead of hard-coding. The behaviour is switchable while it runs: answer normally,
answer with an HTTP error, hang, or delay every answer. It records requests and counts the
strings asked for (`calls`: a batch of 12 counts 12), the HTTP requests (`http_requests`) and the
connections it accepted (`connections`).

In tests: the `libre_server` fixture (tests/conftest.py). Standalone:

    python -m testsupport.libre_server --port 5000 --delay-ms 50
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# Real translations for the sentences the tests send; (source, target) -> {text: translation}.
PHRASES: dict[tuple[str, str], dict[str, str]] = {
    ("es", "en"): {
        "hola, necesito ayuda con mi pedido": "Hello, I need help with my order",
        "quiero cambiar la dirección de envío de mi pedido": "I want to change the shipping "
                                                              "address of my order",
        "gracias": "Thank you",
        "sí": "Yes",
    },
    ("fr", "en"): {
        "bonjour, je voudrais suivre ma commande": "Hello, I would like to track my order",
        "merci": "Thank you",
    },
    ("de", "en"): {
        "guten tag, wo ist meine bestellung?": "Good afternoon, where is my order?",
        "danke": "Thank you",
    },
    ("ja", "en"): {"注文の配送状況を教えてください": "Please tell me the delivery status of my order",
                   "はい": "Yes"},
    ("ar", "en"): {"مرحبا، أريد إلغاء طلبي": "Hello, I want to cancel my order"},
    ("en", "es"): {"hello": "Hola", "how can i help you?": "¿Cómo puedo ayudarte?",
                   "yes": "Sí", "no": "No", "thank you": "Gracias"},
    ("en", "fr"): {"hello": "Bonjour", "how can i help you?": "Comment puis-je vous aider ?"},
}


def mark(text: str, source: str, target: str) -> str:
    """What the server answers for text its phrase table does not hold."""
    return f"[{source}>{target}] {text}"


def unmark(text: str) -> str:
    """The original text of a marked translation (the text itself when unmarked)."""
    if text.startswith("[") and "] " in text:
        return text.split("] ", 1)[1]
    return text


def translate(text: str, source: str, target: str) -> str:
    """The server's deterministic translation of one text."""
    table = PHRASES.get((source, target), {})
    return table.get(text.strip().lower()) or mark(text, source, target)


# What GET /languages lists: the kit's sixteen default languages.
LANGUAGES = ("en", "es", "fr", "de", "it", "pt", "nl", "sv", "pl", "ru", "tr", "ar", "hi", "ja",
             "ko", "zh")


class _Server(ThreadingHTTPServer):
    # Clients that open a connection per call need a backlog: the default of 5 drops SYNs
    # under load and the client retries a second later.
    request_queue_size = 256
    connections = 0

    def get_request(self) -> Any:
        accepted = super().get_request()
        self.connections += 1  # only the serving thread accepts: no lock needed
        return accepted


class LibreServer:
    """The server, its switches and what it saw. Thread-safe; start() binds an ephemeral port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, delay_ms: float = 0.0,
                 api_key: str | None = None) -> None:
        self.lock = threading.Lock()
        self.delay_ms = delay_ms
        self.required_key = api_key
        self.status = 200            # answer this status (with an error body) when not 200
        self.hang_seconds = 0.0      # hold each request this long before answering
        self.failing_texts: dict[str, int] = {}    # q -> status answered for that text only
        self.hanging_texts: dict[str, float] = {}  # q -> seconds held for that text only
        self.calls = 0               # strings asked for
        self.http_requests = 0       # POST /translate requests
        self.language_requests = 0   # GET /languages requests
        self.languages = LANGUAGES
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0       # the most requests it ever held at once
        self._release = threading.Event()
        self._httpd = _Server((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- switches -------------------------------------------------------------------------------
    def answer_normally(self) -> None:
        with self.lock:
            self.status, self.hang_seconds, self.delay_ms = 200, 0.0, 0.0
            self.failing_texts, self.hanging_texts = {}, {}
        self._release.set()
        self._release = threading.Event()

    def fail_with(self, status: int = 500) -> None:
        self.status = status

    def fail_for(self, text: str, status: int = 500) -> None:
        """Answer `status` for requests translating exactly `text`; others answer normally."""
        self.failing_texts[text] = status

    def hang_for(self, text: str, seconds: float) -> None:
        """Hold requests translating exactly `text` for `seconds`; others answer normally."""
        self.hanging_texts[text] = seconds

    def hang(self, seconds: float) -> None:
        """Hold every request `seconds` before answering (released early by stop())."""
        self.hang_seconds = seconds

    def delay(self, ms: float) -> None:
        self.delay_ms = ms

    def reset_counts(self) -> None:
        with self.lock:
            self.calls = self.http_requests = self.language_requests = 0
            self.requests.clear()
            self.max_in_flight = 0
            self._httpd.connections = 0

    # --- life -----------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def connections(self) -> int:
        """TCP connections accepted since start (or reset_counts)."""
        return self._httpd.connections

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> "LibreServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()  # let hanging handlers finish
        self._httpd.shutdown()
        self._httpd.server_close()

    def texts(self) -> list[str]:
        """Every `q` the server was asked to translate, in order."""
        out: list[str] = []
        for request in self.requests:
            q = request.get("q")
            out.extend(q if isinstance(q, list) else [q])
        return out

    # --- HTTP -----------------------------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; without this, Nagle's algorithm and the
            # client's delayed ACK add ~40 ms to every answer.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _params(self) -> dict[str, Any]:
                params: dict[str, Any] = {k: v if len(v) > 1 else v[0]
                                          for k, v in parse_qs(urlsplit(self.path).query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if raw:
                    if "json" in (self.headers.get("Content-Type") or ""):
                        params.update(json.loads(raw))
                    else:
                        params.update({k: v if len(v) > 1 else v[0]
                                       for k, v in parse_qs(raw.decode()).items()})
                return params

            def do_GET(self) -> None:
                if urlsplit(self.path).path == "/languages":
                    with server.lock:
                        server.language_requests += 1
                        codes = list(server.languages)
                    self._send(200, [{"code": c, "name": c, "targets": codes} for c in codes])
                else:
                    self._send(404, {"error": "Not Found"})

            def do_POST(self) -> None:
                if urlsplit(self.path).path.rstrip("/") != "/translate":
                    self._send(404, {"error": "Not Found"})
                    return
                params = self._params()
                q = params.get("q")
                texts = q if isinstance(q, list) else [q]
                with server.lock:
                    server.calls += len(texts)
                    server.http_requests += 1
                    server.requests.append(params)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    status, hang, delay = server.status, server.hang_seconds, server.delay_ms
                    for text in texts:  # a batch holding a switched text is switched
                        if isinstance(text, str):
                            status = server.failing_texts.get(text, status)
                            hang = server.hanging_texts.get(text, hang)
                    release = server._release
                try:
                    self._answer(params, status, hang, delay, release)
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def _answer(self, params: dict[str, Any], status: int, hang: float, delay: float,
                        release: threading.Event) -> None:
                if hang:
                    release.wait(hang)
                if delay:
                    time.sleep(delay / 1000)
                if server.required_key and params.get("api_key") != server.required_key:
                    self._send(403, {"error": "Invalid API key"})
                    return
                if status != 200:
                    self._send(status, {"error": "Simulated failure"})
                    return
                q, source, target = params.get("q"), params.get("source"), params.get("target")
                if q is None or not source or not target:
                    self._send(400, {"error": "Invalid request: missing q, source or target"})
                    return
                if source not in server.languages or target not in server.languages:
                    self._send(400, {"error": "Language not supported"})
                    return
                if isinstance(q, list):
                    self._send(200, {"translatedText": [translate(t, source, target) for t in q]})
                else:
                    self._send(200, {"translatedText": translate(q, source, target)})

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description="A LibreTranslate-compatible stand-in server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = an ephemeral port (printed)")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="delay before each answer")
    args = parser.parse_args()
    server = LibreServer(args.host, args.port, delay_ms=args.delay_ms).start()
    print(f"libre server on {server.url} (delay {args.delay_ms:g} ms)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
