"""The kit's own provider clients, written against each provider's public HTTP API.

Each batching client sends a reply's strings in one request (up to the provider's list limit), as
JSON in the body, with the key in a header (LibreTranslate: in the body, where its API wants it):
never text or key in a URL. The two free endpoints (MyMemory, Google's web page) take only a GET
with the text in the query: one string per call, concurrently, and no key. What reaches each
provider is listed in docs/translation.md. `TRANSLATOR_URL`, when set, replaces the provider's
base URL.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Sequence

from ..masking import TOKEN
from ..settings import Settings
from .errors import TranslationError
from .providers import Provider, map_code
from .transport import ProviderSession

# How long a failed GET /languages (LibreTranslate) is not asked again.
LANGUAGES_RETRY = 60.0


class HttpProvider(Provider):
    """A provider reached through the kit's pooled session (see transport.py)."""

    default_url = ""
    # The deep-translator table of the provider's language codes (None: the code as it is).
    code_table: str | None = None

    def __init__(self, name: str, settings: Settings) -> None:
        self.name = name
        self.key = settings.translator_api_key
        self.base = (settings.translator_url or self.default_url).rstrip("/")
        self.http = ProviderSession(settings.translation_concurrency)
        self.codes: list[str] | None = None
        if self.code_table:
            from deep_translator import constants

            self.codes = list(getattr(constants, self.code_table).values())

    def code_for(self, language: str) -> str | None:
        return map_code(language, self.codes)

    def post(self, path: str, deadline: float, **options: Any) -> Any:
        return self.http.request("POST", self.base + path, deadline, **options)

    def translate(self, text: str, source: str, target: str) -> str:
        [result] = self.translate_batch([text], source, target, time.monotonic() + 30.0)
        if result is None:
            raise TranslationError("rejected_answer")
        return result


def strings(answer: Any, count: int) -> list[str | None]:
    """The provider's translations, checked: the count it was asked for, each a non-empty str."""
    if not isinstance(answer, list) or len(answer) != count:
        raise TranslationError("invalid_answer")
    return [item if isinstance(item, str) and item.strip() else None for item in answer]


def only_text(texts: Sequence[str], max_chars: int) -> str:
    """The one text of a call to a provider that takes one (batch_size 1), within its limit."""
    [text] = texts
    if len(text) > max_chars:
        raise TranslationError("text_rejected")
    return text


class LibreClient(HttpProvider):
    """LibreTranslate: POST /translate, JSON body, `q` a list, the key (if any) in the body.

    Its language list comes from the server (GET /languages, read once on the pool, asked again
    after a failure), so every language the server serves works, nl and sv included.
    """

    batch_size = 50

    def __init__(self, name: str, settings: Settings) -> None:
        super().__init__(name, settings)
        if self.base.endswith("/translate"):  # the form deep-translator took: accept it
            self.base = self.base[: -len("/translate")]
        self._languages: list[str] | None = None
        self._asked_at = -LANGUAGES_RETRY
        self._lock = threading.Lock()

    def code_for(self, language: str) -> str | None:
        # Before the list is read, every code is tried (the call reads the list first).
        return language if self._languages is None else map_code(language, self._languages)

    def languages(self, deadline: float) -> list[str] | None:
        """The server's language codes; None while unknown (not read yet, or it failed)."""
        with self._lock:
            if self._languages is not None or time.monotonic() - self._asked_at < LANGUAGES_RETRY:
                return self._languages
            self._asked_at = time.monotonic()
        try:
            answer = self.http.request("GET", self.base + "/languages", deadline)
            codes = [item["code"] for item in answer if isinstance(item.get("code"), str)]
        except TranslationError as exc:
            if exc.reason == "deadline_in_queue":
                raise
            return None
        except (TypeError, KeyError, AttributeError):
            return None
        with self._lock:
            self._languages = codes
        return codes

    def translate_batch(self, texts: Sequence[str], source: str, target: str,
                        deadline: float) -> list[str | None]:
        codes = self.languages(deadline)
        if codes is not None:
            source, target = map_code(source, codes) or "", map_code(target, codes) or ""
            if not source or not target:
                raise TranslationError("unsupported_language")
        body: dict[str, Any] = {"q": texts[0] if len(texts) == 1 else list(texts),
                                "source": source, "target": target, "format": "text"}
        if self.key:
            body["api_key"] = self.key
        try:
            answer = self.post("/translate", deadline, json=body)
        except TranslationError as exc:
            if exc.reason == "http_400":  # perhaps a language the server no longer serves
                with self._lock:
                    self._languages, self._asked_at = None, -LANGUAGES_RETRY
            raise
        translated = answer.get("translatedText") if isinstance(answer, dict) else None
        return strings([translated] if isinstance(translated, str) else translated, len(texts))


class DeeplClient(HttpProvider):
    """DeepL API v2: POST /v2/translate, `Authorization: DeepL-Auth-Key`, `text` a list (<= 50)."""

    batch_size = 50
    code_table = "DEEPL_LANGUAGE_TO_CODE"
    # DeepL wants a variant for these targets ("EN" and "PT" alone are deprecated as targets).
    TARGETS = {"en": "EN-US", "pt": "PT-BR"}

    def __init__(self, name: str, settings: Settings) -> None:
        free = (settings.translator_api_key or "").endswith(":fx")  # free-plan keys
        self.default_url = "https://api-free.deepl.com" if free else "https://api.deepl.com"
        super().__init__(name, settings)
        self.formality = settings.translator_formality
        self.glossary_id = settings.translator_glossary_id

    def translate_batch(self, texts: Sequence[str], source: str, target: str,
                        deadline: float) -> list[str | None]:
        body: dict[str, Any] = {"text": list(texts), "source_lang": source.upper(),
                                "target_lang": self.TARGETS.get(target, target.upper())}
        if self.formality != "default":
            body["formality"] = self.formality
        if self.glossary_id:
            body["glossary_id"] = self.glossary_id
        answer = self.post("/v2/translate", deadline, json=body,
                           headers={"Authorization": f"DeepL-Auth-Key {self.key}"})
        return strings([item.get("text") for item in answer["translations"]], len(texts))


class MicrosoftClient(HttpProvider):
    """Microsoft Translator v3: POST /translate?api-version=3.0&from=&to=, key and region in
    headers, the body an array of {"Text": ...} (<= 100)."""

    batch_size = 100
    default_url = "https://api.cognitive.microsofttranslator.com"
    CODES = {"zh": "zh-Hans", "no": "nb", "tl": "fil"}

    def __init__(self, name: str, settings: Settings) -> None:
        super().__init__(name, settings)
        self.headers = {"Ocp-Apim-Subscription-Key": self.key or ""}
        if settings.translator_region:
            self.headers["Ocp-Apim-Subscription-Region"] = settings.translator_region

    def code_for(self, language: str) -> str | None:
        return self.CODES.get(language, language)

    def translate_batch(self, texts: Sequence[str], source: str, target: str,
                        deadline: float) -> list[str | None]:
        answer = self.post("/translate", deadline, headers=self.headers,
                           params={"api-version": "3.0", "from": source, "to": target},
                           json=[{"Text": text} for text in texts])
        return strings([item["translations"][0]["text"] for item in answer], len(texts))


class GoogleCloudClient(HttpProvider):
    """Google Cloud Translation v2 (basic): POST /language/translate/v2 with the key in the
    `X-goog-api-key` header, JSON body `q` a list (<= 128), `format` text."""

    batch_size = 128
    default_url = "https://translation.googleapis.com"
    code_table = "GOOGLE_LANGUAGES_TO_CODES"

    def translate_batch(self, texts: Sequence[str], source: str, target: str,
                        deadline: float) -> list[str | None]:
        answer = self.post("/language/translate/v2", deadline,
                           headers={"X-goog-api-key": self.key or ""},
                           json={"q": list(texts), "source": source, "target": target,
                                 "format": "text"})
        return strings([item.get("translatedText") for item in answer["data"]["translations"]],
                       len(texts))


class MyMemoryClient(HttpProvider):
    """MyMemory: GET /get?q=&langpair=src|tgt (its only form: the text is in the query), one
    string per call. It answers HTTP 200 with its own `responseStatus`: a quota or language
    error is a failure here, never a "translation" shown to the customer."""

    default_url = "https://api.mymemory.translated.net"
    code_table = "MY_MEMORY_LANGUAGES_TO_CODES"

    def translate_batch(self, texts: Sequence[str], source: str, target: str,
                        deadline: float) -> list[str | None]:
        text = only_text(texts, 500)  # MyMemory's limit per text
        answer = self.http.request("GET", self.base + "/get", deadline,
                                   params={"q": text, "langpair": f"{source}|{target}"})
        status = str(answer.get("responseStatus", "")) if isinstance(answer, dict) else ""
        if status != "200":
            raise TranslationError(f"http_{status}" if status.isdigit() else "invalid_answer")
        return strings([answer["responseData"].get("translatedText")], 1)


class GoogleWebClient(HttpProvider):
    """Google's free web page (no key): GET /m?sl=&tl=&q=, the translation read from the page's
    `result-container`, one string per call. Unofficial: fine to try, unreliable at volume."""

    default_url = "https://translate.google.com"
    code_table = "GOOGLE_LANGUAGES_TO_CODES"

    def translate_batch(self, texts: Sequence[str], source: str, target: str,
                        deadline: float) -> list[str | None]:
        from bs4 import BeautifulSoup

        text = only_text(texts, 5000)  # what the page takes
        page = self.http.request("GET", self.base + "/m", deadline, html=True,
                                 params={"sl": source, "tl": target, "q": text})
        soup = BeautifulSoup(page, "html.parser")
        found = soup.find("div", {"class": "result-container"}) or soup.find("div", {"class": "t0"})
        if found is None:
            raise TranslationError("no_translation")
        return strings([found.get_text(strip=True)], 1)


LLM_INSTRUCTIONS = (
    "You translate customer-service messages. The user message is JSON: "
    '{"source": <ISO 639-1 code>, "target": <ISO 639-1 code>, "texts": [<string>, ...]}. '
    'Answer with JSON only: {"texts": [<translation>, ...]}, one translation per text, in the '
    "same order. Keep every token like {0} or {1} exactly as it is, where it belongs in the "
    "translated sentence. Translate only; add nothing.")


class LlmClient(HttpProvider):
    """An OpenAI-compatible chat completions endpoint (watsonx.ai's gateway, vLLM, Ollama).

    One call per reply, every string at once. A wrong count fails every string of the answer;
    a translation that lost or invented a `{n}` token fails that string only (fail open).
    `response_format` json_object is asked for until a server refuses it (400), then never again.
    """

    batch_size = 10_000  # no list limit of its own: the whole reply in one call

    def __init__(self, name: str, settings: Settings) -> None:
        super().__init__(name, settings)
        self.model = settings.translator_model
        self.json_mode = True

    def translate_batch(self, texts: Sequence[str], source: str, target: str,
                        deadline: float) -> list[str | None]:
        content = json.dumps({"source": source, "target": target, "texts": list(texts)},
                             ensure_ascii=False)
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        body: dict[str, Any] = {"model": self.model, "temperature": 0,
                                "messages": [{"role": "system", "content": LLM_INSTRUCTIONS},
                                             {"role": "user", "content": content}]}
        json_mode = self.json_mode
        if json_mode:
            body["response_format"] = {"type": "json_object"}
        try:
            answer = self.post("/chat/completions", deadline, headers=headers, json=body)
        except TranslationError as exc:
            if not (json_mode and exc.reason == "http_400"):
                raise
            self.json_mode = False  # a server without JSON mode: the instructions ask for JSON
            del body["response_format"]
            answer = self.post("/chat/completions", deadline, headers=headers, json=body)
        try:
            reply = json.loads(answer["choices"][0]["message"]["content"])
        except (ValueError, TypeError):
            raise TranslationError("invalid_answer") from None
        translated = reply.get("texts") if isinstance(reply, dict) else None
        if not isinstance(translated, list) or len(translated) != len(texts):
            raise TranslationError("rejected_answer")  # wrong count: no string can be trusted
        return [out if isinstance(out, str) and out.strip() and same_tokens(text, out) else None
                for text, out in zip(texts, strings(translated, len(texts)))]


def same_tokens(text: str, translation: str) -> bool:
    """Whether a translation kept exactly the `{n}` mask tokens of its text."""
    return sorted(TOKEN.findall(text)) == sorted(TOKEN.findall(translation))


CLIENTS: dict[str, type[HttpProvider]] = {"libre": LibreClient, "deepl": DeeplClient,
                                          "microsoft": MicrosoftClient,
                                          "google": GoogleCloudClient, "llm": LlmClient,
                                          "mymemory": MyMemoryClient}


def build_client(settings: Settings) -> HttpProvider:
    """The kit's client for TRANSLATOR: Google Cloud with a key, Google's web page without one.
    Builds nothing that calls out."""
    if settings.translator == "google" and not settings.translator_api_key:
        return GoogleWebClient("google", settings)
    return CLIENTS[settings.translator](settings.translator, settings)
