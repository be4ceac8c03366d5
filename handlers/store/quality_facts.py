"""What one stored `message_logged` event says about the quality of its conversation: the facts
the quality report (quality.py) adds up, read from the event as IBM sent it.

Pure: a dict in, a `TurnFacts` out, no database, no Flask, so the definitions below can be
read and tested on their own. Where each one comes from (docs/logs.md has the long form):

- a **request** is a turn whose `output.debug.turn_events` has an `action_visited` with reason
  `intent` (the customer's words started a flow) or `no_action_matches`; it is
  **unrecognized** when the action is IBM's "No matches" (`source.action` or `condition_type`
  `anything_else`). A dialog assistant has no action events: a turn with text is a request,
  unrecognized when its `nodes_visited` (or `node_visited` events) reach the anything_else node
  or `output.internal.fallback` is set (IBM's actions-logging-server reads that).
- actions: `action_visited` with reason `intent` or `topic_switch` starts one (the welcome and
  No-matches actions are not counted), `topic_return` resumes one, `agent_requested` sends the
  open ones to an agent, `action_finished` ends one with its reason. The turn keeps them as
  `Op`s, in order, for quality.py to pair across turns.
- **escalated**: a `connect_to_agent` item in `output.generic`, an `action_finished` with reason
  `connect_to_agent`, or the dialog variable `context_connect_to_agent` true.
- **unsupported**: the kit's own unsupported-language reply, which the pre-message webhook
  marks with `output.user_defined.unsupported_language` (and the customer's language).

The names and enums are those of the ibm-watson SDK 11.2.0 models
`MessageOutputDebugTurnEventTurnEventActionVisited` / `...ActionFinished` / `...NodeVisited`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .rows import clean
from .schema import MAX_ID_LENGTH

NO_MATCH = "anything_else"
WELCOME = "welcome"
# The action IBM's Fallback system action has: its connect_to_agent is an escalation, not the
# end of an action's own steps.
FALLBACK = "fallback"
REQUEST_REASONS = ("intent", "no_action_matches")
START_REASONS = ("intent", "topic_switch")


@dataclass(frozen=True)
class Op:
    """An event of the turn about an action: `start`, `return`, `finish` (with IBM's reason)
    or `agent` (the customer asked for an agent: every open action goes there)."""

    kind: str
    action: str | None = None
    title: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class TurnFacts:
    session_id: str | None
    language: str | None
    request: bool = False
    recognized: bool = False
    escalated: bool = False
    translation_failed: bool = False
    unsupported: bool = False
    ops: tuple[Op, ...] = ()


def _get(node: Any, *path: str) -> Any:
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _list(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _text(value: Any, limit: int | None = MAX_ID_LENGTH) -> str | None:
    """A string fit for the roll-up's columns (as the events' own: no NUL, cut to the width)."""
    return clean(value, limit)


def turn_facts(payload: dict[str, Any], *, language: str | None = None,
               translation_failed: bool = False) -> TurnFacts:
    """The facts of one `message_logged` payload. `language` and `translation_failed` are what
    the store extracted under the configured variable names (the customer's language, else the
    log record's own); an unsupported-language reply names the customer's language itself."""
    response = payload.get("response")
    output = _get(response, "output")
    generic = _list(_get(output, "generic"))
    events = _list(_get(output, "debug", "turn_events"))
    marks = _get(output, "user_defined")
    unsupported = _get(marks, "unsupported_language") is True
    if unsupported and _text(_get(marks, "customer_language"), 32):
        language = _text(marks["customer_language"], 32)
    escalated = any(item.get("response_type") == "connect_to_agent" for item in generic) \
        or _connect_variable(response)
    request = recognized = False
    ops: list[Op] = []
    actions_seen = False
    for event in events:
        name, reason = event.get("event"), event.get("reason")
        source = event.get("source") if isinstance(event.get("source"), dict) else {}
        action, title = _text(source.get("action")), _text(source.get("action_title"), None)
        if name == "action_visited":
            actions_seen = True
            if WELCOME in (action, event.get("condition_type")):
                continue       # the greeting the assistant starts with: no request, no action
            no_match = NO_MATCH in (action, event.get("condition_type")) \
                or reason == "no_action_matches"
            if reason in REQUEST_REASONS and not request:
                request, recognized = True, not no_match
            if no_match:
                continue
            if reason in START_REASONS:
                ops.append(Op("start", action, title))
            elif reason == "topic_return":
                ops.append(Op("return", action))
            elif reason == "agent_requested":
                ops.append(Op("agent"))
        elif name == "action_finished":
            actions_seen = True
            escalated = escalated or reason == "connect_to_agent"
            if not {WELCOME, NO_MATCH} & {action, event.get("condition_type")}:
                ops.append(Op("finish", action, title, _text(reason)))
    if not actions_seen and _dialog_turn(output, events):
        request = bool(_text(_get(payload, "request", "input", "text")))
        recognized = request and not _dialog_no_match(output, events)
    return TurnFacts(session_id=_text(payload.get("session_id")), language=language,
                     request=request, recognized=recognized, escalated=escalated,
                     translation_failed=translation_failed, unsupported=unsupported,
                     ops=tuple(ops))


def _connect_variable(response: Any) -> bool:
    """`context_connect_to_agent` true in a skill's variables: how a dialog marks a redirect to
    a phone number or a form as not contained (IBM's "Measuring containment")."""
    skills = _get(response, "context", "skills")
    for skill in skills.values() if isinstance(skills, dict) else ():
        for key in ("user_defined", "skill_variables"):
            if _get(skill, key, "context_connect_to_agent") in (True, "true"):
                return True
    return False


def _dialog_turn(output: Any, events: list[dict[str, Any]]) -> bool:
    return bool(_list(_get(output, "debug", "nodes_visited"))) \
        or any(event.get("event") == "node_visited" for event in events)


def _dialog_no_match(output: Any, events: list[dict[str, Any]]) -> bool:
    if _get(output, "internal", "fallback") is True:
        return True
    if any(node.get("conditions") == NO_MATCH
           for node in _list(_get(output, "debug", "nodes_visited"))):
        return True
    return any(event.get("event") == "node_visited"
               and _get(event, "source", "condition") == NO_MATCH for event in events)
