"""Settings of the language and translation steps: validated once, at start-up, by name."""

from __future__ import annotations

import pytest

from handlers import SettingsError, create_app
from handlers.settings import load_settings


@pytest.mark.parametrize("config, name", [
    ({"TRANSLATOR": "yandex"}, "TRANSLATOR"),           # providers the kit does not drive
    ({"TRANSLATOR": "pons"}, "TRANSLATOR"),
    ({"TRANSLATOR": "microsoft"}, "TRANSLATOR_API_KEY"),
    ({"LANGUAGES": "english,spanish"}, "LANGUAGES"),
    ({"LANGUAGES": "en, es-MX"}, "LANGUAGES"),
    ({"LANGUAGES": " , "}, "LANGUAGES"),
    ({"SUPPORTED_LANGUAGES": "en,1"}, "SUPPORTED_LANGUAGES"),
    ({"ASSISTANT_LANGUAGE": "en,es"}, "ASSISTANT_LANGUAGE"),
    ({"ASSISTANT_LANGUAGE": "English"}, "ASSISTANT_LANGUAGE"),
    ({"LANGUAGE_MIN_CONFIDENCE": "0"}, "LANGUAGE_MIN_CONFIDENCE"),
    ({"TRANSLATION_CONCURRENCY": "0"}, "TRANSLATION_CONCURRENCY"),
    ({"TRANSLATION_CACHE_SIZE": "-1"}, "TRANSLATION_CACHE_SIZE"),
    ({"TRANSLATION_CACHE_TTL": "0"}, "TRANSLATION_CACHE_TTL"),
    ({"BREAKER_FAILURES": "0"}, "BREAKER_FAILURES"),
    ({"BREAKER_COOLDOWN": "soon"}, "BREAKER_COOLDOWN"),
    ({"SESSION_TTL": "-5"}, "SESSION_TTL"),
    ({"SESSION_MEMORY_SIZE": "0"}, "SESSION_MEMORY_SIZE"),
    ({"SKILL_TYPE": "assistant"}, "SKILL_TYPE"),
    ({"REDIS_URL": "localhost:6379"}, "REDIS_URL"),
])
def test_wrong_values_are_refused_by_name(config, name):
    with pytest.raises(SettingsError, match=name):
        create_app(config)


def test_defaults_of_the_language_settings():
    settings = load_settings(environ={})
    assert settings.language_detector == "lingua"
    assert settings.language_min_confidence == 0.5
    langdetect = load_settings(environ={"LANGUAGE_DETECTOR": "langdetect"})
    assert langdetect.language_min_confidence == 0.9
    assert len(settings.languages) == 16 and settings.supported_languages == settings.languages
    assert (settings.language_variable, settings.original_input_variable,
            settings.chosen_language_variable, settings.translation_failed_variable,
            settings.offered_options_variable) == (
        "customer_language", "original_input", "chosen_language", "translation_failed",
        "offered_options")
    assert settings.translator == "none" and settings.translation_timeout == 3.0


def test_each_detector_has_its_own_default_confidence():
    assert load_settings({"LANGUAGE_DETECTOR": "lingua"}, environ={}).language_min_confidence == 0.5
    assert load_settings({"LANGUAGE_DETECTOR": "lingua", "LANGUAGE_MIN_CONFIDENCE": "0.7"},
                         environ={}).language_min_confidence == 0.7


def test_codes_are_normalised():
    settings = load_settings({"LANGUAGES": "EN; Es ,fr", "ASSISTANT_LANGUAGE": "ES"}, environ={})
    assert settings.languages == ("en", "es", "fr") and settings.assistant_language == "es"


def test_provider_settings_are_read():
    settings = load_settings({"TRANSLATOR": "microsoft", "TRANSLATOR_API_KEY": "secret-key-9",
                              "TRANSLATOR_REGION": "westeurope"}, environ={})
    assert settings.translator_region == "westeurope"
    assert settings.translator_api_key == "secret-key-9"
    assert "secret-key-9" not in repr(settings)
