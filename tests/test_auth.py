"""Every authentication method the assistant offers, checked on our side, on all three webhooks."""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.conftest import fixture

SECRET = "s3cret-shared-with-the-assistant"
BODIES = {
    "/webhooks/premessage": fixture("pre_message_request.message_received.json"),
    "/webhooks/postmessage": fixture("post_message_request.message_processed.actions_skill.json"),
    "/webhooks/logs": fixture("log_webhook_request.cdr_logged.full.json"),
}
PATHS = list(BODIES)


def post(client: Any, path: str, headers: dict[str, str] | None = None, raw: bytes | None = None):
    data = raw if raw is not None else json.dumps(BODIES[path]).encode()
    return client.post(path, data=data, headers=headers or {})


def assert_refused(answer: Any, challenge: str | None = None) -> None:
    assert answer.status_code == 401
    assert answer.content_type == "application/json"
    assert answer.get_json()["error"] == "unauthorized"
    if challenge:
        assert answer.headers["WWW-Authenticate"].startswith(challenge)


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def hs256(secret: str = SECRET, **claims: Any) -> str:
    claims.setdefault("iat", int(time.time()))
    claims.setdefault("exp", int(time.time()) + 300)
    return jwt.encode(claims, secret, algorithm="HS256")


def unsigned_token(claims: dict[str, Any]) -> str:
    """A token with `alg: none`, as a forger would send it."""
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def tampered(token: str) -> str:
    """The same signature over a payload the forger changed."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


# --- none --------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", PATHS)
def test_none_accepts_anyone_and_warns_at_start(make_app, caplog, path):
    app = make_app(WEBHOOK_AUTH="none")
    assert post(app.test_client(), path).status_code == 200
    assert "open to anyone" in caplog.text and "premessage" in caplog.text


def test_start_up_names_only_the_open_webhooks(make_app, caplog):
    make_app(WEBHOOK_AUTH="none", LOG_AUTH="jwt", LOG_SECRET=SECRET)
    warning = [r.getMessage() for r in caplog.records if "open to anyone" in r.getMessage()][0]
    assert "premessage, postmessage" in warning and "log" not in warning.split(":")[1].split(";")[0]


# --- basic -------------------------------------------------------------------------------------

@pytest.fixture
def basic_client(make_app):
    return make_app(WEBHOOK_AUTH="basic", WEBHOOK_USERNAME="assistant",
                    WEBHOOK_PASSWORD="pa:ss w0rd").test_client()


@pytest.mark.parametrize("path", PATHS)
def test_basic_right_credentials(basic_client, path):
    assert post(basic_client, path, basic("assistant", "pa:ss w0rd")).status_code == 200


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("headers", [
    {},
    basic("assistant", "wrong"),
    basic("intruder", "pa:ss w0rd"),
    basic("assistant", ""),
    {"Authorization": "Basic not-base64!!"},
    {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
    {"Authorization": "Bearer pa:ss w0rd"},
])
def test_basic_refuses(basic_client, path, headers):
    answer = post(basic_client, path, headers)
    assert_refused(answer, "Basic")
    assert "pa:ss" not in answer.get_data(as_text=True)


# --- bearer ------------------------------------------------------------------------------------

@pytest.fixture
def bearer_client(make_app):
    return make_app(WEBHOOK_AUTH="bearer", WEBHOOK_SECRET="tok-123",
                    WEBHOOK_PREVIOUS_SECRET="tok-old").test_client()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("token", ["tok-123", "tok-old"])
def test_bearer_current_and_previous_token(bearer_client, path, token):
    assert post(bearer_client, path, {"Authorization": f"Bearer {token}"}).status_code == 200


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer tok-1234"}, {"Authorization": "Bearer "},
    {"Authorization": "tok-123"}, {"Authorization": "Basic dG9rLTEyMw=="},
])
def test_bearer_refuses(bearer_client, path, headers):
    answer = post(bearer_client, path, headers)
    assert_refused(answer, "Bearer")
    assert "tok-" not in answer.get_data(as_text=True)


# --- apikey ------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", PATHS)
def test_apikey_default_and_custom_header(make_app, path):
    default = make_app(WEBHOOK_AUTH="apikey", WEBHOOK_API_KEY="k-1").test_client()
    assert post(default, path, {"X-API-Key": "k-1"}).status_code == 200
    assert_refused(post(default, path, {"X-API-Key": "k-2"}))
    assert_refused(post(default, path))
    custom = make_app(WEBHOOK_AUTH="apikey", WEBHOOK_API_KEY="k-1",
                      WEBHOOK_API_KEY_HEADER="X-Assistant-Key").test_client()
    assert post(custom, path, {"X-Assistant-Key": "k-1"}).status_code == 200
    assert_refused(post(custom, path, {"X-API-Key": "k-1"}))


# --- jwt (the assistant's "Signed JWT", and the log webhook's secret) --------------------------

@pytest.fixture
def jwt_client(make_app):
    return make_app(WEBHOOK_AUTH="jwt", WEBHOOK_SECRET=SECRET).test_client()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("prefix", ["", "Bearer ", "bearer "])
def test_jwt_raw_or_bearer(jwt_client, path, prefix):
    assert post(jwt_client, path, {"Authorization": prefix + hs256()}).status_code == 200


@pytest.mark.parametrize("path", PATHS)
def test_jwt_without_any_claims_is_accepted(jwt_client, path):
    # The assistant's claims are undocumented: the signature is what matters.
    token = jwt.encode({}, SECRET, algorithm="HS256")
    assert post(jwt_client, path, {"Authorization": token}).status_code == 200


@pytest.mark.parametrize("path", PATHS)
def test_jwt_clock_skew_within_leeway(jwt_client, path):
    token = hs256(exp=int(time.time()) - 10, nbf=int(time.time()) + 10)
    assert post(jwt_client, path, {"Authorization": token}).status_code == 200


FORGED = {
    "missing": None,
    "wrong secret": lambda: hs256("not-the-secret"),
    "expired": lambda: hs256(exp=int(time.time()) - 3600),
    "not yet valid": lambda: hs256(nbf=int(time.time()) + 3600),
    "alg none": lambda: unsigned_token({"sub": "x", "exp": int(time.time()) + 60}),
    "alg none, no signature dot": lambda: unsigned_token({"sub": "x"})[:-1],
    "tampered payload": lambda: tampered(hs256(sub="assistant")),
    "HS512 not configured": lambda: jwt.encode({"a": 1}, SECRET * 2, algorithm="HS512"),
    "garbage": lambda: "a.b.c",
    "empty bearer": lambda: "Bearer ",
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", list(FORGED))
def test_jwt_refuses(jwt_client, path, case):
    make = FORGED[case]
    headers = {"Authorization": make()} if make else {}
    answer = post(jwt_client, path, headers)
    assert_refused(answer, "Bearer")
    assert SECRET not in answer.get_data(as_text=True)


def test_jwt_expired_says_so(jwt_client):
    answer = post(jwt_client, PATHS[0], {"Authorization": hs256(exp=int(time.time()) - 3600)})
    assert answer.get_json()["detail"] == "the token has expired"


def test_jwt_a_remembered_token_is_refused_once_it_expires(make_app):
    client = make_app(WEBHOOK_AUTH="jwt", WEBHOOK_SECRET=SECRET,
                      WEBHOOK_JWT_LEEWAY="0").test_client()
    expires = int(time.time()) + 1
    token = hs256(exp=expires)
    assert post(client, PATHS[0], {"Authorization": token}).status_code == 200
    assert post(client, PATHS[0], {"Authorization": token}).status_code == 200
    while time.time() < expires:
        time.sleep(0.05)
    answer = post(client, PATHS[0], {"Authorization": token})
    assert_refused(answer)
    assert answer.get_json()["detail"] == "the token has expired"


def test_jwt_remembers_only_the_exact_token_and_a_bounded_number(make_app):
    app = make_app(WEBHOOK_AUTH="jwt", WEBHOOK_SECRET=SECRET)
    verifier = app.extensions["webhooks"].verifiers["premessage"]
    verifier.VERIFIED_TOKENS = 3
    client = app.test_client()
    token = hs256(sub="assistant")
    assert post(client, PATHS[0], {"Authorization": token}).status_code == 200
    assert_refused(post(client, PATHS[0], {"Authorization": tampered(token)}))
    assert_refused(post(client, PATHS[0], {"Authorization": token[:-2] + "AA"}))
    for number in range(10):
        assert post(client, PATHS[0], {"Authorization": hs256(n=number)}).status_code == 200
        assert len(verifier._verified) <= 3


@pytest.mark.parametrize("path", PATHS)
def test_jwt_rotation_accepts_previous_secret(make_app, path):
    client = make_app(WEBHOOK_AUTH="jwt", WEBHOOK_SECRET="new-secret",
                      WEBHOOK_PREVIOUS_SECRET="old-secret").test_client()
    assert post(client, path, {"Authorization": hs256("new-secret")}).status_code == 200
    assert post(client, path, {"Authorization": hs256("old-secret")}).status_code == 200
    assert_refused(post(client, path, {"Authorization": hs256("other-secret")}))


def test_jwt_audience_and_issuer_when_configured(make_app):
    client = make_app(WEBHOOK_AUTH="jwt", WEBHOOK_SECRET=SECRET, WEBHOOK_AUDIENCE="kit",
                      WEBHOOK_ISSUER="wxa").test_client()
    path = PATHS[0]
    assert post(client, path, {"Authorization": hs256(aud="kit", iss="wxa")}).status_code == 200
    assert_refused(post(client, path, {"Authorization": hs256(aud="other", iss="wxa")}))
    assert_refused(post(client, path, {"Authorization": hs256(aud="kit", iss="other")}))


def test_jwt_with_audience_claim_but_none_configured_is_accepted(jwt_client):
    assert post(jwt_client, PATHS[2], {"Authorization": hs256(aud="anything")}).status_code == 200


def test_credentials_are_checked_before_the_body(jwt_client):
    # A bad body with bad credentials is a 401, not a 400: nothing is read before auth.
    assert_refused(post(jwt_client, PATHS[0], {"Authorization": "x"}, raw=b"{not json"))
    assert post(jwt_client, PATHS[0], {"Authorization": hs256()}, raw=b"{not json").status_code == 400


# --- per-webhook overrides ---------------------------------------------------------------------

def test_per_webhook_overrides(make_app):
    app = make_app(WEBHOOK_AUTH="bearer", WEBHOOK_SECRET="shared-token",
                   PREMESSAGE_AUTH="basic", PREMESSAGE_USERNAME="u", PREMESSAGE_PASSWORD="p",
                   LOG_AUTH="jwt", LOG_SECRET=SECRET)
    client = app.test_client()
    bearer = {"Authorization": "Bearer shared-token"}
    assert post(client, "/webhooks/premessage", basic("u", "p")).status_code == 200
    assert_refused(post(client, "/webhooks/premessage", bearer))
    assert post(client, "/webhooks/postmessage", bearer).status_code == 200
    assert_refused(post(client, "/webhooks/postmessage", basic("u", "p")))
    assert post(client, "/webhooks/logs", {"Authorization": hs256()}).status_code == 200
    assert_refused(post(client, "/webhooks/logs", bearer))
    assert_refused(post(client, "/webhooks/logs", {"Authorization": hs256("shared-token")}))


def test_override_secret_without_override_method(make_app):
    # LOG_SECRET alone changes the log webhook's secret under the shared method.
    client = make_app(WEBHOOK_AUTH="jwt", WEBHOOK_SECRET="one", LOG_SECRET="two").test_client()
    assert post(client, "/webhooks/premessage", {"Authorization": hs256("one")}).status_code == 200
    assert post(client, "/webhooks/logs", {"Authorization": hs256("two")}).status_code == 200
    assert_refused(post(client, "/webhooks/logs", {"Authorization": hs256("one")}))


def test_health_needs_no_credentials(jwt_client):
    assert jwt_client.get("/healthz").status_code == 200


# --- oauth2: JWT access tokens checked against a JWKS served on loopback ------------------------

class Jwks:
    """An authorization server's key set, served over real HTTP on 127.0.0.1."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.fetches = 0
        self.failing = False
        self.add("key-1")

    def add(self, kid: str, kind: str = "rsa") -> None:
        if kind == "rsa":
            self.keys[kid] = (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256")
        else:
            self.keys[kid] = (ec.generate_private_key(ec.SECP256R1()), "ES256")

    def document(self) -> dict[str, Any]:
        keys = []
        for kid, (private, alg) in self.keys.items():
            algorithm = jwt.algorithms.RSAAlgorithm if alg == "RS256" else jwt.algorithms.ECAlgorithm
            jwk = json.loads(algorithm.to_jwk(private.public_key()))
            jwk.update({"kid": kid, "use": "sig", "alg": alg})
            keys.append(jwk)
        return {"keys": keys}

    def token(self, kid: str = "key-1", **claims: Any) -> str:
        private, alg = self.keys[kid]
        claims.setdefault("exp", int(time.time()) + 300)
        return jwt.encode(claims, private, algorithm=alg, headers={"kid": kid})


@pytest.fixture
def jwks() -> Iterator[tuple[Jwks, str]]:
    state = Jwks()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            state.fetches += 1
            if state.failing:
                self.send_response(500)
                self.end_headers()
                return
            body = json.dumps(state.document()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    server.shutdown()
    server.server_close()


@pytest.fixture
def oauth_app(make_app, jwks):
    state, url = jwks
    return make_app(WEBHOOK_AUTH="oauth2", WEBHOOK_JWKS_URL=url, WEBHOOK_ISSUER="https://idp",
                    WEBHOOK_AUDIENCE="webhooks")


def good_claims() -> dict[str, Any]:
    return {"iss": "https://idp", "aud": "webhooks", "sub": "assistant"}


@pytest.mark.parametrize("path", PATHS)
def test_oauth2_valid_access_token(oauth_app, jwks, path):
    state, _ = jwks
    answer = post(oauth_app.test_client(), path,
                  {"Authorization": "Bearer " + state.token(**good_claims())})
    assert answer.status_code == 200


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", ["missing", "expired", "wrong audience", "wrong issuer",
                                  "alg none", "tampered", "hs256 with public key", "foreign key"])
def test_oauth2_refuses(oauth_app, jwks, path, case):
    state, _ = jwks
    claims = good_claims()
    if case == "missing":
        token = None
    elif case == "expired":
        token = state.token(exp=int(time.time()) - 3600, **claims)
    elif case == "wrong audience":
        token = state.token(**{**claims, "aud": "other"})
    elif case == "wrong issuer":
        token = state.token(**{**claims, "iss": "https://evil"})
    elif case == "alg none":
        token = unsigned_token(claims)
    elif case == "tampered":
        token = tampered(state.token(**claims))
    elif case == "hs256 with public key":
        # The classic confusion attack: HMAC "signed" with the server's public key.
        token = jwt.encode(claims, "x" * 32, algorithm="HS256", headers={"kid": "key-1"})
    else:
        foreign = Jwks()
        token = foreign.token(**claims)  # same kid, another private key
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    assert_refused(post(oauth_app.test_client(), path, headers), "Bearer")


def test_oauth2_keys_are_cached_and_refetched_on_unknown_kid(oauth_app, jwks):
    state, _ = jwks
    client = oauth_app.test_client()
    for _ in range(3):
        assert post(client, PATHS[0], {"Authorization": "Bearer " + state.token(**good_claims())}
                    ).status_code == 200
    assert state.fetches == 1
    # The server rotates in a new key; the first token with its kid triggers one refetch.
    state.add("key-2", kind="ec")
    verifier = oauth_app.extensions["webhooks"].verifiers["premessage"]
    verifier.jwks._fetched -= verifier.jwks.min_refresh + 1  # as if the last fetch were older
    answer = post(client, PATHS[0], {"Authorization": "Bearer " + state.token("key-2", **good_claims())})
    assert answer.status_code == 200
    assert state.fetches == 2


def test_oauth2_unknown_kids_do_not_hammer_the_server(oauth_app, jwks):
    state, _ = jwks
    client = oauth_app.test_client()
    assert post(client, PATHS[0], {"Authorization": "Bearer " + state.token(**good_claims())}
                ).status_code == 200
    stranger = Jwks()
    stranger.keys = {"random-kid": stranger.keys["key-1"]}
    for _ in range(5):
        assert_refused(post(client, PATHS[0],
                            {"Authorization": "Bearer " + stranger.token("random-kid")}))
    assert state.fetches == 1  # refetches are spaced by min_refresh


def test_oauth2_authorization_server_down_is_503_json(oauth_app, jwks):
    state, _ = jwks
    state.failing = True
    answer = post(oauth_app.test_client(), PATHS[0],
                  {"Authorization": "Bearer " + state.token(**good_claims())})
    assert answer.status_code == 503
    assert answer.get_json()["error"] == "auth_unavailable"
