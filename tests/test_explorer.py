"""The log explorer (/explorer/) through Flask's test client, on SQLite and PostgreSQL: off
unless configured, credentials on every page, asset and error, headers, filters, keyset
pagination, transcripts, and the overview's numbers equal to `flask logs stats`."""

from __future__ import annotations

import base64
import json
import logging
import re
from datetime import datetime, timedelta
from typing import Any

import pytest

from handlers.settings import SettingsError
from handlers.store import Filters, utcnow
from logs_support import cdr_body, message_body, pg_store_url, row_of, store_url  # noqa: F401

USER, PASSWORD = "analyst", "s3cret-pass-42"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
SECRET_TEXT = "my parcel number is ZX-SECRET-42"
DAY = datetime(2024, 5, 1, 9, 30)



def turn(session: str, text: str, language: str = "en", *, original: str | None = None,
         failed: bool = False, assistant: str = "assistant-1", snapshot: str = "live",
         reply: str = "Hello") -> dict[str, Any]:
    body = message_body(session=session, text=text, customer_language=language,
                        assistant=assistant, reply=reply, snapshot=snapshot)
    variables = body["payload"]["response"]["context"]["skills"]["actions skill"][
        "skill_variables"]
    if original:
        variables["original_input"] = original
    if failed:
        variables["translation_failed"] = True
    return body


def call(session: str, reason: str, transferred: bool = False,
         language: str | None = None) -> dict[str, Any]:
    body = cdr_body(session)
    if language:   # what the phone channel merges from the kit's cdr_custom_data
        body["payload"]["injected_custom_data"] = {"customer_language": language}
    body["payload"]["call"]["end_reason"] = reason
    body["payload"]["transfer_occurred"] = transferred
    body["payload"]["assistant_interaction_summaries"][0]["session_id"] = session
    return body


def known(app: Any) -> None:
    """Two days: Spanish with translation (one failure), English, French (unsupported), calls."""
    store = app.extensions["webhooks"].store
    store.add_many([
        row_of(turn("s1", "my order", "es", original="mi pedido"), DAY),
        row_of(turn("s1", "hablar con alguien", "es", failed=True), DAY + timedelta(minutes=1)),
        row_of(turn("s2", "hello there", "en", assistant="assistant-2", snapshot="draft"),
            DAY + timedelta(hours=2)),
        row_of(turn("s3", "bonjour", "fr"), DAY + timedelta(days=1)),
        row_of(turn("s3", "merci", "fr"), DAY + timedelta(days=1, minutes=5)),
        row_of(call("s1", "assistant_hangup"), DAY + timedelta(minutes=3)),
        row_of(call("s4", "caller_hangup", transferred=True, language="es"),
               DAY + timedelta(days=1)),
    ])


@pytest.fixture
def app(make_app: Any, store_url: str) -> Any:
    return make_app(DATABASE_URL=store_url, EXPLORER_USERNAME=USER, EXPLORER_PASSWORD=PASSWORD,
                    SUPPORTED_LANGUAGES="en,es")


def get(app: Any, path: str, **args: Any) -> Any:
    return app.test_client().get(path, headers=AUTH, query_string=args or None)


def figure(html: str, name: str) -> int:
    found = re.search(rf'id="{name}">(\d+)<', html)
    assert found, name
    return int(found.group(1))


# --- configuration and access ---------------------------------------------------------------

def test_off_unless_configured(make_app: Any) -> None:
    app = make_app()
    assert app.test_client().get("/explorer/").status_code == 404
    assert "explorer" not in app.blueprints


@pytest.mark.parametrize("settings, message", [
    ({"EXPLORER_USERNAME": "a"}, "go together"),
    ({"EXPLORER_PASSWORD": "b"}, "go together"),
    ({"EXPLORER_AUTH": "basic"}, "needs EXPLORER_USERNAME"),
    ({"EXPLORER_AUTH": "none", "EXPLORER_USERNAME": "a", "EXPLORER_PASSWORD": "b"}, "choose one"),
    ({"EXPLORER_AUTH": "open"}, "EXPLORER_AUTH"),
    ({"EXPLORER_USERNAME": "a:b", "EXPLORER_PASSWORD": "c"}, "':'"),
])
def test_bad_settings_stop_the_start(make_app: Any, settings: dict[str, str],
                                     message: str) -> None:
    with pytest.raises(SettingsError, match=message) as caught:
        make_app(**settings)
    assert "b\"" not in str(caught.value) and "c'" not in str(caught.value)


def test_every_page_asset_and_error_needs_the_credentials(app: Any) -> None:
    known(app)
    client = app.test_client()
    wrong = {"Authorization": "Basic " + base64.b64encode(f"{USER}:nope".encode()).decode()}
    for path in ("/explorer/", "/explorer/sessions?q=pedido", "/explorer/session?id=s1",
                 "/explorer/session?id=nope", "/explorer/static/explorer.css",
                 "/explorer/?period=bogus"):
        for headers in ({}, wrong, {"Authorization": "Bearer x"}):
            answer = client.get(path, headers=headers)
            assert answer.status_code == 401, path
            assert answer.headers["WWW-Authenticate"].startswith('Basic realm="explorer"')
            assert answer.headers["Cache-Control"] == "no-store"
            assert answer.get_json()["error"] == "unauthorized"
            for text in ("pedido", "hello there", "bonjour", PASSWORD):
                assert text not in answer.get_data(as_text=True)


def test_pages_send_no_store_and_a_strict_csp(app: Any) -> None:
    known(app)
    for path in ("/explorer/", "/explorer/sessions", "/explorer/session?id=s1",
                 "/explorer/static/explorer.css"):
        answer = get(app, path)
        assert answer.status_code == 200, path
        assert answer.headers["Cache-Control"] == "no-store"
        policy = answer.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "script-src 'none'" in policy
        assert "unsafe-inline" not in policy
        body = answer.get_data(as_text=True)
        assert "<script" not in body and "http://" not in body and "https://" not in body
        assert " style=" not in body


def test_open_explorer_warns_at_start_up(make_app: Any, caplog: Any) -> None:
    with caplog.at_level(logging.WARNING, logger="handlers"):
        app = make_app(EXPLORER_AUTH="none")
    assert any("EXPLORER_AUTH=none" in record.getMessage() for record in caplog.records)
    assert app.test_client().get("/explorer/").status_code == 200


def test_only_the_explorer_makes_a_store_for_a_premessage_app(make_app: Any) -> None:
    app = make_app(WEBHOOKS="premessage", EXPLORER_AUTH="none")
    assert get(app, "/explorer/sessions").status_code == 200


@pytest.mark.parametrize("args", [{"period": "bogus"}, {"period": "custom", "since": "x"},
                                  {"period": "custom", "since": "2024-05-02",
                                   "until": "2024-05-01"},
                                  {"assistant": "a" * 300}, {"after": "not-a-cursor<b>"}])
def test_bad_input_is_a_clear_error_and_not_echoed(app: Any, args: dict[str, str]) -> None:
    answer = get(app, "/explorer/sessions", **args)
    assert answer.status_code == 400
    body = answer.get_json()
    assert body["error"] == "bad_request" and body["detail"]
    assert "<b>" not in answer.get_data(as_text=True) and "aaaa" not in body["detail"]


# --- the overview ---------------------------------------------------------------------------

def test_overview_numbers_equal_logs_stats(app: Any) -> None:
    known(app)
    for since, until in (("2024-05-01", "2024-05-02"), ("2024-05-02", "2024-05-02"),
                         ("2024-04-01", "2024-04-30")):
        page = get(app, "/explorer/", period="custom", since=since, until=until)
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        result = app.test_cli_runner().invoke(
            args=["logs", "stats", "--since", since, "--until", until, "--format", "json"])
        assert result.exit_code == 0, result.output
        stats = json.loads(result.output)
        assert figure(html, "messages") == stats["messages"]
        assert figure(html, "sessions") == stats["sessions"]
        assert figure(html, "translation-failures") == stats["translation_failures"]
        assert figure(html, "unsupported") == stats["unsupported_language_replies"]
        assert figure(html, "calls") == stats["calls"]["count"]
        for code, n in stats["languages"].items():
            assert re.search(rf"><bdi>{code}</bdi></a></td>\s*<td class=\"n\">{n}</td>", html), code
        for reason, n in stats["calls"]["end_reasons"].items():
            assert re.search(rf"<td><bdi>{reason}</bdi></td><td class=\"n\">{n}</td>", html), reason
        calls_by_language = html.split('id="call-languages"')[1].split("</table>")[0]
        for code, n in stats["calls"]["languages"].items():
            assert f'<td><bdi>{code}</bdi></td><td class="n">{n}</td>' in calls_by_language, code
    whole = json.loads(app.test_cli_runner().invoke(
        args=["logs", "stats", "--since", "2024-05-01", "--until", "2024-05-02",
              "--format", "json"]).output)
    assert (whole["messages"], whole["sessions"], whole["translation_failures"],
            whole["unsupported_language_replies"]) == (5, 3, 1, 2)
    assert whole["languages"] == {"es": 2, "fr": 2, "en": 1}
    assert whole["calls"] == {"count": 2, "transferred": 1,
                              "end_reasons": {"assistant_hangup": 1, "caller_hangup": 1},
                              "languages": {"es": 1, "unknown": 1}}


def test_overview_filters_and_chart(app: Any) -> None:
    known(app)
    store = app.extensions["webhooks"].store
    period = {"period": "custom", "since": "2024-05-01", "until": "2024-05-02"}
    html = get(app, "/explorer/", language="es", **period).get_data(as_text=True)
    assert (figure(html, "messages"), figure(html, "sessions")) == (2, 1)
    html = get(app, "/explorer/", assistant="assistant-2", **period).get_data(as_text=True)
    assert (figure(html, "messages"), figure(html, "sessions")) == (1, 1)
    html = get(app, "/explorer/", environment="draft", **period).get_data(as_text=True)
    assert figure(html, "messages") == 1
    assert html.count('<rect class="bar"') == 48          # two days, by the hour
    week = get(app, "/explorer/", period="custom", since="2024-05-01", until="2024-05-07")
    assert week.get_data(as_text=True).count('<rect class="bar"') == 7   # by the day
    midnight = DAY.replace(hour=0)
    per_day = store.reports.overview(Filters(midnight, midnight + timedelta(2)),
                                     bucket="day")["per_day"]
    assert per_day == {"2024-05-01": 3, "2024-05-02": 2}
    day = get(app, "/explorer/", period="custom", since="2024-05-01", until="2024-05-01")
    assert day.get_data(as_text=True).count('<rect class="bar"') == 24


def test_recent_periods(app: Any) -> None:
    store = app.extensions["webhooks"].store
    now = utcnow()
    store.add_many([row_of(turn("recent", "hi"), now - timedelta(hours=1)),
                    row_of(turn("week", "hi"), now - timedelta(days=3)),
                    row_of(turn("month", "hi"), now - timedelta(days=20))])
    assert figure(get(app, "/explorer/").get_data(as_text=True), "messages") == 1
    assert figure(get(app, "/explorer/", period="7d").get_data(as_text=True), "messages") == 2
    assert figure(get(app, "/explorer/", period="30d").get_data(as_text=True), "messages") == 3


# --- sessions and transcripts ---------------------------------------------------------------

def sessions_on(app: Any, **args: Any) -> tuple[list[str], str | None]:
    html = get(app, "/explorer/sessions", **args).get_data(as_text=True)
    ids = re.findall(r'class="session" href="/explorer/session\?id=([^"]+)"', html)
    following = re.search(r'rel="next" class="next" href="([^"]+)"', html)
    return ids, following.group(1).replace("&amp;", "&") if following else None


def test_sessions_newest_first_with_keyset_pages(app: Any) -> None:
    store = app.extensions["webhooks"].store
    now = utcnow().replace(microsecond=0)
    # 120 sessions; every third pair shares its last-message time (ties broken by id).
    store.add_many([row_of(turn(f"p{index:03d}", f"text {index}"),
                        now - timedelta(minutes=index // 2)) for index in range(120)])
    client = app.test_client()
    seen: list[str] = []
    path: str | None = "/explorer/sessions?period=24h"
    for _ in range(5):
        if path is None:
            break
        html = client.get(path, headers=AUTH).get_data(as_text=True)
        page = re.findall(r'class="session" href="/explorer/session\?id=([^"]+)"', html)
        assert len(page) <= 50
        seen += page
        found = re.search(r'rel="next" class="next" href="([^"]+)"', html)
        path = found.group(1).replace("&amp;", "&") if found else None
    assert path is None
    expected = sorted((f"p{index:03d}" for index in range(120)),
                      key=lambda name: (int(name[1:]) // 2, -int(name[1:])))
    assert seen == expected


def test_session_filters_and_search(app: Any) -> None:
    known(app)
    period = {"period": "custom", "since": "2024-05-01", "until": "2024-05-03"}
    assert sessions_on(app, **period)[0] == ["s3", "s2", "s1"]
    assert sessions_on(app, failed="1", **period)[0] == ["s1"]
    assert sessions_on(app, language="fr", **period)[0] == ["s3"]
    assert sessions_on(app, assistant="assistant-2", **period)[0] == ["s2"]
    assert sessions_on(app, q="PEDIDO", **period)[0] == ["s1"]     # the original words
    assert sessions_on(app, q="my order", **period)[0] == ["s1"]   # what the assistant got
    assert sessions_on(app, q="%", **period)[0] == []              # a literal percent sign
    assert sessions_on(app, period="custom", since="2024-05-02", until="2024-05-02")[0] \
        == ["s3"]


def test_transcript_shows_each_turn_and_the_calls(app: Any) -> None:
    known(app)
    answer = get(app, "/explorer/session?id=s1")
    assert answer.status_code == 200
    html = answer.get_data(as_text=True)
    assert "mi pedido" in html and "my order" in html and "Hello" in html
    assert html.index("mi pedido") < html.index("my order")        # wrote, then received
    assert "language <bdi>es</bdi>" in html and "339 ms" in html
    assert "translation failed" in html
    assert "end reason: <bdi>assistant_hangup</bdi>" in html
    missing = get(app, "/explorer/session?id=no-such-session")
    assert missing.status_code == 404 and "no-such-session" in missing.get_data(as_text=True)


def test_transcript_escapes_text_and_shows_redaction(make_app: Any, store_url: str) -> None:
    app = make_app(DATABASE_URL=store_url, EXPLORER_AUTH="none", LOG_REDACT="true")
    body = turn("r1", "<script>alert(1)</script> write to jane.doe@example.com")
    answer = app.test_client().post("/webhooks/logs", json=body)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    html = app.test_client().get("/explorer/session?id=r1").get_data(as_text=True)
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)" in html
    assert "jane.doe" not in html
    assert '<span class="redacted">redacted email</span>' in html


def test_the_log_webhook_fills_the_explorer_columns(make_app: Any, store_url: str) -> None:
    app = make_app(DATABASE_URL=store_url, EXPLORER_AUTH="none")
    body = turn("w1", "where is my order", "es", original="dónde está mi pedido", failed=True,
                snapshot="draft")
    assert app.test_client().post("/webhooks/logs", json=body).status_code == 200
    assert app.test_client().post("/webhooks/logs",
                                  json=call("w1", "caller_hangup")).status_code == 200
    rows = app.extensions["webhooks"].store.reports.transcript("w1")
    message, record = sorted(rows, key=lambda item: item.event, reverse=True)
    assert (message.original_text, message.translation_failed, message.environment) \
        == ("dónde está mi pedido", True, "draft")
    assert record.end_reason == "caller_hangup"
    html = app.test_client().get("/explorer/session?id=w1").get_data(as_text=True)
    assert "dónde está mi pedido" in html and "end reason: <bdi>caller_hangup</bdi>" in html
