"""A real gunicorn in a process of its own, on a free loopback port: how tests and benchmarks
start the kit (and the echo) the way production does.

`serve(app_spec, env=None, extra_args=())` is a context manager. It starts `gunicorn -c
server/gunicorn_conf.py <app_spec>` (the .venv's gunicorn, the project's settings), waits for `GET
/healthz`, yields the base URL (`"http://127.0.0.1:PORT"`) and stops the server (SIGTERM, then
SIGKILL of its process group after 40 s). `env` is laid over the environment with the kit's own
variables removed (so a shell cannot change a run): pass the kit's settings and gunicorn's
(`WEB_CONCURRENCY`, `GUNICORN_THREADS`, `APP_LOG_LEVEL`, ...). `extra_args` go after `-c
server/gunicorn_conf.py` and so override it. The server's output goes to `log_path` or a temporary
file. The URL is a str that also carries `.pid` (the gunicorn master) and `.log_path`.

    with serve("handlers:create_app()", {"WEBHOOK_AUTH": "none"}) as url: ...
    with serve(ECHO_APP) as url: ...   # the bare Flask echo, the benchmarks' baseline
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import runpy
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any, Iterator, Mapping, Sequence

REPO = pathlib.Path(__file__).resolve().parent.parent
ECHO_APP = "testsupport.echo_app:create_app()"
KIT_APP = "handlers:create_app()"
# The kit's variables (as in tests/conftest.py): dropped from the inherited environment.
KIT_PREFIXES = ("WEBHOOK_", "PREMESSAGE_", "POSTMESSAGE_", "ORCHESTRATE_", "LOG_", "TRANSLAT",
                "LANGUAGE", "DATABASE_", "REDIS_", "CONTENT_DIR", "SKILL_TYPE",
                "ASSISTANT_LANGUAGE",
                "SUPPORTED_LANGUAGES", "UNSUPPORTED_", "MAX_CONTENT_LENGTH", "OFFERED_OPTIONS",
                "SESSION_", "BREAKER_", "WEB_CONCURRENCY", "GUNICORN_", "PORT", "APP_LOG_LEVEL",
                "WEBHOOKS", "REQUEST_READ_TIMEOUT", "METRICS", "PROMETHEUS_")
# Servers run in steady state: no worker recycling (GUNICORN_MAX_REQUESTS, 10,000 as shipped),
# which a benchmark at thousands of req/s crosses. A replaced worker's CPU time drops out of a
# benchmark's count (negative CPU per request). A caller's `env` may set it back.
STEADY = {"GUNICORN_MAX_REQUESTS": "0"}


def gunicorn_command() -> list[str]:
    """The project's gunicorn: the .venv's if there is one, else the running interpreter's."""
    for candidate in (REPO / ".venv" / "bin" / "gunicorn",
                      pathlib.Path(sys.executable).parent / "gunicorn"):
        if candidate.exists():
            return [str(candidate)]
    return [sys.executable, "-m", "gunicorn"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(env: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The environment a served app gets: ours without the kit's variables, plus `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(KIT_PREFIXES)}
    base.update(STEADY)
    base.update({k: str(v) for k, v in (env or {}).items() if v is not None})
    return base


def gunicorn_settings(env: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What server/gunicorn_conf.py sets under `env` (workers, threads, worker_class, ...), for
    labels."""
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(server_env(env))
        values = runpy.run_path(str(REPO / "server" / "gunicorn_conf.py"))
    except Exception:  # a label is not worth failing a run for
        return {}
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return {k: v for k, v in values.items() if not k.startswith("_")}


def worker_pids(master_pid: int) -> list[int]:
    """The gunicorn workers: the master's child processes (read from /proc), in pid order."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                # pid (comm) state ppid ...: comm may hold spaces, so split after its paren
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == master_pid:
            found.append(int(entry))
    return sorted(found)


class ServerURL(str):
    """The base URL `serve` yields; also knows the gunicorn master's `pid` and its `log_path`."""

    pid: int
    log_path: pathlib.Path

    def __new__(cls, url: str, pid: int, log_path: pathlib.Path) -> "ServerURL":
        value = super().__new__(cls, url)
        value.pid = pid
        value.log_path = log_path
        return value


def _tail(path: pathlib.Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def serve(app_spec: str = KIT_APP, env: Mapping[str, Any] | None = None,
          extra_args: Sequence[str] = (), *, log_path: str | os.PathLike[str] | None = None,
          start_timeout: float = 60.0) -> Iterator[ServerURL]:
    """Run `app_spec` under gunicorn with the project's server/gunicorn_conf.py; yield its URL."""
    port = free_port()
    environment = server_env(env)
    environment["PORT"] = str(port)
    own_log = log_path is None
    if own_log:
        handle, name = tempfile.mkstemp(prefix="gunicorn-", suffix=".log")
        os.close(handle)
        log_file = pathlib.Path(name)
    else:
        log_file = pathlib.Path(log_path)
    command = [*gunicorn_command(), "-c", "server/gunicorn_conf.py",
               "--bind", f"127.0.0.1:{port}", *extra_args, app_spec]
    with open(log_file, "ab") as log:
        process = subprocess.Popen(command, cwd=REPO, env=environment, stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = ServerURL(f"http://127.0.0.1:{port}", process.pid, log_file)
    try:
        try:
            _wait_healthy(process, url, start_timeout, log_file)
        except RuntimeError as exc:
            raise RuntimeError(f"{app_spec}: {exc}") from None
        yield url
    finally:
        _stop(process)
        if own_log:
            log_file.unlink(missing_ok=True)


def _wait_healthy(process: subprocess.Popen[bytes], url: str, timeout: float,
                  log_file: pathlib.Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode} before answering; "
                               f"its log:\n{_tail(log_file)}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    _stop(process)
    raise RuntimeError(f"gunicorn did not answer /healthz within {timeout:.0f} s; "
                       f"its log:\n{_tail(log_file)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            pass
    # The session is the master's own (start_new_session): take any straggling worker with it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
