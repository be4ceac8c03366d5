"""Conversations with IBM-shaped turn events for the explorer's quality views (test_explorer_
quality.py, test_explorer_browser.py): requests that start actions, a no-match, a stuck action,
an abandoned one, an escalation, translated Spanish and French.

The turn events follow the ibm-watson SDK 11.2.0 models `MessageOutputDebugTurnEventTurnEvent
ActionVisited` / `...ActionFinished` (event, source {type, action, action_title, condition},
action_start_time, condition_type, reason) under `response.output.debug.turn_events`; the
"No matches" action is IBM's built-in `anything_else` (tests/fixtures/SOURCES.md).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from handlers.logs import idempotency_key, message_columns, raw_json
from handlers.store import LogEvent
from logs_support import message_body

NO_MATCH = ("anything_else", "No matches")
ORDER = ("action_10011", "Order status")
REFUND = ("action_10012", "Refund <now>")          # markup in a title: shown, never rendered
AGENT = {"response_type": "connect_to_agent",
         "message_to_human_agent": "User asked to speak to an agent."}


def visited(action: tuple[str, str], reason: str = "intent") -> dict[str, Any]:
    condition = "anything_else" if action == NO_MATCH else "user_defined"
    return {"event": "action_visited", "reason": reason, "condition_type": condition,
            "action_start_time": "2024-05-01T09:30:00.000Z",
            "source": {"type": "action", "action": action[0], "action_title": action[1],
                       "condition": "#" + action[0]}}


def finished(action: tuple[str, str], reason: str) -> dict[str, Any]:
    return {"event": "action_finished", "reason": reason, "condition_type": "user_defined",
            "action_start_time": "2024-05-01T09:30:00.000Z", "action_variables": {},
            "source": {"type": "action", "action": action[0], "action_title": action[1]}}


def turn(session: str, language: str, received: str, at: datetime, events: list[dict[str, Any]],
         *, original: str | None = None, failed: bool = False, reply: str = "OK",
         generic: list[dict[str, Any]] | None = None, assistant: str = "assistant-1") -> LogEvent:
    """One stored message_logged event, as the log webhook stores it."""
    body = message_body(session=session, text=received, reply=reply, customer_language=language,
                        assistant=assistant,
                        generic=(generic or []) + [{"response_type": "text", "text": reply}])
    response = body["payload"]["response"]
    response["output"]["debug"] = {"turn_events": events}
    variables = response["context"]["skills"]["actions skill"]["skill_variables"]
    if original:
        variables["original_input"] = original
    if failed:
        variables["translation_failed"] = True
    payload = body["payload"]
    return LogEvent(event="message_logged", idempotency_key=idempotency_key("message_logged",
                                                                            payload),
                    raw=raw_json(body), received_at=at,
                    **message_columns(payload, "customer_language"))


def conversations(start: datetime) -> list[LogEvent]:
    """Five conversations from `start`, each turn a minute apart. By hand (IBM's definitions,
    docs/logs.md): en 2 conversations, 2 contained, 3 requests, 2 recognized; es 2, 1 contained
    (es-2 asked for an agent), 2 requests, 1 recognized, 1 translation failure; fr 1, contained,
    1 request recognized (its action never finished: abandoned once the session is quiet for
    an hour). Unrecognized: en-2's "blorp" and es-2's first words."""
    minute = timedelta(minutes=1)
    return [
        turn("en-1", "en", "where is my order", start,
             [visited(ORDER), finished(ORDER, "all_steps_done")]),
        turn("en-2", "en", "blorp", start + 2 * minute, [visited(NO_MATCH)],
             reply="I didn't understand."),
        turn("en-2", "en", "order status please", start + 3 * minute,
             [visited(ORDER), finished(ORDER, "all_steps_done")]),
        turn("es-1", "es", "where is my order", start + 4 * minute,
             [visited(ORDER), finished(ORDER, "max_retries_reached")],
             original="¿dónde está mi pedido?"),
        turn("es-2", "es", "I want to buy a boat", start + 5 * minute, [visited(NO_MATCH)],
             original="<b>quiero</b> comprar un barco", reply="I didn't understand."),
        turn("es-2", "es", "persona", start + 6 * minute, [], original="persona", failed=True,
             generic=[AGENT]),
        turn("fr-1", "fr", "I want a refund", start + 7 * minute, [visited(REFUND)],
             original="je veux un remboursement"),
    ]
