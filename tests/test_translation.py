"""The translator through the kit's LibreTranslate client, against a LibreTranslate-compatible
server on loopback: memory, cache (in process and Redis), batching, deadline, breaker, fail-open.
The other providers' clients: tests/test_providers.py."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from typing import Any

import pytest

from handlers import SettingsError
from handlers.translation import CircuitBreaker, Provider, Translator, map_code
from handlers.translation.memory import TranslationCache, TranslationMemory
from testsupport.libre_server import mark

SPANISH = "Hola, necesito ayuda con mi pedido"


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def translator_for(make_app, libre_server):
    """Build an app translating through the test server and return its Translator."""
    def build(**settings: Any) -> Any:
        settings.setdefault("TRANSLATOR", "libre")
        settings.setdefault("TRANSLATOR_URL", libre_server.url)
        return make_app(**settings).extensions["webhooks"].translator

    return build


def wait_until(condition, seconds: float = 10.0) -> None:
    """Poll for something a background thread does (a hung call ending); fail if it never does."""
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("condition never became true")
        time.sleep(0.01)


def test_translates_through_the_client_and_the_server(translator_for, libre_server):
    translator = translator_for()
    assert translator.translate(SPANISH, "es", "en", 2.0) == "Hello, I need help with my order"
    assert translator.translate("Otra frase", "es", "en", 2.0) == mark("Otra frase", "es", "en")
    request = libre_server.requests[0]
    assert (request["q"], request["source"], request["target"], request["format"]) == (
        SPANISH, "es", "en", "text")
    assert "api_key" not in request  # a self-hosted server without keys gets none
    assert translator.stats()["calls"] == 2


def test_api_key_is_sent_when_configured(make_app, libre_server):
    libre_server.required_key = "k-123"
    app = make_app(TRANSLATOR="libre", TRANSLATOR_URL=libre_server.url + "translate",
                   TRANSLATOR_API_KEY="k-123")
    translator = app.extensions["webhooks"].translator
    assert translator.translate("gracias", "es", "en", 2.0) == "Thank you"
    assert libre_server.requests[0]["api_key"] == "k-123"


def test_same_language_and_empty_texts_call_nothing(translator_for, libre_server):
    translator = translator_for()
    assert translator.translate_many(["Hello"], "en", "en", 2.0) == {}
    assert translator.translate_many(["", "   "], "es", "en", 2.0) == {}
    assert translator.translate_many([], "es", "en", 2.0) == {}
    assert libre_server.calls == 0


def test_distinct_strings_go_out_once_in_one_request(translator_for, libre_server):
    translator = translator_for(TRANSLATION_CONCURRENCY="8")
    texts = [f"frase número {i}" for i in range(12)]
    result = translator.translate_many(texts + texts[:4], "es", "en", 10.0)
    assert result == {text: mark(text, "es", "en") for text in texts}
    assert libre_server.calls == 12
    assert libre_server.http_requests == 1  # LibreTranslate takes `q` as a list
    assert libre_server.requests[0]["q"] == texts


def test_a_reply_longer_than_a_batch_goes_out_in_concurrent_batches(translator_for, libre_server):
    translator = translator_for(TRANSLATION_CONCURRENCY="8")
    libre_server.delay(200)
    texts = [f"frase número {i}" for i in range(120)]
    result = translator.translate_many(texts, "es", "en", 10.0)
    assert len(result) == 120
    assert libre_server.http_requests == 3  # 50 + 50 + 20
    assert libre_server.max_in_flight == 3


def test_repeated_strings_come_from_the_cache(translator_for, libre_server):
    translator = translator_for()
    texts = ["uno", "dos", "tres"]
    first = translator.translate_many(texts, "es", "en", 2.0)
    second = translator.translate_many(texts, "es", "en", 2.0)
    assert first == second == {t: mark(t, "es", "en") for t in texts}
    assert libre_server.calls == 3
    assert translator.stats()["cache_hits"] == 3
    # Another language pair is another cache entry.
    translator.translate_many(["uno"], "es", "fr", 2.0)
    assert libre_server.calls == 4


def test_cache_size_zero_disables_the_process_cache(translator_for, libre_server):
    translator = translator_for(TRANSLATION_CACHE_SIZE="0")
    translator.translate("uno", "es", "en", 2.0)
    translator.translate("uno", "es", "en", 2.0)
    assert libre_server.calls == 2


@pytest.mark.redis
def test_redis_cache_is_shared_between_apps(translator_for, libre_server, redis_url, redis_prefix):
    one = translator_for(REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix)
    other = translator_for(REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix)
    assert one.translate(SPANISH, "es", "en", 2.0) == "Hello, I need help with my order"
    assert other.translate(SPANISH, "es", "en", 2.0) == "Hello, I need help with my order"
    assert libre_server.calls == 1
    assert other.stats()["cache_hits"] == 1
    client = one.cache.redis.client
    keys = client.keys(redis_prefix + "tr:*")
    assert len(keys) == 1
    assert SPANISH not in keys[0]  # keys are hashes; the text is only in the value
    assert 0 < client.ttl(keys[0]) <= 24 * 3600
    client.delete(*keys)


def test_redis_down_still_translates(translator_for, libre_server):
    translator = translator_for(REDIS_URL=f"redis://127.0.0.1:{unused_port()}/0")
    assert translator.translate("gracias", "es", "en", 2.0) == "Thank you"
    assert translator.translate("gracias", "es", "en", 2.0) == "Thank you"
    assert libre_server.calls == 1  # the process cache still works


def write_memory(folder, name: str, entries: dict[str, str]) -> str:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(json.dumps(entries, ensure_ascii=False), encoding="utf-8")
    return str(folder)


def test_translation_memory_wins_over_the_provider(translator_for, libre_server, tmp_path):
    folder = write_memory(tmp_path / "tm", "es-en.json",
                          {"Quiero hablar con un agente": "I want to talk to a human agent"})
    write_memory(tmp_path / "tm", "en-es.json", {"Track my order": "Seguir mi pedido"})
    translator = translator_for(TRANSLATION_MEMORY=folder)
    result = translator.translate_many(["quiero  hablar con un AGENTE", "otra cosa"], "es", "en",
                                       2.0)
    assert result == {"quiero  hablar con un AGENTE": "I want to talk to a human agent",
                      "otra cosa": mark("otra cosa", "es", "en")}
    assert libre_server.texts() == ["otra cosa"]
    assert translator.translate("Track my order", "en", "es", 2.0) == "Seguir mi pedido"
    assert translator.stats()["memory_hits"] == 2
    assert libre_server.calls == 1


def test_translation_memory_works_without_a_provider(make_app, tmp_path):
    folder = write_memory(tmp_path / "tm", "fr-en.json", {"Bonjour": "Hello"})
    translator = make_app(TRANSLATION_MEMORY=folder).extensions["webhooks"].translator
    assert translator.name == "none"
    assert translator.translate_many(["bonjour", "au revoir"], "fr", "en", 1.0) == {
        "bonjour": "Hello"}


@pytest.mark.parametrize("name, content, error", [
    ("es-en.json", "{not json", "not valid JSON"),
    ("es-en.json", '["a list"]', "must be one JSON object"),
    ("es-en.json", '{"hola": 3}', "must be one JSON object"),
    ("spanish.json", '{"hola": "hello"}', "is not named <source>-<target>.json"),
])
def test_a_malformed_memory_file_stops_the_start(make_app, tmp_path, name, content, error):
    folder = tmp_path / "tm"
    folder.mkdir()
    (folder / name).write_text(content)
    with pytest.raises(SettingsError, match=error):
        make_app(TRANSLATION_MEMORY=str(folder))


def test_provider_error_fails_open_and_logs_once_without_text(translator_for, libre_server, caplog):
    translator = translator_for()
    libre_server.fail_with(500)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="handlers.translation"):
        assert translator.translate_many(["uno secreto", "dos secreto"], "es", "en", 2.0) == {}
    lines = [r.getMessage() for r in caplog.records if r.name == "handlers.translation"]
    assert len(lines) == 1
    assert "2 of 2 strings left untranslated (http_500=2)" in lines[0]
    assert "secreto" not in caplog.text
    # One request for both strings, refused; then each string alone (one may be the cause).
    assert translator.stats()["failures"] == 3
    assert libre_server.http_requests == 3


def test_one_refused_string_does_not_cost_the_others(translator_for, libre_server):
    translator = translator_for()
    libre_server.fail_for("dos", 500)
    result = translator.translate_many(["uno", "dos", "tres"], "es", "en", 2.0)
    assert result == {"uno": mark("uno", "es", "en"), "tres": mark("tres", "es", "en")}
    assert libre_server.http_requests == 1 + 3


def test_refused_connection_fails_open(make_app):
    url = f"http://127.0.0.1:{unused_port()}/"
    translator = make_app(TRANSLATOR="libre", TRANSLATOR_URL=url).extensions["webhooks"].translator
    assert translator.translate("gracias", "es", "en", 2.0) is None


def test_hung_provider_misses_the_deadline_and_frees_its_thread(translator_for, libre_server):
    translator = translator_for(BREAKER_FAILURES="10")
    libre_server.hang(30)
    started = time.monotonic()
    assert translator.translate("gracias", "es", "en", 0.2) is None
    assert translator.stats()["timeouts"] == 1
    assert "failures" not in translator.stats()
    # The client's own read timeout ends the call: the thread is back within the deadline + 1 s.
    wait_until(lambda: translator.pool.stuck == 0, seconds=1.5)
    assert time.monotonic() - started < 0.2 + 1.0
    libre_server.answer_normally()
    assert translator.translate("gracias", "es", "en", 2.0) == "Thank you"
    assert libre_server.calls == 2


class BlockingProvider(Provider):
    """A provider with no timeout of its own (like deep-translator's): blocks until released."""

    name = "blocking"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def translate(self, text: str, source: str, target: str) -> str:
        self.calls += 1
        self.release.wait(30)
        return text.upper()


def test_when_every_thread_is_stuck_calls_fail_at_once():
    provider = BlockingProvider()
    translator = Translator(provider, memory=TranslationMemory(), cache=TranslationCache(100, 60),
                            concurrency=2, breaker_failures=50, breaker_cooldown=1)
    threads_before = threading.active_count()
    try:
        assert translator.translate_many(["uno", "dos", "tres"], "es", "en", 0.2) == {}
        assert translator.pool.stuck == 2
        # No thread left: the next request does not queue behind the hung calls, it fails at once.
        notes: dict[str, Any] = {}
        for _ in range(5):
            assert translator.translate_many(["cuatro", "cinco"], "es", "en", 5.0,
                                             notes=notes) == {}
        assert notes == {"translator_stuck_threads": 2}  # in the request's log line
        assert provider.calls == 2
        assert threading.active_count() - threads_before <= 2  # never past the pool's size
    finally:
        provider.release.set()
    wait_until(lambda: translator.pool.stuck == 0)
    assert translator.translate("tres", "es", "en", 2.0) == "TRES"


def test_the_breaker_opens_after_failures_in_a_row_and_closes_after_a_good_probe(
        translator_for, libre_server, caplog):
    translator = translator_for(BREAKER_FAILURES="3", BREAKER_COOLDOWN="0.2",
                                TRANSLATION_CONCURRENCY="1")
    libre_server.fail_with(500)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="handlers.translation"):
        for word in ("uno", "dos", "tres"):
            assert translator.translate(word, "es", "en", 2.0) is None
        assert translator.breaker.state == "open"
        assert translator.translate("cuatro", "es", "en", 2.0) is None
    assert libre_server.calls == 3  # open: no call went out
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert sum("circuit open" in line for line in warnings) == 1  # said once, when it opened
    assert not any("circuit_open" in line for line in warnings)
    libre_server.answer_normally()
    time.sleep(0.25)  # the cool-down
    # Half-open: one probe goes out (the request's strings in one batch) and closes it.
    notes: dict[str, Any] = {}
    result = translator.translate_many(["cinco", "seis"], "es", "en", 2.0, notes=notes)
    assert len(result) == 2 and libre_server.http_requests == 4
    assert notes == {}  # closed again: nothing worth a note
    assert translator.breaker.state == "closed"
    assert translator.translate("siete", "es", "en", 2.0) == mark("siete", "es", "en")


def test_a_failed_probe_opens_the_breaker_again(translator_for, libre_server):
    translator = translator_for(BREAKER_FAILURES="2", BREAKER_COOLDOWN="0.2")
    libre_server.fail_with(503)
    translator.translate("uno", "es", "en", 2.0)
    translator.translate("dos", "es", "en", 2.0)
    assert translator.breaker.state == "open"
    time.sleep(0.25)
    assert translator.translate("tres", "es", "en", 2.0) is None  # the probe, failing
    assert translator.breaker.state == "open"
    assert libre_server.calls == 3
    assert translator.translate("cuatro", "es", "en", 2.0) is None
    assert libre_server.calls == 3


def test_timeouts_count_against_the_breaker(translator_for, libre_server):
    translator = translator_for(BREAKER_FAILURES="2", BREAKER_COOLDOWN="60")
    libre_server.hang(30)
    translator.translate("uno", "es", "en", 0.2)
    notes: dict[str, Any] = {}
    translator.translate("dos", "es", "en", 0.2, notes=notes)
    assert translator.breaker.state == "open"
    assert notes["translator_breaker"] == "open"
    libre_server.answer_normally()


def test_refused_connections_count_against_the_breaker(make_app):
    url = f"http://127.0.0.1:{unused_port()}/"
    translator = make_app(TRANSLATOR="libre", TRANSLATOR_URL=url, BREAKER_FAILURES="2"
                          ).extensions["webhooks"].translator
    translator.translate("uno", "es", "en", 1.0)
    translator.translate("dos", "es", "en", 1.0)
    assert translator.breaker.state == "open"


def test_a_rejected_text_does_not_count_against_the_breaker(translator_for, libre_server):
    translator = translator_for(BREAKER_FAILURES="2")
    libre_server.fail_with(400)
    for word in ("uno", "dos", "tres"):
        assert translator.translate(word, "es", "en", 2.0) is None
    assert translator.breaker.state == "closed"


def test_breaker_state_machine_with_a_clock():
    now = [0.0]
    breaker = CircuitBreaker("p", failures=2, cooldown=10, clock=lambda: now[0])
    assert breaker.allow() == (True, False)
    breaker.failure()
    breaker.success()  # a success resets the count: failures must be in a row
    breaker.failure()
    assert breaker.state == "closed"
    breaker.failure()
    assert breaker.state == "open" and breaker.allow() == (False, False)
    now[0] = 10.0
    assert breaker.allow() == (True, True)     # the probe
    assert breaker.allow() == (False, False)   # only one at a time
    breaker.release_probe()                    # it never ran
    assert breaker.allow() == (True, True)
    breaker.success()
    assert breaker.state == "closed" and breaker.opened == 1


def test_the_server_language_list_is_read_once_so_nl_and_sv_work(translator_for, libre_server):
    translator = translator_for()
    text = "Waar is mijn bestelling?"
    assert translator.translate(text, "nl", "en", 2.0) == mark(text, "nl", "en")
    assert translator.translate("Tack", "sv", "en", 2.0) == mark("Tack", "sv", "en")
    assert libre_server.language_requests == 1


def test_a_language_the_server_lacks_fails_open_without_a_translate_call(
        translator_for, libre_server):
    translator = translator_for()
    assert translator.translate("Missä tilaukseni on?", "fi", "en", 2.0) is None
    assert libre_server.http_requests == 0 and libre_server.language_requests == 1
    assert not translator.can_translate("fi")  # known now: the next request does not try


def test_the_language_list_is_read_again_after_a_refusal(translator_for, libre_server):
    translator = translator_for()
    assert translator.translate("Tack", "sv", "en", 2.0) == mark("Tack", "sv", "en")
    libre_server.languages = ("en", "es")  # the server stops serving Swedish: 400
    assert translator.translate("Hej", "sv", "en", 2.0) is None
    assert translator.translate("Hej då", "sv", "en", 2.0) is None  # the list read again
    assert libre_server.language_requests == 2
    assert not translator.can_translate("sv")
    assert libre_server.http_requests == 2


def test_translator_none_never_calls_out(make_app, libre_server):
    translator = make_app(TRANSLATOR_URL=libre_server.url).extensions["webhooks"].translator
    assert translator.translate_many(["hola", "adiós"], "es", "en", 1.0) == {}
    assert libre_server.calls == 0


def test_building_the_app_starts_no_thread(make_app, libre_server):
    before = threading.active_count()
    make_app(TRANSLATOR="libre", TRANSLATOR_URL=libre_server.url)
    assert threading.active_count() == before  # safe to build before gunicorn forks


@pytest.mark.parametrize("provider, language, code", [
    ("google", "zh", "zh-CN"), ("google", "he", "iw"), ("google", "es", "es"),
    ("mymemory", "es", "es-ES"), ("mymemory", "zh", "zh-CN"), ("mymemory", "en", "en-GB"),
    ("mymemory", "he", "he-IL"), ("libre", "zh", "zh"), ("deepl", "zh", "zh"),
    ("deepl", "he", None), ("libre", "sv", None),
])
def test_language_codes_are_mapped_per_provider(provider, language, code):
    from deep_translator import constants

    tables = {"google": constants.GOOGLE_LANGUAGES_TO_CODES,
              "mymemory": constants.MY_MEMORY_LANGUAGES_TO_CODES,
              "libre": constants.LIBRE_LANGUAGES_TO_CODES,
              "deepl": constants.DEEPL_LANGUAGE_TO_CODE}
    assert map_code(language, tables[provider].values()) == code


@pytest.mark.parametrize("name", ["google", "mymemory", "deepl", "microsoft", "llm"])
def test_every_provider_builds_without_calling_out(make_app, name):
    settings = {"TRANSLATOR": name}
    if name in ("deepl", "microsoft"):
        settings["TRANSLATOR_API_KEY"] = "key:fx"
    if name == "llm":
        settings.update(TRANSLATOR_URL="http://127.0.0.1:9/v1", TRANSLATOR_MODEL="m")
    translator = make_app(**settings).extensions["webhooks"].translator
    assert translator.name == name
    assert translator.can_translate("es")


def test_a_memory_entry_with_numbers_matches_the_masked_reply(make_app, libre_server, tmp_path):
    """Numbers are masked before the translator looks anything up, so an entry written with its
    numbers is kept in masked form: it still wins, and its numbers come back in their places."""
    folder = write_memory(tmp_path / "tm", "en-es.json", {
        "Press 1 for sales, 2 for support": "Pulse 1 para ventas, 2 para soporte",
        "Order 12 leaves at 20:30": "A las 20:30 sale el pedido 12"})
    app = make_app(TRANSLATOR="libre", TRANSLATOR_URL=libre_server.url, TRANSLATION_MEMORY=folder)
    body = {"event": {"name": "message_processed"}, "payload": {
        "output": {"generic": [{"response_type": "text", "text": "Press 1 for sales, 2 for support"},
                               {"response_type": "text", "text": "Order 7 leaves at 9:15"}]},
        "context": {"skills": {"actions skill": {"skill_variables": {"customer_language": "es"}}}}}}
    answer = app.test_client().post("/webhooks/postmessage", json=body).get_json()
    texts = [item["text"] for item in answer["payload"]["output"]["generic"]]
    assert texts == ["Pulse 1 para ventas, 2 para soporte", "A las 9:15 sale el pedido 7"]
    assert libre_server.calls == 0
