"""The deployment files: Dockerfile lint and its build steps run in a fresh venv (no Docker engine
here), Procfile, gunicorn settings."""

from __future__ import annotations

import os
import pathlib
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from typing import Any

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
    assert (ROOT / "Procfile").read_text().strip() == "web: python -m server"


def test_gunicorn_settings(monkeypatch):
    monkeypatch.setenv("PORT", "9123")
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    conf = runpy.run_path(str(ROOT / "server" / "gunicorn_conf.py"))
    assert conf["bind"] == "0.0.0.0:9123"
    assert conf["workers"] == 3
    assert conf["threads"] >= 2
    if conf["worker_class"] != "gthread":     # a subclass of gthread's worker (server/worker.py)
        from gunicorn.util import load_class
        from gunicorn.workers.gthread import ThreadWorker

        assert issubclass(load_class(conf["worker_class"]), ThreadWorker)
    assert conf["preload_app"] is True
    assert conf["accesslog"] is None
    # Above the longest budget a handler may have (the assistant waits 30 s at most).
    assert conf["timeout"] > 30


# --- the Dockerfile's build steps, run for real (no Docker engine here) -----------------------

def dockerfile_instructions(path: pathlib.Path = ROOT / "Dockerfile") -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order: continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue      # a comment inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        whole = (pending + stripped).strip()
        pending = ""
        keyword, _, arguments = whole.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def dockerfile_env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, arguments in instructions:
        if keyword == "ENV":
            for pair in shlex.split(arguments):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def base_python(instructions: list[tuple[str, str]]) -> str:
    """The interpreter matching the image's `FROM python:X.Y...`, if this machine has it."""
    image = next(arguments for keyword, arguments in instructions if keyword == "FROM")
    match = re.match(r"python:(\d+\.\d+)", image)
    found = shutil.which(f"python{match.group(1)}") if match else None
    return found or sys.executable


def run_steps(instructions: list[tuple[str, str]], first_word: str) -> list[str]:
    return [arguments for keyword, arguments in instructions
            if keyword == "RUN" and arguments.split()[0] == first_word]


@pytest.fixture(scope="module")
def docker_build(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The image's /app rebuilt in a temporary folder: the COPY lines copied, a fresh venv of
    the FROM line's Python, and the Dockerfile's own `RUN pip ...` lines run in it (through a
    shell, as Docker does), with pip's cache allowed so a second build is quick. Built once
    per test session."""
    instructions = dockerfile_instructions()
    app = tmp_path_factory.mktemp("docker-app")
    for keyword, arguments in instructions:
        if keyword == "COPY":      # relative to WORKDIR, as the Dockerfile's COPY lines are
            *sources, target = arguments.split()
            for source in sources:
                origin, destination = ROOT / source, app / target
                if origin.is_dir():
                    shutil.copytree(origin, destination, dirs_exist_ok=True,
                                    ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    if target.endswith("/") or target == ".":
                        destination = destination / origin.name
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, destination)
    venv = tmp_path_factory.mktemp("docker-venv")
    subprocess.run([base_python(instructions), "-m", "venv", str(venv)], check=True,
                   timeout=300)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("WEBHOOK_", "LOG_", "DATABASE_URL", "REDIS_", "PYTHON"))}
    env.update(dockerfile_env(instructions))
    env.pop("PIP_NO_CACHE_DIR", None)   # the cache is what keeps the test quick
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    installs = run_steps(instructions, "pip")
    assert installs, "the Dockerfile installs nothing with pip"
    for command in installs:
        command = command.replace("--no-cache-dir", "")
        result = subprocess.run(["/bin/sh", "-c", command], cwd=app, env=env,
                                capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"RUN {command}\n{result.stdout[-3000:]}" \
                                       f"{result.stderr[-3000:]}"
    return {"instructions": instructions, "app": app, "env": env, "venv": venv}


@pytest.mark.slow
def test_every_python_build_step_of_the_dockerfile_runs(docker_build: dict[str, Any]) -> None:
    steps = run_steps(docker_build["instructions"], "python")
    assert steps, "the Dockerfile has no RUN python step (the build-time check of the app)"
    python = docker_build["venv"] / "bin" / "python"
    for command in steps:
        result = subprocess.run(["/bin/sh", "-c", command], cwd=docker_build["app"],
                                env=docker_build["env"], capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, f"RUN {command}\n{result.stderr[-3000:]}"
    # The steps ran the venv's interpreter on the copied code, not this checkout's.
    where = subprocess.run([str(python), "-c", "import handlers; print(handlers.__file__)"],
                           cwd=docker_build["app"], env=docker_build["env"],
                           capture_output=True, text=True, timeout=60, check=True).stdout
    assert where.startswith(str(docker_build["app"]))
    # Nothing left behind for root: the unprivileged user creates instance/'s files at run time.
    assert sorted(path.name for path in docker_build["app"].iterdir()) == [
        "handlers", "requirements.txt", "server"]


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite://",
                                 "sqlite:///file:events?mode=memory&uri=true"])
def test_an_in_memory_sqlite_store_builds(url: str) -> None:
    """SQLAlchemy gives in-memory SQLite a pool without a checkout timeout: the store must not
    pass one (the Dockerfile's build step builds the app on `sqlite:///:memory:`)."""
    from handlers import create_app

    app = create_app({"DATABASE_URL": url})
    assert app.extensions["webhooks"].store.dialect == "sqlite"


def test_the_webhook_package_never_imports_the_server():
    """server/ runs handlers/, never the other way: handlers/ is what a user copies."""
    import ast

    offenders = []
    for path in sorted((ROOT / "handlers").glob("**/*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            offenders += [f"{path.relative_to(ROOT)}: {name}" for name in names
                          if name.split(".")[0] == "server"]
    assert not offenders
