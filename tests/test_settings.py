"""Settings are read and validated once: a wrong value stops create_app, naming the variable."""

from __future__ import annotations

import dataclasses

import pytest

from handlers import SettingsError, create_app
from handlers.settings import AuthSettings, Settings, load_settings


@pytest.mark.parametrize("config, names", [
    ({"WEBHOOK_AUTH": "kerberos"}, "WEBHOOK_AUTH"),
    ({"LOG_AUTH": "magic"}, "LOG_AUTH"),
    ({"WEBHOOK_AUTH": "jwt"}, "WEBHOOK_SECRET"),
    ({"LOG_AUTH": "jwt"}, "WEBHOOK_SECRET"),
    ({"WEBHOOK_AUTH": "jwt", "WEBHOOK_SECRET": "x" * 1025}, "WEBHOOK_SECRET"),
    ({"WEBHOOK_AUTH": "bearer"}, "WEBHOOK_SECRET"),
    ({"WEBHOOK_AUTH": "basic", "WEBHOOK_USERNAME": "u"}, "WEBHOOK_PASSWORD"),
    ({"WEBHOOK_AUTH": "basic", "WEBHOOK_PASSWORD": "p"}, "WEBHOOK_USERNAME"),
    ({"PREMESSAGE_AUTH": "basic", "PREMESSAGE_USERNAME": "u"}, "WEBHOOK_PASSWORD"),
    ({"WEBHOOK_AUTH": "apikey"}, "WEBHOOK_API_KEY"),
    ({"WEBHOOK_AUTH": "apikey", "WEBHOOK_API_KEY": "k", "WEBHOOK_API_KEY_HEADER": "Bad Header:"},
     "API_KEY_HEADER"),
    ({"WEBHOOK_AUTH": "oauth2"}, "WEBHOOK_JWKS_URL"),
    ({"WEBHOOK_AUTH": "oauth2", "WEBHOOK_JWKS_URL": "ftp://idp/keys"}, "WEBHOOK_JWKS_URL"),
    ({"WEBHOOK_AUTH": "jwt", "WEBHOOK_SECRET": "s", "WEBHOOK_JWT_ALGORITHMS": "none"},
     "WEBHOOK_JWT_ALGORITHMS"),
    ({"WEBHOOK_AUTH": "jwt", "WEBHOOK_SECRET": "s", "WEBHOOK_JWT_ALGORITHMS": "RS256"},
     "WEBHOOK_JWT_ALGORITHMS"),
    ({"WEBHOOK_AUTH": "jwt", "WEBHOOK_SECRET": "s", "WEBHOOK_JWT_LEEWAY": "soon"},
     "WEBHOOK_JWT_LEEWAY"),
    ({"TRANSLATION_TIMEOUT": "0"}, "TRANSLATION_TIMEOUT"),
    ({"TRANSLATION_TIMEOUT": "-2"}, "TRANSLATION_TIMEOUT"),
    ({"TRANSLATION_TIMEOUT": "fast"}, "TRANSLATION_TIMEOUT"),
    ({"TRANSLATION_TIMEOUT": "45"}, "TRANSLATION_TIMEOUT"),
    ({"MAX_CONTENT_LENGTH": "lots"}, "MAX_CONTENT_LENGTH"),
    ({"MAX_CONTENT_LENGTH": "0"}, "MAX_CONTENT_LENGTH"),
    ({"TRANSLATOR": "babelfish"}, "TRANSLATOR"),
    ({"TRANSLATOR": "libre"}, "TRANSLATOR_URL"),
    ({"TRANSLATOR": "deepl"}, "TRANSLATOR_API_KEY"),
    ({"LANGUAGE_DETECTOR": "cld3"}, "LANGUAGE_DETECTOR"),
    ({"LANGUAGE_MIN_CONFIDENCE": "1.5"}, "LANGUAGE_MIN_CONFIDENCE"),
    ({"LANGUAGES": "en,es", "SUPPORTED_LANGUAGES": "en,fr"}, "SUPPORTED_LANGUAGES"),
    ({"SKILL_TYPE": "flows"}, "SKILL_TYPE"),
    ({"LOG_REDACT": "maybe"}, "LOG_REDACT"),
    ({"LOG_RETENTION_DAYS": "-1"}, "LOG_RETENTION_DAYS"),
    ({"LOG_RETENTION_DAYS": "forever"}, "LOG_RETENTION_DAYS"),
    ({"DATABASE_URL": "events.db"}, "DATABASE_URL"),
    ({"REDIS_URL": "localhost:6379"}, "REDIS_URL"),
    ({"APP_LOG_LEVEL": "chatty"}, "APP_LOG_LEVEL"),
    ({"LOG_LEVEL": "DEBUG"}, "APP_LOG_LEVEL"),
    ({"CONTENT_DIR": "/nonexistent/content"}, "CONTENT_DIR"),
    ({"TRANSLATION_MEMORY": "/nonexistent/memory"}, "TRANSLATION_MEMORY"),
])
def test_wrong_values_stop_create_app_naming_the_variable(config, names):
    with pytest.raises(SettingsError) as raised:
        create_app(config)
    assert names in str(raised.value)


def test_secrets_never_appear_in_errors_or_repr():
    with pytest.raises(SettingsError) as raised:
        load_settings({"WEBHOOK_AUTH": "jwt", "WEBHOOK_SECRET": "y" * 2000})
    assert "yyyy" not in str(raised.value)
    settings = load_settings({"WEBHOOK_AUTH": "jwt", "WEBHOOK_SECRET": "hunter2",
                              "TRANSLATOR_API_KEY": "api-key-123", "REDIS_URL": "redis://:pw@h/0"})
    assert "hunter2" not in repr(settings)
    assert "api-key-123" not in repr(settings)
    assert ":pw@" not in repr(settings)


def test_environment_is_read_and_config_overrides_it():
    environ = {"WEBHOOK_AUTH": "bearer", "WEBHOOK_SECRET": "from-env", "TRANSLATION_TIMEOUT": "2.5"}
    settings = load_settings({"TRANSLATION_TIMEOUT": 1}, environ=environ)
    assert settings.auth_for("premessage").method == "bearer"
    assert settings.auth_for("premessage").secret == "from-env"
    assert settings.translation_timeout == 1


def test_defaults():
    settings = load_settings(environ={})
    assert settings.max_content_length == 8 * 1024 * 1024
    assert {a.method for a in settings.auth.values()} == {"none"}
    assert settings.auth_for("logs").api_key_header == "X-API-Key"
    assert settings.translation_timeout == 3.0
    assert settings.assistant_language == "en"
    assert "en" in settings.languages and len(settings.languages) == 16
    assert settings.supported_languages == settings.languages
    assert settings.translator == "none"


def test_unset_settings_take_the_dataclass_defaults():
    """Each default is written once, on `Settings` / `AuthSettings`; load_settings reads it."""
    settings = load_settings(environ={})
    for f in dataclasses.fields(Settings):
        if f.default is not dataclasses.MISSING:
            assert getattr(settings, f.name) == f.default, f.name
    for auth in settings.auth.values():
        for f in dataclasses.fields(AuthSettings):
            if f.default is not dataclasses.MISSING:
                assert getattr(auth, f.name) == f.default, f.name


def test_per_webhook_values_fall_back_to_shared_ones():
    settings = load_settings(environ={
        "WEBHOOK_AUTH": "jwt", "WEBHOOK_SECRET": "shared", "LOG_SECRET": "log-only",
        "POSTMESSAGE_AUTH": "apikey", "POSTMESSAGE_API_KEY": "k"})
    assert settings.auth_for("premessage").secret == "shared"
    assert settings.auth_for("logs").method == "jwt"
    assert settings.auth_for("logs").secret == "log-only"
    assert settings.auth_for("postmessage").method == "apikey"


def test_assistant_language_always_a_candidate_and_supported():
    settings = load_settings(environ={"ASSISTANT_LANGUAGE": "pt", "LANGUAGES": "en, es ,fr"})
    assert settings.languages == ("en", "es", "fr", "pt")
    assert "pt" in settings.supported_languages


def test_settings_are_frozen():
    settings = load_settings(environ={})
    with pytest.raises(AttributeError):
        settings.translation_timeout = 10  # type: ignore[misc]
