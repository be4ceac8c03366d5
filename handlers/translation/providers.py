"""The translation providers: each one's language codes and its blocking call, through
deep-translator. The one module that knows deep-translator (its classes, code tables and
exceptions); everything else sees `Provider`.

Language codes are the kit's ISO 639-1 codes ("zh", "he"); each provider maps them to its own
("zh-CN" and "iw" for Google, "zh-CN" and "es-ES" for MyMemory, ...).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterable

from ..settings import Settings

# Where a provider's code table does not hold the ISO 639-1 code itself, the codes to try, in order.
CODE_ALIASES: dict[str, tuple[str, ...]] = {
    "zh": ("zh-CN", "zh-Hans", "zh-cn", "zh-hans"),
    "he": ("iw", "he-IL"),
    "jv": ("jw",),
    "nb": ("no",),
    "no": ("nb",),
    "tl": ("fil", "fil-PH"),
}
# For providers that only know regional codes (MyMemory): the region used for a bare language.
PREFERRED_REGION = {"en": "GB", "pt": "PT", "ar": "SA", "sv": "SE", "ja": "JP", "ko": "KR",
                    "hi": "IN", "zh": "CN", "he": "IL", "da": "DK", "cs": "CZ", "el": "GR",
                    "uk": "UA", "vi": "VN", "fa": "IR", "sl": "SI", "et": "EE"}


class TranslationError(Exception):
    """A provider call that did not produce a translation; `reason` is a short code for the log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def failure_reason(exc: BaseException) -> str:
    """A short code for a failed provider call. Never the exception's message: it may quote text."""
    if isinstance(exc, TranslationError):
        return exc.reason
    from deep_translator import exceptions as dt
    import requests

    if isinstance(exc, dt.ServerException):
        codes = {v: k for k, v in dt.ServerException.errors.items()}
        status = codes.get(exc.args[0] if exc.args else None)
        return f"http_{status}" if status else "server_error"
    if isinstance(exc, dt.TooManyRequests):
        return "http_429"
    if isinstance(exc, (dt.AuthorizationException, dt.ApiKeyException)):
        return "unauthorized"
    if isinstance(exc, (dt.LanguageNotSupportedException, dt.InvalidSourceOrTargetLanguage)):
        return "unsupported_language"
    if isinstance(exc, (dt.NotValidLength, dt.NotValidPayload)):
        return "text_rejected"
    if isinstance(exc, (dt.TranslationNotFound, dt.ElementNotFoundInGetRequest)):
        return "no_translation"
    if isinstance(exc, dt.RequestError):
        return "request_failed"
    if isinstance(exc, requests.exceptions.Timeout):
        return "timeout"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "connection_failed"
    if isinstance(exc, (ValueError, KeyError, TypeError, AttributeError)):
        return "invalid_answer"  # not the JSON the provider documents
    return f"error_{type(exc).__name__}"


class Provider:
    """One translation service: language-code mapping and one blocking call.

    `translate` may block for ever (deep-translator sets no timeout); the `Translator` only ever
    calls it on its bounded pool. Subclass this to add a provider deep-translator lacks.
    """

    name = "provider"

    def code_for(self, language: str) -> str | None:
        """The provider's code for an ISO 639-1 code, or None when it cannot translate it."""
        return language

    def translate(self, text: str, source: str, target: str) -> str:
        raise NotImplementedError


def map_code(language: str, codes: Iterable[str] | None) -> str | None:
    """Map an ISO 639-1 code onto a provider's code table (None = the provider takes any code)."""
    if codes is None:
        return language
    table = {code.lower(): code for code in codes}
    for candidate in (language, *CODE_ALIASES.get(language, ())):
        if candidate.lower() in table:
            return table[candidate.lower()]
    region = PREFERRED_REGION.get(language, language.upper())
    if f"{language}-{region}".lower() in table:
        return table[f"{language}-{region}".lower()]
    regional = sorted(code for low, code in table.items() if low.startswith(language + "-"))
    return regional[0] if regional else None


class DeepTranslatorProvider(Provider):
    """A deep-translator class behind the `Provider` interface.

    `make(source, target)` builds the deep-translator object for one language pair. Objects that
    keep per-call state (Google, MyMemory put the text in a shared dict) are built per call
    (`reuse=False`, cheap); the others are built once per pair, on the pool, because some
    (Microsoft) make a network call in their constructor.
    """

    def __init__(self, name: str, make: Callable[[str, str], Any], codes: Iterable[str] | None,
                 *, reuse: bool, fixed: dict[str, str] | None = None) -> None:
        self.name = name
        self._make = make
        self._codes = list(codes) if codes is not None else None
        self._fixed = fixed or {}
        self._reuse = reuse
        self._instances: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def code_for(self, language: str) -> str | None:
        return self._fixed.get(language) or map_code(language, self._codes)

    def _instance(self, source: str, target: str) -> Any:
        if not self._reuse:
            return self._make(source, target)
        with self._lock:
            instance = self._instances.get((source, target))
        if instance is None:
            instance = self._make(source, target)
            with self._lock:
                self._instances.setdefault((source, target), instance)
        return instance

    def translate(self, text: str, source: str, target: str) -> str:
        result = self._instance(source, target).translate(text)
        if not isinstance(result, str) or not result.strip():
            raise TranslationError("empty_answer")
        return result


def libre_base_url(url: str) -> str:
    """deep-translator appends "translate" to the URL it is given: accept either form."""
    url = url.strip()
    if url.rstrip("/").endswith("/translate"):
        url = url.rstrip("/")[: -len("translate")]
    return url if url.endswith("/") else url + "/"


def build_provider(settings: Settings) -> Provider | None:
    """The provider named by TRANSLATOR (None for "none"). Builds nothing that calls out."""
    name = settings.translator
    key = settings.translator_api_key
    if name == "none":
        return None
    from deep_translator import (DeeplTranslator, GoogleTranslator, LibreTranslator,
                                 MicrosoftTranslator, MyMemoryTranslator)
    from deep_translator import constants as dt

    if name == "google":
        return DeepTranslatorProvider(
            name, lambda s, t: GoogleTranslator(source=s, target=t),
            dt.GOOGLE_LANGUAGES_TO_CODES.values(), reuse=False)
    if name == "mymemory":
        return DeepTranslatorProvider(
            name, lambda s, t: MyMemoryTranslator(source=s, target=t),
            dt.MY_MEMORY_LANGUAGES_TO_CODES.values(), reuse=False)
    if name == "libre":
        url = libre_base_url(settings.translator_url)

        def make_libre(source: str, target: str) -> Any:
            # deep-translator refuses to start without a key, even for a self-hosted server that
            # needs none; build it with a placeholder and then send no key at all.
            translator = LibreTranslator(source=source, target=target, api_key=key or "unused",
                                         custom_url=url)
            if not key:
                translator.api_key = None
            return translator

        return DeepTranslatorProvider(name, make_libre, dt.LIBRE_LANGUAGES_TO_CODES.values(),
                                      reuse=True)
    if name == "deepl":
        free = bool(key and key.endswith(":fx"))  # DeepL's free-plan keys end in ":fx"
        return DeepTranslatorProvider(
            name, lambda s, t: DeeplTranslator(source=s, target=t, api_key=key,
                                               use_free_api=free),
            dt.DEEPL_LANGUAGE_TO_CODE.values(), reuse=True)
    if name == "microsoft":
        region = settings.translator_region

        def make_microsoft(source: str, target: str) -> Any:
            return MicrosoftTranslator(source=source, target=target, api_key=key, region=region)

        # Its code table is only known after the network call its constructor makes (on the pool,
        # under the deadline); until then, ISO 639-1 codes with Microsoft's one difference.
        return DeepTranslatorProvider(name, make_microsoft, None, reuse=True,
                                      fixed={"zh": "zh-hans"})
    raise ValueError(f"unknown translator {name!r}")
