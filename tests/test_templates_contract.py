"""The core contract, run against each standalone template (examples/templates/) and the kit.

Every case runs twice: once against the template's module-level `app` (imported by file path,
a fresh module per test, after the environment is set) and once against `handlers.create_app`
with the same settings. The one mapping between the two: a template checks a signed JWT when
WEBHOOK_SECRET is set, the kit when WEBHOOK_AUTH=jwt as well, so the kit's factory adds it.
"""

from __future__ import annotations

import ast
import copy
import importlib.util
import json
import pathlib
import sqlite3
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import jwt
import pytest

from handlers import create_app
from tests.conftest import fixture

ROOT = pathlib.Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "examples" / "templates"
TEMPLATE_OF = {"premessage": "premessage_translate.py", "postmessage": "postmessage_translate.py",
               "logs": "log_store.py"}
EVENT_OF = {"premessage": "message_received", "postmessage": "message_processed",
            "logs": "message_logged"}
# Third-party packages a template may import, by import name (PyJWT is `jwt`).
ALLOWED_PACKAGES = {"flask", "langdetect", "deep_translator", "jwt"}
ACTIONS = "actions skill"
SECRET = "contract-secret-" + "k" * 24
SPANISH = "Hola, necesito ayuda con mi pedido"
ENGLISH = "Hi, I ordered a jacket last week and it has not arrived"


@dataclass
class Served:
    """One app under test: its test client, and the SQLite file the log webhook writes."""

    client: Any
    database: pathlib.Path
    table: str

    def post(self, webhook: str, body: Any, **kwargs: Any) -> Any:
        data = body if isinstance(body, bytes) else json.dumps(body)
        return self.client.post(f"/webhooks/{webhook}", data=data, **kwargs)

    def rows(self) -> int:
        """Rows in the log table, read from the file directly (what survives the process)."""
        with sqlite3.connect(self.database) as db:
            return db.execute(f"SELECT count(*) FROM {self.table}").fetchone()[0]


def load_template(webhook: str) -> Any:
    """A fresh module of the template (it reads its settings when imported)."""
    path = TEMPLATES / TEMPLATE_OF[webhook]
    spec = importlib.util.spec_from_file_location(f"template_{path.stem}_{uuid.uuid4().hex}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(params=["template", "kit"])
def serve(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
          tmp_path: pathlib.Path) -> Iterator[Callable[..., Served]]:
    """`serve(webhook, **settings)`: the template or the kit for that webhook, same settings."""
    modules: list[Any] = []

    def build(webhook: str, **settings: Any) -> Served:
        database = tmp_path / f"events-{uuid.uuid4().hex[:8]}.sqlite3"
        settings = {"DATABASE_URL": f"sqlite:///{database}", **settings}
        if request.param == "template":
            for name, value in settings.items():
                monkeypatch.setenv(name, str(value))
            module = load_template(webhook)
            modules.append(module)
            app, table = module.app, "events"
        else:
            if "WEBHOOK_SECRET" in settings:
                settings["WEBHOOK_AUTH"] = "jwt"
            app, table = create_app(settings), "log_events"
        app.config["TESTING"] = True  # an exception in a view fails the test instead of a 500
        return Served(app.test_client(), database, table)

    yield build
    for module in modules:
        pool = getattr(module, "pool", None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def translating(serve: Callable[..., Served], webhook: str, libre_server: Any,
                **settings: Any) -> Served:
    return serve(webhook, TRANSLATOR="libre", TRANSLATOR_URL=libre_server.url, **settings)


def message(text: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """IBM's message_received example with our text and the actions skill's variables."""
    body = fixture("pre_message_request.message_received.json")
    body["payload"]["input"]["text"] = text
    body["payload"]["context"]["skills"] = {
        ACTIONS: {"skill_variables": dict(variables or {}), "system": {"state": "opaque=="}}}
    return body


def reply(generic: list[dict[str, Any]], language: str | None) -> dict[str, Any]:
    """IBM's message_processed example with our reply items, as the pre-message step left it."""
    body = fixture("post_message_request.message_processed.actions_skill.json")
    body["payload"]["output"]["generic"] = generic
    variables = body["payload"]["context"]["skills"][ACTIONS].setdefault("skill_variables", {})
    if language:
        variables["customer_language"] = language
    return body


def log_events() -> list[dict[str, Any]]:
    return [json.loads((ROOT / "examples" / "payloads" / "log_message_logged.json").read_text()),
            fixture("log_webhook_request.cdr_logged.full.json")]


def valid_body(webhook: str) -> dict[str, Any]:
    return {"premessage": message(ENGLISH), "postmessage": reply([], None),
            "logs": log_events()[0]}[webhook]


# --- bad bodies ---------------------------------------------------------------------------------

MARKER = "do-not-echo-4242"
BAD_BODIES = [
    pytest.param(b'{"event": {"name": "%s"}, "payload": {"x": "' + MARKER.encode() + b'"',
                 id="not-json"),
    pytest.param(b'["' + MARKER.encode() + b'"]', id="array"),
    pytest.param(b'"' + MARKER.encode() + b'"', id="string"),
    pytest.param(b'{"event": {"name": "%s"}, "note": "' + MARKER.encode() + b'"}',
                 id="missing-payload"),
    pytest.param(b'{"event": {"name": "%s"}, "payload": ["' + MARKER.encode() + b'"]}',
                 id="payload-not-an-object"),
]


@pytest.mark.parametrize("webhook", list(TEMPLATE_OF))
@pytest.mark.parametrize("body", BAD_BODIES)
def test_bad_bodies_get_a_json_400_that_echoes_nothing(serve, libre_server, webhook, body):
    served = translating(serve, webhook, libre_server)
    body = body.replace(b"%s", EVENT_OF[webhook].encode())
    answer = served.post(webhook, body, content_type="text/plain")
    assert answer.status_code == 400
    assert answer.content_type.startswith("application/json")
    assert set(answer.get_json()) == {"error", "detail"}
    assert MARKER not in answer.get_data(as_text=True)
    assert libre_server.calls == 0
    if webhook == "logs":
        assert served.rows() == 0


# --- pre-message and post-message ---------------------------------------------------------------

@pytest.mark.parametrize("content_type", [None, "text/plain"])
def test_english_goes_through_untouched_without_a_translator_call(
        serve, libre_server, content_type):
    served = translating(serve, "premessage", libre_server)
    sent = message(ENGLISH)
    kwargs = {"content_type": content_type} if content_type else {}
    answer = served.post("premessage", copy.deepcopy(sent), **kwargs)
    assert answer.status_code == 200
    payload = answer.get_json()["payload"]
    assert payload["input"] == sent["payload"]["input"]
    assert payload["context"]["skills"][ACTIONS]["skill_variables"]["customer_language"] == "en"
    assert payload["context"]["skills"][ACTIONS]["system"] == {"state": "opaque=="}
    assert payload["context"]["global"] == sent["payload"]["context"]["global"]
    assert libre_server.calls == 0


@pytest.mark.parametrize("language", [None, "en"])
def test_a_reply_to_an_english_or_unknown_customer_goes_out_as_written(
        serve, libre_server, language):
    served = translating(serve, "postmessage", libre_server)
    sent = reply([{"response_type": "text", "text": "Hello"}], language)
    answer = served.post("postmessage", copy.deepcopy(sent))
    assert answer.status_code == 200
    assert answer.get_json()["payload"] == sent["payload"]
    assert libre_server.calls == 0


def test_spanish_in_is_translated_and_the_language_kept(serve, libre_server):
    served = translating(serve, "premessage", libre_server)
    answer = served.post("premessage", message(SPANISH))
    assert answer.status_code == 200
    payload = answer.get_json()["payload"]
    assert payload["input"]["text"] == "Hello, I need help with my order"
    assert payload["context"]["skills"][ACTIONS]["skill_variables"]["customer_language"] == "es"
    assert payload["context"]["skills"][ACTIONS]["system"] == {"state": "opaque=="}
    assert [(r["source"], r["target"]) for r in libre_server.requests] == [("es", "en")]


def test_with_translator_none_the_language_is_detected_and_nothing_translated(serve, libre_server):
    served = serve("premessage", TRANSLATOR="none", TRANSLATOR_URL=libre_server.url)
    answer = served.post("premessage", message(SPANISH))
    assert answer.status_code == 200
    payload = answer.get_json()["payload"]
    assert payload["input"]["text"] == SPANISH
    assert payload["context"]["skills"][ACTIONS]["skill_variables"]["customer_language"] == "es"
    assert libre_server.calls == 0


def test_a_premessage_payload_without_context_gets_the_actions_layout(serve, libre_server):
    served = translating(serve, "premessage", libre_server)
    body = {"event": {"name": "message_received"}, "payload": {"input": {"text": SPANISH}}}
    payload = served.post("premessage", body).get_json()["payload"]
    assert payload["context"]["skills"][ACTIONS]["skill_variables"]["customer_language"] == "es"
    assert payload["input"]["text"] == "Hello, I need help with my order"


def test_spanish_back_out_translates_the_text_items(serve, libre_server):
    served = translating(serve, "postmessage", libre_server)
    generic = [{"response_type": "text", "text": "Hello"},
               {"response_type": "pause", "time": 500, "typing": True},
               {"response_type": "text", "text": "How can I help you?"}]
    sent = reply(generic, "es")
    answer = served.post("postmessage", copy.deepcopy(sent))
    assert answer.status_code == 200
    payload = answer.get_json()["payload"]
    assert payload["output"]["generic"] == [
        {"response_type": "text", "text": "Hola"},
        {"response_type": "pause", "time": 500, "typing": True},
        {"response_type": "text", "text": "¿Cómo puedo ayudarte?"}]
    assert payload["context"] == sent["payload"]["context"]
    assert payload["output"]["intents"] == sent["payload"]["output"]["intents"]
    assert {(r["source"], r["target"]) for r in libre_server.requests} == {("en", "es")}
    assert sorted(libre_server.texts()) == ["Hello", "How can I help you?"]


def test_a_hanging_translator_fails_open_within_the_timeout(serve, libre_server):
    served = translating(serve, "premessage", libre_server, TRANSLATION_TIMEOUT="0.5")
    libre_server.hang(10)
    started = time.monotonic()
    answer = served.post("premessage", message(SPANISH))
    assert time.monotonic() - started < 3
    assert answer.status_code == 200
    payload = answer.get_json()["payload"]
    assert payload["input"]["text"] == SPANISH  # passed on as written
    assert payload["context"]["skills"][ACTIONS]["skill_variables"]["customer_language"] == "es"


def test_a_failing_translator_leaves_the_reply_as_written(serve, libre_server):
    served = translating(serve, "postmessage", libre_server)
    libre_server.fail_with(500)
    sent = reply([{"response_type": "text", "text": "Hello"}], "es")
    answer = served.post("postmessage", copy.deepcopy(sent))
    assert answer.status_code == 200
    assert answer.get_json()["payload"]["output"] == sent["payload"]["output"]


# --- signed JWT ---------------------------------------------------------------------------------

def token(secret: str) -> str:
    return jwt.encode({"exp": int(time.time()) + 300}, secret, algorithm="HS256")


@pytest.mark.parametrize("webhook", list(TEMPLATE_OF))
def test_a_signed_jwt_is_required_when_a_secret_is_set(serve, libre_server, webhook):
    served = translating(serve, webhook, libre_server, WEBHOOK_SECRET=SECRET)
    refused = [{}, {"Authorization": token("another-secret-of-enough-length")},
               {"Authorization": "Bearer not-a-jwt"}]
    for headers in refused:
        answer = served.post(webhook, valid_body(webhook), headers=headers)
        assert answer.status_code == 401, headers
        assert answer.get_json()["error"] == "unauthorized"
        assert SECRET not in answer.get_data(as_text=True)
    for headers in ({"Authorization": token(SECRET)},
                    {"Authorization": "Bearer " + token(SECRET)}):
        answer = served.post(webhook, valid_body(webhook), headers=headers)
        assert 200 <= answer.status_code < 300, headers
    if webhook == "logs":
        assert served.rows() == 1


# --- the log webhook ----------------------------------------------------------------------------

def test_a_log_event_sent_twice_is_stored_once(serve):
    served = serve("logs")
    for number, body in enumerate(log_events(), start=1):
        first = served.post("logs", body)
        assert 200 <= first.status_code < 300
        assert served.rows() == number  # committed before the answer
        again = served.post("logs", body, content_type="text/plain")
        assert 200 <= again.status_code < 300
        assert again.get_json()["duplicate"] is True
        assert served.rows() == number


def test_a_log_event_without_its_id_is_still_stored_once(serve):
    served = serve("logs")
    body = log_events()[0]
    del body["payload"]["log_id"]
    for _ in range(2):
        assert 200 <= served.post("logs", body).status_code < 300
    assert served.rows() == 1


# --- the templates themselves -------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(TEMPLATE_OF.values()))
def test_a_template_is_short_and_imports_only_what_it_may(name):
    source = (TEMPLATES / name).read_text()
    assert len(source.splitlines()) <= 100  # the rule and its plumbing, no more
    tree = ast.parse(source)
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "a template imports nothing of the kit's"
            imported.add((node.module or "").split(".")[0])
    outside = imported - ALLOWED_PACKAGES - set(sys.stdlib_module_names)
    assert not outside, f"{name} imports {sorted(outside)}"
    assert any(isinstance(node, ast.Assign) and any(
        isinstance(target, ast.Name) and target.id == "app" for target in node.targets)
        for node in tree.body), f"{name} has no module-level app"


# --- hostile input, templates only (the kit's own cases are in its tests) ------------------------

@pytest.fixture
def template(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path, libre_server: Any
             ) -> Iterator[Callable[[str], Any]]:
    """`template(webhook)`: a fresh module of that template, translating through the stand-in."""
    modules: list[Any] = []

    def load(webhook: str) -> Any:
        monkeypatch.setenv("TRANSLATOR_URL", libre_server.url)
        monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/{uuid.uuid4().hex[:8]}.sqlite3")
        modules.append(load_template(webhook))
        modules[-1].app.config["TESTING"] = True
        return modules[-1]

    yield load
    for module in modules:
        if hasattr(module, "pool"):
            module.pool.shutdown(wait=False, cancel_futures=True)


@pytest.mark.parametrize("webhook", list(TEMPLATE_OF))
@pytest.mark.parametrize("body", [
    b'{"event": {"name": "%s"}, "payload": {"x": NaN}}',
    b'{"event": {"name": "%s"}, "payload": {"x": -Infinity}}',
    b"[" * 100_000,
    b'{"event": {"name": "%s"}, "payload": ' + b'{"a": ' * 5_000 + b"1" + b"}" * 5_001,
    b"\xff\xfe\x00{",
], ids=["nan", "infinity", "deep-array", "deep-object", "not-utf8"])
def test_a_template_refuses_what_json_does_not_allow(template, webhook, body):
    client = template(webhook).app.test_client()
    body = body.replace(b"%s", EVENT_OF[webhook].encode())
    answer = client.post(f"/webhooks/{webhook}", data=body)
    assert answer.status_code == 400
    assert answer.get_json()["error"] == "invalid_json"


@pytest.mark.parametrize("webhook", list(TEMPLATE_OF))
def test_a_lone_surrogate_is_no_500(template, libre_server, webhook):
    client = template(webhook).app.test_client()
    body = valid_body(webhook)
    if webhook == "logs":
        body["payload"]["log_id"] = "\ud800"
    else:
        body["payload"]["input"] = {"text": "\ud800 Hola, necesito ayuda con mi pedido"}
    answer = client.post(f"/webhooks/{webhook}", data=json.dumps(body))
    assert 200 <= answer.status_code < 300
    json.loads(answer.get_data())  # standard JSON, the surrogate escaped


def test_the_log_template_answers_503_when_it_cannot_store(template):
    module = template("logs")
    with sqlite3.connect(module.DATABASE) as db:
        db.execute("DROP TABLE events")
    answer = module.app.test_client().post("/webhooks/logs", data=json.dumps(log_events()[0]))
    assert answer.status_code == 503
    assert answer.get_json()["error"] == "store_unavailable"
