"""Spans of a readable string that must survive translation unchanged, and getting them back.

URLs, e-mail addresses, markdown link targets, HTML tags with their attributes, `{{...}}` and
`$variable` placeholders, code: `mask` swaps each for a numbered token `{0}` before the string goes
to a translator and `unmask` puts them back; a translation that lost or duplicated a token is
refused, so a broken provider can cost a string its translation but never break a link.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from .envelope import has_lone_surrogate

# Spans a translator must not touch. One alternation: the leftmost match wins, and at one
# position the first alternative wins (a link target before the URL inside it). Each alternative
# is linear in the text: an e-mail address is tried only where a run of its characters starts,
# and an unclosed `{{` or `<!--` is scanned only up to the next opening, so a hostile string
# costs no more than reading it.
PROTECTED = re.compile(
    r"""
      ```[\s\S]*?```                                   # fenced code
    | `[^`\n]+`                                        # inline code
    | (?<=\])\((?:[^()\s]|\([^()\s]*\))*(?:\s+"[^"]*")?\)  # markdown link target: ](url "title")
    | \{\{(?:(?!\{\{)[\s\S])*?\}\}                     # {{placeholder}}
    | \{[^{}\n]*\}                                     # {placeholder} (and anything shaped like our tokens)
    | \$\{[^{}\n]*\}                                   # ${variable}
    | \$[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*                # $variable, $order.id
    | <!--(?:(?!<!--)[\s\S])*?-->                      # HTML comment
    | </?[A-Za-z][\w:.-]*(?:"[^"]*"|'[^']*'|[^'"<>])*> # HTML tag with its attributes
    | &(?:[A-Za-z]+|\#\d+|\#x[0-9A-Fa-f]+);            # HTML entity
    | \b(?:https?|ftp)://[^\s<>"'`]*[^\s<>"'`.,;:!?)\]]  # URL (trailing punctuation is prose)
    | \b(?:mailto|tel):[^\s<>"'`]*[^\s<>"'`.,;:!?)\]]
    | \bwww\.[^\s<>"'`]*[^\s<>"'`.,;:!?)\]]
    | (?<![\w.+-])[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63})+  # e-mail address
    """,
    re.VERBOSE,
)
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
    spans: tuple[str, ...] = ()
    lead: str = ""
    trail: str = ""
    # Worth sending: some letters remain once the protected spans are taken out.
    translatable: bool = False


def mask(text: str) -> Masked:
    """Replace the protected spans of `text` by numbered tokens; keep its outer whitespace aside
    (translators strip it, and a text cut around a citation needs it back)."""
    if len(text) <= MASK_CACHE_MAX_CHARS:
        return _remembered_mask(text)
    return _mask(text)


# Replies repeat the same strings turn after turn (that is what makes the translation cache
# pay); remembering their masks keeps a cached reply's cost near that of passing it through.
@functools.lru_cache(maxsize=4096)
def _remembered_mask(text: str) -> Masked:
    return _mask(text)


def _mask(text: str) -> Masked:
    if len(text) > MAX_TEXT_CHARS or has_lone_surrogate(text):
        return Masked(text)
    core = text.strip()
    start = len(text) - len(text.lstrip())
    lead, trail = text[:start], text[start + len(core):]
    spans: list[str] = []

    def token(match: re.Match[str]) -> str:
        spans.append(match.group(0))
        return "{%d}" % (len(spans) - 1)

    masked = PROTECTED.sub(token, core) if core else core
    words = masked if not spans else TOKEN.sub("", masked)
    return Masked(masked, tuple(spans), lead, trail, bool(LETTER.search(words)))


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
