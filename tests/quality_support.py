"""The quality fixtures (tests/fixtures/quality/, sources in tests/fixtures/SOURCES.md): IBM-shaped
sessions with known outcomes, the hand counts of their report, and ways to load them.

Each fixture is one session's `message_logged` payloads, timed from 09:00 on a fixed day;
`shifted(start)` moves them so that the session starts at `start`.
"""

from __future__ import annotations

import copy
import json
import pathlib
from datetime import datetime, timedelta
from typing import Any, Iterator

from handlers.store import LogEvent
from handlers.store.rows import new_row, raw_json

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "quality"
NAMES = ("contained_spanish", "escalated", "unrecognized", "stuck", "abandoned",
         "topic_switch", "dialog", "unsupported")
# When the fixtures' day starts (their timestamps are 2026-01-05T09:MM).
FIXTURE_START = datetime(2026, 1, 5, 9, 0)


def session(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def received(payload: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(payload["request_timestamp"].replace("Z", "+00:00")) \
        .replace(tzinfo=None)


def shifted(start: datetime, names: tuple[str, ...] = NAMES) -> Iterator[dict[str, Any]]:
    """Every turn of the sessions, its times moved so that the fixtures' day starts at `start`."""
    delta = start - FIXTURE_START
    for name in names:
        for turn in session(name)["turns"]:
            turn = copy.deepcopy(turn)
            for key in ("request_timestamp", "response_timestamp"):
                moment = received(turn) if key == "request_timestamp" else \
                    datetime.fromisoformat(turn[key].replace("Z", "+00:00")).replace(tzinfo=None)
                turn[key] = (moment + delta).isoformat(timespec="milliseconds") + "Z"
            yield turn


def log_event(payload: dict[str, Any]) -> LogEvent:
    """The row the log webhook stores for `payload` (its own mapping, default settings)."""
    body = {"event": {"name": "message_logged"}, "payload": payload}
    return new_row("message_logged", payload, raw_json(body), received(payload))


def figures(**values: Any) -> dict[str, Any]:
    """FIGURES with every count 0 but `values` (incomplete given as a dict of its non-zeros)."""
    base = {"conversations": 0, "contained": 0, "escalated": 0, "containment": None,
            "requests": 0, "recognized": 0, "unrecognized": 0, "recognition": None,
            "actions_started": 0, "actions_completed": 0, "completion": None,
            "incomplete": {"escalated": 0, "stuck": 0, "new_action": 0, "abandoned": 0},
            "translation_failed": 0, "unsupported": 0}
    base["incomplete"].update(values.pop("incomplete", {}))
    base.update(values)
    return base


# Counted by hand from the fixtures (see each one's "about"), all sessions quiet for hours.
EXPECTED_LANGUAGES = {
    "es": figures(conversations=2, contained=2, containment=1.0, requests=2, recognized=2,
                  recognition=1.0, actions_started=2, actions_completed=1, completion=0.5,
                  incomplete={"abandoned": 1}, translation_failed=1),
    "de": figures(conversations=1, contained=1, containment=1.0, requests=2, recognized=1,
                  unrecognized=1, recognition=0.5, actions_started=1, actions_completed=1,
                  completion=1.0),
    "en": figures(conversations=1, contained=1, containment=1.0, requests=1, recognized=1,
                  recognition=1.0, actions_started=1, completion=0.0,
                  incomplete={"stuck": 1}),
    "fr": figures(conversations=1, escalated=1, containment=0.0, requests=1, recognized=1,
                  recognition=1.0, actions_started=1, completion=0.0,
                  incomplete={"escalated": 1}),
    "it": figures(conversations=1, contained=1, containment=1.0, requests=1, recognized=1,
                  recognition=1.0, actions_started=2, actions_completed=1, completion=0.5,
                  incomplete={"new_action": 1}),
    "pt": figures(conversations=1, escalated=1, containment=0.0, requests=3, recognized=2,
                  unrecognized=1, recognition=0.6667),
    "tr": figures(conversations=1, contained=1, containment=1.0, unsupported=1),
}
EXPECTED_ALL = figures(conversations=8, contained=6, escalated=2, containment=0.75, requests=10,
                       recognized=8, unrecognized=2, recognition=0.8, actions_started=7,
                       actions_completed=3, completion=0.4286,
                       incomplete={"escalated": 1, "stuck": 1, "new_action": 1, "abandoned": 1},
                       translation_failed=1, unsupported=1)


def action(action_id: str, title: str, language: str, completed: int = 0,
           **incomplete: int) -> dict[str, Any]:
    reasons = {"escalated": 0, "stuck": 0, "new_action": 0, "abandoned": 0} | incomplete
    return {"action": action_id, "title": title, "language": language,
            "started": completed + sum(incomplete.values()), "completed": completed,
            "incomplete": reasons}


EXPECTED_ACTIONS = [
    action("action_10", "Open an account", "es", completed=1),
    action("action_20", "Report a lost card", "fr", escalated=1),
    action("action_30", "Opening hours", "de", completed=1),
    action("action_40", "Book an appointment", "en", stuck=1),
    action("action_50", "Send money", "es", abandoned=1),
    action("action_60", "Check balance", "it", new_action=1),
    action("action_70", "Block a card", "it", completed=1),
]
# The unrecognized requests: (session, the customer's words, what the assistant received).
EXPECTED_UNRECOGNIZED = [
    ("quality-dialog-pt", "Vocês vendem conchas?", "Do you sell seashells?", "pt"),
    ("quality-unrecognized-de", "Kann ich mit Muscheln bezahlen?", "Can I pay with seashells?",
     "de"),
]


def expected_report(since: datetime, until: datetime | None) -> dict[str, Any]:
    return {"since": since.isoformat(timespec="seconds") + "Z",
            "until": until and until.isoformat(timespec="seconds") + "Z",
            "languages": EXPECTED_LANGUAGES, "all": EXPECTED_ALL, "actions": EXPECTED_ACTIONS}


