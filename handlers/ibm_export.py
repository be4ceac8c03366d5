"""`flask logs export --format ibm-logs`: the stored messages as IBM's own log tools read them.

IBM's analysis notebooks (`assistant-improve-toolkit`: `load_logs_from_file`, `format_data`)
and WA-Testing-Tool's log scripts read the v1 `/logs` shape; a v2 `message_logged` payload
lacks three of its keys and makes them fail (`format_data`: KeyError on
`response_context_conversation_id`). Each payload is written as stored (redacted when
LOG_REDACT was on) plus those keys, so both the v2 fields and the v1 readers are served:

- `response.context.conversation_id`: the session id;
- `response.output.text`: the text items of `output.generic`;
- `response.output.nodes_visited`: `output.debug.nodes_visited` (dialog), else `[]`;
- `response.output.intents` / `entities`: `[]` when absent (`format_data` reads them).
"""

from __future__ import annotations

import json
from typing import Any, Iterable, TextIO


def v1_compatible(payload: dict[str, Any]) -> dict[str, Any]:
    """`payload` (changed in place) with the v1 keys IBM's tools read."""
    response = payload.get("response")
    if not isinstance(response, dict):
        response = payload["response"] = {}
    context = response.get("context")
    if not isinstance(context, dict):
        context = response["context"] = {}
    output = response.get("output")
    if not isinstance(output, dict):
        output = response["output"] = {}
    session = payload.get("session_id")
    if not isinstance(session, str):
        global_ = context.get("global")
        session = global_.get("session_id") if isinstance(global_, dict) else None
    context["conversation_id"] = session
    generic = output.get("generic")
    output["text"] = [item["text"] for item in generic
                      if isinstance(item, dict) and isinstance(item.get("text"), str)] \
        if isinstance(generic, list) else []
    debug = output.get("debug")
    nodes = debug.get("nodes_visited") if isinstance(debug, dict) else None
    output["nodes_visited"] = nodes if isinstance(nodes, list) else []
    for key in ("intents", "entities"):
        if not isinstance(output.get(key), list):
            output[key] = []
    return payload


def write_ibm_logs(rows: Iterable[Any], out: TextIO) -> int:
    """Write `{"logs": [...]}` from stored rows (`event`, `raw`), one log a line, in constant
    memory; calls are left out (IBM's tools read messages). Returns how many were written."""
    out.write('{"logs": [')
    written = 0
    for row in rows:
        if row.event != "message_logged":
            continue
        try:
            body = json.loads(row.raw)
        except ValueError:
            continue
        payload = body.get("payload") if isinstance(body, dict) else None
        if not isinstance(payload, dict):
            continue
        out.write(",\n" if written else "\n")
        out.write(json.dumps(v1_compatible(payload), ensure_ascii=False,
                             separators=(",", ":")))
        written += 1
    out.write("\n]}\n" if written else "]}\n")
    return written
