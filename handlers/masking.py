"""Spans of a readable string that must survive translation unchanged, and getting them back.

URLs, e-mail addresses, markdown link targets, HTML tags with their attributes (and so the SSML
that Text to Speech reads on the phone: `<break/>`, `<prosody>`, `<emphasis>`; a `<say-as>` or
`<sub>` element whole, its content being read as written), `{{...}}` and
`$variable` placeholders, code, numbers (amounts, dates, times, reference numbers) and the
glossary's terms (`handlers.glossary`): `mask` swaps each for a numbered token `{0}` before the
string goes to a translator and `unmask` puts them back (a fixed glossary term comes back as its
given translation); a translation that lost or duplicated a token is refused, so a broken
provider can cost a string its translation but never break a link or change a number.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Mapping

from .envelope import has_lone_surrogate

# Spans a translator must not touch. One alternation: the leftmost match wins, and at one
# position the first alternative wins (a link target before the URL inside it). Each alternative
# is linear in the text: an e-mail address is tried only where a run of its characters starts,
# and an unclosed `{{` or `<!--` is scanned only up to the next opening, so a hostile string
# costs no more than reading it.
BUILT_IN = r"""
      ```[\s\S]*?```                                   # fenced code
    | `[^`\n]+`                                        # inline code
    | (?<=\])\((?:[^()\s]|\([^()\s]*\))*(?:\s+"[^"]*")?\)  # markdown link target: ](url "title")
    | \{\{(?:(?!\{\{)[\s\S])*?\}\}                     # {{placeholder}}
    | \{[^{}\n]*\}                                     # {placeholder} (and anything shaped like our tokens)
    | \$\{[^{}\n]*\}                                   # ${variable}
    | \$[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*                # $variable, $order.id
    | <!--(?:(?!<!--)[\s\S])*?-->                      # HTML comment
    | <(?:say-as|sub)\b(?:"[^"]*"|'[^']*'|[^'"<>])*>[^<]{0,200}</(?:say-as|sub)\s*>  # SSML read as written
    | </?[A-Za-z][\w:.-]*(?:"[^"]*"|'[^']*'|[^'"<>])*> # HTML tag with its attributes
    | &(?:[A-Za-z]+|\#\d+|\#x[0-9A-Fa-f]+);            # HTML entity
    | \b(?:https?|ftp)://[^\s<>"'`]*[^\s<>"'`.,;:!?)\]]  # URL (trailing punctuation is prose)
    | \b(?:mailto|tel):[^\s<>"'`]*[^\s<>"'`.,;:!?)\]]
    | \bwww\.[^\s<>"'`]*[^\s<>"'`.,;:!?)\]]
    | (?<![\w.+-])[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63})+  # e-mail address
"""
# Numbers come back verbatim: 1,250.40  12/03/2026  20:30  88231, with the ASCII letters glued to
# them (ORD-88231, A1B2C3, 10am, 3rd). A separator counts only before a digit, so a sentence's
# final period stays prose. Any digit starts a span wherever it is; a run longer than the bound
# goes on as a second span. Bounded repeats over disjoint classes: linear in the text.
NUMBER = r"""
      (?:(?<![A-Za-z])[A-Za-z]{1,12}[-/\#]?)?\d(?:[.,:/-]?\d|[A-Za-z]){0,48}
"""
# The built-in spans; a glossary's terms go between the two (handlers.glossary), so a URL stays
# a URL and "24/7 Support" stays a term rather than a number and a word.
PROTECTED = re.compile(f"(?:{BUILT_IN})|(?:{NUMBER})", re.VERBOSE)
# Translators sometimes pad a token with spaces or turn its braces full-width; accept both.
TOKEN = re.compile(r"[{｛]\s*(\d+)\s*[}｝]")
LETTER = re.compile(r"[^\W\d_]")
# The longest string sent to a translator (deep-translator's Google backend refuses more). A
# longer one, or one holding a lone surrogate (not text), is left as it is, unscanned.
MAX_TEXT_CHARS = 5000
# Only strings up to this length are remembered by `mask`: replies repeat short strings, and the
# cache's memory is bounded by its entries times their length.
MASK_CACHE_MAX_CHARS = 512


@dataclass(frozen=True)
class Masked:
    """A string ready for a translator: protected spans as `{n}` tokens, outer whitespace aside."""

    text: str
    # What each token becomes again: the span as it was, or a fixed term's given translation.
    spans: tuple[str, ...] = ()
    lead: str = ""
    trail: str = ""
    # Worth sending: some letters remain once the protected spans are taken out.
    translatable: bool = False
    # Some span is a fixed glossary term: the text changes even where nothing else is translated.
    fixed: bool = False

    def untranslated(self) -> str | None:
        """The text when there is nothing to send (not translatable): its fixed terms in their
        translation; None when it has none and stays as it is."""
        return unmask(self, self.text) if self.fixed else None


def fold(phrase: str) -> str:
    """How glossary terms are compared: case and runs of whitespace do not count."""
    return " ".join(phrase.split()).casefold()


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one per language pair
class MaskRules:
    """What `mask` protects: the built-in spans and numbers, and a glossary's terms for one
    direction of translation (`terms`: folded term -> its fixed translation, None to keep it)."""

    pattern: re.Pattern[str] = PROTECTED
    terms: Mapping[str, str | None] = field(default_factory=dict)


DEFAULT_RULES = MaskRules()
# Glossary terms: each at most this long, joined by at most this much whitespace per gap.
MAX_TERM_CHARS = 200
_TERM_GAP = r"\s{1,3}"


def build_rules(terms: Mapping[str, str | None]) -> MaskRules:
    """Rules protecting the built-in spans and `terms` (term as written -> fixed translation, or
    None to keep it verbatim). A term matches as whole words (no letter, digit or underscore
    right before or after it), ignoring case and with any whitespace (up to 3 characters) between
    its words; the longest term wins where two start at the same place."""
    folded: dict[str, str | None] = {}
    for term, translation in terms.items():
        folded.setdefault(fold(term), translation)
    if not folded:
        return DEFAULT_RULES
    alternatives = "|".join(_TERM_GAP.join(re.escape(word) for word in term.split(" "))
                            for term in sorted(folded, key=len, reverse=True))
    pattern = re.compile(f"(?:{BUILT_IN})|(?P<term>(?<!\\w)(?i:{alternatives})(?!\\w))"
                         f"|(?:{NUMBER})", re.VERBOSE)
    return MaskRules(pattern, folded)


def mask(text: str, rules: MaskRules = DEFAULT_RULES) -> Masked:
    """Replace the protected spans of `text` by numbered tokens; keep its outer whitespace aside
    (translators strip it, and a text cut around a citation needs it back). `rules`: a
    glossary's for the direction of translation (`Glossary.rules`), else the built-in spans."""
    if len(text) <= MASK_CACHE_MAX_CHARS:
        return _remembered_mask(text, rules)
    return _mask(text, rules)


# Replies repeat the same strings turn after turn (that is what makes the translation cache
# pay); remembering their masks keeps a cached reply's cost near that of passing it through.
@functools.lru_cache(maxsize=4096)
def _remembered_mask(text: str, rules: MaskRules) -> Masked:
    return _mask(text, rules)


def _with_case_of(found: str, translation: str) -> str:
    """A fixed translation takes the capital of a term found capitalised (a sentence's start)."""
    if found[:1].isupper() and translation[:1].islower():
        return translation[0].upper() + translation[1:]
    return translation


def _mask(text: str, rules: MaskRules) -> Masked:
    if len(text) > MAX_TEXT_CHARS or has_lone_surrogate(text):
        return Masked(text)
    core = text.strip()
    start = len(text) - len(text.lstrip())
    lead, trail = text[:start], text[start + len(core):]
    spans: list[str] = []
    fixed = False

    def token(match: re.Match[str]) -> str:
        nonlocal fixed
        span = match.group(0)
        if match.lastgroup == "term":
            translation = rules.terms.get(fold(span))
            if translation is not None:
                span, fixed = _with_case_of(span, translation), True
        spans.append(span)
        return "{%d}" % (len(spans) - 1)

    masked = rules.pattern.sub(token, core) if core else core
    words = masked if not spans else TOKEN.sub("", masked)
    return Masked(masked, tuple(spans), lead, trail, bool(LETTER.search(words)), fixed)


def unmask(masked: Masked, translated: str) -> str | None:
    """The translation with the protected spans back; None if any token was lost or doubled."""
    if not masked.spans and "{" not in translated and "｛" not in translated:
        return masked.lead + translated.strip() + masked.trail
    seen: list[int] = []

    def restore(match: re.Match[str]) -> str:
        index = int(match.group(1))
        if index >= len(masked.spans):
            raise LookupError(index)
        seen.append(index)
        return masked.spans[index]

    try:
        restored = TOKEN.sub(restore, translated.strip())
    except LookupError:
        return None
    if sorted(seen) != list(range(len(masked.spans))):
        return None
    return masked.lead + restored + masked.trail
