"""How each webhook's callers prove who they are: `AuthSettings`, read per webhook.

`WEBHOOK_*` settings apply to every webhook; the same names with a webhook's prefix
(`PREMESSAGE_`, `POSTMESSAGE_`, `LOG_`, `ORCHESTRATE_`) override them for that webhook.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Mapping

from .readers import SettingsError, read_number, read_text

AUTH_METHODS = ("none", "basic", "bearer", "apikey", "jwt", "oauth2")
ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
                         "ES384", "ES512", "EdDSA")


@dataclass(frozen=True)
class AuthSettings:
    """How one webhook's callers prove they are the assistant."""

    webhook: str
    method: str = "none"
    secret: str | None = field(default=None, repr=False)
    previous_secret: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    api_key_header: str = "X-API-Key"
    api_key: str | None = field(default=None, repr=False)
    jwks_url: str | None = None
    issuer: str | None = None
    audience: str | None = None
    algorithms: tuple[str, ...] = ("HS256",)
    leeway: float = 30.0
    jwks_timeout: float = 2.0


AUTH_DEFAULTS = {f.name: f.default for f in fields(AuthSettings) if f.default is not MISSING}


def read_auth(source: Mapping[str, Any], webhook: str, prefix: str) -> AuthSettings:
    """One webhook's authentication: its own `prefix` settings, else the shared WEBHOOK_ ones."""

    def pick(key: str) -> tuple[str, str | None]:
        """The per-webhook value if set, else the shared WEBHOOK_* one, and the name it has."""
        own = read_text(source, prefix + key)
        if own is not None:
            return prefix + key, own
        return "WEBHOOK_" + key, read_text(source, "WEBHOOK_" + key)

    method_name, method = pick("AUTH")
    method = (method or AUTH_DEFAULTS["method"]).lower()
    if method not in AUTH_METHODS:
        raise SettingsError(f"{method_name}={method!r} is not one of {', '.join(AUTH_METHODS)}; "
                            "set the method the assistant uses")
    secret_name, secret = pick("SECRET")
    _, previous = pick("PREVIOUS_SECRET")
    user_name, username = pick("USERNAME")
    password_name, password = pick("PASSWORD")
    _, header = pick("API_KEY_HEADER")
    key_name, api_key = pick("API_KEY")
    jwks_name, jwks_url = pick("JWKS_URL")
    _, issuer = pick("ISSUER")
    _, audience = pick("AUDIENCE")
    alg_name, algs = pick("JWT_ALGORITHMS")
    leeway_name, leeway_raw = pick("JWT_LEEWAY")

    where = f"(for the {webhook} webhook, {method_name}={method})"
    if method == "jwt" and not secret:
        raise SettingsError(f"{secret_name} is required {where}: set the assistant's secret")
    if method == "bearer" and not secret:
        raise SettingsError(f"{secret_name} is required {where}: set the bearer token")
    if method == "basic" and not (username and password):
        missing = user_name if not username else password_name
        raise SettingsError(f"{missing} is required {where}: set it as in the assistant")
    if method == "apikey" and not api_key:
        raise SettingsError(f"{key_name} is required {where}: set the API key")
    if method == "oauth2" and not jwks_url:
        raise SettingsError(f"{jwks_name} is required {where}: set the URL of the "
                            "authorization server's JWKS")
    if jwks_url and not jwks_url.lower().startswith(("http://", "https://")):
        raise SettingsError(f"{jwks_name}={jwks_url!r} has no http:// or https://: write the "
                            "whole URL of the authorization server's JWKS")
    if method == "jwt" and secret and len(secret) > 1024:
        # The assistant refuses longer secrets, so a longer one here can never match.
        raise SettingsError(f"{secret_name} is longer than the assistant's limit of 1024 "
                            "characters: set a shorter secret in both")

    default_algs = ASYMMETRIC_ALGORITHMS if method == "oauth2" else AUTH_DEFAULTS["algorithms"]
    algorithms = tuple(a.strip() for a in (algs or "").split(",") if a.strip()) or default_algs
    allowed = ASYMMETRIC_ALGORITHMS if method == "oauth2" else ("HS256", "HS384", "HS512")
    for alg in algorithms:
        if alg not in allowed:
            raise SettingsError(f"{alg_name}: {alg!r} is not allowed with {method}; "
                                f"set some of {', '.join(allowed)}")
    leeway = read_number({leeway_name: leeway_raw}, leeway_name, AUTH_DEFAULTS["leeway"],
                     positive=False, minimum=0)
    if header is not None and not header.replace("-", "").replace("_", "").isalnum():
        raise SettingsError(f"{prefix}API_KEY_HEADER / WEBHOOK_API_KEY_HEADER={header!r} "
                            "is not a valid header name: set letters, digits and dashes only")
    return AuthSettings(webhook=webhook, method=method, secret=secret, previous_secret=previous,
                        username=username, password=password,
                        api_key_header=header or AUTH_DEFAULTS["api_key_header"],
                        api_key=api_key,
                        jwks_url=jwks_url, issuer=issuer, audience=audience,
                        algorithms=algorithms, leeway=leeway)
