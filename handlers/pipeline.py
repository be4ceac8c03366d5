"""The straight line every webhook request walks: a `Turn`, and the ordered steps run on it.

A step is a plain function `step(turn) -> Response | None`. It opens with the condition under
which it acts ("if there is nothing to translate: return"), changes `turn.payload` in place, tells
later steps what it found through the Turn's typed fields, and returns a Response only to answer
at once (e.g. skip processing). Each blueprint lists its steps in order; adding a rule of your own
is writing a function and putting it in that list.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable

from flask import Response, current_app, g, request

from .envelope import read_event, session_id_of
from .requestlog import started_at
from .services import ContentStore, Detector, EventStore, SessionMemory, Translator, Verifier
from .settings import Settings

if TYPE_CHECKING:
    from .glossary import Glossary
    from .store import LogEvent

Step = Callable[["Turn"], "Response | None"]


@dataclass
class Services:
    """What the app builds once at start-up and every request shares (never module globals).
    A webhook that is not served leaves its services None."""

    settings: Settings
    verifiers: dict[str, Verifier] = field(default_factory=dict)
    detector: Detector | None = None
    translator: Translator | None = None
    sessions: SessionMemory | None = None
    store: EventStore | None = None
    content: ContentStore | None = None
    # TRANSLATION_GLOSSARY's masking rules (pre- and post-message); None: the built-in spans only.
    glossary: Glossary | None = None
    # Each webhook's steps for this app: the blueprint's list unless create_app(steps=...) says.
    steps: dict[str, list[Step]] = field(default_factory=dict)


@dataclass
class Turn:
    """One webhook call on its way through the steps: what the steps know and decide.

    The typed fields below are how steps tell each other things; `notes` is only written, for
    the request's log line (codes and counts, never text)."""

    webhook: str
    event: str
    payload: dict[str, Any]
    body: dict[str, Any]
    services: Services
    # The body exactly as it arrived (the log webhook stores it as received).
    received: bytes = b""
    started: float = field(default_factory=time.monotonic)
    session_id: str | None = None

    # Pre- and post-message: the customer's language and where it came from ("chosen",
    # "detected", "session", "locale", "default"; post-message: "context", "session", "unknown").
    language: str | None = None
    language_from: str | None = None
    # Pre-message: why the message is left alone (no detection, no translation), or None.
    skipped: str | None = None
    # Pre-message: the input was translated / the translator failed (TRANSLATOR=none is no failure).
    translated: bool = False
    translation_failed: bool = False
    # Post-message: ids of the reply's items already in the customer's language (content written
    # in it), which the translation step leaves alone.
    localized_items: set[int] = field(default_factory=set)

    # The log webhook: the row being built, the event to store and its text as received. A step
    # that changes `log_body` must set `log_raw = None` (as redaction does), or the text received
    # is stored instead of the changed event.
    log_event: LogEvent | None = None
    log_body: Any = None
    log_raw: str | None = None
    stored: str | None = None    # "new" or "duplicate" once the event is committed

    # What the steps decided, for the request's JSON log line only: no step reads it.
    notes: dict[str, Any] = field(default_factory=dict)
    _session: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        return self.services.settings

    def session_record(self) -> dict[str, Any]:
        """What the session memory holds for this session ({} without one), read once per turn:
        a value a step writes with `sessions.update` is for the next turn, not this one."""
        if self._session is None:
            sessions = self.services.sessions
            self._session = (sessions.get(self.session_id)
                             if self.session_id and sessions is not None else {})
        return self._session

    def seconds_left(self, budget: float | None = None) -> float:
        """Time left of `budget` (default TRANSLATION_TIMEOUT) counted from the request's start."""
        budget = self.settings.translation_timeout if budget is None else budget
        return budget - (time.monotonic() - self.started)


def services() -> Services:
    return current_app.extensions["webhooks"]


def run_steps(steps: Iterable[Step], turn: Turn) -> Response | None:
    """Run the steps in order; the first one that returns a Response ends the turn."""
    for step in steps:
        reply = step(turn)
        if reply is not None:
            turn.notes["answered_by"] = step.__name__
            return reply
    return None


def start_turn(webhook: str, accepted_events: tuple[str, ...]) -> Turn:
    """Read the envelope of the current request into a Turn (raises WebhookError on bad input).
    The Turn is kept in `flask.g` for the request's log line (handlers/requestlog.py) only."""
    event, payload, body, received = read_event(request, accepted_events)
    turn = Turn(webhook=webhook, event=event, payload=payload, body=body, received=received,
                services=current_app.extensions["webhooks"], started=started_at(request.environ),
                session_id=session_id_of(payload))
    g.turn = turn
    return turn
