"""The log floor's reference: the log webhook as a careful team writes it without the kit.

It is the kit's own template, examples/templates/log_store.py, served as it is: one SQLite
connection per request, WAL with synchronous=FULL, `INSERT OR IGNORE` keyed by the event's id
(the same as `ON CONFLICT DO NOTHING`), one commit per request, 200 only after the commit, the
signed JWT checked by PyJWT on every request. The only addition is `GET /healthz`, which the
harness waits for before measuring, answered in front of the template's Flask app (whose JWT
check guards every path), so the template itself stays a copyable webhook with nothing else in
it. Settings are the template's: DATABASE_URL=sqlite:///path, WEBHOOK_SECRET.

    gunicorn -c server/gunicorn_conf.py "bench.plain_log_app:app"
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
