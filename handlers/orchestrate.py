"""The watsonx Orchestrate agent plug-ins: the kit's pre- and post-message steps for an agent.

An Orchestrate agent calls `POST /plugins/agent-pre-invoke` before it reads the user's messages and
`POST /plugins/agent-post-invoke` before its answer goes back (docs/orchestrate.md has the contract
and its sources). Nothing here translates or detects: each endpoint only adapts Orchestrate's
`{payload, context}` to a `Turn` shaped like the assistant's payload, runs the same step list as
the matching assistant webhook (`services.steps["premessage"]` / `["postmessage"]`, so a step a
user adds applies to both products), and maps the result back into a `PluginResult`:

- pre-invoke: the latest message, when it is the user's plain text, becomes `input.text`;
- post-invoke: every assistant message with plain text becomes a text item of `output.generic`;
- the session is the thread (`wxo_thread_id`), so the language the pre-invoke call found is in the
  session memory when the post-invoke call comes: Orchestrate carries no assistant context;
- a step's skip-processing answer (the unsupported-language reply) stops the agent:
  `continue_processing: false` with a violation whose description is that reply;
- any failure on the way fails open: `continue_processing: true`, the payload unchanged. Only a
  refused caller (401) or a body that is not a plug-in request (400/413) gets an error.

`payload.headers.authorization` carries the end user's Orchestrate token: it never reaches a step,
a log line or a translator; it goes back only inside the otherwise unchanged `modified_payload`.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, g, request

from .auth import protect
from .context import skill_variables
from .envelope import (Answer, WebhookError, json_response, payload_of, read_json_object, render,
                       session_id_of)
from .pipeline import Turn, run_steps, services
from .requestlog import started_at

bp = Blueprint("orchestrate", __name__)
protect(bp, "orchestrate")
log = logging.getLogger(__name__)

PRE_INVOKE = "agent_pre_invoke"
POST_INVOKE = "agent_post_invoke"
UNSUPPORTED = "UNSUPPORTED_LANGUAGE"
STOPPED = "STOPPED_BY_STEP"


# --- reading Orchestrate's request --------------------------------------------------------------

def read_plugin_request() -> tuple[dict[str, Any], dict[str, Any]]:
    """Orchestrate's `payload` and `context` (the `PluginContext`, {} when absent); a 400
    `WebhookError` for a body that is not a plug-in request (never quoting it)."""
    body, _ = read_json_object(request)
    payload = payload_of(body)
    if not isinstance(payload.get("messages"), list):
        raise WebhookError(400, "missing_messages",
                           '"payload.messages" must be an array of messages')
    context = body.get("context")
    if context is None:
        context = {}
    if not isinstance(context, dict):
        raise WebhookError(400, "context_not_an_object",
                           f'"context" is a JSON {type(context).__name__}, expected an object')
    return payload, context


def _object(parent: Any, key: str) -> dict[str, Any]:
    value = parent.get(key) if isinstance(parent, dict) else None
    return value if isinstance(value, dict) else {}


def run_variables(payload: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """The run's context variables (`wxo_thread_id`, `wxo_user_name`, ...): `payload.context`,
    overridden by `context.state.context`, where published plug-ins find them."""
    variables = dict(_object(payload, "context"))
    variables.update(_object(_object(context, "state"), "context"))
    return variables


def thread_of(payload: dict[str, Any], context: dict[str, Any]) -> tuple[str | None, str]:
    """The session id and where it came from: the thread (`context.state.context.wxo_thread_id`,
    else `payload.context.wxo_thread_id`), else the request (`global_context.request_id`: one
    call, so the conversation policy sees a one-shot session)."""
    candidates = (("thread", _object(_object(context, "state"), "context").get("wxo_thread_id")),
                  ("thread", _object(payload, "context").get("wxo_thread_id")),
                  ("request", _object(context, "global_context").get("request_id")))
    for source, value in candidates:
        if isinstance(value, str) and value.strip():
            return value, source
    return None, "none"


def text_of(message: Any, role: str) -> str | None:
    """A message's plain text when it has `role`; None for JSON, image or resource content."""
    if not isinstance(message, dict) or message.get("role") != role:
        return None
    content = message.get("content")
    if isinstance(content, dict) and content.get("type") == "text" \
            and isinstance(content.get("text"), str):
        return content["text"]
    return None


# --- the Turn, shaped as the assistant's payload ------------------------------------------------

def start_plugin_turn(event: str, payload: dict[str, Any], context: dict[str, Any],
                      adapted: dict[str, Any]) -> Turn:
    """A Turn whose payload is `adapted` (input or output) with the assistant's context layout:
    the thread as `context.global.session_id` and the run's variables as the skill's variables."""
    svc = services()
    thread, source = thread_of(payload, context)
    adapted["context"] = {"global": {"session_id": thread} if thread else {}}
    variables = skill_variables(adapted, svc.settings.skill_type, create=True)
    if variables is not None:
        variables.update(run_variables(payload, context))
    turn = Turn(webhook="orchestrate", event=event, payload=adapted,
                body={"event": {"name": event}, "payload": adapted}, services=svc,
                started=started_at(request.environ), session_id=session_id_of(adapted))
    turn.notes["session_from"] = source
    g.turn = turn  # for the request's log line only
    return turn


def run_failing_open(turn: Turn, steps_of: str) -> tuple[Answer | None, bool]:
    """Run a webhook's steps on the turn: (a step's answer or None, whether they all ran). Any
    exception fails open: Orchestrate gets its payload back unchanged, never an error."""
    try:
        return run_steps(turn.services.steps[steps_of], turn), True
    except Exception as exc:
        log.error("plug-in steps failed; the payload goes on unchanged",
                  extra={"fields": {"event": turn.event, "exception": type(exc).__name__}})
        turn.notes["failed_open"] = type(exc).__name__
        return None, False


# --- the PluginResult ---------------------------------------------------------------------------

def plugin_result(turn: Turn, payload: dict[str, Any] | None,
                  violation: dict[str, Any] | None = None) -> Response:
    """HTTP 200 with a `PluginResult`; null members are left out (no `"violation": null`)."""
    result: dict[str, Any] = {"continue_processing": violation is None}
    if payload is not None:
        result["modified_payload"] = payload
    if violation is not None:
        result["violation"] = violation
    result["metadata"] = {"language": turn.language} if turn.language else {}
    return json_response(result)


def violation_of(turn: Turn, reply: Answer) -> dict[str, Any] | None:
    """The violation for a step's skip-processing answer (its text is what the customer would
    have read), or None when the answer is not one."""
    if not reply.skip_processing:
        return None
    generic = _object(reply.body, "output").get("generic")
    texts = [item["text"] for item in generic if isinstance(item, dict)
             and isinstance(item.get("text"), str)] if isinstance(generic, list) else []
    settings = turn.settings
    if turn.language and turn.language not in settings.supported_languages:
        return {"reason": "unsupported language", "description": "\n".join(texts),
                "code": UNSUPPORTED, "details": {"language": turn.language}}
    return {"reason": "answered by a step", "description": "\n".join(texts), "code": STOPPED,
            "details": {"step": str(turn.notes.get("answered_by", ""))}}


def answer(turn: Turn, reply: Answer | None) -> tuple[Response | None, dict[str, Any] | None]:
    """What a step's answer means here: (a response to send as it is, a violation to stop with).
    A skip-processing answer stops; `{"payload": ...}` replaces the turn's payload; any other
    answer (a step's own error) goes out as the step wrote it."""
    if reply is None:
        return None, None
    violation = violation_of(turn, reply)
    if violation is not None:
        return None, violation
    new = reply.body.get("payload")
    if reply.status == 200 and isinstance(new, dict):
        turn.payload.clear()
        turn.payload.update(new)
        return None, None
    return render(reply), None


def run_plugin_steps(turn: Turn, steps_of: str, payload: dict[str, Any]) -> Response | None:
    """Run a webhook's steps on the adapted turn. None: they ran, and `turn.payload` holds what
    they made of it. Otherwise the answer that ends the call: the payload unchanged when a step
    failed, a violation when a step answered the customer itself, or a step's own error."""
    reply, ran = run_failing_open(turn, steps_of)
    if not ran:
        return plugin_result(turn, payload)
    own, violation = answer(turn, reply)
    if own is not None:
        return own
    if violation is not None:
        return plugin_result(turn, None, violation)
    return None


# --- the endpoints ------------------------------------------------------------------------------

@bp.post("/plugins/agent-pre-invoke")
def agent_pre_invoke() -> Response:
    """The pre-message steps over the latest user message; the message goes on translated."""
    payload, context = read_plugin_request()
    messages = payload["messages"]
    last = messages[-1] if messages else None
    original = text_of(last, "user")
    adapted: dict[str, Any] = {"input": {"message_type": "text", "text": original}
                               if original is not None else {}}
    turn = start_plugin_turn(PRE_INVOKE, payload, context, adapted)
    stopped = run_plugin_steps(turn, "premessage", payload)
    if stopped is not None:
        return stopped
    text = _object(turn.payload, "input").get("text")
    if original is not None and isinstance(text, str) and text != original:
        last["content"]["text"] = text  # type: ignore[index]
    return plugin_result(turn, payload)


@bp.post("/plugins/agent-post-invoke")
def agent_post_invoke() -> Response:
    """The post-message steps over the assistant's text messages; they go on translated back."""
    payload, context = read_plugin_request()
    messages = payload["messages"]
    slots = [(index, text) for index, message in enumerate(messages)
             if (text := text_of(message, "assistant")) is not None]
    adapted: dict[str, Any] = {"output": {"generic": [{"response_type": "text", "text": text}
                                                      for _, text in slots]}}
    turn = start_plugin_turn(POST_INVOKE, payload, context, adapted)
    stopped = run_plugin_steps(turn, "postmessage", payload)
    if stopped is not None:
        return stopped
    generic = _object(turn.payload, "output").get("generic")
    if not isinstance(generic, list) or len(generic) != len(slots):
        # A step changed the number of items (a content key resolving into several): items no
        # longer match messages one to one, so the answer goes on as the agent wrote it.
        turn.notes["items_changed"] = True
        return plugin_result(turn, payload)
    for (index, text), item in zip(slots, generic):
        new = item.get("text") if isinstance(item, dict) else None
        if isinstance(new, str) and new != text:
            messages[index]["content"]["text"] = new
    return plugin_result(turn, payload)
