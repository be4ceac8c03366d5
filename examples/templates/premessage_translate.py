"""Pre-message webhook: hand watsonx Assistant each customer message in the assistant's language.

POST /webhooks/premessage, alone (`flask --app premessage_translate run --port 8000`) or in your
app (`app.register_blueprint(premessage_translate.bp)`). Settings: below, by the kit's names.
"""
import json
import os
from concurrent.futures import ThreadPoolExecutor, wait

import jwt
from deep_translator import LibreTranslator
from flask import Blueprint, Flask, Response, abort, current_app, jsonify, make_response, request
from langdetect import DetectorFactory, LangDetectException, detect

ASSISTANT_LANGUAGE = os.environ.get("ASSISTANT_LANGUAGE", "en").strip().lower()
TRANSLATOR = os.environ.get("TRANSLATOR", "libre")
TRANSLATOR_URL = os.environ.get("TRANSLATOR_URL", "").strip().rstrip("/") + "/"
TRANSLATOR_API_KEY = os.environ.get("TRANSLATOR_API_KEY") or None
TRANSLATION_TIMEOUT = float(os.environ.get("TRANSLATION_TIMEOUT", "3"))
WEBHOOK_SECRET = os.environ.get("WEBHOOK_SECRET")
if TRANSLATOR not in ("libre", "none") or (TRANSLATOR == "libre" and TRANSLATOR_URL == "/"):
    raise SystemExit("set TRANSLATOR_URL (a LibreTranslate), or TRANSLATOR=none to detect only")
DetectorFactory.seed = 0  # langdetect is random without a seed
pool = ThreadPoolExecutor(max_workers=16)  # deep-translator sets no timeout: calls wait here
bp = Blueprint("premessage_translate", __name__)


@bp.post("/webhooks/premessage")
def premessage() -> Response:
    payload = read_payload("message_received")
    variables = skill_variables(payload)
    text = payload["input"].get("text") if isinstance(payload.get("input"), dict) else None
    text = text if isinstance(text, str) else ""
    language = detect_language(text) or variables.get("customer_language") or ASSISTANT_LANGUAGE
    # The rule: translate only when the customer's language is not the assistant's.
    if language != ASSISTANT_LANGUAGE and TRANSLATOR == "libre" and text.strip():
        payload["input"]["text"] = translate(text, language, ASSISTANT_LANGUAGE) or text
    variables["customer_language"] = language  # postmessage_translate.py translates back to it
    return jsonify(payload=payload)


def detect_language(text: str) -> str | None:
    """The language of `text` ("es"), or None when too short to tell: langdetect misreads "ok"."""
    if sum(c.isalpha() for c in text[:2048]) < 12:
        return None
    try:  # the assistant sends at most 2,048 characters: look no further
        return detect(text[:2048]).split("-")[0]
    except LangDetectException:
        return None


def translate(text: str, source: str, target: str) -> str | None:
    """The translation; None if it failed or took over the timeout."""
    def call() -> str:  # LibreTranslator wants a key to start, even when the server needs none
        libre = LibreTranslator(source, target, api_key="-", custom_url=TRANSLATOR_URL)
        libre.api_key = TRANSLATOR_API_KEY
        return libre.translate(text)  # raises, among others, for a code missing from its table
    future = pool.submit(call)
    if wait([future], TRANSLATION_TIMEOUT).done and not future.exception():
        return future.result()
    future.cancel()  # if it is still queued, it is never sent
    current_app.logger.warning("translation failed or timed out; the text goes on as written")
    return None


def skill_variables(payload: dict) -> dict:  # context.skills["actions skill"].skill_variables
    node = payload
    for key in ("context", "skills", "actions skill", "skill_variables"):  # made where missing
        node = node.setdefault(key, {}) if isinstance(node, dict) else {}
    return node if isinstance(node, dict) else {}


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


app = Flask(__name__)  # the template on its own (flask --app premessage_translate run)
app.register_blueprint(bp)
