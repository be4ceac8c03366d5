"""Where the human-readable text of an assistant reply lives, and how it goes out and comes back.

A reply (`output.generic`) mixes text a person reads with values a machine reads: option values
come back as the customer's next input, URLs and ids are followed, `user_defined` belongs to the
channel. `find_texts` walks the reply by response type and returns a `Slot` for every string a
person reads and nothing else; unknown response types are not entered at all, so whatever IBM or a
channel adds later passes through untouched. Each slot's text is masked (`handlers.masking`)
before it goes to a translator, and `apply` writes the translations back in place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

# mask and unmask are part of this module's interface too: find, mask, replace.
from .masking import DEFAULT_RULES, Masked, MaskRules, mask, unmask

__all__ = ["Masked", "Slot", "apply", "find_output_texts", "find_texts", "mask",
           "mask_slots", "offered_values", "unmask", "wanted"]

@dataclass
class Slot:
    """One readable string of the reply, in place: `parent[key]`.

    A conversational-search answer is cut at its citations' offsets into `pieces`, translated
    piece by piece, and the offsets (`ranges`, dicts holding them) are moved to match the new
    text, so the channel still highlights the cited sentences.
    """

    parent: Any
    key: Any
    pieces: list[str]
    ranges: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    masked: list[Masked] = field(init=False)

    def __post_init__(self) -> None:
        self.masked = [mask(piece) for piece in self.pieces]

    def wanted(self) -> list[str]:
        """The masked strings to ask a translator for."""
        return [m.text for m in self.masked if m.translatable]

    def apply(self, translations: Mapping[str, str]) -> tuple[int, int]:
        """Write the translation into the reply; return (pieces translated, pieces kept as is).

        A piece without a usable translation keeps its original text (fail open, per piece)."""
        if not self.ranges:  # one piece: the usual case, kept short (it runs for every string)
            masked = self.masked[0]
            if not masked.translatable:
                new = masked.untranslated()  # only fixed glossary terms: no provider needed
                if new is None:
                    return 0, 0
                self.parent[self.key] = new
                return 1, 0
            got = translations.get(masked.text)
            new = unmask(masked, got) if got is not None else None
            if new is None:
                return 0, 1
            self.parent[self.key] = new
            return 1, 0
        done = kept = 0
        out: list[str] = []
        for piece, masked in zip(self.pieces, self.masked):
            new = None if masked.translatable else masked.untranslated()
            if masked.translatable and masked.text in translations:
                new = unmask(masked, translations[masked.text])
            if new is None:
                kept += masked.translatable
                out.append(piece)
            else:
                done += 1
                out.append(new)
        if done:
            self._move_ranges(out)
            self.parent[self.key] = "".join(out)
        return done, kept

    def _move_ranges(self, new_pieces: list[str]) -> None:
        old_at = new_at = 0
        moved = {0: 0}
        for old, new in zip(self.pieces, new_pieces):
            old_at += len(old)
            new_at += len(new)
            moved[old_at] = new_at
        for holder, name in self.ranges:
            holder[name] = moved.get(holder[name], holder[name])


# --- where the text is, per response type -----------------------------------------------------

Walker = Callable[[dict[str, Any], list[Slot]], None]
# Highlight keys whose values are addresses or ids, not prose (search results).
NOT_PROSE = re.compile(r"(url|uri|link|href|id)s?$", re.IGNORECASE)


def _string(parent: Any, key: Any, out: list[Slot]) -> None:
    if isinstance(parent, dict) and isinstance(parent.get(key), str) and parent[key]:
        out.append(Slot(parent, key, [parent[key]]))


def _strings(holder: Any, key: str, out: list[Slot]) -> None:
    """Each string of the list `holder[key]` (e.g. table headers, legacy `output.text`)."""
    values = holder.get(key) if isinstance(holder, dict) else None
    if isinstance(values, list):
        for index, value in enumerate(values):
            if isinstance(value, str) and value:
                out.append(Slot(values, index, [value]))


def _each(holder: Any, key: str) -> Iterable[dict[str, Any]]:
    values = holder.get(key) if isinstance(holder, dict) else None
    if isinstance(values, list):
        yield from (value for value in values if isinstance(value, dict))


def _fields(*names: str) -> Walker:
    def walk(item: dict[str, Any], out: list[Slot]) -> None:
        for name in names:
            _string(item, name, out)

    return walk


def _option(item: dict[str, Any], out: list[Slot]) -> None:
    _fields("title", "description")(item, out)
    for option in _each(item, "options"):
        _string(option, "label", out)


def _suggestion(item: dict[str, Any], out: list[Slot]) -> None:
    _string(item, "title", out)
    for suggestion in _each(item, "suggestions"):
        _string(suggestion, "label", out)
        output = suggestion.get("output")
        if isinstance(output, dict):
            find_output_texts(output, out)


def _connect_to_agent(item: dict[str, Any], out: list[Slot]) -> None:
    # message_to_human_agent is for the human agent, who reads the assistant's language.
    for name in ("agent_available", "agent_unavailable"):
        if isinstance(item.get(name), dict):
            _string(item[name], "message", out)


def _search_result(result: dict[str, Any], out: list[Slot]) -> None:
    _fields("title", "body")(result, out)
    highlight = result.get("highlight")
    if isinstance(highlight, dict):
        for name in highlight:
            if not NOT_PROSE.search(name):
                _strings(highlight, name, out)
    for answer in _each(result, "answers"):
        _string(answer, "text", out)


def _search(item: dict[str, Any], out: list[Slot]) -> None:
    _string(item, "header", out)
    for key in ("results", "primary_results", "additional_results"):
        for result in _each(item, key):
            _search_result(result, out)


def _citation_ranges(item: dict[str, Any], length: int) -> list[tuple[dict[str, Any], str]]:
    """Offsets into the answer text: `citations[].ranges[].start/end` (current API) or
    `citations[].range_start/range_end`; anything out of bounds is left alone."""
    found: list[tuple[dict[str, Any], str]] = []
    for citation in _each(item, "citations"):
        holders = [citation, *_each(citation, "ranges")]
        for holder in holders:
            for name in ("start", "end", "range_start", "range_end"):
                value = holder.get(name)
                if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= length:
                    found.append((holder, name))
    return found


def _conversational_search(item: dict[str, Any], out: list[Slot]) -> None:
    text = item.get("text")
    if isinstance(text, str) and text:
        ranges = _citation_ranges(item, len(text))
        cuts = sorted({0, len(text), *(holder[name] for holder, name in ranges)})
        pieces = [text[a:b] for a, b in zip(cuts, cuts[1:])]
        out.append(Slot(item, "text", pieces, ranges))
    _fields("citations_title", "disclaimer")(item, out)
    for citation in _each(item, "citations"):
        _fields("title", "text", "body")(citation, out)


def _media(item: dict[str, Any], out: list[Slot]) -> None:
    _fields("title", "description", "alt_text")(item, out)


def _button(item: dict[str, Any], out: list[Slot]) -> None:
    _fields("label", "alt_text")(item, out)
    panel = item.get("panel")
    if isinstance(panel, dict):
        _string(panel, "title", out)
        find_texts(panel.get("body"), out)
        find_texts(panel.get("footer"), out)


def _card(item: dict[str, Any], out: list[Slot]) -> None:
    find_texts(item.get("body"), out)
    find_texts(item.get("footer"), out)


def _carousel(item: dict[str, Any], out: list[Slot]) -> None:
    find_texts(item.get("items"), out)


def _grid(item: dict[str, Any], out: list[Slot]) -> None:
    for row in _each(item, "rows"):
        for cell in _each(row, "cells"):
            find_texts(cell.get("items"), out)


def _table(item: dict[str, Any], out: list[Slot]) -> None:
    _fields("title", "description")(item, out)
    _strings(item, "headers", out)
    for row in _each(item, "rows"):
        _strings(row, "cells", out)


def _vgw_action(user_defined: dict[str, Any], out: list[Slot]) -> None:
    """The phone channel's actions: the SMS that `vgwActSendSMS` sends (`parameters.message`);
    commands, phone numbers and media URLs stay as they are."""
    sequence = user_defined.get("vgwActionSequence")
    actions = [user_defined.get("vgwAction"), *(sequence if isinstance(sequence, list) else ())]
    for action in actions:
        if isinstance(action, dict) and action.get("command") == "vgwActSendSMS":
            _string(action.get("parameters"), "message", out)


def _carousel_data(user_defined: dict[str, Any], out: list[Slot]) -> None:
    """Web chat's content carousel custom response: each slide's title, description and alt
    text; its image URL stays as it is."""
    for slide in _each(user_defined, "carousel_data"):
        _fields("title", "description", "alt")(slide, out)


# The extension point for custom responses (`response_type: user_defined`): which shapes of
# `user_defined` hold text a person reads, and where. A shape is found by its
# `user_defined_type` value (web chat's custom responses), else by a top-level key of
# `user_defined` that only it has (the phone channel's `vgwAction`). To translate your own custom
# response, add its type here with a walker that appends a Slot per readable string (see
# _carousel_data); any other user_defined content passes through untouched.
USER_DEFINED_SHAPES: dict[str, Callable[[dict[str, Any], list[Slot]], None]] = {
    "carousel": _carousel_data,        # user_defined_type (web chat content carousel tutorial)
    "vgwAction": _vgw_action,          # key (phone channel: Handling phone interactions, SMS)
    "vgwActionSequence": _vgw_action,  # key (the same actions as a list)
}


def _user_defined(item: dict[str, Any], out: list[Slot]) -> None:
    user_defined = item.get("user_defined")
    if not isinstance(user_defined, dict):
        return
    kind = user_defined.get("user_defined_type")
    walker = USER_DEFINED_SHAPES.get(kind) if isinstance(kind, str) else None
    if walker is None:
        keys = [key for key in user_defined if key in USER_DEFINED_SHAPES]
        walker = USER_DEFINED_SHAPES[keys[0]] if keys else None
    if walker is not None:
        walker(user_defined, out)


# response_type -> where its readable text is. Types not listed (pause, date, dtmf, end_session,
# speech_to_text, text_to_speech, and any unknown type) are never entered; user_defined only for
# the shapes in USER_DEFINED_SHAPES.
WALKERS: dict[str, Walker] = {
    "text": _fields("text"),
    "option": _option,
    "suggestion": _suggestion,
    "connect_to_agent": _connect_to_agent,
    "channel_transfer": _fields("message_to_user"),
    "search": _search,
    "conversational_search": _conversational_search,
    "conversation_search": _conversational_search,
    "image": _media,
    "video": _media,
    "audio": _media,
    "iframe": _media,
    "button": _button,
    "card": _card,
    "carousel": _carousel,
    "grid": _grid,
    "table": _table,
    "user_defined": _user_defined,
}


def find_texts(items: Any, out: list[Slot] | None = None,
               skip: Callable[[dict[str, Any]], bool] | None = None) -> list[Slot]:
    """The readable strings of a list of response items (`output.generic`), in order.

    `skip(item)` true leaves an item out (content already in the customer's language)."""
    out = [] if out is None else out
    if isinstance(items, list):
        for item in items:
            if not isinstance(item, dict) or (skip is not None and skip(item)):
                continue
            walker = WALKERS.get(item.get("response_type"))  # type: ignore[arg-type]
            if walker is not None:
                walker(item, out)
    return out


def find_output_texts(output: dict[str, Any], out: list[Slot] | None = None,
                      skip: Callable[[dict[str, Any]], bool] | None = None) -> list[Slot]:
    """The readable strings of a message `output`: `generic`, and the legacy `text` list that
    dialog still fills for older clients."""
    out = [] if out is None else out
    find_texts(output.get("generic"), out, skip)
    _strings(output, "text", out)
    return out


def mask_slots(slots: Iterable[Slot], rules: MaskRules) -> None:
    """Mask the slots again with `rules`: a glossary's for this direction of translation, which
    only the caller knows (the slots were masked with the built-in spans)."""
    if rules is DEFAULT_RULES:
        return
    for slot in slots:
        slot.masked = [mask(piece, rules) for piece in slot.pieces]


def wanted(slots: Iterable[Slot]) -> list[str]:
    """The distinct masked strings the slots need, each once, in reply order."""
    return list(dict.fromkeys(text for slot in slots for text in slot.wanted()))


def apply(slots: Iterable[Slot], translations: Mapping[str, str]) -> tuple[int, int]:
    """Write translations into the reply; return (strings translated, strings left as they were)."""
    done = kept = 0
    for slot in slots:
        d, k = slot.apply(translations)
        done, kept = done + d, kept + k
    return done, kept


# The assistant takes at most this many characters of input: a longer offered value can never
# come back as a click, and is not remembered.
MAX_INPUT_CHARS = 2048


def offered_values(items: Any, limit: int) -> list[str]:
    """The texts a click on this reply sends back as the next input (option, suggestion and
    post-back button values), distinct, at most `limit`, none longer than MAX_INPUT_CHARS."""
    values: list[str] = []

    def value_text(holder: dict[str, Any]) -> None:
        value = holder.get("value")
        input_ = value.get("input") if isinstance(value, dict) else None
        text = input_.get("text") if isinstance(input_, dict) else None
        if isinstance(text, str) and text.strip() and len(text) <= MAX_INPUT_CHARS \
                and text not in values:
            values.append(text)

    def walk(items: Any) -> None:
        for item in items if isinstance(items, list) else ():
            if not isinstance(item, dict):
                continue
            kind = item.get("response_type")
            if kind == "option":
                for option in _each(item, "options"):
                    value_text(option)
            elif kind == "suggestion":
                for suggestion in _each(item, "suggestions"):
                    value_text(suggestion)
            elif kind == "button":
                value_text(item)
                if isinstance(item.get("panel"), dict):
                    walk(item["panel"].get("body"))
                    walk(item["panel"].get("footer"))
            elif kind == "card":
                walk(item.get("body"))
                walk(item.get("footer"))
            elif kind == "carousel":
                walk(item.get("items"))
            elif kind == "grid":
                for row in _each(item, "rows"):
                    for cell in _each(row, "cells"):
                        walk(cell.get("items"))

    walk(items)
    return values[:limit]
