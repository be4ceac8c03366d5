"""External webhook handlers for IBM watsonx Assistant: pre-message, post-message and log.

`create_app()` is the application factory gunicorn and `flask --app handlers` call. It reads and
validates every setting once, builds the services of the webhooks it serves (`WEBHOOKS`: auth
verifiers, language detector, translator, session memory, event store) before gunicorn forks, and
registers one blueprint per webhook. A webhook that is not served costs nothing: its module is
not imported and its services are not built (a pre-message-only app creates no database).
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, Mapping, Sequence

import click
from flask import Flask

from . import cli, errors, health, logsetup, metrics, requestlog
from .auth import build_verifier
from .pipeline import Services, Step
from .settings import (WEBHOOK_NAMES, Settings, SettingsError, load_settings,
                       settings_errors_in_one_line)

__all__ = ["create_app", "Settings", "SettingsError"]
log = logging.getLogger(__name__)

# Each webhook's module (its blueprint `bp`) and the name of its list of steps (None: it has none
# of its own).
WEBHOOK_MODULES = {"premessage": ("premessage", "PREMESSAGE_STEPS"),
                   "postmessage": ("postmessage", "POSTMESSAGE_STEPS"),
                   "logs": ("logs", "LOG_STEPS"),
                   "orchestrate": ("orchestrate", None)}
# Step lists a webhook runs besides its own: the Orchestrate plug-ins run the pre- and
# post-message steps, so a step added there applies to both products.
STEPS_USED = {"orchestrate": ("premessage", "postmessage")}


def step_lists_of(webhooks: Sequence[str]) -> list[str]:
    """The step lists an app serving `webhooks` runs, in WEBHOOK_MODULES order."""
    used = {name for name in webhooks if WEBHOOK_MODULES[name][1]}
    used.update(other for name in webhooks for other in STEPS_USED.get(name, ()))
    return [name for name in WEBHOOK_MODULES if name in used]


def create_app(config: Mapping[str, Any] | None = None,
               steps: Mapping[str, Sequence[Step]] | None = None) -> Flask:
    """Build the app.

    `config` overrides environment variables of the same names (tests use it). `steps` replaces a
    webhook's list of steps ("premessage", "postmessage", "logs"; the Orchestrate plug-ins run the
    first two) for this app only, e.g.
    `{"premessage": [my_step, *PREMESSAGE_STEPS]}` where `def my_step(turn: Turn) -> Answer |
    None` reads and changes `turn.payload` (see handlers/pipeline.py and examples/custom_step.py).
    """
    settings_errors_in_one_line()
    settings = load_settings(config)
    logsetup.configure_logging(settings.log_level)
    # "log" is the log webhook's earlier name, still taken
    steps = {WEBHOOK_NAMES.get(name, name): lst for name, lst in (steps or {}).items()}
    unknown = set(steps) - {name for name, (_, lst) in WEBHOOK_MODULES.items() if lst}
    if unknown:
        raise ValueError(f"create_app(steps=...): no webhook named {', '.join(sorted(unknown))}")
    step_lists = step_lists_of(settings.webhooks)
    not_served = set(steps) - set(step_lists)
    if not_served:
        raise ValueError(f"create_app(steps=...): {', '.join(sorted(not_served))} is not served "
                         f"(WEBHOOKS={','.join(settings.webhooks)})")

    app = Flask(__name__, instance_relative_config=True)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_content_length
    app.config["WEBHOOK_SETTINGS"] = settings
    services = app.extensions["webhooks"] = build_services(app, settings)
    requestlog.init_app(app)
    errors.init_app(app)
    metrics.init_app(app)
    for name in step_lists:
        module_name, steps_name = WEBHOOK_MODULES[name]
        module = importlib.import_module(f"{__name__}.{module_name}")
        services.steps[name] = list(steps.get(name, getattr(module, steps_name)))
    for name in settings.webhooks:
        module = importlib.import_module(f"{__name__}.{WEBHOOK_MODULES[name][0]}")
        app.register_blueprint(module.bp)
    app.register_blueprint(health.bp)
    if settings.explorer_auth:
        from . import explorer

        explorer.init_app(app)
        if settings.explorer_auth == "none":
            log.warning("log explorer without credentials (EXPLORER_AUTH=none) at /explorer/: "
                        "it shows customers' messages, so it answers only requests addressed "
                        "to localhost, 127.0.0.1 or [::1] (a request naming this server "
                        "otherwise gets 403); set EXPLORER_USERNAME and EXPLORER_PASSWORD to "
                        "serve it under another name")
    cli.init_app(app)

    if settings.open_webhooks:
        log.warning("webhooks open to anyone (auth method none): %s; set WEBHOOK_AUTH or the "
                    "per-webhook *_AUTH settings before exposing this server",
                    ", ".join(settings.open_webhooks))
    return app


def build_services(app: Flask, settings: Settings) -> Services:
    """What the served webhooks use, loaded once per process, before gunicorn forks its workers.

    Imports are local so that a webhook not served never loads its libraries (SQLAlchemy for the
    log store, the detectors' profiles for pre-message).
    """
    served = settings.webhooks
    services = Services(settings=settings)
    services.verifiers = {name: build_verifier(settings.auth_for(name)) for name in served}
    if "logs" in served or settings.explorer_auth:   # the explorer reads the log store
        from .store import EventStore, default_url

        services.store = EventStore.open(settings.database_url or default_url(app.instance_path),
                                         retention_days=settings.log_retention_days,
                                         timeout=settings.database_timeout)
    # The Orchestrate plug-ins run the pre- and post-message steps: they need what both need.
    pre = "premessage" in served or "orchestrate" in served
    post = "postmessage" in served or "orchestrate" in served
    if pre or post:
        from .cache import build_shared_redis
        from .glossary import Glossary
        from .session import build_session_memory
        from .translation import build_translator

        redis = build_shared_redis(settings)
        services.sessions = build_session_memory(settings, redis, app.instance_path)
        services.translator = build_translator(settings, redis)
        services.glossary = Glossary.load(settings.translation_glossary, settings.languages,
                                          settings.assistant_language)
    if pre:
        from .language import LazyDetector, build_detector

        services.detector = LazyDetector(settings) if loading_for_a_command() \
            else build_detector(settings)
    if post:
        from .content import ContentStore

        services.content = ContentStore.load(settings.content_dir)
    return services


def loading_for_a_command() -> bool:
    """Whether Flask's command line is loading the app to find one of its commands (`flask --app
    handlers logs ...`, `sign-jwt`): the detector is then built only if something detects, so a
    command that reads the log store never loads lingua's models. gunicorn loads the app outside
    any command line, and `flask run` inside its own command: both build it at once, before they
    serve (and, under gunicorn, before the fork)."""
    from flask.cli import FlaskGroup

    context = click.get_current_context(silent=True)
    return context is not None and isinstance(context.command, FlaskGroup)
