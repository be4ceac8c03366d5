"""Who may see the explorer. Every request whose path is /explorer or under /explorer/ (pages,
the stylesheet, unknown paths, wrong methods) passes `guard` before anything else runs, and every
answer to such a path gets the security headers, errors included: an unknown path is a 401
before it is a 404.

- `EXPLORER_AUTH=none` answers only requests addressed to a loopback name (`Host`: localhost,
  127.0.0.0/8 or [::1], any port): a page of another site whose name was pointed at this
  machine (DNS rebinding) sends its own name and is refused.
- Otherwise HTTP Basic, both parts compared in constant time. Wrong credentials from one client
  address are counted (throttle.py): after 10 in a minute that address gets 429 with
  `Retry-After`, even with the right password, since answering it would tell a guesser which
  guess was right. Requests without credentials, and the right password from any other
  address, are never held back.
- A NUL character anywhere in the path or the query is a 400: no database accepts it in text.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Sequence

from flask import Response, current_app, request

from ..envelope import error_response
from ..settings import Settings

PREFIX = "/explorer"
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; script-src 'none'; object-src 'none'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
CHALLENGE = {"WWW-Authenticate": 'Basic realm="explorer", charset="UTF-8"'}


def under_explorer(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def guard() -> Response | None:
    """Before every request of the app: the explorer's checks, for the explorer's paths."""
    if not under_explorer(request.path):
        return None
    settings = current_app.config["WEBHOOK_SETTINGS"]
    refused = _local_only() if settings.explorer_auth == "none" else _login(settings)
    if refused is not None:
        return refused
    if "\0" in request.path or \
            any("\0" in key + value for key, value in request.args.items(multi=True)):
        return error_response(400, "bad_request", "a NUL character is not accepted in the "
                              "path or a query parameter")
    return None


def secure(response: Response) -> Response:
    """After every request of the app: the explorer's paths get its headers."""
    if under_explorer(request.path):
        response.headers.update(SECURITY_HEADERS)
    return response


def _local_only() -> Response | None:
    if is_loopback_host(request.headers.get("Host", "")):
        return None
    return error_response(403, "forbidden", "the explorer runs without credentials "
                          "(EXPLORER_AUTH=none), so it answers only requests addressed to "
                          "localhost, 127.0.0.1 or [::1]")


def _login(settings: Settings) -> Response | None:
    throttle = current_app.extensions["explorer_throttle"]
    address = client_address(request.environ, settings.forwarded_allow_ips)
    wait = throttle.retry_after(address)
    if wait:
        return error_response(429, "too_many_failures", "too many wrong passwords from this "
                              f"address: try again in {wait} s", {"Retry-After": str(wait)})
    given = request.authorization
    if given is None or given.type != "basic":
        return error_response(401, "unauthorized", "the explorer needs its username and "
                              "password", CHALLENGE)
    # Both compared every time, so the time taken says nothing about which one was wrong.
    same_user = hmac.compare_digest((given.username or "").encode(),
                                    settings.explorer_username.encode())
    same_password = hmac.compare_digest((given.password or "").encode(),
                                        settings.explorer_password.encode())
    if same_user and same_password:
        return None
    throttle.failed(address)
    return error_response(401, "unauthorized", "the explorer needs its username and password",
                          CHALLENGE)


def is_loopback_host(host: str) -> bool:
    """Whether a Host header names this machine's loopback: localhost, 127.0.0.0/8 or [::1],
    with or without a port."""
    name, port = host.lower(), ""
    if name.startswith("["):
        name, bracket, port = name[1:].partition("]")
        if not bracket or (port and not port.startswith(":")):
            return False
        port = port[1:]
    elif ":" in name:
        name, _, port = name.partition(":")
    if port and not port.isdigit():
        return False
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def client_address(environ: dict, trusted_proxies: Sequence[str]) -> bytes:
    """Whose failures a request counts towards, as 16 bytes: the peer (`REMOTE_ADDR`), or the
    last address of `X-Forwarded-For` (the one the proxy itself added) when the peer is a
    trusted proxy (FORWARDED_ALLOW_IPS, or a Unix socket, as gunicorn trusts them). An IPv6
    client counts by its /64 network, which one subscriber usually holds whole."""
    peer = environ.get("REMOTE_ADDR") or ""
    address = peer
    if "*" in trusted_proxies or peer in trusted_proxies or not _is_ip(peer):
        forwarded = (environ.get("HTTP_X_FORWARDED_FOR") or "").rsplit(",", 1)[-1].strip()
        if _is_ip(forwarded):
            address = forwarded
    if not _is_ip(address):
        return bytes(16)
    ip = ipaddress.ip_address(address)
    if ip.version == 4:
        return ipaddress.IPv6Address(f"::ffff:{ip}").packed
    if ip.ipv4_mapped is not None:
        return ip.packed
    return ipaddress.IPv6Network((int(ip), 64), strict=False).network_address.packed


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False
