"""Issue 2's benchmark: the three webhooks passing IBM's example bodies through, against the echo.

    flock /tmp/bench.lock .venv/bin/python bench/foundation.py [--duration 8 --rounds 3]

Three tables, all with the same gunicorn.conf.py settings for app and echo, the kit's default
settings otherwise and a temporary SQLite file as DATABASE_URL:

1. The target (>= 0.8 of the echo's req/s): the kit's foundation passing payloads through --
   gunicorn, Flask, the auth hook, the envelope check, the Turn, the JSON log line per request,
   the answer -- with every webhook's list of steps emptied
   (`create_app(steps={"premessage": [], "postmessage": [], "log": []})`), because the steps
   (language detection, translation, the log store) are later issues' work with benchmarks of
   their own. No authentication on any webhook, so the three are measured alike.
2. For information, the cost of verified auth: the log webhook with the signed JWT the assistant
   always sends it (LOG_AUTH=jwt, HS256 checked by PyJWT on every request).
3. For information, the log endpoint as shipped (its default LOG_STEPS, e.g. the durable store
   on the temporary SQLite file) with that JWT; the first line printed says which steps ran.

Bodies:
- premessage: tests/fixtures/pre_message_request.message_received.json, fixed;
- postmessage: tests/fixtures/post_message_request.message_processed.actions_skill.json, fixed;
- logs message_logged: the message_logged example with a fresh `log_id` per request (the
  idempotency key: a store must never see a duplicate it could skip);
- logs cdr_logged: IBM's cdr_logged example with a fresh `global_session_id` and fresh turn
  `log_id`s per request.
Exit status 1 when a row of table 1 misses the target or any request of it failed.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile
from typing import Any

REPO = pathlib.Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.harness import Load, compare  # noqa: E402
from bench.logs import LOG_SECRET, log_token  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures"
TARGET = 0.8
PASS_THROUGH_APP = 'handlers:create_app(steps={"premessage": [], "postmessage": [], "log": []})'


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def _fresh_log_ids(node: Any, counter: list[int]) -> None:
    """Every `log_id` inside a CDR becomes `{{N}}-k`: unique per request, distinct within it."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "log_id" and isinstance(value, str):
                counter[0] += 1
                node[key] = f"{{{{N}}}}-{counter[0]}"
            else:
                _fresh_log_ids(value, counter)
    elif isinstance(node, list):
        for item in node:
            _fresh_log_ids(item, counter)


def log_loads(auth: str) -> list[Load]:
    """message_logged and cdr_logged with fresh ids per request, with or without the JWT."""
    logged = fixture("log_webhook_request.message_logged.SYNTHESIZED.json")
    logged["payload"]["log_id"] = "{{N}}"
    cdr = fixture("log_webhook_request.cdr_logged.full.json")
    cdr["payload"]["global_session_id"] = "{{N}}"
    _fresh_log_ids(cdr["payload"], [0])
    headers = {"Authorization": log_token()} if auth == "jwt" else {}
    label = "" if auth == "none" else f", {auth}"
    return [Load("/webhooks/logs", name=f"logs (message_logged{label})", template=logged,
                 headers=headers),
            Load("/webhooks/logs", name=f"logs (cdr_logged{label})", template=cdr,
                 headers=headers)]


def loads(log_auth: str = "none") -> list[Load]:
    """The target table's loads: the three webhooks, IBM's example bodies."""
    return [
        Load("/webhooks/premessage", name="premessage (message_received)",
             body=fixture("pre_message_request.message_received.json")),
        Load("/webhooks/postmessage", name="postmessage (message_processed)",
             body=fixture("post_message_request.message_processed.actions_skill.json")),
        *log_loads(log_auth),
    ]


def describe_code(env: dict[str, Any]) -> str:
    """Which code was measured: the commit, whether handlers/ differs from it, the log steps
    (as the app built with the benchmark's settings runs them)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                                capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "handlers"], cwd=REPO,
                               text=True, capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", ""
    from handlers import create_app, logs

    app = create_app({k: v for k, v in env.items() if v is not None})
    steps_of_app = getattr(app.extensions["webhooks"], "steps", None) or {}
    steps = [getattr(step, "__name__", repr(step))
             for step in steps_of_app.get("log", logs.LOG_STEPS)]
    what = (f"steps [{', '.join(steps)}] on DATABASE_URL={env.get('DATABASE_URL')}" if steps
            else "no steps (the endpoint checks and accepts the event; stores nothing)")
    state = " + uncommitted changes in handlers/" if dirty else ""
    return f"code: commit {commit}{state}; the log endpoint as shipped runs {what}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=None, help="seconds per run (8)")
    parser.add_argument("--rounds", type=int, default=None, help="runs per server (3)")
    parser.add_argument("--connections", type=int, default=None, help="connections (16)")
    parser.add_argument("--only-target", action="store_true",
                        help="skip the two informational tables (JWT cost, logs as shipped)")
    args = parser.parse_args(argv)
    options = {"duration": args.duration, "rounds": args.rounds,
               "connections": args.connections}

    with tempfile.TemporaryDirectory(prefix="bench-foundation-") as folder:
        env = {
            "WEBHOOK_AUTH": "none",
            "DATABASE_URL": f"sqlite:///{folder}/events.sqlite3",
            "APP_LOG_LEVEL": "INFO",  # the production default: one JSON line per request
        }
        jwt_env = {**env, "LOG_AUTH": "jwt", "LOG_SECRET": LOG_SECRET}
        print(describe_code(jwt_env))
        rows = compare(loads(), app=PASS_THROUGH_APP, env=env, target=TARGET, **options,
                       title="1. foundation: the three webhooks passing IBM's examples through "
                       "(steps emptied, no auth)")
        if not args.only_target:
            compare(log_loads("jwt")[:1], app=PASS_THROUGH_APP, env=jwt_env, target=None,
                    **options, title="2. for information: the log webhook with the assistant's "
                    "signed JWT (steps emptied)")
            compare(log_loads("jwt"), env=jwt_env, target=None, **options,
                    title="3. for information: the log endpoint as shipped, with the JWT "
                    "(see 'code:' above)")
    below = [row for row in rows if row.ratio < TARGET]
    failed = [row for row in rows if row.app.errors or row.app.non2xx]
    for row in failed:
        print(f"FAILED REQUESTS: {row.name}: {row.app.errors} socket errors, "
              f"{row.app.non2xx} answers >= 400")
    if below:
        print(f"below target {TARGET}: {', '.join(row.name for row in below)}")
    else:
        print(f"every endpoint at >= {TARGET} of the echo")
    return 1 if below or failed else 0


if __name__ == "__main__":
    sys.exit(main())
