"""Stand-ins on 127.0.0.1 that speak each translation provider's public HTTP API, for tests and
benchmarks: DeepL v2, Microsoft Translator v3, Google Cloud Translation v2, OpenAI-compatible
chat completions, MyMemory and Google's free web page (LibreTranslate:
testsupport/libre_server.py), plus `SilentServer`, which accepts connections and never answers.

Each records what reached it (method, raw path with its query, headers, JSON body), counts the
connections it accepted, checks the key where the provider expects it (403 otherwise), and
translates with testsupport.libre_server.translate, so "[en>es] text" marks what the tests compute.
Switches while it runs: `status` (answer an HTTP error), `hang` (hold each request),
`delay_ms`, and for the chat stand-in `mode` ("ok", "wrong_count", "drop_token").
"""

from __future__ import annotations

import html
import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from testsupport.libre_server import translate


@dataclass
class Seen:
    """One request as it reached the stand-in."""

    method: str
    path: str       # the raw request target: path and query string
    headers: dict[str, str]
    body: Any

    @property
    def query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64
    connections = 0

    def get_request(self) -> Any:
        accepted = super().get_request()
        self.connections += 1  # only the serving thread accepts
        return accepted


class StubServer:
    """One provider's stand-in; subclasses implement `answer(seen) -> (status, body)`."""

    def __init__(self, key: str | None = None, delay_ms: float = 0.0) -> None:
        self.key = key
        self.delay_ms = delay_ms
        self.status = 200
        self.hang = 0.0
        self.lock = threading.Lock()
        self.seen: list[Seen] = []
        self._release = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), self._handler_class())
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def connections(self) -> int:
        return self._httpd.connections

    def stop(self) -> None:
        self._release.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def recover(self) -> None:
        """Answer normally again (and let hung requests go)."""
        self.status, self.hang = 200, 0.0
        self._release.set()
        self._release = threading.Event()

    def texts(self) -> list[str]:
        """Every string the stand-in was asked to translate, in order."""
        return [text for seen in self.seen for text in self.texts_of(seen)]

    def texts_of(self, seen: Seen) -> list[str]:
        raise NotImplementedError

    def authorised(self, seen: Seen) -> bool:
        raise NotImplementedError

    def answer(self, seen: Seen) -> tuple[int, Any]:
        raise NotImplementedError

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._serve("GET", None)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                self._serve("POST", body)

            def _serve(self, method: str, body: Any) -> None:
                seen = Seen(method, self.path, dict(self.headers.items()), body)
                with stub.lock:
                    stub.seen.append(seen)
                    status, hang, delay, release = (stub.status, stub.hang, stub.delay_ms,
                                                    stub._release)
                if hang:
                    release.wait(hang)
                if delay:
                    time.sleep(delay / 1000)
                if not stub.authorised(seen):
                    status, answer = 403, {"message": "Forbidden"}
                elif status != 200:
                    answer = {"message": "Simulated failure"}
                else:
                    try:
                        status, answer = stub.answer(seen)
                    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
                        status, answer = 400, {"message": "Bad request"}
                if isinstance(answer, str):  # a web page
                    data, kind = answer.encode(), "text/html; charset=utf-8"
                else:
                    data, kind = json.dumps(answer, ensure_ascii=False).encode(), "application/json"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


class DeeplStub(StubServer):
    """DeepL API v2: POST /v2/translate, `Authorization: DeepL-Auth-Key <key>`, `text` <= 50."""

    def authorised(self, seen: Seen) -> bool:
        return seen.headers.get("Authorization") == f"DeepL-Auth-Key {self.key}"

    def texts_of(self, seen: Seen) -> list[str]:
        return list(seen.body["text"])

    def answer(self, seen: Seen) -> tuple[int, Any]:
        body = seen.body
        if urlsplit(seen.path).path != "/v2/translate":
            return 404, {"message": "Not found"}
        if not 1 <= len(body["text"]) <= 50:
            return 413, {"message": "Too many texts"}
        source, target = body["source_lang"].lower(), body["target_lang"].lower()[:2]
        return 200, {"translations": [
            {"detected_source_language": body["source_lang"], "text": translate(t, source, target)}
            for t in body["text"]]}


class MicrosoftStub(StubServer):
    """Microsoft Translator v3: POST /translate?api-version=3.0&from=&to=, key and region
    headers, an array of {"Text": ...} <= 100."""

    region: str | None = None

    def authorised(self, seen: Seen) -> bool:
        return (seen.headers.get("Ocp-Apim-Subscription-Key") == self.key
                and seen.headers.get("Ocp-Apim-Subscription-Region") == self.region)

    def texts_of(self, seen: Seen) -> list[str]:
        return [item["Text"] for item in seen.body]

    def answer(self, seen: Seen) -> tuple[int, Any]:
        query = seen.query
        if urlsplit(seen.path).path != "/translate" or query.get("api-version") != "3.0":
            return 404, {"error": {"code": 404000}}
        if not 1 <= len(seen.body) <= 100:
            return 400, {"error": {"code": 400077}}
        target = query["to"]
        return 200, [{"translations": [{"text": translate(item["Text"], query["from"], target),
                                        "to": target}]} for item in seen.body]


class GoogleStub(StubServer):
    """Google Cloud Translation v2: POST /language/translate/v2, `X-goog-api-key`, `q` a list."""

    def authorised(self, seen: Seen) -> bool:
        return seen.headers.get("X-goog-api-key") == self.key

    def texts_of(self, seen: Seen) -> list[str]:
        return list(seen.body["q"])

    def answer(self, seen: Seen) -> tuple[int, Any]:
        body = seen.body
        if urlsplit(seen.path).path != "/language/translate/v2" or body.get("format") != "text":
            return 400, {"error": {"code": 400}}
        return 200, {"data": {"translations": [
            {"translatedText": translate(q, body["source"], body["target"])} for q in body["q"]]}}


class MyMemoryStub(StubServer):
    """MyMemory: GET /get?q=&langpair=src|tgt, answering HTTP 200 with its own `responseStatus`.
    `quota_finished` answers as MyMemory does once the day's free words are spent."""

    quota_finished = False

    def authorised(self, seen: Seen) -> bool:
        return True  # the free tier has no key

    def texts_of(self, seen: Seen) -> list[str]:
        return [seen.query["q"]]

    def answer(self, seen: Seen) -> tuple[int, Any]:
        if urlsplit(seen.path).path != "/get":
            return 404, {"responseStatus": 404}
        if self.quota_finished:
            return 200, {"responseData": {"translatedText": "MYMEMORY WARNING: YOU USED ALL "
                                          "AVAILABLE FREE TRANSLATIONS FOR TODAY."},
                         "quotaFinished": True, "responseStatus": 429, "matches": []}
        source, target = (code.split("-")[0].lower() for code in seen.query["langpair"].split("|"))
        return 200, {"responseData": {"translatedText": translate(seen.query["q"], source, target),
                                      "match": 1},
                     "quotaFinished": False, "responseStatus": 200, "matches": []}


class GoogleWebStub(StubServer):
    """Google's free web page: GET /m?sl=&tl=&q=, the translation in a `result-container` div,
    HTML-escaped as the page has it."""

    def authorised(self, seen: Seen) -> bool:
        return True

    def texts_of(self, seen: Seen) -> list[str]:
        return [seen.query["q"]]

    def answer(self, seen: Seen) -> tuple[int, Any]:
        if urlsplit(seen.path).path != "/m":
            return 404, "<html><body>Not found</body></html>"
        query = seen.query
        translated = html.escape(translate(query["q"], query["sl"], query["tl"]))
        return 200, (f'<html><body><div class="header">Google Translate</div>'
                     f'<div class="result-container">{translated}</div></body></html>')


class ChatStub(StubServer):
    """OpenAI-compatible POST /v1/chat/completions with `Authorization: Bearer <key>`.

    It reads the last user message's JSON {"source", "target", "texts"} and answers
    {"texts": [...]} as the message content. `mode`: "ok", "wrong_count" (one text short),
    "drop_token" (the first text's `{n}` tokens lost); `json_mode` False refuses
    `response_format`.
    """

    mode = "ok"
    json_mode = True  # False: refuse `response_format` with 400, as servers without it do

    def authorised(self, seen: Seen) -> bool:
        return seen.headers.get("Authorization") == f"Bearer {self.key}"

    def request_of(self, seen: Seen) -> dict[str, Any]:
        user = [m for m in seen.body["messages"] if m["role"] == "user"][-1]
        return json.loads(user["content"])

    def texts_of(self, seen: Seen) -> list[str]:
        return list(self.request_of(seen)["texts"])

    def answer(self, seen: Seen) -> tuple[int, Any]:
        if urlsplit(seen.path).path != "/v1/chat/completions":
            return 404, {"error": {"message": "not found"}}
        if "response_format" in seen.body and not self.json_mode:
            return 400, {"error": {"message": "response_format is not supported"}}
        asked = self.request_of(seen)
        texts = [translate(t, asked["source"], asked["target"]) for t in asked["texts"]]
        if self.mode == "wrong_count":
            texts = texts[:-1]
        elif self.mode == "drop_token" and texts:
            texts[0] = "".join(ch for ch in texts[0] if ch not in "{}0123456789")
        content = json.dumps({"texts": texts}, ensure_ascii=False)
        return 200, {"id": "chatcmpl-stub", "object": "chat.completion",
                     "model": seen.body["model"],
                     "choices": [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": content}}]}


class SilentServer:
    """Accepts connections and never reads or answers: a provider hung behind its load balancer.
    Counts the connections; stop() closes them."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0), backlog=64)
        self._sock.settimeout(0.05)
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    @property
    def connections(self) -> int:
        return len(self.accepted)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self.accepted.append(conn)

    def stop(self) -> None:
        self._stop.set()
        for conn in self.accepted:
            conn.close()
        self._sock.close()


STUBS: dict[str, Callable[..., StubServer]] = {"deepl": DeeplStub, "microsoft": MicrosoftStub,
                                               "google": GoogleStub, "llm": ChatStub}
