"""The straight line every webhook request walks: a `Turn`, and the ordered steps run on it.

A step is a plain function `step(payload, turn) -> Response | None`. It opens with the condition
under which it acts ("if there is nothing to translate: return"), changes `payload` in place, and
returns a Response only to answer at once (e.g. skip processing). Each blueprint lists its steps
in order; adding a rule of your own is writing a function and putting it in that list.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from flask import Response, current_app, g, request

from .envelope import read_event, session_id_of
from .requestlog import started_at
from .settings import Settings

Step = Callable[[dict, "Turn"], "Response | None"]


@dataclass
class Services:
    """What the app builds once at start-up and every request shares (never module globals)."""

    settings: Settings
    verifiers: dict[str, Any] = field(default_factory=dict)
    detector: Any = None      # language.Detector
    translator: Any = None    # translation.Translator
    sessions: Any = None      # session.SessionMemory
    store: Any = None         # store.EventStore
    content: Any = None       # content.ContentStore
    # Each webhook's steps for this app: the blueprint's list unless create_app(steps=...) says.
    steps: dict[str, list[Step]] = field(default_factory=dict)


@dataclass
class Turn:
    """One webhook call on its way through the steps: what the steps know and decide."""

    webhook: str
    event: str
    payload: dict[str, Any]
    body: dict[str, Any]
    services: Services
    # The body exactly as it arrived (the log webhook stores it as received).
    received: bytes = b""
    started: float = field(default_factory=time.monotonic)
    session_id: str | None = None
    language: str | None = None
    # What the steps decided, for the request's JSON log line: codes and counts, never text.
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def settings(self) -> Settings:
        return self.services.settings

    def seconds_left(self, budget: float | None = None) -> float:
        """Time left of `budget` (default TRANSLATION_TIMEOUT) counted from the request's start."""
        budget = self.settings.translation_timeout if budget is None else budget
        return budget - (time.monotonic() - self.started)


def services() -> Services:
    return current_app.extensions["webhooks"]


def run_steps(steps: Iterable[Step], payload: dict[str, Any], turn: Turn) -> Response | None:
    """Run the steps in order; the first one that returns a Response ends the turn."""
    g.turn = turn
    for step in steps:
        reply = step(payload, turn)
        if reply is not None:
            turn.notes["answered_by"] = step.__name__
            return reply
    return None


def start_turn(webhook: str, accepted_events: tuple[str, ...]) -> Turn:
    """Read the envelope of the current request into a Turn (raises WebhookError on bad input)."""
    req = request._get_current_object()  # type: ignore[attr-defined]
    event, payload, body, received = read_event(req, accepted_events)
    turn = Turn(webhook=webhook, event=event, payload=payload, body=body, received=received,
                services=current_app.extensions["webhooks"], started=started_at(req.environ),
                session_id=session_id_of(payload))
    g.turn = turn
    return turn
