"""The explorer on a public port (issue 22): the password's length, taken as set; the open
explorer answering loopback names only; failed logins throttled per client address, shared by
every gunicorn worker; every path under /explorer/ behind the credentials and the headers; NUL
characters and impossible dates answered 400 on both backends; stored text isolated."""

from __future__ import annotations

import base64
import http.client
import logging
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from testsupport.gunicorn_process import serve
from handlers.explorer.guard import client_address
from handlers.explorer.throttle import LoginThrottle
from handlers.settings import SettingsError
from logs_support import message_body, pg_store_url, store_url  # noqa: F401
from quality_support import session

USER, PASSWORD = "analyst", "correct horse battery"
CSP = "Content-Security-Policy"


def basic(user: str = USER, password: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


WRONG = basic(password="not the password")


@pytest.fixture
def app(make_app: Any) -> Any:
    return make_app(EXPLORER_USERNAME=USER, EXPLORER_PASSWORD=PASSWORD)


def from_address(client: Any, address: str, headers: dict[str, str],
                 path: str = "/explorer/sessions", **environ: str) -> Any:
    return client.get(path, headers=headers,
                      environ_base={"REMOTE_ADDR": address, **environ})


# --- the password -----------------------------------------------------------------------------

@pytest.mark.parametrize("password", ["eleven-char", "  tiny pw  ", "x" * 11])
def test_a_password_shorter_than_12_characters_stops_the_start(make_app: Any,
                                                               password: str) -> None:
    with pytest.raises(SettingsError, match="EXPLORER_PASSWORD") as caught:
        make_app(EXPLORER_USERNAME=USER, EXPLORER_PASSWORD=password)
    assert password.strip() not in str(caught.value)
    make_app(EXPLORER_USERNAME=USER, EXPLORER_PASSWORD="twelve-chars")   # 12 is enough


def test_the_password_is_used_as_set_spaces_included(make_app: Any) -> None:
    spaced = "  pass phrase with spaces "
    client = make_app(EXPLORER_USERNAME=USER, EXPLORER_PASSWORD=spaced).test_client()
    assert client.get("/explorer/", headers=basic(password=spaced)).status_code == 200
    assert client.get("/explorer/",
                      headers=basic(password=spaced.strip())).status_code == 401


# --- EXPLORER_AUTH=none: loopback names only ----------------------------------------------------

LOOPBACK = ["localhost", "LocalHost:8080", "127.0.0.1", "127.0.0.1:80", "127.9.8.7:5000",
            "[::1]", "[::1]:8080"]
ELSEWHERE = ["attacker.example", "attacker.example:8080", "localhost.attacker.example",
             "127.0.0.1.nip.io", "10.0.0.1", "[::2]", "0.0.0.0:8080", "", "localhost:http",
             "[::1]x", "::1", "2130706433", "127.1", "[::ffff:7f00:1]"]


@pytest.mark.parametrize("host", LOOPBACK)
def test_the_open_explorer_answers_loopback_names(make_app: Any, host: str) -> None:
    client = make_app(EXPLORER_AUTH="none").test_client()
    answer = client.get("/explorer/sessions", headers={"Host": host})
    assert answer.status_code == 200, host
    assert "script-src 'none'" in answer.headers[CSP]


@pytest.mark.parametrize("host", ELSEWHERE)
def test_the_open_explorer_refuses_other_names_dns_rebinding(make_app: Any, host: str) -> None:
    app = make_app(EXPLORER_AUTH="none", WEBHOOK_AUTH="none")
    client = app.test_client()
    for path in ("/explorer/", "/explorer/sessions", "/explorer/session?id=s1",
                 "/explorer/static/explorer.css", "/explorer/no-such-page", "/explorer"):
        answer = client.get(path, headers={"Host": host})
        assert answer.status_code == 403, (host, path)
        assert answer.get_json()["error"] == "forbidden"
        assert "localhost" in answer.get_json()["detail"]
        assert answer.headers["Cache-Control"] == "no-store" and CSP in answer.headers
    # the rest of the app is not the explorer's business
    assert client.get("/healthz", headers={"Host": host}).status_code == 200


def test_the_open_explorers_warning_says_it_answers_loopback_only(make_app: Any,
                                                                 caplog: Any) -> None:
    with caplog.at_level(logging.WARNING, logger="handlers"):
        make_app(EXPLORER_AUTH="none")
    message = next(record.getMessage() for record in caplog.records
                   if "EXPLORER_AUTH=none" in record.getMessage())
    assert "localhost, 127.0.0.1 or [::1]" in message and "403" in message


# --- every path under /explorer/ ----------------------------------------------------------------

@pytest.mark.parametrize("method, path, known", [
    ("GET", "/explorer/no-such-page", 404), ("GET", "/explorer/static/nope.css", 404),
    ("GET", "/explorer/sessions/a/b/../c", 308), ("POST", "/explorer/", 405),
    ("DELETE", "/explorer/sessions", 405), ("GET", "/explorer", 308),
    ("GET", "/explorer/session", 400)])
def test_every_path_asks_for_credentials_first_and_has_the_headers(app: Any, method: str,
                                                                   path: str, known: int) -> None:
    client = app.test_client()
    for headers in ({}, WRONG):
        answer = client.open(path, method=method, headers=headers)
        assert answer.status_code == 401, (path, headers)
        assert answer.headers["WWW-Authenticate"].startswith('Basic realm="explorer"')
        assert "script-src 'none'" in answer.headers[CSP]
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
    answer = client.open(path, method=method, headers=basic())
    assert answer.status_code == known
    assert "script-src 'none'" in answer.headers[CSP]
    assert answer.headers["Cache-Control"] == "no-store"


# --- the login throttle -------------------------------------------------------------------------

def test_ten_wrong_passwords_a_minute_then_429_with_retry_after(app: Any) -> None:
    client = app.test_client()
    for _ in range(10):
        assert from_address(client, "198.51.100.7", WRONG).status_code == 401
    refused = from_address(client, "198.51.100.7", WRONG)
    assert refused.status_code == 429 and refused.get_json()["error"] == "too_many_failures"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "script-src 'none'" in refused.headers[CSP]
    # While it waits, the right password does not pass either: that answer would tell a guesser
    # which of its guesses was right.
    assert from_address(client, "198.51.100.7", basic()).status_code == 429
    # Another address is not held back, neither its right password nor its own count.
    assert from_address(client, "198.51.100.8", basic()).status_code == 200
    assert from_address(client, "198.51.100.8", WRONG).status_code == 401


def test_the_count_restarts_after_the_minute_and_the_right_password_passes_at_once(
        app: Any) -> None:
    client = app.test_client()
    throttle = app.extensions["explorer_throttle"]
    now = [1_000_000.0]
    throttle._clock = lambda: now[0]
    for _ in range(9):
        assert from_address(client, "203.0.113.9", WRONG).status_code == 401
    assert from_address(client, "203.0.113.9", basic()).status_code == 200    # 9: not delayed
    assert from_address(client, "203.0.113.9", WRONG).status_code == 401
    now[0] += 30
    assert from_address(client, "203.0.113.9", basic()).status_code == 429
    assert from_address(client, "203.0.113.9", basic()).headers["Retry-After"] == "30"
    now[0] += 30
    assert from_address(client, "203.0.113.9", basic()).status_code == 200
    for _ in range(10):
        assert from_address(client, "203.0.113.9", WRONG).status_code == 401
    assert from_address(client, "203.0.113.9", WRONG).status_code == 429


def test_requests_without_credentials_are_not_guesses(app: Any) -> None:
    client = app.test_client()
    for headers in ({}, {"Authorization": "Bearer x"}, {"Authorization": "Basic !!!"}):
        for _ in range(6):
            assert from_address(client, "192.0.2.1", headers).status_code == 401
    assert from_address(client, "192.0.2.1", basic()).status_code == 200


def test_an_ipv6_client_counts_by_its_64_network(app: Any) -> None:
    client = app.test_client()
    for index in range(10):
        assert from_address(client, f"2001:db8:0:7::{index + 1:x}", WRONG).status_code == 401
    assert from_address(client, "2001:db8:0:7:ffff::1", basic()).status_code == 429
    assert from_address(client, "2001:db8:0:8::1", basic()).status_code == 200


def test_x_forwarded_for_names_the_client_only_behind_a_trusted_proxy(make_app: Any) -> None:
    app = make_app(EXPLORER_USERNAME=USER, EXPLORER_PASSWORD=PASSWORD,
                   FORWARDED_ALLOW_IPS="10.0.0.2")
    client = app.test_client()
    for index in range(10):   # the proxy's last hop is the client; earlier ones are the client's
        forwarded = {"HTTP_X_FORWARDED_FOR": f"1.2.3.{index}, 203.0.113.50"}
        assert from_address(client, "10.0.0.2", WRONG, **forwarded).status_code == 401
    assert from_address(client, "10.0.0.2", basic(),
                        HTTP_X_FORWARDED_FOR="203.0.113.50").status_code == 429
    assert from_address(client, "10.0.0.2", basic(),
                        HTTP_X_FORWARDED_FOR="203.0.113.51").status_code == 200
    # A peer that is not a trusted proxy cannot pick a new address for each guess.
    for index in range(10):
        assert from_address(client, "198.51.100.99", WRONG,
                            HTTP_X_FORWARDED_FOR=f"192.0.2.{index}").status_code == 401
    assert from_address(client, "198.51.100.99", basic(),
                        HTTP_X_FORWARDED_FOR="192.0.2.200").status_code == 429


def test_forwarded_allow_ips_must_be_addresses(make_app: Any) -> None:
    with pytest.raises(SettingsError, match="FORWARDED_ALLOW_IPS"):
        make_app(FORWARDED_ALLOW_IPS="10.0.0.2, proxy.internal")
    make_app(FORWARDED_ALLOW_IPS="*")


@pytest.mark.slow
def test_every_gunicorn_worker_shares_the_count_through_restarts(tmp_path: Any) -> None:
    """Two workers, each replaced after 3 requests: the 10 failures and the lockout after them
    hold whichever worker (an old one or a new one) answers."""
    env = {"WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "4", "GUNICORN_MAX_REQUESTS": "3",
           "GUNICORN_MAX_REQUESTS_JITTER": "0", "WEBHOOKS": "logs", "WEBHOOK_AUTH": "none",
           "DATABASE_URL": f"sqlite:///{tmp_path}/events.sqlite3",
           "EXPLORER_USERNAME": USER, "EXPLORER_PASSWORD": PASSWORD}

    def status(port: int, headers: dict[str, str]) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            connection.request("GET", "/explorer/sessions", headers={**headers,
                                                                     "Connection": "close"})
            return connection.getresponse().status
        finally:
            connection.close()

    with serve("handlers:create_app()", env, log_path=tmp_path / "gunicorn.log") as url, \
            ThreadPoolExecutor(2) as pool:
        port = urllib.parse.urlsplit(url).port
        failures = [status(port, WRONG) for _ in range(5)]
        failures += list(pool.map(lambda _: status(port, WRONG), range(5)))
        assert failures == [401] * 10
        after = list(pool.map(lambda _: status(port, basic()), range(12)))
    assert after == [429] * 12
    # Workers were replaced on the way (a worker's threads may take a request or two past its
    # maximum before it retires, so fewer than 22 / 3 replacements are certain under load).
    assert (tmp_path / "gunicorn.log").read_text().count("Booting worker with pid") >= 4


# --- NUL characters and dates out of range, on both backends -------------------------------------

PAGES = ["/explorer/", "/explorer/sessions", "/explorer/session"]
NUL_PARAMETERS = ["q", "assistant", "environment", "language", "after", "period", "since",
                  "until", "failed", "id", "unknown"]
BAD_PERIODS = [{"since": "9999-12-31", "until": "9999-12-31"},
               {"since": "2024-01-01", "until": "9999-12-31"},
               {"since": "0000-12-31", "until": "2024-01-01"},
               {"since": "2024-13-01", "until": "2024-12-01"}]


@pytest.fixture
def stored(make_app: Any, store_url: str) -> Any:
    app = make_app(DATABASE_URL=store_url, EXPLORER_AUTH="none", WEBHOOK_AUTH="none")
    body = message_body(session="s1", text="where is my order")
    assert app.test_client().post("/webhooks/logs", json=body).status_code == 200
    return app


def test_a_nul_character_in_any_filter_is_a_400(stored: Any) -> None:
    client = stored.test_client()
    for page in PAGES:
        for name in NUL_PARAMETERS:
            args = {"id": "s1", name: "s1\0' OR 1=1"}
            answer = client.get(page, query_string=args)
            assert answer.status_code == 400, (page, name)
            assert answer.get_json()["error"] == "bad_request"
            assert "OR 1=1" not in answer.get_data(as_text=True)
    assert client.get("/explorer/sessions/s1%00x").status_code == 400
    assert client.get("/explorer/session", query_string={"id": "s1"}).status_code == 200


def test_dates_out_of_range_are_a_400(stored: Any) -> None:
    client = stored.test_client()
    for page in PAGES[:2]:
        for period in BAD_PERIODS:
            answer = client.get(page, query_string={"period": "custom", **period})
            assert answer.status_code == 400, (page, period)
            assert answer.get_json()["error"] == "bad_request"
        for cursor in ("9999-12-31T23:59:59.999999+14:00|s1", "2024-01-01T00:00:00Z|s1",
                       "99999-01-01|s1", "2024-01-01|" + "s" * 300):
            answer = client.get("/explorer/sessions", query_string={"after": cursor})
            assert answer.status_code == 400, cursor
    # the widest days that are dates at all still work
    for since, until in (("0001-01-01", "0001-01-02"), ("9999-12-29", "9999-12-30")):
        answer = client.get("/explorer/sessions",
                            query_string={"period": "custom", "since": since, "until": until})
        assert answer.status_code == 200, (since, until)
    assert client.get("/explorer/sessions",
                      query_string={"after": "9999-12-31T23:59:59|s1"}).status_code == 200


# --- stored text isolated from what is shown beside it --------------------------------------------

RLO = "\u202e"


def test_stored_text_and_ids_are_isolated(make_app: Any) -> None:
    app = make_app(EXPLORER_AUTH="none", WEBHOOK_AUTH="none")
    client = app.test_client()
    body = message_body(session=f"{RLO}session", text=f"{RLO}wrote", reply=f"{RLO}answered",
                        assistant=f"{RLO}assistant", customer_language=f"{RLO}xx",
                        snapshot=f"{RLO}environment",
                        intents=[{"intent": f"{RLO}intent", "confidence": 0.9}])
    no_match = session("unrecognized")["turns"][0]        # the "No matches" action answers
    body["payload"]["response"]["output"]["debug"] = no_match["response"]["output"]["debug"]
    assert client.post("/webhooks/logs", json=body).status_code == 200
    pages = [client.get(path, query_string=args).get_data(as_text=True) for path, args in (
        ("/explorer/", {}), ("/explorer/sessions", {}),
        ("/explorer/session", {"id": f"{RLO}session"}), ("/explorer/unrecognized", {}))]
    shown = 0
    for html in pages:
        for at in (index for index, char in enumerate(html) if char == RLO):
            assert html.rfind("<bdi>", 0, at) > html.rfind("</bdi>", 0, at), html[at - 80:at]
            assert html.find("</bdi>", at) < html.find("<bdi>", at + 1) or \
                html.find("<bdi>", at + 1) == -1
            shown += 1
    # the language in the overview (shares and quality); the session's id, language, assistant
    # and environment in the list; its id, language, intent, what the customer wrote and the
    # answer in the transcript; its language, words, session id, assistant and environment on
    # the unrecognized page
    assert shown == 16, shown


def test_a_waiting_address_stays_locked_while_thousands_of_others_fail() -> None:
    """The table has a fixed size: other addresses take the room of old minutes, never of an
    address that is waiting out its minute."""
    throttle = LoginThrottle()
    locked = client_address({"REMOTE_ADDR": "198.51.100.1"}, ())
    for _ in range(10):
        throttle.failed(locked)
    for index in range(20_000):
        other = f"10.{index >> 16}.{(index >> 8) & 255}.{index & 255}"
        throttle.failed(client_address({"REMOTE_ADDR": other}, ()))
    assert throttle.retry_after(locked) > 0
    assert throttle.retry_after(client_address({"REMOTE_ADDR": "10.0.0.1"}, ())) == 0
