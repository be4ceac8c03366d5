"""Play a scripted conversation through the kit the way watsonx Assistant would.

For each customer turn of a script: pre-message → a stand-in assistant (the script's canned
reply) → post-message → log, signed with the configured authentication method, and a readable
account of what happened. The exit status is 0 only when every turn succeeded, so the same
command is a smoke test after a deployment:

    python examples/simulate.py examples/conversations/banking_es.json --url https://my-kit.example.com
    python examples/simulate.py examples/conversations/agent_transfer_fr.json        # in process

With `--orchestrate` the same script plays through the watsonx Orchestrate plug-ins instead:
pre-invoke → a stand-in agent (the script's canned reply, its texts as assistant messages) →
post-invoke, one thread for the whole script (WEBHOOKS must include orchestrate; in process it
is added).

A script is JSON (the shipped ones are) or YAML when PyYAML is installed; here in YAML, for the
comments:

    name: Spanish banking conversation
    locale: es-ES                  # optional: context.global.system.locale of the session
    skill: actions                 # or dialog: which context layout the stand-in assistant uses
    turns:
      - customer: Hola, quiero consultar el saldo de mi cuenta
        intent: check_balance      # optional: the stand-in assistant's top intent
        assistant:                 # the canned reply: output.generic items, as the assistant sends
          - {response_type: text, text: Which account would you like to check?}
        expect: {language: es}     # optional checks; a failed one fails the turn
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from handlers.context import read_variable, skill_type_of  # noqa: E402
from handlers.envelope import SKIP_PROCESSING_HEADER  # noqa: E402
from handlers.settings import AuthSettings, Settings, load_settings  # noqa: E402

WEBHOOK_PATHS = {"premessage": "/webhooks/premessage", "postmessage": "/webhooks/postmessage",
                 "logs": "/webhooks/logs"}
PLUGIN_PATHS = {"pre": "/plugins/agent-pre-invoke", "post": "/plugins/agent-post-invoke"}


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any
    seconds: float


Transport = Callable[[str, bytes, dict[str, str]], Answer]


def http_transport(base_url: str, timeout: float = 35.0) -> Transport:
    """POST to a running server (the assistant's own timeout is at most 30 s)."""
    import requests

    session = requests.Session()

    def send(path: str, data: bytes, headers: dict[str, str]) -> Answer:
        started = time.perf_counter()
        response = session.post(base_url.rstrip("/") + path, data=data, headers=headers,
                                timeout=timeout)
        try:
            body = response.json()
        except ValueError:
            body = response.text
        return Answer(response.status_code, dict(response.headers), body,
                      time.perf_counter() - started)

    return send


def app_transport(app: Any) -> Transport:
    """POST to an app in this process (no server needed)."""
    client = app.test_client()

    def send(path: str, data: bytes, headers: dict[str, str]) -> Answer:
        started = time.perf_counter()
        response = client.post(path, data=data, headers=headers)
        body = response.get_json(silent=True)
        return Answer(response.status_code, dict(response.headers),
                      body if body is not None else response.get_data(as_text=True),
                      time.perf_counter() - started)

    return send


def auth_headers(auth: AuthSettings, token: str | None = None) -> dict[str, str]:
    """Sign a request the way the assistant does for the webhook's configured method."""
    import base64

    import jwt

    if auth.method == "none":
        return {}
    if auth.method == "basic":
        pair = f"{auth.username}:{auth.password}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
    if auth.method == "bearer":
        return {"Authorization": f"Bearer {auth.secret}"}
    if auth.method == "apikey":
        return {auth.api_key_header: auth.api_key or ""}
    if auth.method == "jwt":
        now = int(time.time())
        return {"Authorization": jwt.encode({"iat": now, "exp": now + 300}, auth.secret,
                                            algorithm="HS256")}
    if token is None:
        raise SystemExit(f"the {auth.webhook} webhook uses oauth2: pass --token with an access "
                         "token from your authorization server")
    return {"Authorization": f"Bearer {token}"}


def load_script(path: str | pathlib.Path) -> dict[str, Any]:
    """Read a JSON or YAML script. PyYAML is a test/examples requirement, not a runtime one (the
    server image lacks it), so it is imported only for a YAML script; the shipped scripts are
    JSON, so the simulator runs from the server's own install."""
    text = pathlib.Path(path).read_text(encoding="utf-8")
    if str(path).endswith(".json"):
        try:
            script = json.loads(text)
        except ValueError as exc:
            raise SystemExit(f"{path}: not valid JSON ({exc})") from None
    else:
        try:
            import yaml
        except ImportError:
            raise SystemExit(f"{path}: YAML scripts need PyYAML (pip install PyYAML); JSON "
                             "scripts, like examples/conversations/*.json, need nothing more"
                             ) from None
        try:
            script = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SystemExit(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(script, dict) or not isinstance(script.get("turns"), list):
        raise SystemExit(f"{path}: a script is an object with a list of 'turns'")
    for number, turn in enumerate(script["turns"], 1):
        if not isinstance(turn, dict) or "customer" not in turn or "assistant" not in turn:
            raise SystemExit(f"{path}: turn {number} needs 'customer' and 'assistant'")
    return script


def texts_of(generic: list[dict[str, Any]]) -> list[str]:
    """What a person reads in a reply, roughly as a channel would show it (for printing)."""
    shown: list[str] = []
    for item in generic or []:
        kind = item.get("response_type")
        for key in ("title", "text", "description", "message_to_user"):
            if isinstance(item.get(key), str) and item[key]:
                shown.append(item[key])
        for option in item.get("options") or item.get("suggestions") or []:
            if isinstance(option, dict) and option.get("label"):
                shown.append(f"  [{option['label']}]")
        if kind == "connect_to_agent":
            for key in ("agent_available", "agent_unavailable"):
                message = (item.get(key) or {}).get("message")
                if message:
                    shown.append(f"  ({key.replace('_', ' ')}: {message})")
    return shown


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Conversation:
    """One simulated session: the context the assistant carries from turn to turn."""

    script: dict[str, Any]
    settings: Settings
    send: Transport
    token: str | None = None
    session_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    assistant_id: str = "simulated-assistant"
    context: dict[str, Any] = field(default_factory=dict)
    out: Callable[[str], None] = print

    def __post_init__(self) -> None:
        skill = self.script.get("skill", "actions")
        skill_key = "main skill" if skill == "dialog" else "actions skill"
        variables_key = "user_defined" if skill == "dialog" else "skill_variables"
        system: dict[str, Any] = {"user_id": "simulated-customer", "turn_count": 0}
        if self.script.get("locale"):
            system["locale"] = self.script["locale"]
        self.context = {"global": {"system": system, "session_id": self.session_id},
                        "skills": {skill_key: {variables_key: {}, "system": {"state": "opaque"}}}}

    def call(self, webhook: str, event: str, payload: dict[str, Any]) -> Answer:
        body = {"event": {"name": event}, "payload": payload}
        if webhook == "postmessage":
            body["options"] = {}
        headers = auth_headers(self.settings.auth_for(webhook), self.token)
        return self.send(WEBHOOK_PATHS[webhook], json.dumps(body).encode(), headers)

    def play_turn(self, number: int, turn: dict[str, Any]) -> bool:
        self.context["global"]["system"]["turn_count"] = number
        request = {"input": {"message_type": "text", "text": str(turn["customer"]),
                             "options": {"return_context": True}},
                   "context": json.loads(json.dumps(self.context)), "user_id": "simulated-customer"}
        problems: list[str] = []
        request_time = now_iso()
        self.out(f"\n── turn {number} " + "─" * 60)
        self.out(f"customer says        : {turn['customer']}")

        pre = self.call("premessage", "message_received", request)
        if pre.status != 200:
            problems.append(f"pre-message answered {pre.status}: {pre.body}")
            return self.finish(problems)
        skipped = SKIP_PROCESSING_HEADER.lower() in {k.lower() for k in pre.headers}
        if skipped:
            customer_sees = pre.body.get("output", {}).get("generic", [])
            response = {"output": {"generic": customer_sees}, "context": request["context"]}
            self.out("pre-message answered directly (skip processing); the assistant is not asked")
            post = None
            received_text = None
        else:
            received = pre.body["payload"]
            received_text = received.get("input", {}).get("text")
            language = read_variable(received, self.settings.language_variable,
                                     skill_type_of(received))
            self.out(f"detected language    : {language or '-'}")
            self.out(f"assistant receives   : {received_text}")
            generic = json.loads(json.dumps(turn["assistant"]))
            intents = [{"intent": turn["intent"], "confidence": 0.97}] if turn.get("intent") else []
            response = {"output": {"generic": generic, "intents": intents, "entities": []},
                        "context": received.get("context", request["context"]),
                        "user_id": "simulated-customer"}
            self.out("assistant answers    : " + " | ".join(texts_of(generic)))
            post = self.call("postmessage", "message_processed", response)
            if post.status != 200:
                problems.append(f"post-message answered {post.status}: {post.body}")
                return self.finish(problems)
            response = post.body["payload"]
            customer_sees = response.get("output", {}).get("generic", [])
            self.context = response.get("context", received.get("context", self.context))
            expected = (turn.get("expect") or {}).get("language")
            if expected and language != expected:
                problems.append(f"expected language {expected}, the kit decided {language}")
        for line in texts_of(customer_sees):
            self.out(f"customer sees        : {line}")

        log_id = str(uuid.uuid4())
        record = {"log_id": log_id, "request": request, "response": response,
                  "assistant_id": self.assistant_id, "session_id": self.session_id,
                  "skill_id": "simulated-skill", "snapshot": "draft", "customer_id": None,
                  "request_timestamp": request_time, "response_timestamp": now_iso(),
                  "language": self.settings.assistant_language}
        logged = self.call("logs", "message_logged", record)
        if not 200 <= logged.status < 300:
            problems.append(f"log answered {logged.status}: {logged.body}")
        else:
            self.out(f"stored log id        : {log_id}")
        timings = f"pre {pre.seconds * 1000:.0f} ms"
        if post is not None:
            timings += f", post {post.seconds * 1000:.0f} ms"
        timings += f", log {logged.seconds * 1000:.0f} ms"
        self.out(f"timings              : {timings}")
        return self.finish(problems)

    def finish(self, problems: list[str]) -> bool:
        for problem in problems:
            self.out(f"FAILED               : {problem}")
        return not problems

    def play(self) -> bool:
        self.out(f"{self.script.get('name', 'conversation')} — session {self.session_id}")
        results = [self.play_turn(n, t) for n, t in enumerate(self.script["turns"], 1)]
        ok = all(results)
        self.out(f"\n{sum(results)}/{len(results)} turns succeeded")
        return ok


def text_message(role: str, text: str) -> dict[str, Any]:
    return {"role": role, "content": {"type": "text", "text": text}}


@dataclass
class AgentConversation(Conversation):
    """One simulated Orchestrate thread: the same script through the two agent plug-ins, with
    bodies shaped as the ADK's `AgentPreInvokePayload`/`AgentPostInvokePayload`
    (docs/orchestrate.md). The history holds what the agent saw and wrote, in its language."""

    history: list[dict[str, Any]] = field(default_factory=list)

    def plugin(self, phase: str, payload: dict[str, Any]) -> Answer:
        context = {"state": {"context": {"wxo_thread_id": self.session_id,
                                         "wxo_user_name": "simulated-customer"}},
                   "global_context": {"request_id": str(uuid.uuid4()),
                                      "user": "simulated-customer"},
                   "metadata": {}}
        headers = auth_headers(self.settings.auth_for("orchestrate"), self.token)
        body = json.dumps({"payload": payload, "context": context}).encode()
        return self.send(PLUGIN_PATHS[phase], body, headers)

    def play_turn(self, number: int, turn: dict[str, Any]) -> bool:
        problems: list[str] = []
        self.out(f"\n── turn {number} " + "─" * 60)
        self.out(f"customer says        : {turn['customer']}")
        messages = [*self.history, text_message("user", str(turn["customer"]))]
        pre = self.plugin("pre", {
            "agent_id": self.assistant_id, "messages": messages, "tools": [],
            # The end user's Orchestrate token: the kit must neither log nor pass it on.
            "headers": {"authorization": "Bearer SIMULATED-END-USER-TOKEN",
                        "content_type": "application/json", "custom_headers": {}},
            "parameters": {}, "context": {}})
        if pre.status != 200 or not isinstance(pre.body, dict):
            problems.append(f"pre-invoke answered {pre.status}: {pre.body}")
            return self.finish(problems)
        language = (pre.body.get("metadata") or {}).get("language")
        timings = f"pre {pre.seconds * 1000:.0f} ms"
        if pre.body.get("continue_processing") is False:
            self.out("pre-invoke stopped the agent (continue_processing: false)")
            shown = [(pre.body.get("violation") or {}).get("description", "")]
        else:
            received = pre.body["modified_payload"]["messages"][-1]["content"]["text"]
            self.out(f"detected language    : {language or '-'}")
            self.out(f"agent receives       : {received}")
            answers = [text_message("assistant", text) for text in texts_of(turn["assistant"])
                       if not text.startswith("  ")]
            self.out("agent answers        : " + " | ".join(m["content"]["text"] for m in answers))
            post = self.plugin("post", {"agent_id": self.assistant_id, "messages": answers,
                                        "tool_calls": [], "context": {}})
            if post.status != 200 or not isinstance(post.body, dict):
                problems.append(f"post-invoke answered {post.status}: {post.body}")
                return self.finish(problems)
            timings += f", post {post.seconds * 1000:.0f} ms"
            shown = [m["content"]["text"] for m in post.body["modified_payload"]["messages"]]
            self.history += [text_message("user", received), *answers]
            expected = (turn.get("expect") or {}).get("language")
            if expected and language != expected:
                problems.append(f"expected language {expected}, the kit decided {language}")
        for line in shown:
            self.out(f"customer sees        : {line}")
        self.out(f"timings              : {timings}")
        return self.finish(problems)


def simulate(script_path: str, url: str | None = None, app: Any = None,
             settings: Settings | None = None, token: str | None = None,
             out: Callable[[str], None] = print, orchestrate: bool = False) -> bool:
    """Play one script against `url` (a running server) or `app` (in process); True if all passed.
    `orchestrate` plays it through the Orchestrate plug-in endpoints instead of the webhooks."""
    if url:
        settings = settings or load_settings()
        send = http_transport(url)
    else:
        if app is None:
            from handlers import create_app

            config = None
            if orchestrate:
                served = load_settings().webhooks
                config = {"WEBHOOKS": ",".join({*served, "orchestrate"})}
            app = create_app(config)
        settings = settings or app.config["WEBHOOK_SETTINGS"]
        send = app_transport(app)
    kind = AgentConversation if orchestrate else Conversation
    return kind(load_script(script_path), settings, send, token=token, out=out).play()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scripts", nargs="+", help="conversation scripts (YAML or JSON)")
    parser.add_argument("--url", help="a running kit (default: an app built in this process)")
    parser.add_argument("--token", help="an oauth2 access token, when a webhook uses oauth2")
    parser.add_argument("--orchestrate", action="store_true",
                        help="play through the watsonx Orchestrate plug-ins, not the webhooks")
    args = parser.parse_args(argv)
    ok = all([simulate(path, url=args.url, token=args.token, orchestrate=args.orchestrate)
              for path in args.scripts])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
