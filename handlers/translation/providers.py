"""The translation providers: each one's language codes and its blocking call. The kit's own HTTP
clients (clients.py) serve libre, deepl, microsoft, google with a key, and llm; deep-translator
serves mymemory and the keyless Google endpoint, one string per call. Everything else sees
`Provider`.

Language codes are the kit's ISO 639-1 codes ("zh", "he"); each provider maps them to its own
("zh-CN" and "iw" for Google, "zh-CN" and "es-ES" for MyMemory, ...).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterable, Sequence

from ..settings import Settings
from .errors import TranslationError, failure_reason

__all__ = ["CODE_ALIASES", "Provider", "TranslationError", "build_provider", "failure_reason",
           "map_code"]

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


class Provider:
    """One translation service: language-code mapping and a blocking call.

    The `Translator` only ever calls it on its bounded pool. A provider that takes a list of
    strings sets `batch_size` (strings per request) and overrides `translate_batch`; the others
    implement `translate` and are called once per string, concurrently. Subclass this to add one.
    """

    name = "provider"
    batch_size = 1

    def code_for(self, language: str) -> str | None:
        """The provider's code for an ISO 639-1 code, or None when it cannot translate it."""
        return language

    def translate(self, text: str, source: str, target: str) -> str:
        raise NotImplementedError

    def translate_batch(self, texts: Sequence[str], source: str, target: str,
                        deadline: float) -> list[str | None]:
        """Translations in the order of `texts`; None for a string whose answer was rejected.

        Raises (TranslationError, requests' errors) when the request as a whole failed.
        `deadline` is time.monotonic() at which the caller stops waiting.
        """
        return [self.translate(text, source, target) for text in texts]


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


def build_provider(settings: Settings) -> Provider | None:
    """The provider named by TRANSLATOR (None for "none"). Builds nothing that calls out."""
    name = settings.translator
    if name == "none":
        return None
    if name in ("libre", "deepl", "microsoft", "llm") or (name == "google"
                                                          and settings.translator_api_key):
        from .clients import build_client

        return build_client(settings)
    from deep_translator import GoogleTranslator, MyMemoryTranslator
    from deep_translator import constants as dt

    # deep-translator calls requests.get itself (no session, timeout or base URL to pass): these
    # calls are bounded by the pool's deadline only, as the package's docstring says.
    if name == "google":
        return DeepTranslatorProvider(
            name, lambda s, t: GoogleTranslator(source=s, target=t),
            dt.GOOGLE_LANGUAGES_TO_CODES.values(), reuse=False)
    if name == "mymemory":
        return DeepTranslatorProvider(
            name, lambda s, t: MyMemoryTranslator(source=s, target=t),
            dt.MY_MEMORY_LANGUAGES_TO_CODES.values(), reuse=False)
    raise ValueError(f"unknown translator {name!r}")
