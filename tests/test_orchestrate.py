"""The watsonx Orchestrate plug-in endpoints (handlers/orchestrate.py, docs/orchestrate.md): the
pre- and post-message steps over Orchestrate's `{payload, context}`, answered as a `PluginResult`.

The bodies are the ADK-shaped fixtures (tests/fixtures/SOURCES.md); the kit's answers are checked
with the ADK's own result models in a child Python, as tests/test_orchestrate_artefacts.py does
(importing the ADK reconfigures logging for the whole process).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
import os
import pathlib
import subprocess
import sys
import time
from typing import Any, Callable

import pytest

from conftest import fixture
from examples.custom_step import mask_personal_data, restore_personal_data
from handlers.pipeline import Answer
from handlers.postmessage import POSTMESSAGE_STEPS
from handlers.premessage import PREMESSAGE_STEPS
from handlers.logsetup import JsonFormatter
from handlers.settings import SettingsError, load_settings
from testsupport.libre_server import mark

ROOT = pathlib.Path(__file__).resolve().parent.parent
PRE, POST = "/plugins/agent-pre-invoke", "/plugins/agent-post-invoke"
THREAD = "3c9d2b1a-7e6f-4a5b-9c8d-1e2f3a4b5c6d"
END_USER_TOKEN = "EXAMPLE-END-USER-TOKEN-NOT-A-SECRET"
KEY = "orchestrate-test-key"
APIKEY = {"ORCHESTRATE_AUTH": "apikey", "ORCHESTRATE_API_KEY": KEY}
SIGNED = {"X-API-Key": KEY}
SPANISH = "¿Cuál es el horario de atención de la sucursal de Madrid?"
ANSWER = ("The Madrid branch is open Monday to Friday from 9:00 to 17:00. "
          "Details: https://bank.example.com/branches/madrid")


@pytest.fixture(autouse=True)
def _no_orchestrate_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("ORCHESTRATE_"):
            monkeypatch.delenv(key, raising=False)


def pre_body(text: str = SPANISH, thread: str | None = THREAD) -> dict[str, Any]:
    body = fixture("orchestrate_pre_invoke_request.json")
    body["payload"]["messages"][-1]["content"]["text"] = text
    set_thread(body, thread)
    return body


def post_body(*texts: str, thread: str | None = THREAD) -> dict[str, Any]:
    body = fixture("orchestrate_post_invoke_request.json")
    if texts:
        body["payload"]["messages"] = [{"role": "assistant", "content": {"type": "text",
                                                                          "text": text}}
                                       for text in texts]
    set_thread(body, thread)
    return body


def set_thread(body: dict[str, Any], thread: str | None) -> None:
    if thread is None:
        del body["context"]["state"]["context"]["wxo_thread_id"]
    else:
        body["context"]["state"]["context"]["wxo_thread_id"] = thread


@pytest.fixture
def orchestrate(make_app: Callable[..., Any], libre_server: Any) -> Callable[..., Any]:
    """A client of an app serving only the plug-ins, translating through the stand-in."""
    def build(steps: dict[str, list[Any]] | None = None, **settings: Any) -> Any:
        settings = {"WEBHOOKS": "orchestrate", "TRANSLATOR": "libre",
                    "TRANSLATOR_URL": libre_server.url, **APIKEY, **settings}
        return make_app(steps=steps, **settings).test_client()
    return build


def last_text(result: dict[str, Any]) -> str:
    return result["modified_payload"]["messages"][-1]["content"]["text"]


# --- the fixtures, Spanish in and back ----------------------------------------------------------

def test_spanish_in_and_back_through_the_translator(orchestrate, libre_server):
    client = orchestrate()
    body = pre_body()
    answer = client.post(PRE, json=body, headers=SIGNED)
    assert answer.status_code == 200 and answer.is_json
    result = answer.get_json()
    expected = copy.deepcopy(body["payload"])
    expected["messages"][-1]["content"]["text"] = mark(SPANISH, "es", "en")
    # The whole payload back, only the latest user message translated.
    assert result == {"continue_processing": True, "modified_payload": expected,
                      "metadata": {"language": "es"}}

    # Post-invoke knows the language from the thread: Orchestrate carries no assistant context.
    body = post_body()
    result = client.post(POST, json=body, headers=SIGNED).get_json()
    expected = copy.deepcopy(body["payload"])
    expected["messages"][0]["content"]["text"] = mark(ANSWER, "en", "es").replace(
        "{0}", "https://bank.example.com/branches/madrid")
    assert result["continue_processing"] is True
    assert result["modified_payload"] == expected
    assert "https://bank.example.com/branches/madrid" in result["modified_payload"]["messages"][
        0]["content"]["text"]
    assert [(r["source"], r["target"]) for r in libre_server.requests] == [("es", "en"),
                                                                          ("en", "es")]
    # The URL was masked: the translator never saw it.
    assert not any("bank.example.com" in text for text in libre_server.texts())


def test_english_goes_through_untouched(orchestrate, libre_server):
    client = orchestrate()
    body = pre_body("What are the opening hours of the Madrid branch?")
    result = client.post(PRE, json=body, headers=SIGNED).get_json()
    assert result["continue_processing"] is True
    assert result["modified_payload"] == body["payload"]
    assert client.post(POST, json=post_body(), headers=SIGNED).get_json()[
        "modified_payload"] == post_body()["payload"]
    assert libre_server.calls == 0


def test_only_text_is_worked_on_and_every_assistant_text_message(orchestrate, libre_server):
    """Pre-invoke reads only the last message when it is the user's text; post-invoke translates
    each assistant text message and leaves JSON, image and resource content alone."""
    client = orchestrate()
    client.post(PRE, json=pre_body(), headers=SIGNED)
    body = post_body("Hello", "How can I help you?")
    body["payload"]["messages"].insert(1, {"role": "assistant", "content": {
        "type": "image", "data": "aGVsbG8=", "mime_type": "image/png"}})
    body["payload"]["messages"].append({"role": "assistant",
                                        "content": {"type": "text", "text": {"k": "Hello"}}})
    result = client.post(POST, json=body, headers=SIGNED).get_json()
    messages = result["modified_payload"]["messages"]
    assert [m["content"].get("text") for m in messages] == [
        "Hola", None, "¿Cómo puedo ayudarte?", {"k": "Hello"}]
    assert messages[1] == body["payload"]["messages"][1]

    image_last = pre_body()
    image_last["payload"]["messages"][-1]["content"] = {"type": "image", "data": "aGVsbG8=",
                                                        "mime_type": "image/png"}
    result = client.post(PRE, json=image_last, headers=SIGNED).get_json()
    assert result["continue_processing"] is True
    assert result["modified_payload"] == image_last["payload"]


def test_without_a_thread_the_request_is_a_one_shot_session(orchestrate, libre_server):
    client = orchestrate()
    assert client.post(PRE, json=pre_body(thread=None), headers=SIGNED).get_json()[
        "metadata"] == {"language": "es"}
    # Another request id: no session to find the language in, the answer stays as written.
    result = client.post(POST, json=post_body(thread=None), headers=SIGNED).get_json()
    assert result["modified_payload"] == post_body()["payload"]


@pytest.mark.redis
def test_the_threads_language_is_shared_through_redis(make_app, libre_server, redis_url,
                                                      redis_prefix):
    """Pre-invoke on one instance, post-invoke on another: the language is in Redis."""
    settings = {"WEBHOOKS": "orchestrate", "TRANSLATOR": "libre",
                "TRANSLATOR_URL": libre_server.url, "REDIS_URL": redis_url,
                "REDIS_PREFIX": redis_prefix, **APIKEY}
    first, second = (make_app(**settings).test_client() for _ in range(2))
    assert first.post(PRE, json=pre_body(), headers=SIGNED).get_json()["metadata"] == {
        "language": "es"}
    result = second.post(POST, json=post_body(), headers=SIGNED).get_json()
    assert last_text(result).startswith("[en>es]")


# --- stopping -----------------------------------------------------------------------------------

def test_an_unsupported_language_stops_the_agent_with_the_reply(orchestrate, libre_server):
    reply = "Desculpe, ainda não falo português. Por favor, escreva em inglês ou espanhol."
    client = orchestrate(SUPPORTED_LANGUAGES="en,es", UNSUPPORTED_LANGUAGE_REPLY=reply)
    body = pre_body("Olá, qual é o horário de funcionamento da agência de Lisboa amanhã?")
    answer = client.post(PRE, json=body, headers=SIGNED)
    assert answer.status_code == 200
    assert answer.get_json() == {
        "continue_processing": False,
        "violation": {"reason": "unsupported language", "description": reply,
                      "code": "UNSUPPORTED_LANGUAGE", "details": {"language": "pt"}},
        "metadata": {"language": "pt"}}
    assert libre_server.calls == 0


# --- the steps a user adds ----------------------------------------------------------------------

def test_custom_masking_steps_apply_unchanged(orchestrate, libre_server):
    """examples/custom_step.py's card masking, added with create_app(steps=...): the agent and the
    translator see a placeholder, the customer gets the number back in post-invoke."""
    card = "4111 1111 1111 1111"
    client = orchestrate(steps={"premessage": [mask_personal_data, *PREMESSAGE_STEPS],
                                "postmessage": [*POSTMESSAGE_STEPS, restore_personal_data]})
    text = f"Mi tarjeta {card} fue rechazada en el cajero, ¿pueden ayudarme por favor?"
    result = client.post(PRE, json=pre_body(text), headers=SIGNED).get_json()
    masked = text.replace(card, "{{card_1}}")
    assert last_text(result) == mark(masked, "es", "en")
    result = client.post(POST, json=post_body("The card {{card_1}} is blocked."),
                         headers=SIGNED).get_json()
    shown = last_text(result)
    assert card in shown and shown.startswith("[en>es]")
    assert not any("4111" in text for text in libre_server.texts())


def test_a_steps_answers_are_mapped_as_data(orchestrate):
    """A step's Answer, not HTTP parsed back: a payload answer replaces the payload and the agent
    goes on; a step's own error goes out as the step wrote it."""
    def shout(turn):
        return Answer({"payload": {"input": {"text": turn.payload["input"]["text"].upper()}}})

    def busy(turn):
        return Answer({"error": "busy", "detail": "try later"}, 503, retry_after=7)

    result = orchestrate(steps={"premessage": [shout]}).post(PRE, json=pre_body("hola"),
                                                             headers=SIGNED)
    assert result.status_code == 200 and result.get_json()["continue_processing"] is True
    assert last_text(result.get_json()) == "HOLA"
    refused = orchestrate(steps={"premessage": [busy]}).post(PRE, json=pre_body(), headers=SIGNED)
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "7"
    assert refused.get_json() == {"error": "busy", "detail": "try later"}


def test_steps_for_a_list_the_app_does_not_run_are_refused(make_app):
    with pytest.raises(ValueError, match="logs is not served"):
        make_app(steps={"logs": []}, WEBHOOKS="orchestrate")
    with pytest.raises(ValueError, match="no webhook named orchestrate"):
        make_app(steps={"orchestrate": []}, WEBHOOKS="orchestrate")


# --- authentication -----------------------------------------------------------------------------

@pytest.mark.parametrize("settings, good, bad", [
    (APIKEY, {"X-API-Key": KEY}, [{}, {"X-API-Key": "wrong"}, {"Authorization": f"Bearer {KEY}"}]),
    ({"ORCHESTRATE_AUTH": "bearer", "ORCHESTRATE_SECRET": KEY},
     {"Authorization": f"Bearer {KEY}"}, [{}, {"Authorization": "Bearer wrong"},
                                          {"X-API-Key": KEY}]),
    # Without ORCHESTRATE_* settings the shared WEBHOOK_* ones apply.
    ({"ORCHESTRATE_AUTH": "", "ORCHESTRATE_API_KEY": "", "WEBHOOK_AUTH": "apikey",
      "WEBHOOK_API_KEY": KEY}, {"X-API-Key": KEY}, [{"X-API-Key": "wrong"}]),
    ({**APIKEY, "ORCHESTRATE_API_KEY_HEADER": "X-Kit-Key"}, {"X-Kit-Key": KEY},
     [{"X-API-Key": KEY}]),
], ids=["apikey", "bearer", "webhook-fallback", "own-header"])
def test_auth_refused_and_accepted(orchestrate, libre_server, settings, good, bad):
    client = orchestrate(**settings)
    for path, body in ((PRE, pre_body()), (POST, post_body())):
        for headers in bad:
            answer = client.post(path, json=body, headers=headers)
            assert answer.status_code == 401 and answer.get_json()["error"] == "unauthorized"
            assert KEY not in answer.get_data(as_text=True)
        assert client.post(path, json=body, headers=good).status_code == 200
    # The refused calls did nothing: one translation each way, from the accepted ones.
    assert [r["source"] for r in libre_server.requests] == ["es", "en"]


def test_orchestrate_cannot_use_the_assistants_jwt():
    with pytest.raises(SettingsError, match="ORCHESTRATE_AUTH"):
        load_settings({"WEBHOOKS": "orchestrate", "WEBHOOK_AUTH": "jwt",
                       "WEBHOOK_SECRET": "s" * 32}, environ={})
    # Not served, not checked: the assistant's webhooks keep their JWT.
    load_settings({"WEBHOOK_AUTH": "jwt", "WEBHOOK_SECRET": "s" * 32}, environ={})


# --- bad bodies ---------------------------------------------------------------------------------

@pytest.mark.parametrize("data, error", [
    (b"", "empty_body"),
    (b'{"payload": ', "invalid_json"),
    (b"[1, 2]", "not_an_object"),
    (b'{"context": {}}', "missing_payload"),
    (b'{"payload": "SECRET-LOOKING-TEXT"}', "payload_not_an_object"),
    (b'{"payload": {"agent_id": "a"}}', "missing_messages"),
    (b'{"payload": {"messages": {"role": "user"}}}', "missing_messages"),
    (b'{"payload": {"messages": []}, "context": ["SECRET-LOOKING-TEXT"]}',
     "context_not_an_object"),
    (b'{"payload": {"messages": [], "x": NaN}}', "invalid_json"),
])
def test_bad_bodies_are_json_400s(orchestrate, libre_server, data, error):
    client = orchestrate()
    for path in (PRE, POST):
        answer = client.post(path, data=data, headers={**SIGNED,
                                                       "Content-Type": "application/json"})
        assert answer.status_code == 400 and answer.is_json
        assert answer.get_json()["error"] == error and answer.get_json()["detail"]
        assert "SECRET-LOOKING-TEXT" not in answer.get_data(as_text=True)
    assert libre_server.calls == 0


def test_odd_messages_pass_through(orchestrate):
    """Messages Orchestrate would not send (not objects, no content) are no text to work on."""
    client = orchestrate()
    body = pre_body()
    body["payload"]["messages"] = ["hello", {"role": "user"}, {"content": None}]
    result = client.post(PRE, json=body, headers=SIGNED).get_json()
    assert result["continue_processing"] is True
    assert result["modified_payload"] == body["payload"]
    body["payload"]["messages"] = []
    result = client.post(POST, json=body, headers=SIGNED).get_json()
    assert result["modified_payload"] == body["payload"]


# --- failing open -------------------------------------------------------------------------------

def test_a_hung_translator_fails_open_within_the_deadline(orchestrate, libre_server):
    client = orchestrate(TRANSLATION_TIMEOUT="1")
    libre_server.hang(10)
    for path, body in ((PRE, pre_body()), (POST, post_body())):
        started = time.monotonic()
        answer = client.post(path, json=body, headers=SIGNED)
        took = time.monotonic() - started
        assert answer.status_code == 200
        result = answer.get_json()
        assert result["continue_processing"] is True
        assert result["modified_payload"] == body["payload"]
        assert took < 1.0 + 0.75, f"{path} answered after {took:.2f} s"


def test_a_failing_step_fails_open(orchestrate, caplog):
    def broken(turn: Any) -> None:
        raise RuntimeError("a dependency fell over: " + SPANISH)

    client = orchestrate(steps={"premessage": [*PREMESSAGE_STEPS[:2], broken],
                                "postmessage": [broken]})
    with caplog.at_level(logging.INFO):
        for path, body in ((PRE, pre_body()), (POST, post_body())):
            answer = client.post(path, json=body, headers=SIGNED)
            assert answer.status_code == 200
            assert answer.get_json() == {"continue_processing": True,
                                         "modified_payload": body["payload"],
                                         "metadata": answer.get_json()["metadata"]}
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2 and all(r.fields["exception"] == "RuntimeError" for r in errors)
    assert "sucursal" not in caplog.text


# --- the end user's token -----------------------------------------------------------------------

def test_the_end_users_token_is_never_logged_nor_passed_on(orchestrate, libre_server, caplog):
    seen: list[Any] = []

    def spy(turn: Any) -> None:
        seen.append(json.dumps(turn.payload) + json.dumps(turn.body))

    client = orchestrate(APP_LOG_LEVEL="DEBUG", steps={"premessage": [spy, *PREMESSAGE_STEPS]})
    with caplog.at_level(logging.DEBUG):
        result = client.post(PRE, json=pre_body(), headers=SIGNED).get_json()
    # It goes back to Orchestrate only inside the otherwise unchanged payload.
    assert result["modified_payload"]["headers"]["authorization"] == f"Bearer {END_USER_TOKEN}"
    lines = [JsonFormatter().format(record) for record in caplog.records]
    [line] = [line for line in lines if '"endpoint": "/plugins/agent-pre-invoke"' in line]
    assert '"event": "agent_pre_invoke"' in line and f'"session_id": "{THREAD}"' in line
    assert not any(END_USER_TOKEN in line for line in lines)
    # The kit's own lines hold no text either (urllib3's debug lines quote the translator's URL).
    assert not any("sucursal" in JsonFormatter().format(record) for record in caplog.records
                   if record.name.startswith("handlers"))
    assert seen and not any(END_USER_TOKEN in text for text in seen)      # no step sees it
    assert not any(END_USER_TOKEN in json.dumps(r) for r in libre_server.requests)


# --- served or not ------------------------------------------------------------------------------

def test_not_served_by_default(make_app):
    assert load_settings({}, environ={}).webhooks == ("premessage", "postmessage", "logs")
    client = make_app().test_client()
    for path in (PRE, POST):
        answer = client.post(path, json=pre_body())
        assert answer.status_code == 404 and answer.get_json()["error"] == "not_found"


def test_served_beside_the_webhooks(make_app):
    settings = load_settings({"WEBHOOKS": "orchestrate,premessage"}, environ={})
    assert settings.webhooks == ("premessage", "orchestrate")
    client = make_app(WEBHOOKS="premessage,orchestrate").test_client()
    assert client.post(PRE, json=pre_body()).status_code == 200
    assert client.post(POST, json=post_body()).status_code == 200
    assert client.post("/webhooks/postmessage", json={}).status_code == 404


def test_an_orchestrate_only_app_opens_no_store(tmp_path):
    """In a fresh interpreter: the plug-ins need no log store, so no SQLAlchemy, no database."""
    script = f"""
import json, os, sys
os.chdir({str(tmp_path)!r})
from handlers import create_app
client = create_app({{"WEBHOOKS": "orchestrate"}}).test_client()
print(json.dumps({{"readyz": client.get("/readyz").get_json(), "files": os.listdir("."),
                  "sqlalchemy": "sqlalchemy" in sys.modules}}))
"""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DATABASE_", "WEBHOOK", "ORCHESTRATE_", "REDIS_"))}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {"readyz": {"status": "ok", "store": "not served"}, "files": [],
                    "sqlalchemy": False}


def test_the_endpoints_are_documented(make_app):
    manual = "".join(page.read_text() for page in [ROOT / "README.md",
                                                   *sorted((ROOT / "docs").glob("*.md"))])
    rules = [rule.rule for rule in make_app(WEBHOOKS="orchestrate").url_map.iter_rules()
             if rule.rule.startswith("/plugins/")]
    assert sorted(rules) == [POST, PRE]
    for path in rules:
        assert f"`POST {path}`" in manual


# --- the ADK's own models -----------------------------------------------------------------------

ADK_CHILD = """
import json, sys
from ibm_watsonx_orchestrate_core.types.tools import types as plug
models = {"pre": plug.AgentPreInvokeResult, "post": plug.AgentPostInvokeResult}
payloads = {"pre": plug.AgentPreInvokePayload, "post": plug.AgentPostInvokePayload}
data = json.load(open(sys.argv[1], encoding="utf-8"))
report = {}
for name, (phase, answer) in data["answers"].items():
    result = models[phase].model_validate(answer)
    report[name] = result.model_dump(mode="json", exclude_unset=True) == answer
for number, (phase, body) in enumerate(data["requests"]):
    payload = payloads[phase].model_validate(body["payload"])
    context = plug.PluginContext.model_validate(body["context"])
    report[f"simulator {phase} {number}"] = (
        payload.model_dump(mode="json", exclude_unset=True) == body["payload"]
        and context.model_dump(mode="json", exclude_unset=True) == body["context"])
print(json.dumps(report))
"""


def test_the_answers_validate_against_the_adk_models(orchestrate, libre_server, tmp_path):
    """Each answer validates with the ADK's result model and dumps back unchanged (no field the
    model does not know), and so does each body the simulator sends with the ADK's payload and
    context models. In a child Python: importing the ADK reconfigures logging."""
    from examples.simulate import PLUGIN_PATHS, AgentConversation, app_transport, load_script

    if importlib.util.find_spec("ibm_watsonx_orchestrate_core") is None:
        pytest.skip("the watsonx Orchestrate ADK (ibm-watsonx-orchestrate, in "
                    "requirements-test.txt) is not installed")
    client = orchestrate(SUPPORTED_LANGUAGES="en,es", UNSUPPORTED_LANGUAGE_REPLY="Sorry.")
    answers = {
        "pre translated": ("pre", client.post(PRE, json=pre_body(), headers=SIGNED)),
        "post translated": ("post", client.post(POST, json=post_body(), headers=SIGNED)),
        "pre unsupported": ("pre", client.post(PRE, json=pre_body(
            "Olá, qual é o horário de funcionamento da agência de Lisboa amanhã?"),
            headers=SIGNED)),
    }
    libre_server.hang(10)
    fail_open = orchestrate(TRANSLATION_TIMEOUT="0.5")
    answers["pre failed open"] = ("pre", fail_open.post(PRE, json=pre_body(), headers=SIGNED))
    answers["post failed open"] = ("post", fail_open.post(POST, json=post_body(),
                                                          headers=SIGNED))
    results = {name: (phase, answer.get_json()) for name, (phase, answer) in answers.items()}
    assert results["pre unsupported"][1]["continue_processing"] is False

    libre_server.answer_normally()
    app = orchestrate().application
    sent: list[tuple[str, Any]] = []
    send = app_transport(app)

    def recording(path: str, data: bytes, headers: dict[str, str]) -> Any:
        phase = "pre" if path == PLUGIN_PATHS["pre"] else "post"
        sent.append((phase, json.loads(data)))
        return send(path, data, headers)

    script = load_script(ROOT / "examples/conversations/banking_es.json")
    assert AgentConversation(script, app.config["WEBHOOK_SETTINGS"], recording,
                             out=lambda line: None).play()
    assert {phase for phase, _ in sent} == {"pre", "post"}
    path = tmp_path / "answers.json"
    path.write_text(json.dumps({"answers": results, "requests": sent}), encoding="utf-8")
    env = {key: value for key, value in os.environ.items()
           if key.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    closed = "http://127.0.0.1:9"
    env.update(HOME=str(tmp_path), HTTP_PROXY=closed, HTTPS_PROXY=closed, ALL_PROXY=closed,
               PYTHONIOENCODING="utf-8")
    child = subprocess.run([sys.executable, "-c", ADK_CHILD, str(path)], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr[-3000:]
    report = json.loads(child.stdout.strip().splitlines()[-1])
    assert report == {**{name: True for name in answers},
                      **{f"simulator {phase} {n}": True for n, (phase, _) in enumerate(sent)}}


# --- the simulator ------------------------------------------------------------------------------

def test_the_simulator_plays_a_script_through_the_plugins(orchestrate, make_app, libre_server):
    from examples.simulate import simulate

    app = make_app(WEBHOOKS="orchestrate", TRANSLATOR="libre", TRANSLATOR_URL=libre_server.url,
                   **APIKEY)
    lines: list[str] = []
    script = ROOT / "examples/conversations/banking_es.json"
    assert simulate(str(script), app=app, orchestrate=True, out=lines.append), "\n".join(lines)
    output = "\n".join(lines)
    turns = len([line for line in lines if "── turn" in line])
    assert turns >= 3 and f"{turns}/{turns} turns succeeded" in output
    received = [line.split(": ", 1)[1] for line in lines if line.startswith("agent receives")]
    assert received[0].startswith("[es>en]"), output
    seen = [line.split(": ", 1)[1] for line in lines if line.startswith("customer sees")]
    assert seen and all(text.startswith("[en>es]") for text in seen), output
    # Signed with the plug-ins' own key: a wrong one fails every turn.
    wrong = load_settings({"WEBHOOKS": "orchestrate", "ORCHESTRATE_AUTH": "apikey",
                           "ORCHESTRATE_API_KEY": "wrong"}, environ={})
    lines.clear()
    assert not simulate(str(script), app=app, settings=wrong, orchestrate=True, out=lines.append)
    assert any("answered 401" in line for line in lines)


def test_the_simulator_command_with_orchestrate(capsys):
    """`python examples/simulate.py --orchestrate SCRIPT` builds an app serving the plug-ins."""
    from examples.simulate import main

    assert main(["--orchestrate", str(ROOT / "examples/conversations/banking_es.json")]) == 0
    out = capsys.readouterr().out
    assert "turns succeeded" in out and "agent receives" in out


@pytest.mark.slow
def test_the_simulator_against_gunicorn(tmp_path, libre_server):
    """The plug-ins under gunicorn, played by `simulate.py --orchestrate --url`: every turn
    succeeds, and neither the end user's token nor the kit's own key is in the server's log."""
    from testsupport.gunicorn_process import serve

    token = "gunicorn-orchestrate-token-5c1e"
    env = {"WEB_CONCURRENCY": "2", "WEBHOOKS": "orchestrate", "ORCHESTRATE_AUTH": "bearer",
           "ORCHESTRATE_SECRET": token, "TRANSLATOR": "libre",
           "TRANSLATOR_URL": libre_server.url}
    log_path = tmp_path / "gunicorn.log"
    with serve("handlers:create_app()", env, log_path=log_path) as url:
        result = subprocess.run(
            [sys.executable, "examples/simulate.py", "--orchestrate", "--url", url,
             str(ROOT / "examples/conversations/banking_es.json")],
            cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "turns succeeded" in result.stdout and "[en>es]" in result.stdout
    log = log_path.read_text()
    assert '"endpoint": "/plugins/agent-post-invoke"' in log
    assert "SIMULATED-END-USER-TOKEN" not in log and token not in log
