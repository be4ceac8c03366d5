"""Shared pytest fixtures, in the style of Flask's tutorial: `app`, `client`, `runner`.

`make_app(**settings)` builds an app with the given settings (the environment's settings are
ignored, so a developer's shell cannot change what the tests see). Fixtures for real services
(`postgres_url`, `redis_url`) skip with a reason when the server is not configured.
"""

from __future__ import annotations

import json
import os
import pathlib
import uuid
from typing import Any, Callable

import pytest

from handlers import create_app
from handlers.settings import load_settings

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


def fixture(name: str) -> dict[str, Any]:
    """An example body from tests/fixtures (IBM's published examples; see fixtures/SOURCES.md)."""
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come only from what a test passes: drop the kit's variables from the environment."""
    for key in list(os.environ):
        if key.startswith(("WEBHOOK", "PREMESSAGE_", "POSTMESSAGE_", "ORCHESTRATE_", "LOG_",
                           "TRANSLAT", "LANGUAGE", "DATABASE_", "REDIS_", "CONTENT_DIR",
                           "SKILL_TYPE", "SESSION_",
                           "ASSISTANT_LANGUAGE", "SUPPORTED_LANGUAGES", "UNSUPPORTED_")):
            monkeypatch.delenv(key, raising=False)


@pytest.fixture
def make_app(tmp_path: pathlib.Path) -> Callable[..., Any]:
    def build(steps: dict[str, list[Any]] | None = None, **settings: Any) -> Any:
        name = uuid.uuid4().hex[:8]
        settings.setdefault("DATABASE_URL", f"sqlite:///{tmp_path}/events-{name}.sqlite3")
        # Each app its own session memory, as each would be on an instance of its own.
        settings.setdefault("SESSION_MEMORY_PATH", f"{tmp_path}/sessions-{name}.sqlite3")
        app = create_app(settings, steps=steps)
        app.config["TESTING"] = True
        return app

    return build


@pytest.fixture
def app(make_app: Callable[..., Any]) -> Any:
    return make_app()


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def runner(app: Any) -> Any:
    return app.test_cli_runner()


@pytest.fixture
def postgres_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.skip("TEST_DATABASE_URL is not set (no PostgreSQL server for this run)")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        pytest.skip("TEST_REDIS_URL is not set (no Redis server for this run)")
    return url


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of the test's own, so tests sharing one Redis never see each other's keys."""
    return f"test-{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def libre_server() -> Any:
    """A LibreTranslate-compatible server on 127.0.0.1 (testsupport/libre_server.py), one a test.

    Point the app at it with `TRANSLATOR="libre", TRANSLATOR_URL=libre_server.url`; switch its
    behaviour with `.fail_with(500)`, `.hang(seconds)`, `.delay(ms)`; read `.calls`, `.texts()`.
    """
    from testsupport.libre_server import LibreServer

    server = LibreServer().start()
    yield server
    server.stop()
