"""The straight line every webhook request walks: a `Turn`, and the ordered steps run on it.

A step is a plain function `step(turn) -> Answer | None`. It opens with the condition under
which it acts ("if there is nothing to translate: return"), changes `turn.payload` in place, tells
later steps what it found through the Turn's typed fields, and returns an `Answer` (data, not an
HTTP response) only to answer at once (e.g. skip processing). Each blueprint lists its steps in
order and renders what they leave; adding a rule of your own is writing a function and putting it
in that list. `Turn.for_test` builds a Turn without an app, to unit-test a step.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable

from flask import current_app, g, request

from .envelope import Answer, read_event, session_id_of
from .requestlog import started_at
from .interfaces import ContentStore, Detector, EventStore, SessionMemory, Translator, Verifier
from .settings import Settings, load_settings

if TYPE_CHECKING:
    from .glossary import Glossary
    from .store import LogEvent

__all__ = ["Answer", "Services", "Step", "Turn", "run_steps", "services", "start_turn"]

Step = Callable[["Turn"], "Answer | None"]
# The event each webhook's Turn.for_test carries unless told.
TEST_EVENTS = {"premessage": "message_received", "postmessage": "message_processed",
               "logs": "message_logged"}


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
    # The body's bytes as they arrived (the log webhook keeps them while `body` is unchanged).
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

    # The log webhook: the row being built (its raw copy comes from `body` when it is stored).
    log_event: LogEvent | None = None
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

    @classmethod
    def for_test(cls, payload: dict[str, Any], webhook: str = "premessage", *,
                 event: str | None = None, services: Services | None = None,
                 **settings: Any) -> Turn:
        """A Turn for `payload` without an app, to unit-test a step: `step(turn)`, then look at
        `turn.payload` and the Turn's fields.

        `settings` are the kit's settings by name (TRANSLATOR="libre", ...); the environment is
        not read. The services are the app's own, built offline: the configured detector, the
        translator (TRANSLATOR=none by default: nothing is translated, and that is no failure),
        and a session memory in a temporary folder. Pass `services=` an earlier Turn's to carry
        the session memory over to the next turn, as the app's requests share it."""
        if services is None:
            services = offline_services(load_settings(settings, environ={}), webhook)
        elif settings:
            raise TypeError("Turn.for_test: pass settings or services, not both")
        event = event or TEST_EVENTS[webhook]
        body = {"event": {"name": event}, "payload": payload}
        return cls(webhook=webhook, event=event, payload=payload, body=body, services=services,
                   received=json.dumps(body).encode("utf-8"), session_id=session_id_of(payload))

    def seconds_left(self, budget: float | None = None) -> float:
        """Time left of `budget` (default TRANSLATION_TIMEOUT) counted from the request's start."""
        budget = self.settings.translation_timeout if budget is None else budget
        return budget - (time.monotonic() - self.started)


def services() -> Services:
    return current_app.extensions["webhooks"]


def run_steps(steps: Iterable[Step], turn: Turn) -> Answer | None:
    """Run the steps in order; the first one that returns an Answer ends the turn."""
    for step in steps:
        reply = step(turn)
        if reply is not None:
            if not isinstance(reply, Answer):
                raise TypeError(f"step {step.__name__} returned a {type(reply).__name__}: "
                                "a step returns None or an Answer (handlers.pipeline.Answer)")
            turn.notes["answered_by"] = step.__name__
            return reply
    return None


def offline_services(settings: Settings, webhook: str) -> Services:
    """The services an app builds, for a Turn without one (Turn.for_test): they call nothing
    outside the process unless the settings name a provider. The session memory's file, and the
    log store's for the log webhook, live in a temporary folder removed with the services."""
    from .content import ContentStore
    from .glossary import Glossary
    from .language import LazyDetector
    from .session import build_session_memory
    from .translation import build_translator

    folder = tempfile.mkdtemp(prefix="turn-for-test-")
    built = Services(settings=settings, detector=LazyDetector(settings),
                     translator=build_translator(settings),
                     sessions=build_session_memory(settings, None, folder),
                     content=ContentStore.load(settings.content_dir),
                     glossary=Glossary.load(settings.translation_glossary, settings.languages,
                                            settings.assistant_language))
    if webhook == "logs":
        from .store import EventStore, default_url

        built.store = EventStore.open(settings.database_url or default_url(folder))
    weakref.finalize(built, shutil.rmtree, folder, ignore_errors=True)
    return built


def start_turn(webhook: str, accepted_events: tuple[str, ...]) -> Turn:
    """Read the envelope of the current request into a Turn (raises WebhookError on bad input).
    The Turn is kept in `flask.g` for the request's log line (handlers/requestlog.py) only."""
    event, payload, body, received = read_event(request, accepted_events)
    turn = Turn(webhook=webhook, event=event, payload=payload, body=body, received=received,
                services=current_app.extensions["webhooks"], started=started_at(request.environ),
                session_id=session_id_of(payload))
    g.turn = turn
    return turn
