"""What a message's text alone says about its language: detectors behind one interface.

`Detector.detect(text) -> Detection` answers with an ISO 639-1 code among `LANGUAGES` (or None),
a confidence, and how many letters of which script the text has. Two statistical detectors are
available (`LANGUAGE_DETECTOR`): lingua (the default: high-accuracy mode, markedly better on one-
and two-word messages, about 260 MB shared by the workers) and langdetect (4 MB, weaker on short
text, and with scores of 0 or 1 on one word it cannot rule a language out; docs/premessage.md
has the figures). Both are built once, before gunicorn forks, and only know the candidate
languages: restricting candidates is the biggest accuracy and speed lever there is.

Before any statistics, the script decides when it can (`handlers.scripts`): kana is Japanese,
Hangul is Korean, Han without kana is Chinese, Arabic letters are Arabic when Arabic is the only
candidate written that way, and so on. Only scripts shared by several candidates (Latin, mostly)
reach the detector, and then only with the candidates written in that script. Whether a
detection may change the conversation's language is `handlers.language`'s question.
"""

from __future__ import annotations

import ctypes
import json
import logging
import pathlib
import re
import threading
from dataclasses import dataclass
from typing import Any, Iterable

from .scripts import (MAX_SCAN_CHARS, SCRIPT_LANGUAGES, dominant_script, has_letters,
                      letters_by_script)

log = logging.getLogger(__name__)

# Detection needs a few hundred characters at most; a long message is cut before the statistics.
MAX_DETECT_CHARS = 600

# The fast path for the assistant's own language (most of an English assistant's traffic is
# English): grammatical words of the language that no default candidate uses or borrows, so plain
# ASCII text with enough of them needs no statistics. Left out on purpose: is, was, of, in, to,
# do, on, me, my, i, a, he, her, so, we, at, can, has, get, also, just, still, most, help, want,
# order, change, will, not, no, ok, sorry, and the nouns other languages borrow (account, email,
# delivery, ...): "is" is Dutch, "was" and "still" German, "my" and "most" Polish, "her" and "not"
# Turkish, "he" and "has" Spanish, "just" and "order" Swedish, "change" French. A team adding a
# language to LANGUAGES that uses one of these words should remove it (bench/language_accuracy.py
# shows the effect).
FAST_PATH_WORDS: dict[str, frozenset[str]] = {
    "en": frozenset("""
        the and you your yours you're you've what where when why how which who whom whose with
        without this that these those there their they them they're are were been being have
        had would could should shall might must please thanks thank hello it it's its i'm i've
        i'd i'll don't doesn't didn't can't won't isn't wasn't aren't haven't hasn't couldn't
        wouldn't shouldn't from about already yet any some anything something nothing because
        but if than then only really very much many more does did our ours us him his she need
    """.split()),
}
# Words a conversation opens with (greetings, thanks) that say the language on their own, for
# messages of one or two words, where statistics are weakest: "Hola" scores about as Spanish as
# "agent" scores French. Only words no other default candidate writes the same way.
OPENING_WORDS: dict[str, str] = {
    word: lang for lang, words in {
        "es": "hola gracias buenas buenos adiós muchas", "fr": "bonjour bonsoir merci salut",
        "de": "danke tschüss guten servus moin", "it": "ciao grazie buongiorno buonasera",
        "pt": "olá obrigado obrigada oi", "nl": "hoi bedankt goedemorgen goedendag",
        "tr": "merhaba teşekkürler selam günaydın sağol", "en": "hi hello thanks",
    }.items() for word in words.split()}
OPENING_WORDS.update({"buenos días": "es", "muchas gracias": "es", "dank je": "nl",
                      "dank u": "nl", "guten tag": "de", "bom dia": "pt", "boa tarde": "pt",
                      "buenas tardes": "es", "danke schön": "de", "merci beaucoup": "fr"})
_EDGE_MARKS = " \t!?.,;:¡¿'\"()"
# A message of at most this many words is short: the conversation, not the text, names its
# language (see choose_language).
SHORT_TEXT_WORDS = 2

FAST_PATH_MIN_WORDS = 2      # at least this many marker words...
FAST_PATH_MIN_SHARE = 0.15   # ...making up at least this share of the words
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


@dataclass(frozen=True)
class Detection:
    """One message's language as far as its text alone can tell."""

    language: str | None      # ISO 639-1 among LANGUAGES, None when nothing could be detected
    confidence: float         # 0..1 (the detector's own scale; see LANGUAGE_MIN_CONFIDENCE)
    letters: int              # letters in the dominant script
    script: str               # "latin", "han", "kana", "cyrillic", ..., "none"
    method: str               # "script", "fast_path", "langdetect", "lingua" or "none"
    words: int = 0            # words holding letters (0: not counted)
    # The assistant language's score as a share of the best candidate's (1.0 when it is the best;
    # 0.0 when it is no candidate for this script); None when no statistics ran.
    assistant_share: float | None = None
    # Each candidate's score as a share of the best's, from the statistics (empty otherwise).
    shares: tuple[tuple[str, float], ...] = ()

    def share_of(self, language: str) -> float | None:
        """`language`'s score as a share of the best candidate's; None without statistics."""
        if not self.shares:
            return None
        return dict(self.shares).get(language, 0.0)


class Detector:
    """Detect among `languages` only. Subclasses fill `models` (a model per script with at least
    two candidates it knows) and implement `_scores` with one of them."""

    name = "detector"

    def __init__(self, languages: Iterable[str], fast_language: str | None = None) -> None:
        self.languages = tuple(languages)
        # Candidates the statistical model has no data for: detected by their script only.
        self.unknown: list[str] = []
        self.models: dict[str, Any] = {}
        # The assistant's language, when it is a candidate; the fast path when it has one.
        self.assistant = fast_language if fast_language in self.languages else None
        self.fast_language = self.assistant if self.assistant in FAST_PATH_WORDS else None
        # For each script: the candidates written in it, in the order of SCRIPT_LANGUAGES.
        self.by_script: dict[str, tuple[str, ...]] = {}
        for script, langs in SCRIPT_LANGUAGES.items():
            chosen = tuple(lang for lang in langs if lang in self.languages)
            if chosen:
                self.by_script[script] = chosen
        non_latin = {lang for langs in SCRIPT_LANGUAGES.values() for lang in langs}
        self.by_script["latin"] = tuple(lang for lang in self.languages if lang not in non_latin)

    def detect(self, text: str) -> Detection:
        text = text[:MAX_SCAN_CHARS]
        counts = letters_by_script(text)
        script = dominant_script(counts)
        if script == "none":
            return Detection(None, 0.0, 0, "none", "none")
        letters = counts.get(script, 0) + (counts.get("han", 0) if script == "kana" else 0)
        words = sum(1 for word in text.split() if has_letters(word))
        candidates = self.by_script.get(script, ())
        if script == "han" and "ja" in candidates and "zh" in candidates:
            candidates = ("zh",)  # Han with no kana at all: Chinese
        if not candidates:
            return Detection(None, 0.0, letters, script, "none", words)
        if len(candidates) == 1:
            share = letters / max(1, sum(counts.values()))
            return Detection(candidates[0], round(min(1.0, 0.5 + share / 2), 4), letters, script,
                             "script", words)
        if self.fast_language and script == "latin" and self._fast_path(text):
            return Detection(self.fast_language, 0.99, letters, script, "fast_path", words, 1.0)
        opening = OPENING_WORDS.get(text.strip().strip(_EDGE_MARKS).lower()) \
            if words <= SHORT_TEXT_WORDS else None
        if opening in candidates:
            return Detection(opening, 0.99, letters, script, "opening_word", words,
                             1.0 if opening == self.assistant else 0.0)
        scores = self._statistical(text[:MAX_DETECT_CHARS], script, candidates)
        if not scores:
            return Detection(None, 0.0, letters, script, "none", words)
        language = max(scores, key=scores.__getitem__)
        best = scores[language]
        shares = tuple((lang, round(score / best, 4) if best > 0 else 0.0)
                       for lang, score in scores.items())
        share = dict(shares).get(self.assistant, 0.0) if self.assistant else 0.0
        return Detection(language, round(min(1.0, best), 4), letters, script, self.name, words,
                         share, shares)

    def _fast_path(self, text: str) -> bool:
        """Text whose letters are all ASCII, made of enough of the assistant language's markers."""
        if not text.isascii() and any(ord(ch) > 127 and ch.isalpha() for ch in text):
            return False  # accents, other scripts: let the statistics decide (emoji are fine)
        words = _WORD.findall(text.lower().replace("\u2019", "'"))
        if len(words) < FAST_PATH_MIN_WORDS:
            return False
        markers = FAST_PATH_WORDS[self.fast_language]  # type: ignore[index]
        hits = sum(word in markers for word in words)
        return hits >= FAST_PATH_MIN_WORDS and hits >= FAST_PATH_MIN_SHARE * len(words)

    def _statistical(self, text: str, script: str,
                     candidates: tuple[str, ...]) -> dict[str, float]:
        """Each candidate's score for the text (empty when the detector cannot tell); a script
        with one candidate the model knows gets that one at 0.5."""
        model = self.models.get(script)
        if model is None:
            known = [lang for lang in candidates if lang not in self.unknown]
            return {known[0]: 0.5} if len(known) == 1 else {}
        return self._scores(model, text)

    def _scores(self, model: Any, text: str) -> dict[str, float]:
        raise NotImplementedError


class LangdetectDetector(Detector):
    """langdetect 1.0.9 with its profiles loaded once per script group, seeded, warmed up.

    langdetect is random unless seeded and loads its profiles lazily and not thread-safely; here
    each group gets its own `DetectorFactory` built eagerly (never the module's global one), with a
    fixed seed, and answers one detection before the fork.
    """

    name = "langdetect"
    # langdetect's own profile names where they differ from ISO 639-1.
    PROFILE_NAMES = {"zh": ("zh-cn", "zh-tw")}

    def __init__(self, languages: Iterable[str], fast_language: str | None = None) -> None:
        super().__init__(languages, fast_language)
        from langdetect.detector_factory import PROFILES_DIRECTORY

        available = {path.name for path in pathlib.Path(PROFILES_DIRECTORY).iterdir()}
        self.unknown = [lang for lang in self.languages if not all(
            name in available for name in self.PROFILE_NAMES.get(lang, (lang,)))]
        for script, candidates in self.by_script.items():
            known = [lang for lang in candidates if lang not in self.unknown]
            if len(known) >= 2:
                self.models[script] = self._factory(PROFILES_DIRECTORY, known)
        for factory in self.models.values():
            self._run(factory, "warm up the detector once before the workers fork")

    def _factory(self, directory: str, languages: list[str]) -> Any:
        from langdetect.detector_factory import DetectorFactory
        from langdetect.utils.lang_profile import LangProfile

        names = [name for lang in languages for name in self.PROFILE_NAMES.get(lang, (lang,))]
        factory = DetectorFactory()
        factory.seed = 0
        for index, name in enumerate(names):
            data = json.loads((pathlib.Path(directory) / name).read_text(encoding="utf-8"))
            factory.add_profile(LangProfile(**data), index, len(names))
        return factory

    @staticmethod
    def _run(factory: Any, text: str) -> list[Any]:
        from langdetect.lang_detect_exception import LangDetectException

        detector = factory.create()
        detector.append(text)
        try:
            return detector.get_probabilities()
        except LangDetectException:
            return []

    def _scores(self, model: Any, text: str) -> dict[str, float]:
        scores: dict[str, float] = {}
        for item in self._run(model, text):
            code = "zh" if item.lang.startswith("zh") else item.lang
            scores[code] = scores.get(code, 0.0) + item.prob
        return scores


class LinguaDetector(Detector):
    """lingua-language-detector in high-accuracy mode, models preloaded before the fork.

    Its models live in native memory that the workers share copy-on-write after the fork (Python's
    reference counting never touches them), so preloading in the master costs the memory once.
    """

    name = "lingua"

    def __init__(self, languages: Iterable[str], fast_language: str | None = None) -> None:
        super().__init__(languages, fast_language)
        from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

        def lingua_language(code: str) -> Any:
            try:
                return Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper()))
            except (AttributeError, ValueError):
                return None

        self.unknown = [lang for lang in self.languages if lingua_language(lang) is None]
        for script, candidates in self.by_script.items():
            known = [lingua_language(lang) for lang in candidates if lang not in self.unknown]
            if len(known) >= 2:
                self.models[script] = (LanguageDetectorBuilder.from_languages(*known)
                                          .with_preloaded_language_models().build())
        for detector in self.models.values():
            detector.compute_language_confidence_values("warm up before the workers fork")

    def _scores(self, model: Any, text: str) -> dict[str, float]:
        return {value.language.iso_code_639_1.name.lower(): float(value.value)
                for value in model.compute_language_confidence_values(text)
                if value.value > 0}


_build_lock = threading.Lock()


def return_freed_memory() -> None:
    """Give the C heap's free pages back to the system (glibc's `malloc_trim`; nothing where
    there is none). lingua decompresses its models from several threads and frees a good part
    of what it allocates; glibc keeps those pages, 40 to 100 MB after the default LANGUAGES and
    more or less from one start to the next. Trimmed once after the build, before the fork: the
    whole server, warm, with 1 / 2 / 4 workers, 323 / 321 / 331 MB instead of 388 / 426 / 438
    (bench/memory.py, same machine and hour; 17-25 % less)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


class LazyDetector:
    """The detector of `settings`, built when it is first asked for a detection: for an app
    built to run a command (`flask --app handlers logs ...`), which most often never detects
    anything and so never loads lingua's models (a few seconds, about 300 MB)."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self._detector: Detector | None = None
        self._lock = threading.Lock()

    def detect(self, text: str) -> Detection:
        if self._detector is None:
            with self._lock:
                if self._detector is None:
                    self._detector = build_detector(self.settings)
        return self._detector.detect(text)


def build_detector(settings: Any) -> Detector:
    """The detector named by LANGUAGE_DETECTOR, over LANGUAGES, ready before the fork."""
    with _build_lock:  # lingua and langdetect loads are not meant to race
        cls = LinguaDetector if settings.language_detector == "lingua" else LangdetectDetector
        detector: Detector = cls(settings.languages, settings.assistant_language)
        return_freed_memory()
    if detector.unknown:
        log.warning("LANGUAGE_DETECTOR=%s has no model for %s: these are detected by their script "
                    "only", detector.name, ", ".join(detector.unknown))
    return detector
