"""REDIS_URL=rediss:// against a real TLS Redis with a self-signed certificate (as Heroku Redis
presents): REDIS_SSL_CERT_REQS=none makes the session memory work through it; the default
(required) refuses the certificate, logs once and falls back to process memory."""

from __future__ import annotations

import logging
import pathlib
import shutil
import socket
import ssl
import subprocess
import time
from typing import Iterator

import pytest
import redis

from handlers.settings import SettingsError, load_settings
from tests.conftest import fixture


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tls_ping(port: int) -> bool:
    """One PING over TLS without verifying the certificate: is the server up yet?"""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as raw, \
                context.wrap_socket(raw) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture
def tls_redis(tmp_path: pathlib.Path) -> Iterator[str]:
    """A redis-server speaking only TLS on a free loopback port: yields its rediss:// URL."""
    server, openssl = shutil.which("redis-server"), shutil.which("openssl")
    if not server or not openssl:
        pytest.skip("needs redis-server and openssl on PATH")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    port = free_port()
    log = tmp_path / "redis.log"
    process = subprocess.Popen(
        [server, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-auth-clients", "no",
         "--save", "", "--appendonly", "no", "--dir", str(tmp_path), "--logfile", str(log)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        for _ in range(100):
            if process.poll() is not None:
                output = (process.stdout.read() if process.stdout else b"").decode(errors="replace")
                text = output + (log.read_text(errors="replace") if log.exists() else "")
                if "tls" in text.lower():
                    pytest.skip(f"this redis-server has no TLS support: {text.strip()[-200:]}")
                pytest.fail(f"redis-server exited: {text[-500:]}")
            if tls_ping(port) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert tls_ping(port), "the TLS redis-server did not answer within 10 s"
        yield f"rediss://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def premessage(client, text: str, session: str) -> dict:
    body = fixture("pre_message_request.message_received.json")
    body["payload"].setdefault("input", {})["text"] = text
    body["payload"].setdefault("context", {}).setdefault("global", {})["session_id"] = session
    response = client.post("/webhooks/premessage", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


@pytest.mark.slow
def test_self_signed_tls_redis_works_with_cert_reqs_none(make_app, tls_redis, caplog):
    settings = {"REDIS_URL": tls_redis, "REDIS_PREFIX": "tls-test:", "REDIS_SSL_CERT_REQS": "none"}
    one, other = make_app(**settings), make_app(**settings)
    with caplog.at_level(logging.WARNING, logger="handlers.cache"):
        premessage(one.test_client(), "Hola, necesito ayuda con mi pedido", "s-tls")
        # Another instance reads the language through the TLS Redis: not process memory.
        assert other.extensions["webhooks"].sessions.get("s-tls")["language"] == "es"
    assert not [r for r in caplog.records if r.name == "handlers.cache"]
    client = one.extensions["webhooks"].sessions.redis.client
    assert client.connection_pool.connection_kwargs["ssl_cert_reqs"] == "none"
    assert client.hgetall("tls-test:session:s-tls")
    assert one.extensions["webhooks"].sessions.redis.errors == 0


@pytest.mark.slow
def test_self_signed_tls_redis_is_refused_by_default(make_app, tls_redis, caplog):
    app = make_app(REDIS_URL=tls_redis, REDIS_PREFIX="tls-test:")
    sessions = app.extensions["webhooks"].sessions
    with caplog.at_level(logging.WARNING, logger="handlers.cache"):
        premessage(app.test_client(), "Hola, necesito ayuda con mi pedido", "s-strict")
        # Falls back to this process's memory: the turn still works.
        assert sessions.get("s-strict")["language"] == "es"
    warnings = [r.getMessage() for r in caplog.records if r.name == "handlers.cache"]
    assert len(warnings) == 1 and "redis unavailable" in warnings[0]
    assert tls_redis not in caplog.text
    assert sessions.redis.errors >= 1
    # The reason is the certificate, as redis-py says to a client configured like the kit's.
    strict = redis.Redis.from_url(tls_redis, socket_timeout=2)
    with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        strict.ping()
    strict.close()
    unverified = redis.Redis.from_url(tls_redis, ssl_cert_reqs="none")
    try:
        assert unverified.exists("tls-test:session:s-strict") == 0  # nothing went over
    finally:
        unverified.close()


@pytest.mark.redis
def test_the_setting_leaves_plain_redis_urls_alone(make_app, redis_url, redis_prefix):
    app = make_app(REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix, REDIS_SSL_CERT_REQS="none")
    sessions = app.extensions["webhooks"].sessions
    sessions.update("s-plain", {"language": "fr"})
    assert sessions.get("s-plain") == {"language": "fr"}
    assert sessions.redis.errors == 0
    sessions.redis.client.delete(f"{redis_prefix}session:s-plain")


@pytest.mark.parametrize("value", ["NONE", "optional", "required"])
def test_cert_reqs_values(value):
    assert load_settings({"REDIS_SSL_CERT_REQS": value}, environ={}).redis_ssl_cert_reqs == \
        value.lower()
    assert load_settings({}, environ={}).redis_ssl_cert_reqs == "required"


def test_cert_reqs_rejects_other_values():
    with pytest.raises(SettingsError, match="REDIS_SSL_CERT_REQS"):
        load_settings({"REDIS_SSL_CERT_REQS": "false"}, environ={})
