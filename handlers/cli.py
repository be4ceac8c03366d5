"""Command-line tools under `flask --app handlers ...`.

Each concern registers its own click group here (`logs` for the event store); small utilities
such as `sign-jwt` live in this module.
"""

from __future__ import annotations

import time

import click
import jwt
from flask import Flask, current_app


@click.command("sign-jwt")
@click.option("--secret", help="Signing secret (default: the configured secret of --webhook).")
@click.option("--webhook", type=click.Choice(["premessage", "postmessage", "log"]), default="log",
              show_default=True, help="Whose configured secret to sign with.")
@click.option("--ttl", type=click.IntRange(min=1), default=300, show_default=True,
              help="Seconds until the token expires.")
@click.option("--bearer/--raw", default=False,
              help="Prefix the value with 'Bearer ' (the assistant itself sends it raw).")
def sign_jwt(secret: str | None, webhook: str, ttl: int, bearer: bool) -> None:
    """Print an Authorization value signed like the assistant's, for curl:

    curl -H "Authorization: $(flask --app handlers sign-jwt)" ...
    """
    settings = current_app.config["WEBHOOK_SETTINGS"]
    secret = secret or settings.auth_for(webhook).secret
    if not secret:
        raise click.UsageError(f"no secret: pass --secret or configure one for the {webhook} "
                               "webhook (WEBHOOK_SECRET or its per-webhook override)")
    now = int(time.time())
    token = jwt.encode({"iat": now, "exp": now + ttl}, secret, algorithm="HS256")
    click.echo(("Bearer " if bearer else "") + token)


@click.command("simulate")
@click.argument("scripts", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--url", help="A running kit to call (default: this app, in process).")
@click.option("--token", help="An oauth2 access token, when a webhook uses oauth2.")
def simulate(scripts: tuple[str, ...], url: str | None, token: str | None) -> None:
    """Play scripted conversations through pre-message, a stand-in assistant, post-message and
    log (see examples/simulate.py). Exits 1 if any turn failed: a smoke test after deploying."""
    try:
        from examples.simulate import simulate as play
    except ImportError:
        raise click.ClickException("examples/simulate.py is not here: run from the kit's "
                                   "checkout") from None
    settings = current_app.config["WEBHOOK_SETTINGS"]
    app = None if url else current_app._get_current_object()
    ok = all([play(path, url=url, app=app, settings=settings, token=token, out=click.echo)
              for path in scripts])
    if not ok:
        raise SystemExit(1)


def init_app(app: Flask) -> None:
    """Register the kit's click commands on the app."""
    app.cli.add_command(sign_jwt)
    app.cli.add_command(simulate)
