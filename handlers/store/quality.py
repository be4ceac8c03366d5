"""Quality by language: the turns' facts (quality_facts.py) added up per conversation, then
per language, as `flask logs report`, the explorer and `store.reports.quality_report` give them.

Pure. A conversation is summed in `Part`s, one per stretch of its turns (an hour of the
roll-up, or the open edge of a period), which merge: `merge(a, b)` of two consecutive parts is
the part of all their turns. What makes that work for actions, which start in one turn and end
in another, is that a part keeps the actions still open at its end and, in order, what its
turns did to actions opened before it (`ops`); merging replays those on the earlier part.

An action's outcome (IBM's analytics-action-completion):
- **completed**: finished with all_steps_done, ended_by_step or no_steps_visited, or
  connect_to_agent from its own step (not IBM's Fallback action, not after the customer asked
  for an agent);
- **escalated**: finished with fallback, or the customer asked for an agent (agent_requested)
  while it was open; **stuck**: max_retries_reached;
- **new_action**: the customer switched to another action and never returned;
- **abandoned**: still open when the conversation has been quiet for more than an hour.
An action still open in a conversation active in the last hour is undecided: not counted yet.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable

from .quality_facts import FALLBACK, Op, TurnFacts

QUIET = timedelta(hours=1)
INCOMPLETE = ("escalated", "stuck", "new_action", "abandoned")
COMPLETED_REASONS = ("all_steps_done", "ended_by_step", "no_steps_visited")
INCOMPLETE_REASONS = {"fallback": "escalated", "max_retries_reached": "stuck"}
# States of an open action.
RUNNING, SWITCHED, AGENT = "", "switched", "agent"


@dataclass
class Part:
    """A conversation's turns over a stretch of time, summed."""

    session_id: str
    first_at: datetime
    last_at: datetime
    assistant_id: str | None = None
    environment: str | None = None
    language: str | None = None        # the last customer language of these turns
    escalated: bool = False
    requests: int = 0
    recognized: int = 0
    translation_failed: int = 0
    unsupported: int = 0
    # Ended actions: "action\toutcome" -> how many; the last title seen of each action.
    outcomes: Counter = field(default_factory=Counter)
    titles: dict[str, str] = field(default_factory=dict)
    # Actions open at the end, oldest first: [action, state].
    open: list[list[str]] = field(default_factory=list)
    # What the turns did to actions opened before this part, in order.
    ops: list[Op] = field(default_factory=list)

    def add(self, at: datetime, facts: TurnFacts) -> None:
        """Add the next turn (turns come in order)."""
        self.first_at, self.last_at = min(self.first_at, at), max(self.last_at, at)
        self.language = facts.language or self.language
        self.escalated = self.escalated or facts.escalated
        self.requests += facts.request
        self.recognized += facts.request and facts.recognized
        self.translation_failed += facts.translation_failed
        self.unsupported += facts.unsupported
        for op in facts.ops:
            if op.action and op.title:
                self.titles[op.action] = op.title
            if not _apply(self.open, op, self.outcomes):
                self.ops.append(op)
            if op.kind == "start":
                self.open.append([op.action or "", RUNNING])

    def to_row(self) -> dict[str, Any]:
        """The part as the roll-up stores it: the sums as columns, the actions as JSON."""
        return {"session_id": self.session_id, "assistant_id": self.assistant_id,
                "environment": self.environment, "first_at": self.first_at,
                "last_at": self.last_at, "language": self.language,
                "escalated": int(self.escalated), "requests": self.requests,
                "recognized": self.recognized, "failed": self.translation_failed,
                "unsupported": self.unsupported,
                "part": json.dumps({"outcomes": dict(self.outcomes), "titles": self.titles,
                                    "open": self.open,
                                    "ops": [[op.kind, op.action, op.reason] for op in self.ops]},
                                   separators=(",", ":"), ensure_ascii=False)}

    @classmethod
    def from_row(cls, row: Any) -> "Part":
        data = json.loads(row.part)
        return cls(row.session_id, row.first_at, row.last_at, row.assistant_id,
                   row.environment, language=row.language, escalated=bool(row.escalated),
                   requests=row.requests, recognized=row.recognized,
                   translation_failed=row.failed, unsupported=row.unsupported,
                   outcomes=Counter(data["outcomes"]), titles=data["titles"],
                   open=data["open"], ops=[Op(kind, action, None, reason)
                                           for kind, action, reason in data["ops"]])


def part_of(session_id: str, turns: Iterable[tuple[datetime, TurnFacts]], *,
            assistant_id: str | None = None, environment: str | None = None) -> Part | None:
    """The part of a conversation's turns (in order); None when there are none."""
    part = None
    for at, facts in turns:
        if part is None:
            part = Part(session_id, at, at, assistant_id, environment)
        part.add(at, facts)
    return part


def merge(first: Part, second: Part) -> Part:
    """The part of `first`'s turns followed by `second`'s."""
    merged = Part(first.session_id, min(first.first_at, second.first_at),
                  max(first.last_at, second.last_at),
                  second.assistant_id or first.assistant_id,
                  second.environment or first.environment,
                  language=second.language or first.language,
                  escalated=first.escalated or second.escalated,
                  requests=first.requests + second.requests,
                  recognized=first.recognized + second.recognized,
                  translation_failed=first.translation_failed + second.translation_failed,
                  unsupported=first.unsupported + second.unsupported,
                  outcomes=first.outcomes + second.outcomes,
                  titles={**first.titles, **second.titles},
                  open=[list(item) for item in first.open], ops=list(first.ops))
    for op in second.ops:
        if not _apply(merged.open, op, merged.outcomes):
            merged.ops.append(op)
    merged.open += [list(item) for item in second.open]
    return merged


def _apply(open_: list[list[str]], op: Op, outcomes: Counter) -> bool:
    """Apply `op` to the open actions; whether it was used up here (a start, a return or a
    finish of an action opened before these ones is passed on to the earlier part)."""
    if op.kind in ("start", "agent"):
        for item in open_:
            if op.kind == "agent" or item[1] == RUNNING:
                item[1] = AGENT if op.kind == "agent" else SWITCHED
        return False       # it also concerns what was open before
    for index in range(len(open_) - 1, -1, -1):
        action, state = open_[index]
        if action != (op.action or ""):
            continue
        if op.kind == "return":
            if state == SWITCHED:
                open_[index][1] = RUNNING
            return True
        del open_[index]
        outcomes[f"{action}\t{_outcome(action, state, op.reason)}"] += 1
        return True
    return False


def _outcome(action: str, state: str, reason: str | None) -> str:
    if reason in INCOMPLETE_REASONS:
        return INCOMPLETE_REASONS[reason]
    if reason == "connect_to_agent" and (action == FALLBACK or state == AGENT):
        return "escalated"
    # all_steps_done, ended_by_step, no_steps_visited, connect_to_agent from its own step, and
    # a reason IBM may add later: the action did reach an end.
    return "completed"


def quiet_outcome(state: str) -> str:
    """The outcome of an action left open in a conversation quiet for over an hour."""
    return {AGENT: "escalated", SWITCHED: "new_action"}.get(state, "abandoned")


def close(part: Part, now: datetime) -> Part:
    """Decide the actions still open once the conversation has been quiet for over an hour."""
    if not part.open or now - part.last_at <= QUIET:
        return part
    closed = merge(part, Part(part.session_id, part.last_at, part.last_at))
    for action, state in closed.open:
        closed.outcomes[f"{action}\t{quiet_outcome(state)}"] += 1
    closed.open = []
    return closed


def conversations(parts: Iterable[Part]) -> list[Part]:
    """One part per conversation: the parts of each session merged in time order."""
    by_session: dict[str, list[Part]] = {}
    for part in parts:
        by_session.setdefault(part.session_id, []).append(part)
    merged = []
    for pieces in by_session.values():
        pieces.sort(key=lambda piece: (piece.first_at, piece.last_at))
        whole = pieces[0]
        for piece in pieces[1:]:
            whole = merge(whole, piece)
        merged.append(whole)
    return merged


def empty_figures() -> dict[str, Any]:
    return {"conversations": 0, "contained": 0, "escalated": 0, "containment": None,
            "requests": 0, "recognized": 0, "unrecognized": 0, "recognition": None,
            "actions_started": 0, "actions_completed": 0, "completion": None,
            "incomplete": dict.fromkeys(INCOMPLETE, 0), "translation_failed": 0,
            "unsupported": 0}


def _count(figures: dict[str, Any], part: Part) -> None:
    figures["conversations"] += 1
    figures["escalated" if part.escalated else "contained"] += 1
    figures["requests"] += part.requests
    figures["recognized"] += part.recognized
    figures["unrecognized"] += part.requests - part.recognized
    figures["translation_failed"] += part.translation_failed
    figures["unsupported"] += part.unsupported
    for key, n in part.outcomes.items():
        outcome = key.rsplit("\t", 1)[1]
        figures["actions_started"] += n
        if outcome == "completed":
            figures["actions_completed"] += n
        else:
            figures["incomplete"][outcome] += n


def _rates(figures: dict[str, Any]) -> dict[str, Any]:
    for rate, part, whole in (("containment", "contained", "conversations"),
                              ("recognition", "recognized", "requests"),
                              ("completion", "actions_completed", "actions_started")):
        figures[rate] = round(figures[part] / figures[whole], 4) if figures[whole] else None
    return figures


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds") + "Z"


@dataclass(frozen=True)
class Sums:
    """Conversations already summed (by the database, from the roll-up): those of one
    language, each alone in its period and carrying no open action."""

    language: str | None
    conversations: int
    escalated: int
    requests: int
    recognized: int
    translation_failed: int
    unsupported: int


@dataclass(frozen=True)
class ActionSums:
    """The ended actions of summed conversations: `n` of `action` in `language` had `outcome`."""

    language: str | None
    action: str
    title: str | None
    outcome: str
    n: int


def report(parts: Iterable[Part], now: datetime, assistant_language: str,
           since: datetime | None, until: datetime | None, language: str | None = None,
           sums: Iterable[Sums] = (), action_sums: Iterable[ActionSums] = ()) -> dict[str, Any]:
    """The report of the issue's JSON shape over the parts of a period (and conversations the
    database summed already): figures per customer language (a conversation's is the last one
    its turns name, else `assistant_language`), for all of them, and per action and language,
    most started first. `language`: only the conversations in that language."""
    languages: dict[str, dict[str, Any]] = {}
    actions: dict[tuple[str, str], dict[str, Any]] = {}
    titles: dict[str, str] = {}

    def figures_of(code: str) -> dict[str, Any]:
        return languages.setdefault(code, empty_figures())

    def add_action(action: str, code: str, outcome: str, n: int) -> None:
        entry = actions.setdefault((action, code), {
            "action": action, "title": "", "language": code, "started": 0, "completed": 0,
            "incomplete": dict.fromkeys(INCOMPLETE, 0)})
        entry["started"] += n
        if outcome == "completed":
            entry["completed"] += n
        else:
            entry["incomplete"][outcome] += n

    for part in conversations(parts):
        part = close(part, now)
        code = part.language or assistant_language
        if language is None or code == language:
            _count(figures_of(code), part)
            titles.update(part.titles)
            for key, n in part.outcomes.items():
                action, outcome = key.rsplit("\t", 1)
                add_action(action, code, outcome, n)
    for summed in sums:
        code = summed.language or assistant_language
        if language is None or code == language:
            _add_sums(figures_of(code), summed)
    for summed in action_sums:
        code = summed.language or assistant_language
        if language is None or code == language:
            add_action(summed.action, code, summed.outcome, summed.n)
            figures = figures_of(code)
            figures["actions_started"] += summed.n
            if summed.outcome == "completed":
                figures["actions_completed"] += summed.n
            else:
                figures["incomplete"][summed.outcome] += summed.n
            if summed.title:
                titles.setdefault(summed.action, summed.title)
    for entry in actions.values():
        entry["title"] = titles.get(entry["action"], entry["action"])
    total = empty_figures()
    for figures in languages.values():
        _add_figures(total, figures)
    ordered = sorted(languages.items(), key=lambda item: (-item[1]["conversations"], item[0]))
    return {
        "since": iso(since), "until": iso(until),
        "languages": {code: _rates(figures) for code, figures in ordered},
        "all": _rates(total),
        "actions": sorted(actions.values(),
                          key=lambda entry: (-entry["started"], entry["action"],
                                             entry["language"])),
    }


def _add_sums(figures: dict[str, Any], summed: Sums) -> None:
    figures["conversations"] += summed.conversations
    figures["escalated"] += summed.escalated
    figures["contained"] += summed.conversations - summed.escalated
    figures["requests"] += summed.requests
    figures["recognized"] += summed.recognized
    figures["unrecognized"] += summed.requests - summed.recognized
    figures["translation_failed"] += summed.translation_failed
    figures["unsupported"] += summed.unsupported


def _add_figures(total: dict[str, Any], figures: dict[str, Any]) -> None:
    for key, value in figures.items():
        if key == "incomplete":
            for reason, n in value.items():
                total[key][reason] += n
        elif isinstance(value, int) and key not in ("containment", "recognition", "completion"):
            total[key] += value
