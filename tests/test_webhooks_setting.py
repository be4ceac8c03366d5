"""`WEBHOOKS` says which webhooks an app serves; a webhook not served costs nothing."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from handlers import create_app
from handlers.pipeline import Answer
from handlers.settings import SettingsError, load_settings

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_default_serves_all_three():
    assert load_settings({}, environ={}).webhooks == ("premessage", "postmessage", "logs")


@pytest.mark.parametrize("value, served", [
    ("premessage", ("premessage",)),
    ("logs", ("logs",)),
    ("log", ("logs",)),                 # the name earlier versions used
    (" postmessage , premessage ", ("premessage", "postmessage")),
    ("premessage,postmessage,logs", ("premessage", "postmessage", "logs")),
])
def test_names_are_read(value, served):
    assert load_settings({"WEBHOOKS": value}, environ={}).webhooks == served


@pytest.mark.parametrize("value", ["premesage", "premessage,orchestra", ","])
def test_unknown_names_stop_the_start(value):
    with pytest.raises(SettingsError, match="WEBHOOKS"):
        load_settings({"WEBHOOKS": value}, environ={})


def test_a_premessage_only_app_builds_no_store_and_imports_no_sqlalchemy(tmp_path):
    """In a fresh interpreter: nothing imports SQLAlchemy and no database file appears."""
    script = f"""
import json, os, sys
os.chdir({str(tmp_path)!r})
from handlers import create_app
app = create_app({{"WEBHOOKS": "premessage"}})
client = app.test_client()
body = {{"event": {{"name": "message_received"}}, "payload": {{"input": {{"text": "hello there"}}}}}}
answers = {{
    "premessage": client.post("/webhooks/premessage", json=body).status_code,
    "postmessage": client.post("/webhooks/postmessage", json=body).status_code,
    "logs": client.post("/webhooks/logs", json=body).status_code,
    "readyz": client.get("/readyz").get_json(),
}}
print(json.dumps({{"answers": answers, "sqlalchemy": "sqlalchemy" in sys.modules,
                  "store_module": "handlers.store" in sys.modules,
                  "files": sorted(os.listdir("."))}}))
"""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DATABASE_URL", "WEBHOOK", "LOG_", "REDIS_"))}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["answers"]["premessage"] == 200
    assert seen["answers"]["postmessage"] == 404
    assert seen["answers"]["logs"] == 404
    assert seen["answers"]["readyz"] == {"status": "ok", "store": "not served"}
    assert seen["sqlalchemy"] is False and seen["store_module"] is False
    assert seen["files"] == []


def test_a_logs_only_app_serves_only_the_log_webhook(tmp_path):
    app = create_app({"WEBHOOKS": "logs", "DATABASE_URL": f"sqlite:///{tmp_path}/e.sqlite3"})
    client = app.test_client()
    assert client.post("/webhooks/premessage", json={}).status_code == 404
    body = json.loads((ROOT / "examples/payloads/log_message_logged.json").read_text())
    assert client.post("/webhooks/logs", json=body).status_code == 200
    services = app.extensions["webhooks"]
    assert services.detector is None and services.translator is None
    assert set(services.verifiers) == {"logs"}


def test_steps_under_the_log_webhooks_earlier_name_still_apply(tmp_path):
    def refuse(turn):
        return Answer({"error": "closed", "detail": "not today"}, 503)

    app = create_app({"WEBHOOKS": "log", "DATABASE_URL": f"sqlite:///{tmp_path}/e.sqlite3"},
                     steps={"log": [refuse]})
    assert app.extensions["webhooks"].steps == {"logs": [refuse]}
    body = json.loads((ROOT / "examples/payloads/log_message_logged.json").read_text())
    assert app.test_client().post("/webhooks/logs", json=body).status_code == 503


def test_steps_for_a_webhook_not_served_are_refused():
    with pytest.raises(ValueError, match="not served"):
        create_app({"WEBHOOKS": "premessage"}, steps={"logs": []})


@pytest.mark.parametrize("webhooks, not_imported", [
    ("logs", ["handlers.translation", "handlers.session", "handlers.cache", "handlers.language",
              "handlers.content", "handlers.fields", "langdetect", "deep_translator"]),
    # (pre-message masks numbers and glossary terms too: handlers.masking is its own)
    ("premessage", ["handlers.content", "handlers.fields"]),
    ("postmessage", ["langdetect", "lingua"]),
])
def test_an_app_imports_only_what_its_webhooks_use(tmp_path, webhooks, not_imported):
    """In a fresh interpreter, after serving a request: the other webhooks' modules stay out."""
    script = f"""
import json, os, sys
os.chdir({str(tmp_path)!r})
from handlers import create_app
app = create_app({{"WEBHOOKS": {webhooks!r}, "DATABASE_URL": "sqlite:///e.sqlite3"}})
app.test_client().get("/readyz")
print(json.dumps(sorted(name for name in {not_imported!r} if name in sys.modules)))
"""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DATABASE_", "WEBHOOK", "LOG_", "REDIS_"))}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
