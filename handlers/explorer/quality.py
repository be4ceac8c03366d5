"""The quality report (`store.quality_report`, the JSON of `flask logs report`) arranged for the
explorer's pages: each language's rates beside the assistant language's own, and the actions
ordered three ways. Pure: the figures are the report's, only their order and the gaps are
computed here, so the pages can never disagree with the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RATES = ("containment", "recognition", "completion")
REASONS = ("escalated", "stuck", "new_action", "abandoned")
# Actions shown per table of the Actions page, and languages per row of its pivot.
TOP_ACTIONS = 25
TOP_LANGUAGES = 8


@dataclass(frozen=True)
class Rate:
    """A fraction (0..1, or None without a denominator) and its gap in percentage points to
    the assistant language's own (None on that language's row, or when either is None)."""

    value: float | None
    reference: float | None
    gap: float | None

    @property
    def percent(self) -> float | None:
        return None if self.value is None else round(100 * self.value, 1)

    @property
    def worse(self) -> bool:
        return self.gap is not None and self.gap < 0


@dataclass(frozen=True)
class LanguageRow:
    """A language's figures (FIGURES of the report); `language` None: all languages."""

    language: str | None
    figures: dict[str, Any]
    rates: dict[str, Rate]
    reference: bool = False


@dataclass
class ActionRow:
    """One action in one language (or summed over languages: `language` None)."""

    action: str
    title: str
    language: str | None
    started: int = 0
    completed: int = 0
    incomplete: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    completion: Rate = Rate(None, None, None)


def rate(value: float | None, reference: float | None, is_reference: bool = False) -> Rate:
    gap = None if is_reference or value is None or reference is None \
        else round(100 * (value - reference), 1)
    return Rate(value, reference, gap)


def language_rows(report: dict[str, Any], assistant_language: str,
                  reference: dict[str, Any] | None = None) -> list[LanguageRow]:
    """The assistant language's row first (the reference), then the others, most conversations
    first, then all languages. `reference`: the assistant language's figures when the report
    itself lacks them (a page filtered to another language)."""
    languages = report["languages"]
    own = languages.get(assistant_language) or reference
    rows = []
    order = sorted(languages.items(), key=lambda item: (item[0] != assistant_language,
                                                        -item[1]["conversations"], item[0]))
    for code, figures in order:
        mine = code == assistant_language
        rows.append(LanguageRow(code, figures, {
            name: rate(figures[name], own[name] if own else None, mine) for name in RATES},
            reference=mine))
    if own is not None and assistant_language not in languages:
        rows.insert(0, LanguageRow(assistant_language, own,
                                   {name: rate(own[name], own[name], True) for name in RATES},
                                   reference=True))
    every = report["all"]
    rows.append(LanguageRow(None, every, {
        name: rate(every[name], own[name] if own else None) for name in RATES}))
    return rows


def completion(started: int, completed: int) -> float | None:
    return completed / started if started else None


def action_rows(report: dict[str, Any], assistant_language: str) -> dict[str, Any]:
    """The Actions page's three views of `report["actions"]` (one entry per action and
    language, most started first): the most started, the least completed (an action needs a
    start to have a rate), and each action's completion per language beside the assistant
    language's."""
    rows = [ActionRow(item["action"], item["title"], item["language"], item["started"],
                      item["completed"], dict(item["incomplete"]))
            for item in report["actions"]]
    own = {row.action: completion(row.started, row.completed)
           for row in rows if row.language == assistant_language}
    for row in rows:
        row.completion = rate(completion(row.started, row.completed), own.get(row.action),
                              row.language == assistant_language)
    least = sorted((row for row in rows if row.started),
                   key=lambda row: (row.completion.value, -row.started, row.action,
                                    row.language or ""))
    totals: dict[str, ActionRow] = {}
    starts: dict[str, int] = {}
    cells: dict[tuple[str, str], ActionRow] = {}
    for row in rows:
        total = totals.setdefault(row.action, ActionRow(row.action, row.title, None))
        total.started += row.started
        total.completed += row.completed
        for reason in REASONS:
            total.incomplete[reason] += row.incomplete.get(reason, 0)
        starts[row.language] = starts.get(row.language, 0) + row.started
        cells[(row.action, row.language)] = row
    for total in totals.values():
        total.completion = rate(completion(total.started, total.completed), None, True)
    columns = sorted(starts, key=lambda code: (code != assistant_language, -starts[code], code))
    frequent = sorted(totals.values(), key=lambda row: (-row.started, row.action))
    return {"frequent": rows[:TOP_ACTIONS], "least": least[:TOP_ACTIONS],
            "by_language": {"languages": columns[:TOP_LANGUAGES],
                            "actions": frequent[:TOP_ACTIONS], "cells": cells}}
