"""Post-message webhook: hand the customer watsonx Assistant's reply in the customer's language.

POST /webhooks/postmessage, alone (`flask --app postmessage_translate run --port 8000`) or in your
app (`app.register_blueprint(postmessage_translate.bp)`). Settings (the kit's): TRANSLATOR_URL (a
LibreTranslate), TRANSLATOR_API_KEY, TRANSLATION_TIMEOUT, ASSISTANT_LANGUAGE, WEBHOOK_SECRET.
"""
import json
import os
from concurrent.futures import ThreadPoolExecutor, wait

import jwt
from deep_translator import LibreTranslator
from flask import Blueprint, Flask, Response, abort, current_app, jsonify, make_response, request

ASSISTANT_LANGUAGE = os.environ.get("ASSISTANT_LANGUAGE", "en").strip().lower()
TRANSLATOR_URL = os.environ.get("TRANSLATOR_URL", "").strip().rstrip("/") + "/"
TRANSLATOR_API_KEY = os.environ.get("TRANSLATOR_API_KEY") or None
TRANSLATION_TIMEOUT = float(os.environ.get("TRANSLATION_TIMEOUT", "3"))
WEBHOOK_SECRET = os.environ.get("WEBHOOK_SECRET")
if os.environ.get("TRANSLATOR", "libre") != "libre" or TRANSLATOR_URL == "/":
    raise SystemExit("this template translates with LibreTranslate: set TRANSLATOR_URL")

pool = ThreadPoolExecutor(max_workers=16)  # deep-translator sets no timeout: calls wait here
bp = Blueprint("postmessage_translate", __name__)


@bp.post("/webhooks/postmessage")
def postmessage() -> Response:
    payload = read_payload("message_processed")
    language = customer_language(payload)
    # The rule: translate the reply only when the customer's language is known and not ours.
    if language and language != ASSISTANT_LANGUAGE:
        items = text_items(payload)
        translations = translate_all([i["text"] for i in items], ASSISTANT_LANGUAGE, language)
        for item, translation in zip(items, translations):
            item["text"] = translation or item["text"]  # what did not come back stays as written
    return jsonify(payload=payload)


def customer_language(payload: dict) -> str | None:
    """skill_variables.customer_language ("es"; premessage_translate.py writes it), or None."""
    node = payload
    for key in ("context", "skills", "actions skill", "skill_variables", "customer_language"):
        node = node.get(key) if isinstance(node, dict) else None
    return node.strip().lower().split("-")[0] if isinstance(node, str) and node.strip() else None


def text_items(payload: dict) -> list[dict]:
    """The reply's text items (output.generic[] with response_type "text"); others stay as is."""
    output = payload.get("output")
    generic = output.get("generic") if isinstance(output, dict) else None
    return [item for item in generic if isinstance(item, dict)
            and item.get("response_type") == "text" and isinstance(item.get("text"), str)
            and item["text"].strip()] if isinstance(generic, list) else []


def translate_all(texts: list[str], source: str, target: str) -> list[str | None]:
    """Each translation, or None where it failed or missed TRANSLATION_TIMEOUT (fail open)."""
    def call(text: str) -> str:  # LibreTranslator wants a key to start, even if the server doesn't
        libre = LibreTranslator(source, target, api_key="-", custom_url=TRANSLATOR_URL)
        libre.api_key = TRANSLATOR_API_KEY
        return libre.translate(text)  # raises, among others, for a code missing from its table
    futures = [pool.submit(call, text) for text in texts]
    done, late = wait(futures, TRANSLATION_TIMEOUT)  # one deadline for the whole reply
    for future in late:
        future.cancel()  # if it is still queued, it is never sent
    if late or any(future.exception() for future in done):
        current_app.logger.warning("some translations failed or timed out; they go out as written")
    return [f.result() if f in done and not f.exception() else None for f in futures]


@bp.before_request  # the blueprint's routes only: the other routes of your app are not affected
def check_signed_jwt() -> Response | None:  # with WEBHOOK_SECRET, the assistant's "Signed JWT"
    token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    try:  # its claims are undocumented: the signature counts, and `exp` when there is one
        if WEBHOOK_SECRET:
            jwt.decode(token, WEBHOOK_SECRET, ["HS256"], leeway=30, options={"verify_aud": False})
    except jwt.PyJWTError:
        return error(401, "unauthorized", "a valid signed JWT is required in Authorization")


def read_payload(event: str) -> dict:
    """The event's payload, whatever the Content-Type says; anything else ends in a JSON 400."""
    try:  # int("NaN") raises: NaN and Infinity are not JSON
        body = json.loads(request.get_data(), parse_constant=int)
    except (ValueError, RecursionError):
        abort(error(400, "invalid_json", "the body is not valid JSON"))
    if not (isinstance(body, dict) and isinstance(body.get("payload"), dict)
            and isinstance(body.get("event"), dict) and body["event"].get("name") == event):
        abort(error(400, "not_the_event", f"expected a {event} event with a payload object"))
    return body["payload"]


def error(status: int, code: str, detail: str) -> Response:  # the kit's; never echoes the request
    return make_response(jsonify(error=code, detail=detail), status)


app = Flask(__name__)  # the template on its own (flask --app postmessage_translate run)
app.register_blueprint(bp)
