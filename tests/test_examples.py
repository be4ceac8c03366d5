"""The examples: the simulator's scripts (in process and against gunicorn), sign-jwt, the custom
step, and the example payloads with their curl commands in docs/architecture.md."""

from __future__ import annotations

import json
import os
import pathlib
import re
import socket
import subprocess
import sys
import textwrap
import time

import jwt
import pytest

from examples import custom_step
from examples.simulate import simulate
from handlers.pipeline import Turn
from handlers.settings import load_settings
from testsupport.libre_server import unmark

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPTS = sorted((ROOT / "examples" / "conversations").glob("*.json"))
SECRET = "simulator-secret"


def test_both_scripts_ship():
    assert {p.name for p in SCRIPTS} == {"banking_es.json", "agent_transfer_fr.json"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_simulator_in_process_with_jwt_and_translation(make_app, libre_server, script):
    config = {"WEBHOOK_AUTH": "jwt", "WEBHOOK_SECRET": SECRET, "TRANSLATOR": "libre",
              "TRANSLATOR_URL": libre_server.url}
    app = make_app(**config)
    lines: list[str] = []
    ok = simulate(str(script), app=app, settings=load_settings(config, environ={}),
                  out=lines.append)
    output = "\n".join(lines)
    assert ok, output
    turns = len([line for line in lines if "── turn" in line])
    assert f"{turns}/{turns} turns succeeded" in output
    # The assistant read English (the test translator marks what it translated) and the
    # customer saw the reply in their language.
    received = [line.split(": ", 1)[1] for line in lines if line.startswith("assistant receives")]
    assert any(text.startswith("[") and ">en]" in text for text in received), output
    seen = [line.split(": ", 1)[1] for line in lines if line.startswith("customer sees")]
    assert any(">es]" in text or ">fr]" in text for text in seen), output
    assert len([line for line in lines if line.startswith("stored log id")]) == turns
    # Every turn reached the log store.
    assert app.extensions["webhooks"].store.reports.count() == turns


def test_simulator_fails_when_a_turn_fails(make_app, tmp_path):
    app = make_app(WEBHOOK_AUTH="bearer", WEBHOOK_SECRET="server-token")
    wrong = load_settings({"WEBHOOK_AUTH": "bearer", "WEBHOOK_SECRET": "other"}, environ={})
    lines: list[str] = []
    assert not simulate(str(SCRIPTS[0]), app=app, settings=wrong, out=lines.append)
    assert any("answered 401" in line for line in lines)


def test_simulator_command_exit_status(tmp_path, capsys, monkeypatch):
    """`python examples/simulate.py SCRIPT` with no --url plays it through an app of its own."""
    from examples.simulate import main

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/events.sqlite3")
    assert main([str(ROOT / "examples/conversations/banking_es.json")]) == 0
    assert "turns succeeded" in capsys.readouterr().out
    broken = tmp_path / "broken.json"
    broken.write_text('{"turns": [{"customer": "hola"}]}')
    with pytest.raises(SystemExit) as stopped:   # as `python examples/simulate.py` exits
        main([str(broken)])
    assert stopped.value.code not in (0, None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_simulator_against_gunicorn(tmp_path, libre_server):
    port = free_port()
    env = {**os.environ, "PORT": str(port), "WEB_CONCURRENCY": "2",
           "WEBHOOK_AUTH": "jwt", "WEBHOOK_SECRET": SECRET, "TRANSLATOR": "libre",
           "TRANSLATOR_URL": libre_server.url,
           "DATABASE_URL": f"sqlite:///{tmp_path}/events.sqlite3"}
    gunicorn = pathlib.Path(sys.executable).parent / "gunicorn"
    server = subprocess.Popen([str(gunicorn), "-c", "server/gunicorn_conf.py",
                               "handlers:create_app()"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        result = subprocess.run(
            [sys.executable, "examples/simulate.py", *map(str, SCRIPTS),
             "--url", f"http://127.0.0.1:{port}"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("turns succeeded") == 2


def test_sign_jwt_command(make_app):
    app = make_app(LOG_AUTH="jwt", LOG_SECRET=SECRET)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["sign-jwt", "--ttl", "60"])
    assert result.exit_code == 0
    token = result.output.strip()
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert 55 <= claims["exp"] - claims["iat"] <= 60
    answer = app.test_client().post("/webhooks/logs", headers={"Authorization": token},
                                    data=(ROOT / "examples/payloads/ibm_log_cdr.json").read_bytes())
    assert answer.status_code == 200
    bearer = runner.invoke(args=["sign-jwt", "--secret", "other", "--bearer"]).output.strip()
    assert bearer.startswith("Bearer ")
    assert runner.invoke(args=["sign-jwt", "--webhook", "premessage"]).exit_code != 0


# --- the custom step example -------------------------------------------------------------------

def custom_app(make_app, tmp_path, **settings):
    settings.setdefault("DATABASE_URL", f"sqlite:///{tmp_path}/custom.sqlite3")
    app = custom_step.create_app(settings)
    return app


def pre_body(text: str, session: str = "s-1") -> dict:
    return {"event": {"name": "message_received"},
            "payload": {"input": {"message_type": "text", "text": text},
                        "context": {"global": {"session_id": session, "system": {}},
                                    "skills": {"actions skill": {"skill_variables": {}}}}}}


def post_body(reply: str, context: dict) -> dict:
    return {"event": {"name": "message_processed"}, "options": {},
            "payload": {"output": {"generic": [{"response_type": "text", "text": reply}]},
                        "context": context}}


@pytest.mark.parametrize("number, masked", [
    ("4111 1111 1111 1111", True),      # Luhn-valid test card
    ("4111-1111-1111-1111", True),
    ("4111 1111 1111 1112", False),     # fails the Luhn check: an order number, say
    ("1234567", False),
])
def test_luhn(number, masked):
    assert custom_step.is_card_number(number) is masked


def test_custom_step_masks_before_the_translator_and_restores_after(make_app, tmp_path,
                                                                     libre_server):
    app = custom_app(make_app, tmp_path, TRANSLATOR="libre", TRANSLATOR_URL=libre_server.url)
    client = app.test_client()
    text = ("Hola, mi correo es ana.garcia@example.com y mi tarjeta es 4111 1111 1111 1111, "
            "quiero cambiar la dirección de envío de mi pedido")
    pre = client.post("/webhooks/premessage", data=json.dumps(pre_body(text))).get_json()
    received = pre["payload"]["input"]["text"]
    assert "ana.garcia" not in received and "4111" not in received
    assert "{{email_1}}" in received and "{{card_1}}" in received
    # The translation provider never saw the originals either.
    sent = json.dumps(libre_server.texts())
    assert "ana.garcia" not in sent and "4111" not in sent
    assert "ana.garcia" not in json.dumps(pre)  # nor does the context carry them

    reply = "We will send the new card details to {{email_1}}. Card {{card_1}} is now blocked."
    post = client.post("/webhooks/postmessage",
                       data=json.dumps(post_body(reply, pre["payload"]["context"]))).get_json()
    seen = post["payload"]["output"]["generic"][0]["text"]
    assert "ana.garcia@example.com" in seen and "4111 1111 1111 1111" in seen
    assert unmark(seen).startswith("We will send")  # translated back ([en>es] marker)
    assert seen != unmark(seen)


def test_custom_step_leaves_other_messages_alone(make_app, tmp_path):
    app = custom_app(make_app, tmp_path)
    client = app.test_client()
    body = pre_body("My order 4111 1111 1111 1112 has not arrived")
    pre = client.post("/webhooks/premessage", data=json.dumps(body)).get_json()
    assert pre["payload"]["input"]["text"] == body["payload"]["input"]["text"]
    # Another session's placeholders are never filled with this one's data.
    client.post("/webhooks/premessage", data=json.dumps(pre_body("mail me: a@b.example", "s-2")))
    other = post_body("Sent to {{email_1}}", {"global": {"session_id": "s-3"}})
    post = client.post("/webhooks/postmessage", data=json.dumps(other)).get_json()
    assert post["payload"]["output"]["generic"][0]["text"] == "Sent to {{email_1}}"


def shown_step_tests() -> list[tuple[str, str]]:
    """The unit test of the example's steps as the example and docs/architecture.md show it."""
    in_example = custom_step.__doc__.split("as two requests of a conversation do:\n", 1)[1]
    in_docs = (ROOT / "docs" / "architecture.md").read_text().split(
        "`examples/custom_step.py`'s two steps:\n\n```python\n", 1)[1].split("```", 1)[0]
    return [("examples/custom_step.py", textwrap.dedent(in_example)),
            ("docs/architecture.md", in_docs)]


@pytest.mark.parametrize("where, code", shown_step_tests())
def test_the_step_unit_test_shown_passes_and_fails_on_a_broken_step(where, code):
    namespace = {"Turn": Turn, **vars(custom_step)}
    exec(compile(code, where, "exec"), namespace)
    namespace["test_a_card_number_never_leaves_the_session"]()
    namespace["restore_personal_data"] = lambda turn: None   # a step that forgets to restore
    with pytest.raises(AssertionError):
        namespace["test_a_card_number_never_leaves_the_session"]()


def test_custom_step_is_first_and_last(make_app, tmp_path):
    app = custom_app(make_app, tmp_path)
    steps = app.extensions["webhooks"].steps
    assert steps["premessage"][0] is custom_step.mask_personal_data
    assert steps["postmessage"][-1] is custom_step.restore_personal_data
    # The kit's own app is untouched.
    assert custom_step.mask_personal_data not in make_app().extensions["webhooks"].steps["premessage"]


# --- example payloads and the README's curl commands --------------------------------------------

def test_every_example_payload_is_accepted(make_app):
    client = make_app().test_client()
    readme = (ROOT / "docs" / "architecture.md").read_text()
    commands = re.findall(r"curl -s localhost:8080(/webhooks/\w+)\s+-d @(examples/payloads/\S+)",
                          readme)
    payloads = {p.relative_to(ROOT).as_posix() for p in (ROOT / "examples/payloads").glob("*.json")}
    assert {path for _, path in commands} == payloads  # each one has its curl command
    for endpoint, path in commands:
        answer = client.post(endpoint, data=(ROOT / path).read_bytes())
        assert answer.status_code == 200, (endpoint, path, answer.get_json())
