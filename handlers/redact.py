"""Masking personal data before a log event is written (`LOG_REDACT=true`).

What is masked, in every string of the event (extracted columns and the raw copy alike):

| label           | what                                                                   |
|-----------------|------------------------------------------------------------------------|
| `[email]`       | e-mail addresses                                                       |
| `[card]`        | 13 to 19 digit card numbers (spaces or dashes allowed) passing Luhn    |
| `[national_id]` | US SSN, UK National Insurance number, Spanish DNI/NIE (check letter    |
|                 | verified), Italian codice fiscale, Brazilian CPF, Indian PAN and       |
|                 | Aadhaar, French NIR                                                    |
| `[phone]`       | phone numbers of 7 to 15 digits, with an optional `+` or `00` prefix   |

The order matters: a card number is also a long run of digits, so cards and ids are masked
before phone numbers. Only JSON string values are touched (never keys, numbers or the
document's shape), and not those under `KEEP_KEYS` (the assistant's ids and timestamps), so the
redacted raw event is still the event the assistant sent, minus the personal data. Redaction
errs on the side of masking: a 9-digit order number is masked as a phone number. To mask more
(an account-number format of your own), append a `Pattern` to `PATTERNS`.

Only the first `MAX_REDACT_CHARS` characters of a string are scanned (the assistant limits a
message to 2,048); the rest of a longer string is not kept but replaced by `[unscanned]`, since
what was not scanned cannot be known to hold no personal data. Every pattern is linear in the
text (a run of characters is tried once, from its start), so a hostile string costs no more
than reading it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

# The lookbehind starts a match only where a run of local-part characters starts: without it a
# 200,000-letter word was re-scanned from each of its letters looking for an "@".
EMAIL = re.compile(r"(?<![A-Za-z0-9!#$%&'*+/=?^_`{|}~.-])[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+"
                   r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
CARD = re.compile(r"(?<![\w.-])\d(?:[ -]?\d){12,18}(?![\w.-])")
PHONE = re.compile(r"(?<![\w@.+-])(?:\+|\b00)?\(?\d(?:[ ().\-]{0,2}\d){6,16}(?![\w@])")
DATE_OR_ADDRESS = re.compile(r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|^\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}$"
                             r"|^\d{1,3}(?:\.\d{1,3}){3}$")
DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
# Every pattern but the e-mail one needs a digit: text with neither is left alone at once.
DIGIT = re.compile(r"\d")
# Characters of one string scanned; the rest of a longer one is replaced by UNSCANNED.
MAX_REDACT_CHARS = 8192
UNSCANNED = "[unscanned]"


def luhn_valid(digits: str) -> bool:
    """The checksum every payment card number carries: rules out most random digit runs."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card(match: re.Match[str]) -> bool:
    digits = re.sub(r"\D", "", match.group())
    return 13 <= len(digits) <= 19 and len(set(digits)) > 1 and luhn_valid(digits)


def _spanish_id(match: re.Match[str]) -> bool:
    text = match.group().upper().replace("-", "")
    number = text[:-1].replace("X", "0").replace("Y", "1").replace("Z", "2")
    return DNI_LETTERS[int(number) % 23] == text[-1]


def _phone(match: re.Match[str]) -> bool:
    text = match.group()
    digits = sum(char.isdigit() for char in text)
    return 7 <= digits <= 15 and not DATE_OR_ADDRESS.search(text.lstrip("+("))


@dataclass(frozen=True)
class Pattern:
    """One kind of personal data: where it may be, and a check that rules out look-alikes."""

    label: str
    regex: re.Pattern[str]
    check: Callable[[re.Match[str]], bool] | None = None


_I = re.IGNORECASE
PATTERNS: list[Pattern] = [
    Pattern("[email]", EMAIL),
    Pattern("[card]", CARD, _card),
    # US Social Security number
    Pattern("[national_id]", re.compile(r"\b\d{3}-\d{2}-\d{4}\b")),
    # Brazilian CPF
    Pattern("[national_id]", re.compile(r"\b\d{3}\.\d{3}\.\d{3}-\d{2}\b")),
    # Indian Aadhaar (12 digits in groups of four, never starting with 0 or 1)
    Pattern("[national_id]", re.compile(r"(?<!\d )\b[2-9]\d{3} \d{4} \d{4}\b(?! \d)")),
    # French NIR (social security number)
    Pattern("[national_id]", re.compile(
        r"\b[12] ?\d{2} ?(?:0[1-9]|1[0-2]|[2-9]\d) ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3}(?: ?\d{2})?\b",
        _I)),
    # UK National Insurance number
    Pattern("[national_id]", re.compile(
        r"\b(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?"
        r"[A-D]\b", _I)),
    # Spanish DNI / NIE, with the check letter verified
    Pattern("[national_id]", re.compile(r"\b(?:\d{8}|[XYZ]\d{7})-?[A-Z]\b", _I), _spanish_id),
    # Italian codice fiscale
    Pattern("[national_id]",
            re.compile(r"\b[A-Z]{6}\d{2}[ABCDEHLMPRST]\d{2}[A-Z]\d{3}[A-Z]\b", _I)),
    # Indian PAN
    Pattern("[national_id]", re.compile(r"\b[A-Z]{3}[PCHFATBLJG][A-Z]\d{4}[A-Z]\b", _I)),
    Pattern("[phone]", PHONE, _phone),
]


def redact_text(text: str) -> tuple[str, int]:
    """`text` with every personal datum replaced by its label, and how many were replaced."""
    count = 0
    if len(text) > MAX_REDACT_CHARS:
        text, count = text[:MAX_REDACT_CHARS] + UNSCANNED, 1
    if "@" not in text and DIGIT.search(text) is None:
        return text, count
    for pattern in PATTERNS:
        if pattern.label == "[email]" and "@" not in text:
            continue

        def replace(match: re.Match[str], pattern: Pattern = pattern) -> str:
            nonlocal count
            if pattern.check is not None and not pattern.check(match):
                return match.group()
            count += 1
            return pattern.label

        text = pattern.regex.sub(replace, text)
    return text, count


# Strings under these keys are the assistant's identifiers, timestamps and opaque state, never
# personal data; masking a digit run in them would only break the record (`customer_id` and
# `user_id` are not here: teams often set them to a phone number or an e-mail address).
KEEP_KEYS = frozenset({
    "log_id", "assistant_id", "skill_id", "session_id", "global_session_id", "environment_id",
    "request_timestamp", "response_timestamp", "start_timestamp", "stop_timestamp",
    "invite_arrival_time", "invite_arrival_timestamp", "transaction_id", "call_id", "state",
    "response_type", "message_type", "snapshot", "language", "canonical_name",
})


def redact_json(value: Any) -> tuple[Any, int]:
    """A redacted copy of a parsed JSON document (strings only), and the number of replacements.

    The input is left untouched: the idempotency key is computed from what was received.
    """
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        total = 0
        copy: dict[str, Any] = {}
        for key, item in value.items():
            if key in KEEP_KEYS and isinstance(item, str):
                copy[key] = item
                continue
            copy[key], count = redact_json(item)
            total += count
        return copy, total
    if isinstance(value, list):
        total = 0
        items = []
        for item in value:
            redacted, count = redact_json(item)
            items.append(redacted)
            total += count
        return items, total
    return value, 0
