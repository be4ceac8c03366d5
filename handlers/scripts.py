"""Which script a text's letters are written in: the tables and the counting that let the script
decide a language on its own (kana is Japanese, Hangul Korean, ...) before any statistics.

Everything here reads at most MAX_SCAN_CHARS characters of a text and is linear in them (a
hostile message costs no more than reading it: tests/test_hostile_input.py).
"""

from __future__ import annotations

import re
from typing import Mapping

# Languages by the script they are written in (ISO 639-1). Anything alphabetic not listed is Latin.
SCRIPT_LANGUAGES: dict[str, tuple[str, ...]] = {
    "kana": ("ja",),
    "hangul": ("ko",),
    "han": ("zh", "ja"),           # Han alone: Chinese first; Japanese text nearly always has kana
    "cyrillic": ("ru", "uk", "bg", "sr", "mk", "be", "kk", "ky", "mn", "tg"),
    "greek": ("el",),
    "arabic": ("ar", "fa", "ur", "ps", "ku", "sd", "ug"),
    "hebrew": ("he", "yi"),
    "devanagari": ("hi", "mr", "ne", "sa"),
    "bengali": ("bn", "as"),
    "gurmukhi": ("pa",),
    "gujarati": ("gu",),
    "tamil": ("ta",),
    "telugu": ("te",),
    "kannada": ("kn",),
    "malayalam": ("ml",),
    "thai": ("th",),
    "lao": ("lo",),
    "khmer": ("km",),
    "myanmar": ("my",),
    "georgian": ("ka",),
    "armenian": ("hy",),
    "ethiopic": ("am", "ti"),
    "sinhala": ("si",),
}
# (first code point, last code point, script) for the blocks that matter; sorted.
_BLOCKS = sorted([
    (0x0370, 0x03FF, "greek"), (0x0400, 0x052F, "cyrillic"), (0x0530, 0x058F, "armenian"),
    (0x0590, 0x05FF, "hebrew"), (0x0600, 0x06FF, "arabic"), (0x0750, 0x077F, "arabic"),
    (0x0900, 0x097F, "devanagari"), (0x0980, 0x09FF, "bengali"), (0x0A00, 0x0A7F, "gurmukhi"),
    (0x0A80, 0x0AFF, "gujarati"), (0x0B80, 0x0BFF, "tamil"), (0x0C00, 0x0C7F, "telugu"),
    (0x0C80, 0x0CFF, "kannada"), (0x0D00, 0x0D7F, "malayalam"), (0x0D80, 0x0DFF, "sinhala"),
    (0x0E00, 0x0E7F, "thai"), (0x0E80, 0x0EFF, "lao"), (0x1000, 0x109F, "myanmar"),
    (0x10A0, 0x10FF, "georgian"), (0x1100, 0x11FF, "hangul"), (0x1200, 0x139F, "ethiopic"),
    (0x1780, 0x17FF, "khmer"), (0x3040, 0x309F, "kana"), (0x30A0, 0x30FF, "kana"),
    (0x3130, 0x318F, "hangul"), (0x31F0, 0x31FF, "kana"), (0x3400, 0x4DBF, "han"),
    (0x4E00, 0x9FFF, "han"), (0xA960, 0xA97F, "hangul"), (0xAC00, 0xD7AF, "hangul"),
    (0xF900, 0xFAFF, "han"), (0xFB50, 0xFDFF, "arabic"), (0xFE70, 0xFEFF, "arabic"),
    (0xFF66, 0xFF9F, "kana"), (0x20000, 0x2FA1F, "han"),
])
_BLOCK_STARTS = [block[0] for block in _BLOCKS]

# No pattern or count here looks past this many characters (the assistant's own limit for a
# message): a longer text is judged by its beginning.
MAX_SCAN_CHARS = 2048


def script_of_char(ch: str) -> str | None:
    """The script of one letter (None for anything that is not a letter)."""
    code = ord(ch)
    if code < 0x80:
        return "latin" if ch.isalpha() else None
    if not ch.isalpha():
        return None
    if code < 0x0370:
        return "latin"
    low, high = 0, len(_BLOCK_STARTS) - 1
    while low <= high:  # binary search of the block table
        mid = (low + high) // 2
        if _BLOCK_STARTS[mid] <= code:
            low = mid + 1
        else:
            high = mid - 1
    if high >= 0 and code <= _BLOCKS[high][1]:
        return _BLOCKS[high][2]
    return "latin" if code < 0x2000 or 0x1E00 <= code <= 0x1EFF else "other"


# The e-mail address is tried only where a run of its characters starts (bounded), so a long
# word is read once, not once per letter.
_URL_OR_MAIL = re.compile(r"(?:https?://|www\.)\S+"
                          r"|(?<![\w.+-])[\w.+-]{1,64}@[\w-]{1,63}\.[\w.-]+", re.IGNORECASE)


def letters_by_script(text: str) -> dict[str, int]:
    """How many letters of each script the text has (in its first MAX_SCAN_CHARS), ignoring URLs
    and e-mail addresses."""
    counts: dict[str, int] = {}
    text = text[:MAX_SCAN_CHARS]
    if "@" in text or "://" in text or "www." in text.lower():
        text = _URL_OR_MAIL.sub(" ", text)
    for ch in text:
        script = script_of_char(ch)
        if script is not None:
            counts[script] = counts.get(script, 0) + 1
    return counts


def has_letters(text: str) -> bool:
    """Whether the text has a letter outside URLs and e-mail addresses (digits, emoji, punctuation
    and a bare link have none: there is nothing to detect or translate). Only the first
    MAX_SCAN_CHARS characters are looked at."""
    text = text[:MAX_SCAN_CHARS]
    if "@" in text or "://" in text or "www." in text.lower():
        text = _URL_OR_MAIL.sub(" ", text)
    return any(ch.isalpha() for ch in text)


# A Han character, a kana or a Hangul syllable carries about as much as a short Latin word: a
# Chinese or Japanese sentence with Latin product and command names in it ("禁用 SO PASSCRED 时
# 出错") is still Chinese or Japanese (measured on translated system messages, bench/RESULTS.md).
SCRIPT_WEIGHT = {"han": 3, "kana": 3, "hangul": 3}


def dominant_script(counts: Mapping[str, int]) -> str:
    """The script of most weighted letters (`SCRIPT_WEIGHT`); kana anywhere makes Han text
    Japanese."""
    if not counts:
        return "none"
    weighted = {script: count * SCRIPT_WEIGHT.get(script, 1) for script, count in counts.items()}
    if weighted.get("kana") and weighted["kana"] + weighted.get("han", 0) >= \
            max(weighted.values()):
        return "kana"
    return max(weighted, key=weighted.__getitem__)


def scripts_of_language(language: str) -> set[str]:
    """The scripts a language is written in (Latin for any language the tables do not list)."""
    scripts = {script for script, langs in SCRIPT_LANGUAGES.items() if language in langs}
    return scripts or {"latin"}
