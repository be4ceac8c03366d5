"""The kit's provider clients against stand-ins on loopback that speak each provider's API
(tests/provider_stubs.py, testsupport/libre_server.py): what reached them (path, headers, body, that
no text and no key is in any URL), how many requests and connections, a provider that never answers,
and one that recovers."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any, Callable
from urllib.parse import quote, quote_plus, urlsplit

import pytest

from handlers import SettingsError
from handlers.settings import load_settings
from handlers.translation.transport import ProviderSession
from testsupport.libre_server import mark
from tests.provider_stubs import (ChatStub, DeeplStub, GoogleStub, GoogleWebStub, MicrosoftStub,
                                  MyMemoryStub, SilentServer)

KEY = "sk-secret-key-123"
TEXTS = [f"Line {i} of the reply" for i in range(12)]


@pytest.fixture
def stub() -> Callable[..., Any]:
    """Start a stand-in (a class from provider_stubs) and stop it after the test."""
    started: list[Any] = []

    def start(kind: type, **options: Any) -> Any:
        server = kind(**options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def translator(make_app: Callable[..., Any], **settings: Any) -> Any:
    return make_app(**settings).extensions["webhooks"].translator


def assert_clean_urls(paths: list[str], texts: list[str], key: str | None = KEY) -> None:
    """No text (raw or URL-encoded) and no key in any request target."""
    for path in paths:
        for secret in [*texts, *([key] if key else [])]:
            for form in (secret, quote(secret), quote_plus(secret)):
                assert form not in path


PROVIDERS = {
    "deepl": (DeeplStub, {"TRANSLATOR_API_KEY": KEY}, "/v2/translate"),
    "microsoft": (MicrosoftStub, {"TRANSLATOR_API_KEY": KEY},
                  "/translate?api-version=3.0&from=en&to=es"),
    "google": (GoogleStub, {"TRANSLATOR_API_KEY": KEY}, "/language/translate/v2"),
    "llm": (ChatStub, {"TRANSLATOR_API_KEY": KEY, "TRANSLATOR_MODEL": "granite-3-8b"},
            "/v1/chat/completions"),
}


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_a_twelve_string_reply_is_one_request_with_nothing_in_the_url(make_app, stub, name):
    kind, settings, path = PROVIDERS[name]
    server = stub(kind, key=KEY)
    base = server.url + ("/v1" if name == "llm" else "")
    tr = translator(make_app, TRANSLATOR=name, TRANSLATOR_URL=base, **settings)
    assert tr.translate_many(TEXTS, "en", "es", 3.0) == {t: mark(t, "en", "es") for t in TEXTS}
    assert len(server.seen) == 1 and server.connections == 1
    [seen] = server.seen
    assert seen.path == path
    assert seen.headers["Content-Type"] == "application/json"
    assert server.texts_of(seen) == TEXTS
    assert_clean_urls([seen.path], TEXTS)


def test_deepl_sends_formality_and_glossary_and_splits_at_fifty(make_app, stub):
    server = stub(DeeplStub, key=KEY)
    tr = translator(make_app, TRANSLATOR="deepl", TRANSLATOR_URL=server.url,
                    TRANSLATOR_API_KEY=KEY, TRANSLATOR_FORMALITY="prefer_less",
                    TRANSLATOR_GLOSSARY_ID="gl-42")
    texts = [f"string {i}" for i in range(60)]
    assert len(tr.translate_many(texts, "es", "en", 3.0)) == 60
    assert sorted(len(seen.body["text"]) for seen in server.seen) == [10, 50]
    body = server.seen[0].body
    assert (body["source_lang"], body["target_lang"]) == ("ES", "EN-US")
    assert (body["formality"], body["glossary_id"]) == ("prefer_less", "gl-42")
    assert server.seen[0].headers["Authorization"] == f"DeepL-Auth-Key {KEY}"


def test_deepl_sends_no_formality_by_default_and_picks_its_host_by_key(make_app, stub):
    server = stub(DeeplStub, key=KEY)
    tr = translator(make_app, TRANSLATOR="deepl", TRANSLATOR_URL=server.url,
                    TRANSLATOR_API_KEY=KEY)
    tr.translate("hello", "en", "fr", 3.0)
    assert "formality" not in server.seen[0].body and "glossary_id" not in server.seen[0].body
    free = translator(make_app, TRANSLATOR="deepl", TRANSLATOR_API_KEY="abc:fx").provider
    pro = translator(make_app, TRANSLATOR="deepl", TRANSLATOR_API_KEY="abc").provider
    assert (free.base, pro.base) == ("https://api-free.deepl.com", "https://api.deepl.com")


def test_a_wrong_key_fails_open(make_app, stub):
    server = stub(DeeplStub, key=KEY)
    tr = translator(make_app, TRANSLATOR="deepl", TRANSLATOR_URL=server.url,
                    TRANSLATOR_API_KEY="wrong")
    assert tr.translate("hello", "en", "es", 3.0) is None
    assert tr.breaker.state == "closed"  # a refused key is no outage


def test_microsoft_sends_the_region_maps_chinese_and_splits_at_a_hundred(make_app, stub):
    server = stub(MicrosoftStub, key=KEY)
    server.region = "westeurope"
    tr = translator(make_app, TRANSLATOR="microsoft", TRANSLATOR_URL=server.url,
                    TRANSLATOR_API_KEY=KEY, TRANSLATOR_REGION="westeurope")
    texts = [f"string {i}" for i in range(150)]
    assert len(tr.translate_many(texts, "en", "zh", 3.0)) == 150
    assert sorted(len(seen.body) for seen in server.seen) == [50, 100]
    assert all(seen.query["to"] == "zh-Hans" for seen in server.seen)
    assert server.seen[0].headers["Ocp-Apim-Subscription-Region"] == "westeurope"


# The free endpoints: one string per GET (their only form, text in the query, no key), through
# the kit's pooled session like every other provider.
FREE = {"mymemory": (MyMemoryStub, "/get", {"langpair": "en-GB|es-ES"}),
        "google": (GoogleWebStub, "/m", {"sl": "en", "tl": "es"})}


@pytest.mark.parametrize("name", sorted(FREE))
def test_the_free_endpoints_go_through_the_kits_session(make_app, stub, name):
    kind, path, languages = FREE[name]
    server = stub(kind)
    tr = translator(make_app, TRANSLATOR=name, TRANSLATOR_URL=server.url)
    assert tr.provider.batch_size == 1
    texts = ["Tom & Jerry <3 you", "Your order has shipped"]
    assert tr.translate_many(texts, "en", "es", 3.0) == {t: mark(t, "en", "es") for t in texts}
    assert [seen.method for seen in server.seen] == ["GET", "GET"]
    for seen in server.seen:
        assert urlsplit(seen.path).path == path
        assert {k: seen.query[k] for k in languages} == languages
    assert sorted(server.texts()) == sorted(texts)
    for turn in range(20):
        assert tr.translate(f"turn {turn}", "en", "es", 3.0) == mark(f"turn {turn}", "en", "es")
    assert len(server.seen) == 22
    assert server.connections <= 2  # the two concurrent calls' connections, kept alive


def test_a_spent_mymemory_quota_fails_open_and_never_reaches_the_customer(make_app, stub):
    server = stub(MyMemoryStub)
    server.quota_finished = True
    tr = translator(make_app, TRANSLATOR="mymemory", TRANSLATOR_URL=server.url,
                    BREAKER_FAILURES="2")
    assert tr.translate_many(["one", "two"], "en", "es", 3.0) == {}
    assert tr.breaker.state == "open"  # MyMemory's 429 in a 200 is an outage like any other
    assert tr.stats()["failures"] == 2


def test_texts_over_a_free_endpoints_limit_are_not_sent(make_app, stub):
    server = stub(MyMemoryStub)
    tr = translator(make_app, TRANSLATOR="mymemory", TRANSLATOR_URL=server.url)
    assert tr.translate("x" * 501, "en", "es", 3.0) is None
    assert server.seen == [] and tr.breaker.state == "closed"


def test_google_v2_body(make_app, stub):
    server = stub(GoogleStub, key=KEY)
    tr = translator(make_app, TRANSLATOR="google", TRANSLATOR_URL=server.url,
                    TRANSLATOR_API_KEY=KEY)
    assert tr.translate("hello", "en", "he", 3.0) == mark("hello", "en", "iw")
    body = server.seen[0].body
    assert (body["q"], body["source"], body["target"], body["format"]) == (
        ["hello"], "en", "iw", "text")


def test_llm_wire_format(make_app, stub):
    server = stub(ChatStub, key=KEY)
    tr = translator(make_app, TRANSLATOR="llm", TRANSLATOR_URL=server.url + "/v1",
                    TRANSLATOR_API_KEY=KEY, TRANSLATOR_MODEL="granite-3-8b")
    texts = ["Your balance is {0}", "Call {0} or write to {1}"]
    assert tr.translate_many(texts, "en", "de", 3.0) == {t: mark(t, "en", "de") for t in texts}
    body = server.seen[0].body
    assert body["model"] == "granite-3-8b"
    assert body["response_format"] == {"type": "json_object"}
    assert body["messages"][0]["role"] == "system"
    assert json.loads(body["messages"][-1]["content"]) == {
        "source": "en", "target": "de", "texts": texts}
    assert server.seen[0].headers["Authorization"] == f"Bearer {KEY}"


def test_llm_answers_with_a_lost_token_or_the_wrong_count_fail_open(make_app, stub):
    server = stub(ChatStub, key=KEY)
    tr = translator(make_app, TRANSLATOR="llm", TRANSLATOR_URL=server.url + "/v1",
                    TRANSLATOR_API_KEY=KEY, TRANSLATOR_MODEL="m")
    texts = ["Pay {0} today", "Thanks for waiting"]
    server.mode = "drop_token"  # the first translation loses its token: only it fails
    assert tr.translate_many(texts, "en", "es", 3.0) == {texts[1]: mark(texts[1], "en", "es")}
    server.mode = "wrong_count"  # no string can be matched to its translation
    assert tr.translate_many(["one", "two"], "en", "es", 3.0) == {}
    assert tr.breaker.state == "closed"


def test_libre_sends_json_with_the_key_in_the_body(make_app, libre_server):
    libre_server.required_key = KEY
    tr = translator(make_app, TRANSLATOR="libre", TRANSLATOR_URL=libre_server.url,
                    TRANSLATOR_API_KEY=KEY)
    texts = ["hola", "¿dónde está mi pedido número 4?"]
    assert len(tr.translate_many(texts, "es", "en", 3.0)) == 2
    request = libre_server.requests[-1]
    assert (request["q"], request["api_key"], request["format"]) == (texts, KEY, "text")


def test_twenty_sequential_turns_open_at_most_two_connections(make_app, libre_server):
    tr = translator(make_app, TRANSLATOR="libre", TRANSLATOR_URL=libre_server.url)
    for turn in range(20):
        assert len(tr.translate_many([f"frase {turn}", f"otra {turn}"], "es", "en", 3.0)) == 2
    assert libre_server.http_requests == 20
    assert libre_server.connections <= 2


@pytest.mark.parametrize("name", ["libre", "mymemory", "google"])
def test_a_silent_provider_ends_the_call_and_frees_the_thread(make_app, stub, name):
    server = stub(SilentServer)
    tr = translator(make_app, TRANSLATOR=name, TRANSLATOR_URL=server.url,
                    TRANSLATION_TIMEOUT="0.5", BREAKER_FAILURES="50")
    started = time.monotonic()
    assert tr.translate_many(["uno", "dos"], "es", "en", 0.5) == {}
    assert time.monotonic() - started < 0.5 + 1.0
    end = started + 0.5 + 1.0
    while tr.pool.stuck and time.monotonic() < end:
        time.sleep(0.02)
    assert tr.pool.stuck == 0  # the client's read timeout released it
    assert tr.stats()["timeouts"] >= 1 and not tr.stats().get("failures")
    assert server.connections >= 1


def test_translation_resumes_by_itself_after_an_outage(make_app, stub):
    server = stub(DeeplStub, key=KEY)
    tr = translator(make_app, TRANSLATOR="deepl", TRANSLATOR_URL=server.url,
                    TRANSLATOR_API_KEY=KEY, BREAKER_FAILURES="2", BREAKER_COOLDOWN="1")
    server.status = 503
    for word in ("one", "two"):
        assert tr.translate(word, "en", "es", 1.0) is None
    assert tr.breaker.state == "open"
    server.recover()
    recovered = time.monotonic()
    result = None
    for _ in range(100):  # bounded: 100 x 50 ms
        result = tr.translate("three", "en", "es", 1.0)
        if result is not None:
            break
        time.sleep(0.05)
    assert result == mark("three", "en", "es")
    assert time.monotonic() - recovered < 5.0
    assert tr.breaker.state == "closed"


def test_a_hung_provider_opens_the_breaker_and_one_probe_goes_at_a_time(make_app, stub):
    server = stub(GoogleStub, key=KEY)
    tr = translator(make_app, TRANSLATOR="google", TRANSLATOR_URL=server.url,
                    TRANSLATOR_API_KEY=KEY, BREAKER_FAILURES="2", BREAKER_COOLDOWN="0.3")
    server.hang = 30
    for word in ("one", "two"):
        assert tr.translate(word, "en", "es", 0.3) is None
    notes: dict[str, Any] = {}
    tr.translate("three", "en", "es", 0.3, notes=notes)
    assert notes["translator_breaker"] == "open"
    assert len(server.seen) == 2
    time.sleep(0.35)  # the cool-down: the next calls are probes, one at a time
    threads = [threading.Thread(target=tr.translate, args=(f"w{i}", "en", "es", 0.5))
               for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert len(server.seen) == 3  # one probe reached it; the other three were held back
    server.recover()
    time.sleep(0.35)
    assert tr.translate("four", "en", "es", 1.0) == mark("four", "en", "es")


def test_the_session_is_made_again_after_a_fork():
    sessions = ProviderSession(4)
    parent = sessions.session
    assert sessions.session is parent
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a session of its own, never the parent's sockets
        os.write(write, b"1" if sessions.session is not parent else b"0")
        os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"1"
    os.close(read)
    os.waitpid(pid, 0)


@pytest.mark.parametrize("settings, error", [
    ({"TRANSLATOR": "llm", "TRANSLATOR_URL": "http://127.0.0.1:9/v1"}, "TRANSLATOR_MODEL"),
    ({"TRANSLATOR": "llm", "TRANSLATOR_MODEL": "m"}, "TRANSLATOR_URL"),
    ({"TRANSLATOR_FORMALITY": "polite"}, "TRANSLATOR_FORMALITY"),
])
def test_translator_settings_are_checked(settings, error):
    with pytest.raises(SettingsError, match=error):
        load_settings(settings, environ={})


def test_the_breaker_state_is_in_the_post_message_log_line(make_app, stub, caplog):
    server = stub(DeeplStub, key=KEY)
    server.status = 503
    client = make_app(TRANSLATOR="deepl", TRANSLATOR_URL=server.url, TRANSLATOR_API_KEY=KEY,
                      BREAKER_FAILURES="1").test_client()
    payload = {"output": {"generic": [{"response_type": "text", "text": "Hello there"}]},
               "context": {"global": {"session_id": "s-1"}, "skills": {"actions skill": {
                   "skill_variables": {"customer_language": "es"}}}}}
    body = json.dumps({"event": {"name": "message_processed"}, "options": {},
                       "payload": payload})
    with caplog.at_level(logging.INFO, logger="handlers.request"):
        answer = client.post("/webhooks/postmessage", data=body)
    assert answer.status_code == 200
    assert answer.get_json()["payload"]["output"]["generic"][0]["text"] == "Hello there"
    line = next(r for r in caplog.records if r.name == "handlers.request")
    assert line.fields["translator_breaker"] == "open"
    assert KEY not in caplog.text and "Hello there" not in caplog.text


def test_an_llm_server_without_json_mode_is_asked_without_it(make_app, stub):
    server = stub(ChatStub, key=KEY)
    server.json_mode = False
    tr = translator(make_app, TRANSLATOR="llm", TRANSLATOR_URL=server.url + "/v1",
                    TRANSLATOR_API_KEY=KEY, TRANSLATOR_MODEL="m")
    assert tr.translate_many(["one", "two"], "en", "es", 3.0) == {
        "one": mark("one", "en", "es"), "two": mark("two", "en", "es")}
    assert tr.translate("three", "en", "es", 3.0) == mark("three", "en", "es")
    assert ["response_format" in seen.body for seen in server.seen] == [True, False, False]
