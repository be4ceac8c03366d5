"""A template pasted into an existing Flask app: its blueprint brings the webhook and its JWT
check, and the check guards the webhook's route only, never the host app's own routes."""

from __future__ import annotations

import json
from typing import Any, Iterator

import pytest
from flask import Flask

from tests.test_templates_contract import (EVENT_OF, SECRET, TEMPLATE_OF, load_template, token,
                                           valid_body)


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch, tmp_path: Any, libre_server: Any
         ) -> Iterator[Any]:
    """`host(*webhooks)`: another app with a route of its own and those templates' blueprints."""
    modules: list[Any] = []

    def build(*webhooks: str) -> Any:
        monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
        monkeypatch.setenv("TRANSLATOR_URL", libre_server.url)
        monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/events.sqlite3")
        app = Flask("host")

        @app.get("/orders")
        def orders() -> dict[str, Any]:
            return {"orders": []}

        for webhook in webhooks:
            modules.append(load_template(webhook))
            app.register_blueprint(modules[-1].bp)
        return app.test_client()

    yield build
    for module in modules:
        if hasattr(module, "pool"):
            module.pool.shutdown(wait=False, cancel_futures=True)


@pytest.mark.parametrize("webhook", list(TEMPLATE_OF))
def test_the_host_apps_routes_are_not_asked_for_a_token(host, webhook):
    client = host(webhook)
    assert client.get("/orders").get_json() == {"orders": []}
    assert client.get("/nowhere").status_code == 404  # the host's own 404, not a 401


@pytest.mark.parametrize("webhook", list(TEMPLATE_OF))
def test_the_pasted_webhook_still_wants_the_signed_jwt(host, webhook):
    client = host(webhook)
    body = json.dumps(valid_body(webhook))
    refused = client.post(f"/webhooks/{webhook}", data=body)
    assert refused.status_code == 401
    assert refused.get_json()["error"] == "unauthorized"
    accepted = client.post(f"/webhooks/{webhook}", data=body,
                           headers={"Authorization": token(SECRET)})
    assert 200 <= accepted.status_code < 300


@pytest.mark.parametrize("webhook", list(TEMPLATE_OF))
def test_the_blueprint_serves_its_event_in_the_host_app(host, webhook):
    """The webhook reads the body as the template alone does: a wrong event is its JSON 400."""
    client = host(webhook)
    body = {"event": {"name": "not_" + EVENT_OF[webhook]}, "payload": {}}
    answer = client.post(f"/webhooks/{webhook}", data=json.dumps(body),
                         headers={"Authorization": token(SECRET)})
    assert answer.status_code == 400
    assert answer.get_json()["error"] == "not_the_event"


def test_the_three_templates_fit_in_one_app(host):
    client = host(*TEMPLATE_OF)
    for webhook in TEMPLATE_OF:
        answer = client.post(f"/webhooks/{webhook}", data=json.dumps(valid_body(webhook)),
                             headers={"Authorization": token(SECRET)})
        assert 200 <= answer.status_code < 300, webhook
    assert client.get("/orders").status_code == 200
