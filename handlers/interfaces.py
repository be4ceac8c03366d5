"""The interfaces of what a step may call (`turn.services.*`), as `typing.Protocol`s.

Only the methods the steps use are listed, so a step can be read, tested and copied against
these few lines instead of the modules that implement them. The implementations (language.py,
translation/, session.py, store/, content.py, auth.py) are not imported here: an app that does
not serve a webhook never loads what only that webhook needs (SQLAlchemy for the log store).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Protocol, Sequence

from .auth import Verifier

if TYPE_CHECKING:
    from .language import Detection
    from .store import LogEvent

__all__ = ["ContentStore", "Detector", "EventStore", "SessionMemory", "Translator", "Verifier"]


class Detector(Protocol):
    """The language of one message (language.build_detector)."""

    def detect(self, text: str) -> Detection: ...


class Translator(Protocol):
    """Translation that fails open: what is not translated in time is missing from the answer."""

    # None with TRANSLATOR=none: nothing is translated, and that is no failure.
    provider: Any

    # `notes` (turn.notes) gets the breaker's state and stuck threads when they matter.
    def translate(self, text: str, source: str, target: str, timeout: float, *,
                  notes: dict[str, Any] | None = None) -> str | None: ...

    def translate_many(self, texts: Sequence[str], source: str, target: str,
                       timeout: float, *, notes: dict[str, Any] | None = None
                       ) -> dict[str, str]: ...


class SessionMemory(Protocol):
    """Per-session values kept between webhook calls (in process, or in Redis when set)."""

    def get(self, session_id: str | None) -> dict[str, Any]: ...

    def update(self, session_id: str | None, values: dict[str, Any]) -> None: ...


class EventStore(Protocol):
    """The log webhook's durable store."""

    def add(self, item: LogEvent) -> bool: ...


class ContentStore(Protocol):
    """Reply content written per language, by key (CONTENT_DIR)."""

    def __len__(self) -> int: ...

    def lookup(self, key: str, languages: Iterable[str | None]
               ) -> tuple[str, list[dict[str, Any]]] | None: ...
