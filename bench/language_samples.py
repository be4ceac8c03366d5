"""Labelled messages for bench/language_accuracy.py and bench/memory.py.

MESSAGES and CONVERSATIONS (language_samples.json) were written for this project: what customers
type to a support assistant, single words, two-word phrases, short sentences, in sixteen
languages (ten written in Latin script, where detection is hard, and six in their own scripts),
and conversations that open with a sentence and go on with short replies, some of which (e.g.
"ok", "no", "Paypal") are ambiguous on their own: that is where the conversation matters.
`web_messages()` draws the harder web samples below.
"""

from __future__ import annotations

import json
import pathlib

_SAMPLES = json.loads((pathlib.Path(__file__).with_suffix(".json")).read_text(encoding="utf-8"))
# language -> kind ("word", "phrase", "sentence") -> messages
MESSAGES: dict[str, dict[str, list[str]]] = _SAMPLES["messages"]
# (language, opening sentence, short follow-ups in the same language)
CONVERSATIONS: list[tuple[str, str, list[str]]] = [
    (language, opening, follow_ups) for language, opening, follow_ups in _SAMPLES["conversations"]]


# --- web text nobody on the project wrote (issue 14) --------------------------------------------
#
# Harder than the chat samples, and labelled by others:
# - single words of 5+ letters (2+ characters in Han and kana) and word pairs, drawn with a fixed
#   seed from the `wordfreq` package's word lists (built from web text: Wikipedia, subtitles,
#   news, web crawls, Reddit, Twitter), ranks 300-8000; a word is labelled with its list's
#   language only when wordfreq finds it more frequent there than in any other of the twelve
#   languages (so "hotel" or "menu" label nothing);
# - sentences: translators' own sentences from the system's gettext catalogs
#   (/usr/share/locale/<lang>/LC_MESSAGES/{apt,glib20,PackageKit}.mo, msgstr; for English the
#   msgid), 5+ words (10+ characters in Han and kana), format directives removed.
# wordfreq is a bench/test requirement (requirements-test.in), never a runtime one.

WEB_LANGUAGES = ("en", "es", "fr", "de", "it", "pt", "nl", "ru", "ja", "zh", "ar", "tr")
WEB_PER_KIND = 60
_CATALOGS = ("apt", "glib20", "PackageKit")
_LOCALE_DIRS = {"zh": "zh_CN"}


def _mo_strings(path: pathlib.Path) -> list[tuple[str, str]]:
    """(msgid, msgstr) pairs of a GNU .mo file (the format is a header and two offset tables)."""
    import struct

    data = path.read_bytes()
    order = "<" if struct.unpack("<I", data[:4])[0] == 0x950412DE else ">"
    _, count, ids_at, strs_at = struct.unpack(order + "4I", data[4:20])
    pairs = []
    for index in range(count):
        id_len, id_at = struct.unpack(order + "2I", data[ids_at + 8 * index:ids_at + 8 * index + 8])
        str_len, str_at = struct.unpack(order + "2I",
                                        data[strs_at + 8 * index:strs_at + 8 * index + 8])
        msgid = data[id_at:id_at + id_len].decode("utf-8", "replace").split("\0")[0]
        msgstr = data[str_at:str_at + str_len].decode("utf-8", "replace").split("\0")[0]
        if msgid and msgstr:
            pairs.append((msgid, msgstr))
    return pairs


def _clean_sentence(text: str) -> str:
    import re

    text = re.sub(r"%(\d+\$)?[-#0 +']*\d*(\.\d+)?(l|ll|h|z)?[a-zA-Z%]|\$\{?\w+\}?|<[^>]*>|_",
                  " ", text)
    return " ".join(text.split())


def _cjk(language: str) -> bool:
    return language in ("ja", "zh")


def web_sentences(language: str, count: int = WEB_PER_KIND, seed: int = 14) -> list[str]:
    import random

    found: list[str] = []
    source = "es" if language == "en" else language
    for catalog in _CATALOGS:
        path = pathlib.Path("/usr/share/locale") / _LOCALE_DIRS.get(source, source) / \
            "LC_MESSAGES" / f"{catalog}.mo"
        if not path.exists():
            continue
        for msgid, msgstr in _mo_strings(path):
            text = _clean_sentence(msgid if language == "en" else msgstr)
            if text == _clean_sentence(msgid) and language != "en":
                continue  # left untranslated
            long_enough = len(text) >= 10 if _cjk(language) else \
                len([w for w in text.split() if any(c.isalpha() for c in w)]) >= 5
            if long_enough and len(text) <= 300 and text not in found:
                found.append(text)
    random.Random(f"{seed}-{language}-sentence").shuffle(found)
    return found[:count]


def _web_words(language: str, seed: int, frequencies: dict[str, dict[str, float]]) -> list[str]:
    import random

    import wordfreq

    words = []
    for word in wordfreq.top_n_list(language, 8000)[300:]:
        if not all(ch.isalpha() for ch in word) or len(word) < (2 if _cjk(language) else 5):
            continue
        mine = frequencies[language].get(word, 0.0)
        if all(frequencies[other].get(word, 0.0) < mine
               for other in WEB_LANGUAGES if other != language):
            words.append(word)
    random.Random(f"{seed}-{language}-word").shuffle(words)
    return words


def web_messages(count: int = WEB_PER_KIND, seed: int = 14) -> dict[str, dict[str, list[str]]]:
    """language -> {"word": [...], "pair": [...], "sentence": [...]}, `count` of each."""
    import wordfreq

    # Frequencies as wordfreq stores them (no tokenizer needed, unlike word_frequency for ja/zh).
    frequencies = {language: wordfreq.get_frequency_dict(language) for language in WEB_LANGUAGES}
    samples: dict[str, dict[str, list[str]]] = {}
    for language in WEB_LANGUAGES:
        words = _web_words(language, seed, frequencies)
        glue = "" if _cjk(language) else " "
        pairs = [words[count + 2 * i] + glue + words[count + 2 * i + 1] for i in range(count)]
        samples[language] = {"word": words[:count], "pair": pairs,
                             "sentence": web_sentences(language, count, seed)}
    return samples
