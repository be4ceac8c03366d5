"""Checking that a request comes from the assistant: one verifier per method of its
"Edit authentication" dialog, chosen per webhook (`WEBHOOK_AUTH`, `PREMESSAGE_AUTH`, ...).

Every verifier runs before the body is read, compares secrets in constant time, and refuses with a
401 JSON error that never repeats what the caller sent. The request's log line says which check
failed (`reason`, one of `REASONS`), never the credential. `build_verifier` is the only entry
point.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.request
from typing import Any, Protocol

import jwt
from flask import Request

from .envelope import WebhookError
from .settings import AuthSettings

log = logging.getLogger(__name__)
REALM = "watsonx-webhooks"
# Why a call was refused, as its log line says (`"reason": ...`); docs/troubleshooting.md lists
# them for whoever reads the log.
REASONS = {
    "no_credentials": "no Authorization header (or API key header), or an empty one",
    "wrong_scheme": "an Authorization header of another scheme (Basic instead of Bearer, ...)",
    "malformed": "credentials that cannot be read (not base64, not a JWT)",
    "wrong_credentials": "Basic: the username or the password differs",
    "wrong_token": "bearer: the token differs",
    "wrong_key": "apikey: the key differs",
    "bad_signature": "jwt/oauth2: the signature does not match the secret or the key",
    "expired": "jwt/oauth2: the token's exp is past (beyond the leeway)",
    "not_yet_valid": "jwt/oauth2: the token's nbf is still ahead",
    "wrong_audience": "jwt/oauth2: aud is not WEBHOOK_AUDIENCE",
    "wrong_issuer": "jwt/oauth2: iss is not WEBHOOK_ISSUER",
    "wrong_algorithm": "jwt/oauth2: an algorithm not in WEBHOOK_JWT_ALGORITHMS (alg none, ...)",
    "unknown_key": "oauth2: a kid the authorization server's JWKS does not have",
}


class Verifier(Protocol):
    def verify(self, request: Request) -> None:
        """Return if the request is authentic; raise WebhookError(401) otherwise."""


def _same(given: str, expected: str | None) -> bool:
    return expected is not None and hmac.compare_digest(given.encode(), expected.encode())


def _refuse(reason: str, detail: str, challenge: str | None = None) -> WebhookError:
    assert reason in REASONS, reason
    headers = {"WWW-Authenticate": challenge} if challenge else None
    return WebhookError(401, "unauthorized", detail, headers, reason)


def _missing_or_other_scheme(header: str, scheme: str) -> str:
    """Why `header` carries no `scheme` credentials: absent, or another scheme."""
    given = header.strip().partition(" ")[0]
    return "wrong_scheme" if given and given.lower() != scheme else "no_credentials"


class NoAuth:
    """Method "none": every caller is accepted (create_app warns about it at start)."""

    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings

    def verify(self, request: Request) -> None:
        return None


class BasicAuth:
    challenge = f'Basic realm="{REALM}", charset="UTF-8"'

    def __init__(self, settings: AuthSettings) -> None:
        self.username = settings.username
        self.passwords = [p for p in (settings.password, settings.previous_secret) if p]

    def verify(self, request: Request) -> None:
        header = request.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic" or not encoded.strip():
            raise _refuse(_missing_or_other_scheme(header, "basic"),
                          "Basic credentials are required", self.challenge)
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise _refuse("malformed", "the Basic credentials are malformed",
                          self.challenge) from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise _refuse("malformed", "the Basic credentials are malformed", self.challenge)
        user_ok = _same(username, self.username)
        # Check every password even when the user is wrong, so timing says nothing.
        password_ok = any([_same(password, p) for p in self.passwords])
        if not (user_ok and password_ok):
            raise _refuse("wrong_credentials", "the Basic credentials are not valid",
                          self.challenge)


class BearerAuth:
    challenge = f'Bearer realm="{REALM}"'

    def __init__(self, settings: AuthSettings) -> None:
        self.tokens = [t for t in (settings.secret, settings.previous_secret) if t]

    def verify(self, request: Request) -> None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _refuse(_missing_or_other_scheme(header, "bearer"),
                          "a Bearer token is required", self.challenge)
        if not any([_same(token.strip(), t) for t in self.tokens]):
            raise _refuse("wrong_token", "the Bearer token is not valid",
                          self.challenge + ', error="invalid_token"')


class ApiKeyAuth:
    def __init__(self, settings: AuthSettings) -> None:
        self.header = settings.api_key_header
        self.keys = [k for k in (settings.api_key, settings.previous_secret) if k]

    def verify(self, request: Request) -> None:
        given = request.headers.get(self.header, "").strip()
        if not given:
            raise _refuse("no_credentials", f"the {self.header} header is required")
        if not any([_same(given, k) for k in self.keys]):
            raise _refuse("wrong_key", f"the {self.header} header is not valid")


def _token_from(request: Request, challenge: str, required: str) -> str:
    """The JWT in `Authorization`, raw (as the assistant sends it) or after `Bearer `; refused
    (`required` says what is) when there is none."""
    value = request.headers.get("Authorization", "").strip()
    scheme, space, rest = value.partition(" ")
    if scheme.lower() == "bearer":
        value = rest.strip()
    elif space:  # "Basic ...": a JWT has no space in it
        raise _refuse("wrong_scheme", required, challenge)
    if not value:
        raise _refuse("no_credentials", required, challenge)
    return value


def _decode_options(settings: AuthSettings) -> dict[str, Any]:
    # The assistant's claims are undocumented: demand none, check exp/nbf only when present.
    return {"require": [], "verify_aud": bool(settings.audience),
            "verify_iss": bool(settings.issuer)}


# PyJWT's refusals: the log line's reason and the answer's detail (anything else: "malformed").
JWT_FAILURES: list[tuple[type[Exception], str, str]] = [
    (jwt.ExpiredSignatureError, "expired", "the token has expired"),
    (jwt.ImmatureSignatureError, "not_yet_valid", "the token is not valid yet"),
    (jwt.InvalidAudienceError, "wrong_audience", "the token is for another audience"),
    (jwt.InvalidIssuerError, "wrong_issuer", "the token is from another issuer"),
    (jwt.InvalidAlgorithmError, "wrong_algorithm", "the token's algorithm is not accepted"),
    (jwt.InvalidSignatureError, "bad_signature", "the token's signature is not valid"),
]


def _jwt_refusal(exc: Exception, challenge: str) -> WebhookError:
    for kind, reason, detail in JWT_FAILURES:
        if isinstance(exc, kind):
            return _refuse(reason, detail, challenge)
    return _refuse("malformed", "the token is not a valid JWT", challenge)


class SignedJwtAuth:
    """The assistant's "Signed JWT" (and the log webhook's secret): HMAC with a shared secret.

    Tokens that passed are remembered until they expire (`exp` plus the leeway; at most
    `VERIFIED_TOKENS` of them): a client that sends the same token again, as HMAC signing of
    the same claims gives, costs a dictionary lookup instead of PyJWT's parsing and HMAC, a
    tenth of a busy log webhook's CPU. Only the exact token hits, so nothing unverified ever
    passes; `nbf` and `iat` were in the past when it was verified and stay there.
    """

    challenge = f'Bearer realm="{REALM}"'
    VERIFIED_TOKENS = 1024

    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self.secrets = [s for s in (settings.secret, settings.previous_secret) if s]
        self.algorithms = list(settings.algorithms)
        self.options = _decode_options(settings)
        self._verified: dict[bytes, float] = {}   # token's sha256 -> when it stops being accepted

    def verify(self, request: Request) -> None:
        token = _token_from(request, self.challenge, "a signed JWT is required in Authorization")
        if time.time() < self._verified.get(_token_key(token), float("-inf")):
            return
        failure: Exception | None = None
        for secret in self.secrets:
            try:
                claims = jwt.decode(token, secret, algorithms=self.algorithms,
                                    options=self.options, leeway=self.settings.leeway,
                                    audience=self.settings.audience, issuer=self.settings.issuer)
                self._remember(token, claims)
                return
            except jwt.InvalidSignatureError as exc:
                failure = exc  # maybe signed with the other (rotated) secret
            except jwt.PyJWTError as exc:
                failure = exc
                break
        raise _jwt_refusal(failure or jwt.InvalidTokenError(),
                           self.challenge + ', error="invalid_token"')

    def _remember(self, token: str, claims: dict[str, Any]) -> None:
        if len(self._verified) >= self.VERIFIED_TOKENS:
            self._verified.clear()   # a flood of distinct tokens: start over, stay bounded
        # As PyJWT reads it: expired once int(exp) <= now - leeway.
        self._verified[_token_key(token)] = int(claims["exp"]) + self.settings.leeway \
            if "exp" in claims else float("inf")


def _token_key(token: str) -> bytes:
    """A remembered token's key: its sha256, so the memory is bounded by the number of tokens,
    not their size, and only the exact token still hits."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class JwksCache:
    """The authorization server's public keys, fetched on first use and again on an unknown `kid`.

    Refetches are spaced by `min_refresh` seconds so forged tokens with random key ids cannot
    make us hammer the authorization server.
    """

    def __init__(self, url: str, timeout: float, ttl: float = 3600.0,
                 min_refresh: float = 10.0) -> None:
        self.url = url
        self.timeout = timeout
        self.ttl = ttl
        self.min_refresh = min_refresh
        self._keys: dict[str | None, Any] = {}
        self._fetched = 0.0
        self._lock = threading.Lock()

    def _fetch(self) -> None:
        with urllib.request.urlopen(self.url, timeout=self.timeout) as answer:
            document = json.loads(answer.read(1_000_000))
        keys: dict[str | None, Any] = {}
        for key in jwt.PyJWKSet.from_dict(document).keys:
            keys[key.key_id] = key
        self._keys = keys
        self._fetched = time.monotonic()

    def key_for(self, kid: str | None) -> Any:
        now = time.monotonic()
        with self._lock:
            stale = now - self._fetched > self.ttl
            unknown = kid not in self._keys and not (kid is None and len(self._keys) == 1)
            if stale or (unknown and now - self._fetched > self.min_refresh):
                try:
                    self._fetch()
                except Exception as exc:  # network, JSON, or key format: all mean "no keys now"
                    log.warning("could not fetch the JWKS from %s: %s", self.url,
                                type(exc).__name__)
                    if not self._keys:
                        raise WebhookError(503, "auth_unavailable",
                                           "the authorization server's keys could not be fetched",
                                           reason="jwks_unavailable") from None
            if kid is None and len(self._keys) == 1:
                return next(iter(self._keys.values()))
            return self._keys.get(kid)


class OAuth2Auth:
    """OAuth 2.0: the assistant fetched a token from the team's authorization server; we check
    JWT access tokens against that server's JWKS (and issuer/audience when configured)."""

    challenge = f'Bearer realm="{REALM}"'

    def __init__(self, settings: AuthSettings) -> None:
        assert settings.jwks_url
        self.settings = settings
        self.jwks = JwksCache(settings.jwks_url, settings.jwks_timeout)

    def verify(self, request: Request) -> None:
        token = _token_from(request, self.challenge, "a Bearer access token is required")
        invalid = self.challenge + ', error="invalid_token"'
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _refuse("malformed", "the token is not a valid JWT", invalid) from None
        if header.get("alg") not in self.settings.algorithms:
            raise _refuse("wrong_algorithm", "the token's algorithm is not accepted", invalid)
        key = self.jwks.key_for(header.get("kid"))
        if key is None:
            raise _refuse("unknown_key", "the token was signed by an unknown key", invalid)
        try:
            jwt.decode(token, key.key, algorithms=list(self.settings.algorithms),
                       options=_decode_options(self.settings), leeway=self.settings.leeway,
                       audience=self.settings.audience, issuer=self.settings.issuer)
        except jwt.PyJWTError as exc:
            raise _jwt_refusal(exc, invalid) from None


VERIFIERS: dict[str, type] = {
    "none": NoAuth,
    "basic": BasicAuth,
    "bearer": BearerAuth,
    "apikey": ApiKeyAuth,
    "jwt": SignedJwtAuth,
    "oauth2": OAuth2Auth,
}


def build_verifier(settings: AuthSettings) -> Verifier:
    """The verifier of `settings.method`, built once per webhook in create_app."""
    return VERIFIERS[settings.method](settings)


def protect(blueprint: Any, webhook: str) -> None:
    """Check the caller of every route of `blueprint` with `webhook`'s verifier, before the body
    is read (the verifiers are built once in create_app)."""
    from flask import current_app, request

    def authenticate() -> None:
        current_app.extensions["webhooks"].verifiers[webhook].verify(request)

    blueprint.before_request(authenticate)
