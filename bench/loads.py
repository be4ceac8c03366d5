"""The requests the benchmarks send, and the kit's settings for them (floors.py, translation.py).

- pre-message: IBM's example request (examples/payloads/ibm_pre_message.json) with a fresh
  session and a fresh English sentence: detection runs on every message, nothing to translate;
- post-message: a reply of 12 distinct readable strings across five response types (two texts,
  one with a markdown link; an option with title, description and four labels; an image with
  title and description; connect_to_agent with its two messages) in a Spanish session;
- log: IBM's message_logged example (examples/payloads/log_message_logged.json) with a fresh
  log_id (every request a new row) and the signed JWT the assistant sends.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

from bench.harness import Load
from testsupport.libre_server import translate

PAYLOADS = pathlib.Path(__file__).resolve().parent.parent / "examples" / "payloads"
LOG_SECRET = "bench-log-webhook-secret"

ENGLISH = [
    "Hi, I would like to know where my order {{N}} is, it was due yesterday",
    "Can you help me change the delivery address for order {{N}} please",
    "My card was charged twice for order {{N}} and I want a refund",
    "I forgot the password of my account {{N}} and the reset email never came",
]
STRINGS = [
    "Hello! I can help you with your order.",
    "See [our returns policy](https://shop.example.com/returns) for the details.",
    "What would you like to do next?",
    "Choose one of the following:",
    "Track my order",
    "Change the delivery address",
    "Cancel my order",
    "Talk to an agent",
    "Your parcel",
    "A photo of the shipping label",
    "Please wait while I connect you to an agent.",
    "No agents are online right now. Please try again later.",
]


def premessage(text: str) -> dict[str, Any]:
    """IBM's example request with a fresh session (no language known yet) and `text`."""
    event = json.loads((PAYLOADS / "ibm_pre_message.json").read_text())
    event["payload"]["input"]["text"] = text
    event["payload"].setdefault("context", {}).setdefault("global", {})["session_id"] = "{{N}}"
    return event


def reply(strings: list[str], session_id: str = "bench-session") -> dict[str, Any]:
    """A message_processed event: the assistant's reply holding `strings`, a Spanish session."""
    s = strings
    generic = [
        {"response_type": "text", "text": s[0]},
        {"response_type": "text", "text": s[1]},
        {"response_type": "option", "title": s[2], "description": s[3], "preference": "button",
         "options": [{"label": label, "value": {"input": {"text": value}}}
                     for label, value in zip(s[4:8], ("track", "change address", "cancel",
                                                      "agent"))]},
        {"response_type": "image", "source": "https://shop.example.com/label.png",
         "title": s[8], "description": s[9]},
        {"response_type": "connect_to_agent", "message_to_human_agent": "Customer asked for help.",
         "agent_available": {"message": s[10]}, "agent_unavailable": {"message": s[11]},
         "transfer_info": {"target": {"zendesk": {"department": "Orders"}}}},
    ]
    return {"event": {"name": "message_processed"}, "options": {},
            "payload": {"output": {"generic": generic, "intents": [], "entities": []},
                        "user_id": "bench-user",
                        "context": {"global": {"system": {"turn_count": 2},
                                               "session_id": session_id},
                                    "skills": {"actions skill": {
                                        "skill_variables": {"customer_language": "es"},
                                        "system": {"state": "opaque"}}}}}}


def check_translated(answer: dict[str, Any], strings: list[str]) -> None:
    """The reply came back in Spanish, every one of its strings (the benchmark measures real
    work); RuntimeError otherwise."""
    generic = answer["payload"]["output"]["generic"]
    got = [generic[0]["text"], generic[1]["text"], generic[2]["title"], generic[2]["description"],
           *(o["label"] for o in generic[2]["options"]), generic[3]["title"],
           generic[3]["description"], generic[4]["agent_available"]["message"],
           generic[4]["agent_unavailable"]["message"]]
    expected = [translate(text, "en", "es") for text in strings]
    if got != expected:
        raise RuntimeError(f"the reply was not fully translated: {got!r}")


def log_load() -> Load:
    import jwt

    body = json.loads((PAYLOADS / "log_message_logged.json").read_text())
    body["payload"]["log_id"] = "{{N}}"
    token = jwt.encode({"sub": "watsonx-assistant-bench"}, LOG_SECRET, algorithm="HS256")
    return Load("/webhooks/logs", [body], {"Authorization": token},
                "log (message_logged, fresh log_id, jwt)")


def kit_env(translator_url: str, database_url: str) -> dict[str, str]:
    """The kit's settings: a translator (the stand-in), the store, the log webhook's JWT as the
    assistant sends it, a request line per request at INFO as in production."""
    return {"WEBHOOK_AUTH": "none", "TRANSLATOR": "libre", "TRANSLATOR_URL": translator_url,
            "LANGUAGE_DETECTOR": "langdetect", "DATABASE_URL": database_url,
            "LOG_AUTH": "jwt", "LOG_SECRET": LOG_SECRET, "APP_LOG_LEVEL": "INFO"}
