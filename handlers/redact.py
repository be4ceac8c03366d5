"""Masking personal data before a log event is written (`LOG_REDACT=true`).

What is masked, in every string, number and object key of the event (extracted columns and the
raw copy alike):

| label           | what                                                                   |
|-----------------|------------------------------------------------------------------------|
| `[email]`       | e-mail addresses: any script in the local part and the domain (IDN,    |
|                 | full-width), `＠` or `%40` for the at sign, IP-literal domains         |
| `[iban]`        | IBANs, printed or compact, whose mod-97 check digits are right         |
| `[card]`        | 13 to 19 digit card numbers passing Luhn, in groups separated by       |
|                 | spaces (no-break ones too), dots or dashes, even glued to a word       |
| `[national_id]` | US SSN, UK National Insurance number, Spanish DNI/NIE (check letter    |
|                 | verified), Italian codice fiscale, Brazilian CPF, Indian PAN and       |
|                 | Aadhaar, French NIR                                                    |
| `[phone]`       | phone numbers of 7 to 15 digits, with an optional `+` or `00` prefix   |

The order matters: an IBAN or a card number is also a long run of digits, so they are masked
before phone numbers. The assistant's own ids, timestamps and opaque state are kept, but only
where IBM puts them (`KEEP_PATHS`), so the redacted raw event is still the event the assistant
sent, minus the personal data. Redaction errs on the side of masking: a 9-digit order number is
masked as a phone number. To mask more (an account-number format of your own), append a
`Pattern` to `PATTERNS`.

Only the first `MAX_REDACT_CHARS` characters of a string are scanned (the assistant limits a
message to 2,048); the rest of a longer string is not kept but replaced by `[unscanned]`, since
what was not scanned cannot be known to hold no personal data. Every pattern is linear in the
text (a run of characters is tried once, from its start, and the checks read a bounded window
per group of digits), so a hostile string costs no more than reading it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Callable


def _combining_marks() -> str:
    """The Basic Multilingual Plane's combining marks as a regex class body. Python's `\\w`
    does not match them, yet an accent typed as its own code point (`e` + U+0301) and the vowel
    signs of Indic scripts are part of names and domain names."""
    ranges: list[str] = []
    start = None
    for code in range(0x300, 0x10001):
        is_mark = code < 0x10000 and unicodedata.category(chr(code)).startswith("M")
        if is_mark and start is None:
            start = code
        elif not is_mark and start is not None:
            ranges.append(f"\\u{start:04x}-\\u{code - 1:04x}")
            start = None
    return "".join(ranges)


# What people put between groups of digits: spaces (no-break, narrow no-break, thin, ...), and
# every dash a keyboard or a word processor makes.
SPACES = "\t \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000"
DASHES = "\\-\u2010-\u2015\u2212\ufe58\ufe63\uff0d"
MARKS = _combining_marks()

# The lookbehind starts a match only where a run of local-part characters starts: without it a
# 200,000-letter word was re-scanned from each of its letters looking for an "@".
LOCAL = rf"[\w{MARKS}!#$%&'*+/=?^`{{|}}~.\-]"
LABEL = rf"[\w{MARKS}\-]+"
DOT = "[.\uff0e\u3002\uff61]"                       # and the full-width and ideographic stops
EMAIL = re.compile(
    rf"(?<!{LOCAL}){LOCAL}+(?:[@\uff20\ufe6b]|%40)"
    r"(?:\[(?:[0-9.]+|(?i:ipv6):[0-9A-Fa-f:.]+)\]"     # IP literal: user@[203.0.113.5]
    r"|\d{1,3}(?:\.\d{1,3}){3}(?!\.?[\w-])"           # a bare IPv4 host, as in SIP URIs
    rf"|{LABEL}(?:{DOT}{LABEL})*{DOT}(?=[^\W\d_]){LABEL})")  # the last label starts with a letter
IBAN = re.compile(rf"(?<![0-9A-Za-z])[A-Za-z]{{2}}[0-9]{{2}}[0-9A-Za-z]*"
                  rf"(?:[{SPACES}{DASHES}]{{1,2}}[0-9A-Za-z]+)*")
# Every run of 13 digits or more, in groups (a line break may part them too); `_card_spans`
# finds the card number in it.
CARD = re.compile(rf"(?<!\d)\d(?:[{SPACES}{DASHES}.\r\n]{{0,3}}\d){{12,}}")
# A phone number may be followed by letters ("555-0100ext"), but not by the rest of a UUID.
PHONE = re.compile(rf"(?<![\w@.+{DASHES}])(?:\+|\b00)?\(?\d(?:[{SPACES}{DASHES}().]{{0,2}}\d)"
                   r"{6,16}(?![\d_])(?![0-9A-Fa-f]*-[0-9A-Fa-f]{4}-)")
DATE_OR_ADDRESS = re.compile(r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|^\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}$"
                             r"|^\d{1,3}(?:\.\d{1,3}){3}$")
DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
DIGITS = re.compile(r"\d+")
ALNUM = re.compile(r"[0-9A-Za-z]+")
IBAN_HEAD = re.compile(r"[A-Za-z]{2}[0-9]{2}")
IBAN_DIGITS = {ord(char): str(int(char, 36)) for char in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
               "abcdefghijklmnopqrstuvwxyz"}
# Every pattern but the e-mail one needs a digit: text with neither is left alone at once.
DIGIT = re.compile(r"\d")
AT_SIGN = re.compile("[@\uff20\ufe6b]|%40")
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


def _card_spans(text: str) -> list[tuple[int, int]]:
    """Where card numbers are in a run of digit groups: every run of whole groups holding 13 to
    19 digits (not all one digit) that passes Luhn. "Ref 2024 4111 1111 1111 1111 exp 12" has
    other groups around the card: each window of groups is tried, and every window that is a
    card is masked. Luhn sums come from running totals, so a window costs one step, and a run
    of n groups has at most 7·n windows of 13 to 19 digits."""
    groups = [(match.start(), match.end()) for match in DIGITS.finditer(text)]
    digits = [int(char) for start, end in groups for char in text[start:end]]
    # plain[i] / doubled[i]: the sum of the first i digits when the odd / even positions are
    # the doubled ones (Luhn doubles every second digit counted from the right);
    # same[i]: where the run of digits equal to digit i ends.
    plain, doubled = [0], [0]
    for index, digit in enumerate(digits):
        twice = digit * 2 - 9 if digit > 4 else digit * 2
        plain.append(plain[-1] + (twice if index % 2 else digit))
        doubled.append(doubled[-1] + (digit if index % 2 else twice))
    same = [len(digits)] * len(digits)
    for index in range(len(digits) - 2, -1, -1):
        same[index] = same[index + 1] if digits[index] == digits[index + 1] else index + 1
    bounds, count = [], 0                      # each group's first and last digit + 1
    for start, end in groups:
        bounds.append((count, count + end - start))
        count += end - start
    spans: list[tuple[int, int]] = []
    first = 0
    for last, (_, stop) in enumerate(bounds):
        while first < last and stop - bounds[first][0] > 19:   # too long: later ones are too
            first += 1
        # the rightmost digit is never doubled: the total where its parity is the plain one
        sums = plain if (stop - 1) % 2 == 0 else doubled
        for index in range(first, last + 1):
            begin = bounds[index][0]
            if stop - begin > 19:              # one group longer than any card
                continue
            if stop - begin < 13:
                break
            if (sums[stop] - sums[begin]) % 10 == 0 and same[begin] < stop:
                spans.append((groups[index][0], groups[last][1]))
    return _merged(spans)


def _iban_spans(text: str) -> list[tuple[int, int]]:
    """Where IBANs are in a run of letter-and-digit groups: from a group starting with two
    letters and two digits, the longest run of whole groups (15 to 34 characters) whose check
    digits are right (ISO 13616: the first four characters moved to the end, letters read as
    10 to 35, the number is 1 mod 97). The remainder is carried along as groups are added, so a
    start costs at most 34 steps."""
    groups = [(match.start(), match.end()) for match in ALNUM.finditer(text)]
    spans: list[tuple[int, int]] = []
    first = 0
    while first < len(groups):
        start = groups[first][0]
        head = text[start:start + 4]
        found = None
        if IBAN_HEAD.fullmatch(head):
            remainder, length = 0, 0
            for last in range(first, len(groups)):
                chunk = text[max(groups[last][0], start + 4):groups[last][1]]
                length += groups[last][1] - groups[last][0]
                if length > 34:
                    break
                remainder = _mod97(chunk, remainder)
                if length >= 15 and _mod97(head, remainder) == 1:
                    found = last
        if found is None:
            first += 1
            continue
        spans.append((start, groups[found][1]))
        first = found + 1
    return spans


def _mod97(chars: str, remainder: int) -> int:
    """The remainder mod 97 of the number `remainder` followed by `chars` read as IBAN digits
    (a letter is two digits: A is 10, Z is 35)."""
    digits = chars.translate(IBAN_DIGITS)
    return (remainder * 10 ** len(digits) + int(digits)) % 97 if digits else remainder


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping spans as one, in order."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


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
    """One kind of personal data: where it may be, and a check that rules out look-alikes.

    `check` decides on the whole match; `within` instead finds where in a longer match the data
    are (the card number among the digit groups around it)."""

    label: str
    regex: re.Pattern[str]
    check: Callable[[re.Match[str]], bool] | None = None
    within: Callable[[str], list[tuple[int, int]]] | None = None


_I = re.IGNORECASE
PATTERNS: list[Pattern] = [
    Pattern("[email]", EMAIL),
    Pattern("[iban]", IBAN, within=_iban_spans),
    Pattern("[card]", CARD, within=_card_spans),
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
    has_at = AT_SIGN.search(text) is not None
    if not has_at and DIGIT.search(text) is None:
        return text, count
    for pattern in PATTERNS:
        if pattern.regex is EMAIL and not has_at:
            continue

        def replace(match: re.Match[str], pattern: Pattern = pattern) -> str:
            nonlocal count
            found = match.group()
            if pattern.within is not None:
                spans = pattern.within(found)
                count += len(spans)
                for start, end in reversed(spans):
                    found = found[:start] + pattern.label + found[end:]
                return found
            if pattern.check is not None and not pattern.check(match):
                return found
            count += 1
            return pattern.label

        text = pattern.regex.sub(replace, text)
    return text, count


# Where the assistant puts its own ids, timestamps, counters and opaque state in the log
# webhook's events (`{"event": ..., "payload": ...}`): values there are kept as they are (masking
# a digit run in them would only break the record; a call's duration in milliseconds has the
# digits of a phone number). Anywhere else, a key of the same name is no id: a context variable
# `state` or `session_id` holding an e-mail is masked. `*` is any key, `[]` any item of a list.
# `customer_id` and `user_id` are not here: teams set them to a phone number or an e-mail.
KEEP_PATHS = (
    # message_logged: the Log record
    "payload.log_id", "payload.assistant_id", "payload.skill_id", "payload.session_id",
    "payload.environment_id", "payload.snapshot", "payload.language",
    "payload.request_timestamp", "payload.response_timestamp",
    "payload.request.context.global.session_id", "payload.response.context.global.session_id",
    "payload.response.context.global.system.turn_count",
    "payload.request.context.skills.*.system.state",
    "payload.response.context.skills.*.system.state",
    "payload.response.output.debug.nodes_visited.[].dialog_node",
    # cdr_logged: the call detail record
    "payload.global_session_id", "payload.active_calls", "payload.call.*",
    "payload.max_response_milliseconds.*", "payload.realtime_transport_network_summary.*.*",
    "payload.session_initiation_protocol.*", "payload.session_initiation_protocol.headers.call_id",
    "payload.assistant_interaction_summaries.[].session_id",
    "payload.assistant_interaction_summaries.[].assistant_id",
    "payload.assistant_interaction_summaries.[].turns.[].assistant.*",
    "payload.assistant_interaction_summaries.[].turns.[].request.streaming_statistics.*",
    "payload.assistant_interaction_summaries.[].turns.[].response.[].streaming_statistics.*",
)
# The tree of KEEP_PATHS: each node maps a key (or ITEM for a list's items) to the next node;
# KEEP marks where a value is kept. Neither is a string, so no key of a body can stand for them.
ITEM, KEEP = object(), object()
Tree = dict[Any, Any]


def _tree(paths: tuple[str, ...]) -> Tree:
    root: Tree = {}
    for path in paths:
        node = root
        for step in path.split("."):
            node = node.setdefault(ITEM if step == "[]" else step, {})
        node[KEEP] = True
    return root


KEEP_TREE = _tree(KEEP_PATHS)


def redact_json(value: Any, keep: Tree | None = KEEP_TREE) -> tuple[Any, int]:
    """A redacted copy of a parsed JSON document, and the number of replacements: strings,
    numbers (a card number sent as a JSON number) and object keys are scanned; the values at
    `keep`'s paths are left as they are. A number holding personal data becomes its label, a
    string; two keys masked to the same label are told apart (`[email]`, `[email] 2`), so no
    value is lost.

    The input is left untouched: the idempotency key is computed from what was received.
    """
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        text = repr(value)
        if sum(char.isdigit() for char in text) < 7:     # too short for a phone or a card
            return value, 0
        text, count = redact_text(text)
        return (text if count else value), count
    if isinstance(value, list):
        node = keep.get(ITEM) if keep else None
        total = 0
        items = []
        for item in value:
            redacted, count = redact_json(item, node)
            items.append(redacted)
            total += count
        return items, total
    if not isinstance(value, dict):
        return value, 0
    total = 0
    copy: dict[str, Any] = {}
    numbers: dict[str, int] = {}
    for key, item in value.items():
        node = (keep.get(key) or keep.get("*")) if keep else None
        if node and KEEP in node and not isinstance(item, (dict, list)):
            redacted, count = item, 0
        else:
            redacted, count = redact_json(item, node)
        name, masked = redact_text(key)
        if name in copy:
            name = _unused(name, copy, numbers)
        copy[name] = redacted
        total += count + masked
    return copy, total


def _unused(name: str, taken: dict[str, Any], numbers: dict[str, int]) -> str:
    """`name 2`, `name 3`, ...: the first not taken. `numbers` remembers where each name's count
    stands, so a thousand keys masked to one label cost a thousand steps, not a million."""
    number = numbers.get(name, 1)
    candidate = name
    while candidate in taken:
        number += 1
        candidate = f"{name} {number}"
    numbers[name] = number
    return candidate
