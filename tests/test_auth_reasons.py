"""A refused call says why in the server's log: the request's JSON log line carries the reason
of every verifier's refusal, and never the credential that was sent."""

from __future__ import annotations

import base64
import json
import logging
import pathlib
import time
from typing import Any, Callable

import jwt
import pytest

from handlers.auth import REASONS
from handlers.logsetup import JsonFormatter
from tests.test_auth import BODIES, SECRET, Jwks, basic, hs256, jwks, tampered, unsigned_token

__all__ = ["jwks"]  # the fixture, imported for the oauth2 cases

PATH = "/webhooks/premessage"
PASSWORD = "pa:ss-w0rd-XYZ"
TOKEN = "tok-0123456789-abcdef"
API_KEY = "key-0123456789-abcdef"


def refused_line(client: Any, caplog: Any, headers: dict[str, str]) -> str:
    """The request's log line, as the server writes it, for a call that must be refused."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="handlers.request"):
        answer = client.post(PATH, data=json.dumps(BODIES[PATH]), headers=headers)
    assert answer.status_code == 401
    record = [r for r in caplog.records if r.name == "handlers.request"][-1]
    return JsonFormatter().format(record)


def assert_reason(line: str, reason: str, *secrets: str) -> None:
    fields = json.loads(line)
    assert fields["error"] == "unauthorized" and fields["status"] == 401
    assert fields["reason"] == reason, line
    assert reason in REASONS
    for secret in secrets:
        assert secret and secret not in line


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


BASIC = {
    "no_credentials": {},
    "wrong_scheme": {"Authorization": f"Bearer {PASSWORD}"},
    "malformed": {"Authorization": "Basic not-base64!!"},
    "malformed, no colon": {"Authorization": "Basic " + b64(PASSWORD.replace(":", ""))},
    "wrong_credentials": basic("assistant", PASSWORD + "-wrong"),
    "wrong_credentials, user": basic("intruder", PASSWORD),
}


@pytest.mark.parametrize("case", list(BASIC))
def test_basic_refusals_are_logged_with_their_reason(make_app, caplog, case):
    client = make_app(WEBHOOK_AUTH="basic", WEBHOOK_USERNAME="assistant",
                      WEBHOOK_PASSWORD=PASSWORD).test_client()
    line = refused_line(client, caplog, BASIC[case])
    assert_reason(line, case.split(",")[0], PASSWORD, b64(PASSWORD)[:12])


BEARER = {
    "no_credentials": {"Authorization": "Bearer "},
    "wrong_scheme": {"Authorization": "Basic " + b64(TOKEN)},
    "wrong_scheme, bare token": {"Authorization": TOKEN},
    "wrong_token": {"Authorization": f"Bearer {TOKEN}-guess"},
}


@pytest.mark.parametrize("case", list(BEARER))
def test_bearer_refusals_are_logged_with_their_reason(make_app, caplog, case):
    client = make_app(WEBHOOK_AUTH="bearer", WEBHOOK_SECRET=TOKEN).test_client()
    line = refused_line(client, caplog, BEARER[case])
    assert_reason(line, case.split(",")[0], TOKEN)


@pytest.mark.parametrize("case, headers", [
    ("no_credentials", {}),
    ("no_credentials", {"X-API-Key": "  "}),
    ("wrong_key", {"X-API-Key": API_KEY + "-guess"}),
])
def test_apikey_refusals_are_logged_with_their_reason(make_app, caplog, case, headers):
    client = make_app(WEBHOOK_AUTH="apikey", WEBHOOK_API_KEY=API_KEY).test_client()
    assert_reason(refused_line(client, caplog, headers), case, API_KEY)


JWT: dict[str, Callable[[], dict[str, str]]] = {
    "no_credentials": lambda: {},
    "no_credentials, empty bearer": lambda: {"Authorization": "Bearer "},
    "wrong_scheme": lambda: {"Authorization": "Basic " + b64("assistant:" + SECRET)},
    "malformed": lambda: {"Authorization": "a.b.c"},
    "bad_signature": lambda: {"Authorization": hs256("not-the-secret")},
    "bad_signature, tampered": lambda: {"Authorization": tampered(hs256())},
    "expired": lambda: {"Authorization": hs256(exp=int(time.time()) - 3600)},
    "not_yet_valid": lambda: {"Authorization": hs256(nbf=int(time.time()) + 3600)},
    "wrong_audience": lambda: {"Authorization": hs256(aud="other", iss="wxa")},
    "wrong_issuer": lambda: {"Authorization": hs256(aud="kit", iss="other")},
    "wrong_algorithm": lambda: {"Authorization": unsigned_token({"aud": "kit", "iss": "wxa"})},
}


@pytest.mark.parametrize("case", list(JWT))
def test_jwt_refusals_are_logged_with_their_reason(make_app, caplog, case):
    client = make_app(WEBHOOK_AUTH="jwt", WEBHOOK_SECRET=SECRET, WEBHOOK_AUDIENCE="kit",
                      WEBHOOK_ISSUER="wxa").test_client()
    headers = JWT[case]()
    line = refused_line(client, caplog, headers)
    token = headers.get("Authorization", "").replace("Bearer ", "").replace("Basic ", "")
    # Neither the secret nor any part of the token sent (header, claims, signature).
    assert_reason(line, case.split(",")[0], SECRET, *[part for part in token.split(".")
                                                      if len(part) > 3])


def oauth2_token(state: Jwks, case: str) -> str:
    """A token the oauth2 verifier refuses for `case`."""
    claims = {"iss": "https://idp", "aud": "webhooks", "sub": "assistant"}
    stranger = Jwks()   # another authorization server: its own private key under "key-1"
    if case == "unknown_key":
        stranger.keys = {"kid-unknown": stranger.keys["key-1"]}
        return stranger.token("kid-unknown", **claims)
    return {
        "no_credentials": lambda: "",
        "malformed": lambda: "not-a-jwt",
        # HMAC "signed" with the server's public key: the classic confusion
        "wrong_algorithm": lambda: jwt.encode(claims, "x" * 32, algorithm="HS256",
                                              headers={"kid": "key-1"}),
        "bad_signature": lambda: stranger.token(**claims),
        "expired": lambda: state.token(exp=int(time.time()) - 3600, **claims),
        "wrong_audience": lambda: state.token(**{**claims, "aud": "other"}),
        "wrong_issuer": lambda: state.token(**{**claims, "iss": "https://evil"}),
    }[case]()


@pytest.mark.parametrize("case", ["no_credentials", "malformed", "wrong_algorithm", "unknown_key",
                                  "bad_signature", "expired", "wrong_audience", "wrong_issuer"])
def test_oauth2_refusals_are_logged_with_their_reason(make_app, caplog, jwks, case):
    state, url = jwks
    client = make_app(WEBHOOK_AUTH="oauth2", WEBHOOK_JWKS_URL=url, WEBHOOK_ISSUER="https://idp",
                      WEBHOOK_AUDIENCE="webhooks").test_client()
    token = oauth2_token(state, case)
    line = refused_line(client, caplog, {"Authorization": f"Bearer {token}"})
    assert_reason(line, case, *[part for part in token.split(".") if len(part) > 3])


def test_every_reason_is_listed_in_troubleshooting():
    page = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "troubleshooting.md"
            ).read_text()
    for reason in REASONS:
        assert f"`{reason}`" in page, reason
