"""The log floor's reference: the log webhook as a careful team writes it without the kit.

The kit's own template, examples/templates/log_store.py, served as it is (one SQLite connection
and one commit per request, WAL with synchronous=FULL, the signed JWT checked on every request),
with `GET /healthz`, which the harness waits for, answered in front of it: the template stays a
copyable webhook. Settings are the template's: DATABASE_URL=sqlite:///path, WEBHOOK_SECRET.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from examples.templates.log_store import app as template

HEALTHY = b'{"status":"ok"}'


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The template's WSGI app, with `GET /healthz` (what testsupport.gunicorn_process.serve
    polls) in front."""
    if environ.get("PATH_INFO") == "/healthz":
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(HEALTHY)))])
        return [HEALTHY]
    return template(environ, start_response)
