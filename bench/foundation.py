"""Issue 2's benchmark: the three webhooks passing IBM's example bodies through, against the echo.

    flock /tmp/bench.lock .venv/bin/python bench/foundation.py [--duration 8 --rounds 3]

What "passing through" measures: the kit's foundation -- gunicorn, Flask, authentication, the
envelope check, the Turn, the JSON log line per request, the answer -- with every webhook's list of
steps emptied (`create_app(steps={"premessage": [], "postmessage": [], "log": []})`), because the
steps (language detection, translation, the log store) are later issues' work with benchmarks of
their own. The target (>= 0.8 of the echo's req/s) applies to these rows.

Then, for information, the log endpoint as shipped (its default LOG_STEPS, e.g. the durable store
on the temporary SQLite file), with the same bodies: the script prints which steps ran.

Rows (same gunicorn.conf.py settings for app and echo; the kit's default settings otherwise, a
temporary SQLite file as DATABASE_URL):
- premessage: tests/fixtures/pre_message_request.message_received.json, fixed body, no auth;
- postmessage: tests/fixtures/post_message_request.message_processed.actions_skill.json, no auth;
- logs message_logged: the message_logged example with a fresh `log_id` per request (the
  idempotency key: a store must never see a duplicate it could skip), signed JWT as the assistant
  always sends on the log webhook (LOG_AUTH=jwt);
- logs cdr_logged: IBM's cdr_logged example with a fresh `global_session_id` and fresh turn
  `log_id`s per request, same JWT.
Exit status 1 when a pass-through row misses the target or any request failed.
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

FIXTURES = REPO / "tests" / "fixtures"
TARGET = 0.8
PASS_THROUGH_APP = 'handlers:create_app(steps={"premessage": [], "postmessage": [], "log": []})'
LOG_SECRET = "bench-log-webhook-secret"


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


def log_token() -> str:
    import jwt

    return jwt.encode({"sub": "watsonx-assistant-bench"}, LOG_SECRET, algorithm="HS256")


def loads(log_auth: str = "jwt") -> list[Load]:
    logged = fixture("log_webhook_request.message_logged.SYNTHESIZED.json")
    logged["payload"]["log_id"] = "{{N}}"
    cdr = fixture("log_webhook_request.cdr_logged.full.json")
    cdr["payload"]["global_session_id"] = "{{N}}"
    _fresh_log_ids(cdr["payload"], [0])
    log_headers = {"Authorization": log_token()} if log_auth == "jwt" else {}
    return [
        Load("/webhooks/premessage", name="premessage (message_received)",
             body=fixture("pre_message_request.message_received.json")),
        Load("/webhooks/postmessage", name="postmessage (message_processed)",
             body=fixture("post_message_request.message_processed.actions_skill.json")),
        Load("/webhooks/logs", name=f"logs (message_logged, {log_auth})", template=logged,
             headers=log_headers),
        Load("/webhooks/logs", name=f"logs (cdr_logged, {log_auth})", template=cdr,
             headers=log_headers),
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
    parser.add_argument("--log-auth", choices=("jwt", "none"), default="jwt",
                        help="the log webhook's auth (jwt, as the assistant always sends)")
    parser.add_argument("--no-shipped-logs", action="store_true",
                        help="skip the informational run of the log endpoint as shipped")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-foundation-") as folder:
        env = {
            "WEBHOOK_AUTH": "none",
            "LOG_AUTH": args.log_auth,
            "LOG_SECRET": LOG_SECRET if args.log_auth == "jwt" else None,
            "DATABASE_URL": f"sqlite:///{folder}/events.sqlite3",
            "LOG_LEVEL": "INFO",  # the production default: one JSON line per request
        }
        print(describe_code(env))
        rows = compare(loads(args.log_auth), app=PASS_THROUGH_APP, env=env,
                       duration=args.duration, rounds=args.rounds, connections=args.connections,
                       target=TARGET, title="foundation: the three webhooks passing IBM's "
                       "examples through (steps emptied)")
        if not args.no_shipped_logs:
            compare(loads(args.log_auth)[2:], env=env, duration=args.duration,
                    rounds=args.rounds, connections=args.connections, target=None,
                    title="for information: the log endpoint as shipped (see 'code:' above)")
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
