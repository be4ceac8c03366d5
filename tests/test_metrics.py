"""Prometheus metrics at /metrics (METRICS=on): off by default, the bearer token, what each
webhook, the translator and the log store count, and every gunicorn worker counted in one scrape.

prometheus-client's metrics live once per process, so the in-process tests read differences: a
scrape before and after the requests they send."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from testsupport.gunicorn_process import serve
from conftest import fixture
from tests.logs_support import message_body
from tests.provider_stubs import SilentServer
from tests.test_premessage import event

TOKEN = "metrics-token-7f3b9c"
SPANISH = "Hola, quiero saber dónde está mi pedido de la semana pasada"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The exposition as {(sample name, labels without pid): value}, summed over pids."""
    found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = frozenset((k, v) for k, v in sample.labels.items() if k != "pid")
            key = (sample.name, labels)
            found[key] = found.get(key, 0.0) + sample.value
    return found


def value(scrape: dict, name: str, **labels: str) -> float:
    return scrape.get((name, frozenset(labels.items())), 0.0)


class Scraper:
    """Reads /metrics through the app's test client, with the token when one is set."""

    def __init__(self, app: Any, token: str | None = None) -> None:
        self.client = app.test_client()
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def __call__(self) -> dict:
        answer = self.client.get("/metrics", headers=self.headers)
        assert answer.status_code == 200, answer.data
        assert answer.content_type.startswith("text/plain")
        return samples(answer.get_data(as_text=True))


def post(client: Any, path: str, body: Any) -> Any:
    return client.post(path, data=json.dumps(body), content_type="application/json")


def test_metrics_are_off_by_default_and_prometheus_is_not_loaded(tmp_path):
    script = f"""
import os, sys
os.chdir({str(tmp_path)!r})
from handlers import create_app
app = create_app({{"WEBHOOKS": "premessage"}})
assert app.test_client().get("/metrics").status_code == 404
print("prometheus_client" in sys.modules)
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METRICS", "PROMETHEUS"))}
    env["PYTHONPATH"] = os.getcwd()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, cwd=os.getcwd(), timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_the_token_guards_the_scrape_and_never_shows(make_app, caplog):
    client = make_app(METRICS="on", METRICS_TOKEN=TOKEN).test_client()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        answer = client.get("/metrics", headers=headers)
        assert answer.status_code == 401
        assert answer.get_json()["error"] == "unauthorized"
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert TOKEN not in answer.get_data(as_text=True)
    answer = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    assert TOKEN not in answer.get_data(as_text=True) and TOKEN not in caplog.text


def test_a_translated_turn_counts_its_decision_language_and_strings(make_app, libre_server):
    app = make_app(METRICS="on", WEBHOOK_AUTH="none", TRANSLATOR="libre",
                   TRANSLATOR_URL=libre_server.url)
    scrape, client = Scraper(app), app.test_client()
    before = scrape()
    assert post(client, "/webhooks/premessage", event(SPANISH, session="m-1")).status_code == 200
    assert post(client, "/webhooks/premessage", event(SPANISH, session="m-2")).status_code == 200
    assert post(client, "/webhooks/premessage", {"payload": {}}).status_code == 400
    after = scrape()

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("webhook_requests_total", webhook="premessage", status="200",
                decision="processed") == 2
    assert grew("webhook_requests_total", webhook="premessage", status="400",
                decision="missing_event") == 1
    assert grew("webhook_request_duration_seconds_count", webhook="premessage") == 3
    assert grew("language_detections_total", language="es", source="detected") == 2
    assert grew("translation_provider_calls_total", provider="libre", outcome="ok") == 1
    assert grew("translation_provider_duration_seconds_count", provider="libre") == 1
    # the second session's identical message came from the cache, not the provider
    assert grew("translation_strings_total", provider="libre", source="provider") == 1
    assert grew("translation_strings_total", provider="libre", source="cache") == 1


def test_each_place_a_language_comes_from_is_counted(make_app):
    app = make_app(METRICS="on", WEBHOOK_AUTH="none")
    scrape, client = Scraper(app), app.test_client()
    before = scrape()
    turns = [event("Bonjour", variables={"chosen_language": "fr"}, session="c-1"),  # chosen
             event("12345", locale="de-DE", session="c-2"),                      # locale
             event("12345", variables={"customer_language": "es"}, session="c-3")]  # session
    for body in turns:
        assert post(client, "/webhooks/premessage", body).status_code == 200
    after = scrape()
    for language, source in (("fr", "chosen"), ("de", "locale"), ("es", "session")):
        assert value(after, "language_detections_total", language=language, source=source) \
            - value(before, "language_detections_total", language=language, source=source) \
            == 1, source


def test_translation_memory_and_redis_are_counted_as_sources(make_app, libre_server, tmp_path,
                                                             redis_url, redis_prefix):
    (tmp_path / "memory").mkdir()
    (tmp_path / "memory" / "es-en.json").write_text(json.dumps({"hola": "hello"}))
    settings = dict(METRICS="on", TRANSLATOR="libre", TRANSLATOR_URL=libre_server.url,
                    TRANSLATION_MEMORY=str(tmp_path / "memory"), REDIS_URL=redis_url,
                    REDIS_PREFIX=redis_prefix)
    first = make_app(**settings)
    scrape = Scraper(first)
    before = scrape()
    assert first.extensions["webhooks"].translator.translate_many(
        ["hola", "buenas noches"], "es", "en", 3.0)
    # another worker (its own in-process cache) finds the provider's answer in Redis
    second = make_app(**settings).extensions["webhooks"].translator
    assert second.translate("buenas noches", "es", "en", 3.0)
    after = scrape()
    for source, count in (("memory", 1), ("provider", 1), ("redis", 1), ("cache", 0)):
        assert value(after, "translation_strings_total", provider="libre", source=source) \
            - value(before, "translation_strings_total", provider="libre", source=source) \
            == count, source


def test_a_silent_provider_counts_timeouts_then_the_open_breaker(make_app):
    silent = SilentServer()
    try:
        app = make_app(METRICS="on", TRANSLATOR="libre", TRANSLATOR_URL=silent.url,
                       TRANSLATION_TIMEOUT="0.3", BREAKER_FAILURES="1", BREAKER_COOLDOWN="60")
        # a provider of its own: the label is shared by every test's "libre"
        translator = app.extensions["webhooks"].translator
        translator.name = translator.breaker.name = "libre-silent"
        scrape = Scraper(app)
        before = scrape()
        assert translator.translate("uno", "es", "en", 0.3) is None   # times out: opens
        assert translator.translate("dos", "es", "en", 0.3) is None   # refused by the breaker
        after = scrape()
    finally:
        silent.stop()

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("translation_provider_calls_total", provider="libre-silent",
                outcome="timeout") == 1
    assert grew("translation_provider_calls_total", provider="libre-silent",
                outcome="breaker_open") == 1
    assert grew("translation_fail_open_strings_total", provider="libre-silent",
                reason="timeout") == 1
    assert grew("translation_fail_open_strings_total", provider="libre-silent",
                reason="circuit_open") == 1
    assert value(after, "translation_breaker_state", provider="libre-silent") == 2


def test_the_log_store_counts_rows_writes_commits_and_refusals(make_app, tmp_path):
    app = make_app(METRICS="on", WEBHOOK_AUTH="none")
    scrape, client = Scraper(app), app.test_client()
    before = scrape()
    body = message_body()
    assert post(client, "/webhooks/logs", body).status_code == 200
    assert post(client, "/webhooks/logs", body).status_code == 200      # the same log_id again
    cdr = fixture("log_webhook_request.cdr_logged.full.json")
    assert post(client, "/webhooks/logs", cdr).status_code == 200
    broken = make_app(METRICS="on", WEBHOOK_AUTH="none", DATABASE_URL=f"sqlite:///{tmp_path}")
    assert post(broken.test_client(), "/webhooks/logs", message_body()).status_code == 503
    after = scrape()

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("log_store_writes_total", outcome="new") == 2
    assert grew("log_store_writes_total", outcome="duplicate") == 1
    assert grew("log_store_writes_total", outcome="failed") == 1
    assert grew("log_store_rows_total", event="message_logged") == 1
    assert grew("log_store_rows_total", event="cdr_logged") == 1
    assert grew("log_store_unavailable_total") == 1
    assert grew("webhook_requests_total", webhook="log", status="503",
                decision="store_unavailable") == 1
    assert grew("log_store_commit_duration_seconds_count") >= 3
    assert grew("log_store_commit_batch_rows_sum") >= 3


@pytest.mark.slow
def test_every_gunicorn_worker_is_counted_in_one_scrape(tmp_path):
    env = {"WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "2", "WEBHOOK_AUTH": "none",
           "WEBHOOKS": "premessage", "METRICS": "on", "METRICS_TOKEN": TOKEN,
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    os.makedirs(tmp_path / "metrics")
    (tmp_path / "metrics" / "counter_1.db").write_bytes(b"left by an earlier run")
    body = json.dumps(event("Good morning, where is my order?")).encode()
    def send() -> int:
        request = urllib.request.Request(f"{url}/webhooks/premessage", data=body,
                                         headers={"Content-Type": "application/json",
                                                  "Connection": "close"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status

    def worker_files() -> tuple[list[str], set[str]]:
        files = os.listdir(tmp_path / "metrics")
        return files, {name.rsplit("_", 1)[1] for name in files if name.startswith("counter_")}

    with serve("handlers:create_app()", env, log_path=tmp_path / "gunicorn.log") as url, \
            ThreadPoolExecutor(8) as senders:
        sent = 0
        for _ in range(25):   # bursts of 8 connections at once, until both workers took some
            assert list(senders.map(lambda _: send(), range(8))) == [200] * 8
            sent += 8
            files, pids = worker_files()
            if len(pids) == 2:
                break
        scrapes = []
        for _ in range(4):   # whichever worker answers the scrape, it counts both
            request = urllib.request.Request(f"{url}/metrics",
                                             headers={"Authorization": f"Bearer {TOKEN}",
                                                      "Connection": "close"})
            with urllib.request.urlopen(request, timeout=30) as answer:
                scrapes.append(samples(answer.read().decode()))
    assert "counter_1.db" not in files   # the stale file was cleaned at start-up
    assert len(pids) == 2, files          # both workers served (and wrote their own files)
    for scrape in scrapes:
        assert value(scrape, "webhook_requests_total", webhook="premessage", status="200",
                     decision="processed") == sent
        assert value(scrape, "webhook_request_duration_seconds_count", webhook="premessage") \
            == sent


@pytest.mark.slow
def test_without_a_folder_gunicorn_makes_one_and_removes_it(tmp_path):
    env = {"WEB_CONCURRENCY": "2", "WEBHOOK_AUTH": "none", "WEBHOOKS": "premessage",
           "METRICS": "on", "TMPDIR": str(tmp_path)}
    body = json.dumps(event("Good morning")).encode()
    with serve("handlers:create_app()", env, log_path=tmp_path / "gunicorn.log") as url:
        made = [path.name for path in tmp_path.iterdir() if path.name.startswith("webhook-")]
        for _ in range(3):
            request = urllib.request.Request(f"{url}/webhooks/premessage", data=body)
            with urllib.request.urlopen(request, timeout=30) as answer:
                assert answer.status == 200
        with urllib.request.urlopen(f"{url}/metrics", timeout=30) as answer:
            scrape = samples(answer.read().decode())
    assert len(made) == 1
    assert value(scrape, "webhook_requests_total", webhook="premessage", status="200",
                 decision="processed") == 3
    assert not (tmp_path / made[0]).exists()
