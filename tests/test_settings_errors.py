"""A wrong setting stops the start with one line naming the variable and the fix, no traceback:
real gunicorn started the documented way (`python -m server`) and the plain way, and the
`flask --app handlers ...` command line."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from testsupport.gunicorn_process import free_port, server_env
from handlers.settings import SettingsError, load_settings

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = pathlib.Path(sys.executable).parent

SERVER_SETTINGS = [
    ("WEB_CONCURRENCY", "abc"), ("WEB_CONCURRENCY", "0"), ("GUNICORN_THREADS", "many"),
    ("GUNICORN_TIMEOUT", "-1"), ("REQUEST_READ_TIMEOUT", "soon"),
    ("GUNICORN_MAX_REQUESTS", "-5"), ("GUNICORN_MAX_REQUESTS_JITTER", "1.5"),
    ("PORT", "99999"), ("PORT", "http"), ("APP_LOG_LEVEL", "loud"),
]
APP_SETTINGS = [
    ("TRANSLATOR_URL", "localhost:5000"), ("TRANSLATOR", "babelfish"),
    ("TRANSLATION_TIMEOUT", "fast"), ("SESSION_MEMORY_SIZE", "-1"), ("LANGUAGES", "english"),
    ("REDIS_URL", "localhost:6379"),
]


def run(command: list[str], name: str, value: str) -> subprocess.CompletedProcess[str]:
    env = server_env({"PORT": str(free_port())})
    env.pop("GUNICORN_MAX_REQUESTS", None)   # the harness's own default
    env[name] = value
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def assert_one_line(done: subprocess.CompletedProcess[str], name: str) -> None:
    output = (done.stdout + done.stderr).strip()
    assert done.returncode == 1, output
    assert "Traceback" not in output, output
    lines = output.splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith(f"settings error: {name}"), output
    # ...and it says what to do: a value to set, or to unset it.
    assert any(word in lines[0] for word in ("set ", "write ", "unset")), output


SERVE = [sys.executable, "-m", "server"]
GUNICORN = [str(BIN / "gunicorn"), "-c", "server/gunicorn_conf.py", "handlers:create_app()"]


@pytest.mark.parametrize("name, value", SERVER_SETTINGS + APP_SETTINGS)
def test_the_server_stops_with_one_line(name, value):
    assert_one_line(run(SERVE, name, value), name)


# gunicorn itself reads WEB_CONCURRENCY when it is imported: started without the kit's launcher,
# "abc" dies in gunicorn before any file of ours runs. Every other value is the kit's to check.
@pytest.mark.parametrize("name, value", [(n, v) for n, v in SERVER_SETTINGS + APP_SETTINGS
                                         if (n, v) != ("WEB_CONCURRENCY", "abc")])
def test_plain_gunicorn_stops_with_one_line_too(name, value):
    assert_one_line(run(GUNICORN, name, value), name)


@pytest.mark.parametrize("command", [["logs", "stats"], ["sign-jwt", "--secret", "x"]])
@pytest.mark.parametrize("name, value", APP_SETTINGS[:3])
def test_a_command_stops_with_one_line(command, name, value):
    done = run([str(BIN / "flask"), "--app", "handlers", *command], name, value)
    assert_one_line(done, name)


@pytest.mark.parametrize("url", ["localhost:5000", "libre.example.com/translate",
                                 "ftp://libre.example.com", "//libre.example.com"])
def test_a_translator_url_without_its_scheme_is_refused(url):
    with pytest.raises(SettingsError, match="TRANSLATOR_URL") as refused:
        load_settings({"TRANSLATOR": "libre", "TRANSLATOR_URL": url}, environ={})
    assert "http://" in str(refused.value)


@pytest.mark.parametrize("url", ["http://localhost:5000", "HTTPS://libre.example.com/"])
def test_a_translator_url_with_its_scheme_is_taken(url):
    settings = load_settings({"TRANSLATOR": "libre", "TRANSLATOR_URL": url}, environ={})
    assert settings.translator_url == url


def test_the_launcher_serves_the_kit_with_its_settings(tmp_path):
    port = free_port()
    env = server_env({"PORT": str(port), "WEB_CONCURRENCY": "1", "GUNICORN_THREADS": "2",
                      "LANGUAGE_DETECTOR": "langdetect",
                      "DATABASE_URL": f"sqlite:///{tmp_path}/events.sqlite3"})
    server = subprocess.Popen(SERVE, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as ok:
                    assert json.loads(ok.read()) == {"status": "ok"}
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/nowhere", timeout=5)
        assert json.loads(missing.value.read())["error"] == "not_found"   # the kit's app
    finally:
        server.terminate()
        _, errors = server.communicate(timeout=60)
    assert "server.worker.RequestDeadlineWorker" in errors or "Booting worker" in errors
