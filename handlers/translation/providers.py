"""The translation providers: each one's language codes and its blocking call. The kit's own HTTP
clients (clients.py, `build_client`) serve every TRANSLATOR; deep-translator supplies the language
tables of the providers that publish none. Everything else sees `Provider`.

Language codes are the kit's ISO 639-1 codes ("zh", "he"); each provider maps them to its own
("zh-CN" and "iw" for Google, "zh-CN" and "es-ES" for MyMemory, ...).
"""

from __future__ import annotations

from typing import Iterable, Sequence

__all__ = ["CODE_ALIASES", "Provider", "map_code"]

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

