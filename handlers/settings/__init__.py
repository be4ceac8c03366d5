"""Every setting of the kit, read from the environment and validated once, at start-up.

`load_settings()` turns environment variables (overridden by a dict of the same names, which is
what tests and `create_app(config)` pass) into one frozen `Settings` object. A wrong value raises
`SettingsError` naming the variable, so a misconfigured deployment fails when it starts instead of
answering 500 to the assistant later. Nothing else in the kit reads `os.environ`.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Mapping

from .auth import ASYMMETRIC_ALGORITHMS, AUTH_METHODS, AuthSettings, read_auth
from .readers import (SettingsError, read_choice, read_codes, read_flag, read_log_level,
                      read_number, read_text, settings_errors_in_one_line)

__all__ = ["Settings", "AuthSettings", "SettingsError", "load_settings", "AUTH_METHODS",
           "ASYMMETRIC_ALGORITHMS", "settings_errors_in_one_line"]

WEBHOOKS = ("premessage", "postmessage", "logs")
# What `WEBHOOKS` (and create_app's `steps`) may name: the path's last part (/webhooks/logs), and
# "log", the name earlier versions gave the log webhook; "orchestrate" is the two watsonx
# Orchestrate plug-in endpoints (not served by default).
WEBHOOK_NAMES = {"premessage": "premessage", "postmessage": "postmessage", "logs": "logs",
                 "log": "logs", "orchestrate": "orchestrate"}
# The prefix that overrides the shared WEBHOOK_* auth settings for one webhook; its order is the
# order of every webhook the kit knows.
WEBHOOK_PREFIXES = {"premessage": "PREMESSAGE_", "postmessage": "POSTMESSAGE_", "logs": "LOG_",
                    "orchestrate": "ORCHESTRATE_"}
# The providers the kit drives, each through a client of its own (translation/clients.py); "google"
# is Cloud Translation with a key, the free web page without; "llm" any OpenAI-compatible chat
# completions endpoint.
TRANSLATORS = ("none", "google", "libre", "deepl", "microsoft", "mymemory", "llm")
FORMALITIES = ("default", "more", "less", "prefer_more", "prefer_less")  # DeepL's `formality`
DETECTORS = ("langdetect", "lingua")
SKILL_TYPES = ("actions", "dialog")

# Guessing a password this long at the explorer's throttled 10 tries a minute takes forever.
MIN_EXPLORER_PASSWORD = 12

# Sixteen widely used languages, all of which both detectors and the main translators know.
DEFAULT_LANGUAGES = ("en", "es", "fr", "de", "it", "pt", "nl", "sv", "pl", "ru", "tr", "ar",
                     "hi", "ja", "ko", "zh")
DEFAULT_MIN_CONFIDENCE = {"langdetect": 0.90, "lingua": 0.50}

# The most a session's record may hold (its JSON text, in bytes of UTF-8): the kit's own values
# (a language, OFFERED_OPTIONS_MAX values) fit many times over; a larger record is cut (see
# handlers/session.py, `encode_record`).
SESSION_RECORD_BYTES = 16 * 1024
# SESSION_MEMORY_BYTES's least: the file's schema and some sixty records of the largest size.
SESSION_MEMORY_MIN_BYTES = 1024 * 1024

# How a rediss:// server's certificate is checked (redis-py's ssl_cert_reqs). Heroku Redis presents
# a self-signed certificate, so it needs "none"; the default keeps verification on.
REDIS_SSL_CERT_REQS = ("none", "optional", "required")


@dataclass(frozen=True)
class Settings:
    """The kit's whole configuration. Frozen: it is built once and shared by every request."""

    # HTTP contract
    # The webhooks this app serves: only their services are built and their modules imported.
    webhooks: tuple[str, ...] = WEBHOOKS
    max_content_length: int = 8 * 1024 * 1024
    log_level: str = "INFO"
    auth: Mapping[str, AuthSettings] = field(default_factory=dict)

    # Languages (pre-message)
    assistant_language: str = "en"
    languages: tuple[str, ...] = DEFAULT_LANGUAGES
    supported_languages: tuple[str, ...] = DEFAULT_LANGUAGES
    language_detector: str = "lingua"
    language_min_confidence: float = DEFAULT_MIN_CONFIDENCE["lingua"]
    unsupported_language_reply: str = ""
    skill_type: str = "actions"
    language_variable: str = "customer_language"
    original_input_variable: str = "original_input"
    chosen_language_variable: str = "chosen_language"
    translation_failed_variable: str = "translation_failed"
    offered_options_variable: str = "offered_options"
    # An action sets it true for turns whose input must reach it as typed (a name, an address).
    translation_off_variable: str = "skip_translation"

    # Translation
    translator: str = "none"
    translator_url: str | None = None
    translator_api_key: str | None = field(default=None, repr=False)
    translator_region: str | None = None
    translator_model: str | None = None
    translator_formality: str = "default"
    translator_glossary_id: str | None = None
    translation_timeout: float = 3.0
    translation_cache_size: int = 10_000
    translation_cache_ttl: float = 24 * 3600.0
    translation_memory: str | None = None
    translation_glossary: str | None = None
    translation_concurrency: int = 16
    breaker_failures: int = 5
    breaker_cooldown: float = 5.0

    # Shared state
    redis_url: str | None = field(default=None, repr=False)
    redis_prefix: str = "wxa:"
    redis_ssl_cert_reqs: str = "required"
    session_ttl: float = 24 * 3600.0
    # The session file's size; with Redis, each worker's fallback copy's sessions and bytes.
    session_memory_size: int = 100_000
    session_memory_bytes: int = 64 * 1024 * 1024
    # The file every worker of the instance shares without Redis (None: see session.py).
    session_memory_path: str | None = None

    # Post-message
    content_dir: str | None = None
    offered_options_max: int = 50

    # Log store
    database_url: str | None = field(default=None, repr=False)
    database_timeout: float = 1.5
    log_redact: bool = False
    log_retention_days: int | None = None

    # Log explorer (/explorer/): "basic" (EXPLORER_USERNAME + EXPLORER_PASSWORD), "none" (a
    # local machine, warned about at start-up) or "" (off).
    explorer_auth: str = ""
    explorer_username: str | None = field(default=None, repr=False)
    explorer_password: str | None = field(default=None, repr=False)
    # The proxies whose X-Forwarded-For names the client (the explorer's login throttle).
    forwarded_allow_ips: tuple[str, ...] = ("127.0.0.1",)

    # Prometheus metrics at /metrics (METRICS=on), behind a bearer token when METRICS_TOKEN is set.
    metrics: bool = False
    metrics_token: str | None = field(default=None, repr=False)

    def auth_for(self, webhook: str) -> AuthSettings:
        return self.auth[WEBHOOK_NAMES.get(webhook, webhook)]

    @property
    def open_webhooks(self) -> list[str]:
        return [name for name in self.webhooks if self.auth[name].method == "none"]


# Each default is written once, on the dataclass; load_settings reads it from here.
DEFAULTS = {f.name: f.default for f in fields(Settings) if f.default is not MISSING}


def _webhooks(source: Mapping[str, Any]) -> tuple[str, ...]:
    raw = read_text(source, "WEBHOOKS")
    if raw is None:
        return DEFAULTS["webhooks"]
    names = [name.strip().lower() for name in raw.split(",") if name.strip()]
    unknown = [name for name in names if name not in WEBHOOK_NAMES]
    if unknown or not names:
        raise SettingsError(f"WEBHOOKS={raw!r}: set some of premessage, postmessage, logs, "
                            "orchestrate")
    served = {WEBHOOK_NAMES[name] for name in names}
    return tuple(name for name in WEBHOOK_PREFIXES if name in served)


def _explorer(source: Mapping[str, Any]) -> dict[str, Any]:
    """The log explorer is off unless it has credentials (both, never one) or is explicitly
    left open with EXPLORER_AUTH=none: it shows customers' messages. The password is taken as
    set, spaces included (it is what the browser will send), and is long enough to make the
    throttled guessing of a public port hopeless."""
    username = read_text(source, "EXPLORER_USERNAME")
    password = str(source.get("EXPLORER_PASSWORD") or "") or None
    method = read_choice(source, "EXPLORER_AUTH", ("basic", "none"), "basic") \
        if read_text(source, "EXPLORER_AUTH") else ""
    if bool(username) != bool(password):
        raise SettingsError("EXPLORER_USERNAME and EXPLORER_PASSWORD go together: set both, or "
                            "unset both")
    if username and ":" in username:
        raise SettingsError("EXPLORER_USERNAME cannot contain ':' (HTTP Basic): set one "
                            "without it")
    if method == "none" and username:
        raise SettingsError("EXPLORER_AUTH=none with EXPLORER_USERNAME/EXPLORER_PASSWORD: "
                            "choose one, and unset the other")
    if method == "basic" and not username:
        raise SettingsError("EXPLORER_AUTH=basic needs EXPLORER_USERNAME and EXPLORER_PASSWORD: "
                            "set both")
    if password and len(password) < MIN_EXPLORER_PASSWORD:
        raise SettingsError(f"EXPLORER_PASSWORD is shorter than {MIN_EXPLORER_PASSWORD} "
                            "characters (spaces count: it is used as set): set a longer one")
    if username:
        method = "basic"
    return {"explorer_auth": method, "explorer_username": username,
            "explorer_password": password}


def _forwarded_allow_ips(source: Mapping[str, Any]) -> tuple[str, ...]:
    """The proxies trusted to say who their client is (gunicorn's FORWARDED_ALLOW_IPS, which
    trusts them for the scheme): addresses, or `*` for any peer."""
    raw = read_text(source, "FORWARDED_ALLOW_IPS", DEFAULTS["forwarded_allow_ips"][0])
    items = tuple(item.strip() for item in (raw or "").split(",") if item.strip())
    for item in items:
        if item != "*":
            try:
                ipaddress.ip_address(item)
            except ValueError:
                raise SettingsError(f"FORWARDED_ALLOW_IPS: {item!r} is not an IP address or *"
                                    ) from None
    return items


def load_settings(overrides: Mapping[str, Any] | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from the environment, with `overrides` (same names) taking precedence."""
    source: dict[str, Any] = dict(os.environ if environ is None else environ)
    source.update(overrides or {})

    def number(name: str, **options: Any) -> Any:
        """The number setting named after the field `name` (upper case), else its default."""
        return read_number(source, name.upper(), DEFAULTS[name], **options)

    def text(name: str) -> str | None:
        return read_text(source, name.upper(), DEFAULTS[name])

    detector = read_choice(source, "LANGUAGE_DETECTOR", DETECTORS, DEFAULTS["language_detector"])
    languages = read_codes(source, "LANGUAGES", DEFAULTS["languages"])
    assistant_codes = read_codes(source, "ASSISTANT_LANGUAGE", (DEFAULTS["assistant_language"],))
    if len(assistant_codes) > 1:
        raise SettingsError("ASSISTANT_LANGUAGE names more than one language: set the "
                            "assistant's one")
    assistant_language = assistant_codes[0]
    if assistant_language not in languages:
        languages = languages + (assistant_language,)
    supported = read_codes(source, "SUPPORTED_LANGUAGES", languages)
    unknown = [code for code in supported if code not in languages]
    if unknown:
        raise SettingsError(f"SUPPORTED_LANGUAGES names {', '.join(unknown)}, which LANGUAGES "
                            "(the detector's candidates) does not: set them in LANGUAGES too")
    if assistant_language not in supported:
        supported = supported + (assistant_language,)
    min_confidence = read_number(source, "LANGUAGE_MIN_CONFIDENCE",
                                 DEFAULT_MIN_CONFIDENCE[detector])
    if min_confidence > 1:
        raise SettingsError(f"LANGUAGE_MIN_CONFIDENCE={min_confidence} is above 1: set a number "
                            "between 0 and 1")

    translator = read_choice(source, "TRANSLATOR", TRANSLATORS, DEFAULTS["translator"])
    translator_url = read_text(source, "TRANSLATOR_URL")
    if translator_url and not translator_url.lower().startswith(("http://", "https://")):
        # Accepted as it was, every call would fail later, as `invalid_answer` at best.
        raise SettingsError(f"TRANSLATOR_URL={translator_url!r} has no http:// or https://: "
                            f"write the whole URL, e.g. http://{translator_url.split('://')[-1]}")
    translator_key = read_text(source, "TRANSLATOR_API_KEY")
    if translator in ("deepl", "microsoft") and not translator_key:
        raise SettingsError(f"TRANSLATOR_API_KEY is required with TRANSLATOR={translator}: set "
                            "your key")
    if translator == "libre" and not translator_url:
        raise SettingsError("TRANSLATOR_URL is required with TRANSLATOR=libre: set your "
                            "LibreTranslate server's URL, e.g. http://localhost:5000")
    translator_model = read_text(source, "TRANSLATOR_MODEL")
    if translator == "llm" and not (translator_url and translator_model):
        raise SettingsError("TRANSLATOR=llm needs TRANSLATOR_URL and TRANSLATOR_MODEL: set the "
                            "base URL ending in /v1 and the model")
    timeout = number("translation_timeout")
    if timeout >= 30:
        raise SettingsError(f"TRANSLATION_TIMEOUT={timeout} is not below the assistant's "
                            "longest webhook timeout (30 s): set fewer seconds")

    retention = number("log_retention_days", cast=int)
    database_url = read_text(source, "DATABASE_URL")
    if database_url and "://" not in database_url:
        raise SettingsError("DATABASE_URL is not a database URL: write e.g. "
                            "postgresql+psycopg://user@host/db or sqlite:///path")
    database_timeout = number("database_timeout")
    if database_timeout >= 30:
        raise SettingsError(f"DATABASE_TIMEOUT={database_timeout} is not below the assistant's "
                            "longest webhook timeout (30 s): set fewer seconds")
    redis_url = read_text(source, "REDIS_URL")
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError("REDIS_URL has no redis://, rediss:// or unix://: write the whole "
                            "URL, e.g. redis://localhost:6379/0")

    if "LOG_LEVEL" in source and "APP_LOG_LEVEL" not in source:
        # LOG_ settings are the log webhook's (LOG_AUTH, LOG_REDACT): one meaning per prefix.
        raise SettingsError("LOG_LEVEL was renamed: set APP_LOG_LEVEL instead (settings "
                            "starting with LOG_ configure the log webhook)")
    log_level = read_log_level(source, "APP_LOG_LEVEL", DEFAULTS["log_level"])

    settings = Settings(
        webhooks=_webhooks(source),
        max_content_length=number("max_content_length", cast=int),
        log_level=log_level,
        auth={webhook: read_auth(source, webhook, prefix)
              for webhook, prefix in WEBHOOK_PREFIXES.items()},
        assistant_language=assistant_language,
        languages=languages,
        supported_languages=supported,
        language_detector=detector,
        language_min_confidence=min_confidence,
        unsupported_language_reply=text("unsupported_language_reply"),
        skill_type=read_choice(source, "SKILL_TYPE", SKILL_TYPES, DEFAULTS["skill_type"]),
        language_variable=text("language_variable"),
        original_input_variable=text("original_input_variable"),
        chosen_language_variable=text("chosen_language_variable"),
        translation_failed_variable=text("translation_failed_variable"),
        offered_options_variable=text("offered_options_variable"),
        translation_off_variable=text("translation_off_variable"),
        translator=translator,
        translator_url=translator_url,
        translator_api_key=translator_key,
        translator_region=read_text(source, "TRANSLATOR_REGION"),
        translator_model=translator_model,
        translator_formality=read_choice(source, "TRANSLATOR_FORMALITY", FORMALITIES,
                                         DEFAULTS["translator_formality"]),
        translator_glossary_id=read_text(source, "TRANSLATOR_GLOSSARY_ID"),
        translation_timeout=timeout,
        translation_cache_size=number("translation_cache_size", cast=int, positive=False,
                                      minimum=0),
        translation_cache_ttl=number("translation_cache_ttl"),
        translation_memory=read_text(source, "TRANSLATION_MEMORY"),
        translation_glossary=read_text(source, "TRANSLATION_GLOSSARY"),
        translation_concurrency=number("translation_concurrency", cast=int),
        breaker_failures=number("breaker_failures", cast=int),
        breaker_cooldown=number("breaker_cooldown"),
        redis_url=redis_url,
        redis_prefix=text("redis_prefix"),
        redis_ssl_cert_reqs=read_choice(source, "REDIS_SSL_CERT_REQS", REDIS_SSL_CERT_REQS,
                                    DEFAULTS["redis_ssl_cert_reqs"]),
        session_ttl=number("session_ttl"),
        session_memory_size=number("session_memory_size", cast=int),
        session_memory_bytes=number("session_memory_bytes", cast=int,
                                    minimum=SESSION_MEMORY_MIN_BYTES),
        session_memory_path=read_text(source, "SESSION_MEMORY_PATH"),
        content_dir=read_text(source, "CONTENT_DIR"),
        offered_options_max=number("offered_options_max", cast=int),
        database_url=database_url,
        database_timeout=database_timeout,
        log_redact=read_flag(source, "LOG_REDACT", DEFAULTS["log_redact"]),
        log_retention_days=retention,
        **_explorer(source),
        forwarded_allow_ips=_forwarded_allow_ips(source),
        metrics=read_flag(source, "METRICS", DEFAULTS["metrics"]),
        metrics_token=read_text(source, "METRICS_TOKEN"),
    )
    if "orchestrate" in settings.webhooks and settings.auth["orchestrate"].method == "jwt":
        # Orchestrate's connections send an API key, a token, Basic or OAuth 2 credentials; the
        # assistant's signed JWT (perhaps inherited from WEBHOOK_AUTH) can never arrive.
        raise SettingsError("ORCHESTRATE_AUTH=jwt (or WEBHOOK_AUTH=jwt inherited): Orchestrate "
                            "cannot sign the assistant's JWT; set apikey, bearer, basic or oauth2")
    for name, folder in (("TRANSLATION_MEMORY", settings.translation_memory),
                         ("CONTENT_DIR", settings.content_dir)):
        if folder and not os.path.isdir(folder):
            raise SettingsError(f"{name}={folder!r} is not a folder: point it at an existing "
                                "folder, or unset it")
    return settings
