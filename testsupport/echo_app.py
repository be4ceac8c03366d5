"""The baseline of every benchmark: a bare Flask JSON echo, served by the same gunicorn settings.

`POST` to any path answers the parsed JSON body as JSON; `GET /healthz` answers `{"status": "ok"}`.
It has no auth, no steps, no log line: only the work any Flask JSON endpoint must do (read the
body, parse it, serialise an answer). A webhook's "ratio to echo" is therefore the share of
Flask's own JSON throughput that the kit keeps after doing its job.

Serialisation is set to what the kit does (compact, keys in their order) so the baseline is not
slowed by key sorting the kit never does: a ratio near 1 then means the kit really adds nothing.

    gunicorn -c server/gunicorn_conf.py "testsupport.echo_app:create_app()"
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request


def create_app() -> Flask:
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.compact = True  # type: ignore[attr-defined]
    app.json.ensure_ascii = False  # type: ignore[attr-defined]

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/", defaults={"path": ""})
    @app.post("/<path:path>")
    def echo(path: str) -> Any:
        # force: like the kit, whatever the Content-Type says.
        return app.json.response(request.get_json(force=True))

    return app
