"""External webhook handlers for IBM watsonx Assistant: pre-message, post-message and log.

`create_app()` is the application factory gunicorn and `flask --app handlers` call. It reads and
validates every setting once, builds the shared services (auth verifiers, language detector,
translator, session memory, event store) before gunicorn forks, and registers one blueprint per
webhook.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

from flask import Flask, Response, request

from . import cli, health, logs, postmessage, premessage, requestlog
from .auth import build_verifier
from .content import ContentStore
from .envelope import compact_json
from .language import build_detector
from .pipeline import Services, Step
from .session import build_session_memory, build_shared_redis
from .settings import Settings, SettingsError, load_settings
from .store import EventStore, default_url
from .translation import build_translator

__all__ = ["create_app", "Settings", "SettingsError"]
log = logging.getLogger(__name__)


def create_app(config: Mapping[str, Any] | None = None,
               steps: Mapping[str, Sequence[Step]] | None = None) -> Flask:
    """Build the app.

    `config` overrides environment variables of the same names (tests use it). `steps` replaces a
    webhook's list of steps ("premessage", "postmessage", "log") for this app only, e.g.
    `{"premessage": [my_step, *PREMESSAGE_STEPS]}` (see examples/custom_step.py).
    """
    settings = load_settings(config)
    requestlog.configure_logging(settings.log_level)
    app = Flask(__name__, instance_relative_config=True)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_content_length
    app.config["WEBHOOK_SETTINGS"] = settings

    app.extensions["webhooks"] = build_services(app, settings)

    defaults = {"premessage": premessage.PREMESSAGE_STEPS,
                "postmessage": postmessage.POSTMESSAGE_STEPS, "log": logs.LOG_STEPS}
    unknown = set(steps or {}) - set(defaults)
    if unknown:
        raise ValueError(f"create_app(steps=...): no webhook named {', '.join(sorted(unknown))}")
    app.extensions["webhooks"].steps = {
        name: list((steps or {}).get(name, default)) for name, default in defaults.items()}
    requestlog.init_app(app)
    app.after_request(options_as_json)
    for module in (premessage, postmessage, logs, health):
        app.register_blueprint(module.bp)
    cli.init_app(app)

    if settings.open_webhooks:
        log.warning("webhooks open to anyone (auth method none): %s; set WEBHOOK_AUTH or the "
                    "per-webhook *_AUTH settings before exposing this server",
                    ", ".join(settings.open_webhooks))
    return app


def options_as_json(response: Response) -> Response:
    """Flask answers OPTIONS itself with an empty text/html body; every answer of the kit is JSON."""
    if request.method == "OPTIONS" and response.status_code == 200 and not response.is_json:
        response.set_data(compact_json({"allow": sorted(response.allow)}))
        response.content_type = "application/json"
    return response


def build_services(app: Flask, settings: Settings) -> Services:
    """Everything loaded once per process, before gunicorn forks its workers."""
    services = Services(settings=settings)
    services.verifiers = {name: build_verifier(auth) for name, auth in settings.auth.items()}
    services.store = EventStore.open(settings.database_url or default_url(app.instance_path),
                                     retention_days=settings.log_retention_days,
                                     timeout=settings.database_timeout)
    services.content = ContentStore.load(settings.content_dir)
    redis = build_shared_redis(settings)
    services.sessions = build_session_memory(settings, redis)
    services.translator = build_translator(settings, redis)
    services.detector = build_detector(settings)
    return services
