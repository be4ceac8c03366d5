"""External webhook handlers for IBM watsonx Assistant: pre-message, post-message and log.

`create_app()` is the application factory gunicorn and `flask --app handlers` call. It reads and
validates every setting once, builds the shared services (auth verifiers, language detector,
translator, session memory, event store) before gunicorn forks, and registers one blueprint per
webhook.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from flask import Flask

from .auth import build_verifier
from .pipeline import Services
from .settings import Settings, SettingsError, load_settings

__all__ = ["create_app", "Settings", "SettingsError"]
log = logging.getLogger(__name__)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. `config` overrides environment variables of the same names (tests use it)."""
    settings = load_settings(config)
    from . import requestlog

    requestlog.configure_logging(settings.log_level)
    app = Flask(__name__, instance_relative_config=True)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_content_length
    app.config["WEBHOOK_SETTINGS"] = settings

    app.extensions["webhooks"] = build_services(app, settings)

    from . import health, logs, postmessage, premessage

    requestlog.init_app(app)
    for module in (premessage, postmessage, logs, health):
        app.register_blueprint(module.bp)
    from . import cli

    cli.init_app(app)

    if settings.open_webhooks:
        log.warning("webhooks open to anyone (auth method none): %s; set WEBHOOK_AUTH or the "
                    "per-webhook *_AUTH settings before exposing this server",
                    ", ".join(settings.open_webhooks))
    return app


def build_services(app: Flask, settings: Settings) -> Services:
    """Everything loaded once per process, before gunicorn forks its workers."""
    from .store import EventStore, default_url

    services = Services(settings=settings)
    services.verifiers = {name: build_verifier(auth) for name, auth in settings.auth.items()}
    services.store = EventStore(settings.database_url or default_url(app.instance_path))
    return services
