"""The load harness every benchmark in bench/ uses: real gunicorn, real HTTP on loopback.

Three pieces, usable alone or together (run scripts from the repository root, under
`flock /tmp/bench.lock`, because benchmarks on a 2-core box disturb each other):

`serve(app_spec, env=None, extra_args=())` -- context manager. Starts
`gunicorn -c gunicorn.conf.py <app_spec>` (the .venv's gunicorn, the project's settings) on a free
127.0.0.1 port, waits for `GET /healthz`, yields the base URL (`"http://127.0.0.1:PORT"`) and
stops the server (SIGTERM, then SIGKILL of its process group after 40 s). `env` is laid over the
environment with the kit's own variables removed (so your shell cannot change a benchmark): pass
the kit's settings and gunicorn's (`WEB_CONCURRENCY`, `GUNICORN_THREADS`, `APP_LOG_LEVEL`, ...).
`extra_args` go after `-c gunicorn.conf.py` and so override it (e.g. `["--workers", "2"]`).
The server's stderr (the kit's JSON request lines) goes to `log_path` or a temporary file. The
URL is a str that also carries `.pid` (the gunicorn master) and `.log_path`.

    with serve("handlers:create_app()", {"WEBHOOK_AUTH": "none"}) as url: ...
    with serve("bench.echo_app:create_app()") as url: ...   # the baseline

`Load(...)` -- what to send: `path`, then exactly one of
    body=...       one fixed body (str, bytes, or a dict/list sent as compact JSON),
    bodies=[...]   several bodies sent in turn, round-robin,
    template=...   a body (or a list of them, round-robin) in which every `{{N}}` (`placeholder`)
                   becomes an id unique to the request: `<run>-<thread>-<counter>`, letters, digits
                   and dashes only, so it is safe inside a JSON string (a fresh `log_id`, a fresh
                   sentence "I want to track order {{N}}" that no cache has seen);
plus `headers` (e.g. auth), `method` (POST), `name` (the table's label).

`run_load(url, load, duration=8, connections=16, threads=1)` -- drives one server with `wrk`
(installed with apt-get on first use if missing; if that fails, a Python generator takes over with
a loud warning: it saturates before the server does, so its numbers are a floor and ratios drift
towards 1). Returns a `Result`: `rps`, `p50_ms`, `p99_ms`, `mean_ms`, `max_ms`, `requests`,
`errors` (socket errors and timeouts), `non2xx` (answers >= 400). Closed loop: each of the
`connections` keep-alive connections sends its next request when the previous answer arrives, so
req/s is the throughput at that concurrency and p50/p99 include the queueing it causes. Every run
is bounded by `duration` (the process is killed at duration + 30 s), loopback only.
`measure(url, load, ...)` is `run_load` plus `cpu_ms`, the server's CPU time per request (master
and workers, from /proc), for a URL that came from `serve`. `probe(url, load)` sends one request.

`compare(loads, app=..., env=..., ...)` -- the benchmark in one call: starts the app and the echo
(same gunicorn settings, same `env`), checks one request of each load answers 2xx on both, warms
up, then runs `rounds` alternating app/echo measurements per load, prints a table (endpoint,
server, req/s, p50, p99, errors, server CPU per request, ratio to echo; the best round of each
side by default, see `summarise`) and returns the `Comparison`s (`.ratio` = app req/s / echo
req/s, `.rounds` the raw results). Example (see bench/foundation.py):

    from bench.harness import Load, compare
    rows = compare([Load("/webhooks/premessage", body=payload, name="premessage")],
                   env={"DATABASE_URL": "sqlite:////tmp/x.sqlite3"}, duration=8, rounds=3)
    ok = all(row.ratio >= 0.8 for row in rows)

For other line-ups than app versus echo (bench/floors.py: kit, echo and a plain app in one
run), `compare`'s parts: `check_answers(servers, load)` (one 2xx from each server or
RuntimeError), `measure_rounds(servers, load, ...)` (warm-up, then rounds measuring the servers
in turn; each server's Results), `summarise`, and `RESULT_HEAD`/`result_cells(result)` for the
table's columns. `knobs(duration, rounds, connections)` resolves the BENCH_* defaults below;
`machine()` is the line to print first (date, cores, CPU, Python, generator, commit), so the
output can go to bench/RESULTS.md as it is; `libre_process(delay_ms)` runs the stand-in
LibreTranslate server (tests/libre_server.py) in its own process and yields its URL.

Only one benchmark runs at a time: `compare` holds /tmp/bench.lock (`bench_lock()`), unless a
parent already does (`flock /tmp/bench.lock python bench/x.py`, or bench/run_all.py).

Environment knobs: `BENCH_GENERATOR=python` forces the Python generator; `BENCH_DURATION`,
`BENCH_ROUNDS`, `BENCH_CONNECTIONS`, `BENCH_SUMMARY` (best|median) are the defaults of `compare`
(handy to make `make bench` quicker or steadier). Servers run without worker recycling
(`BENCH_DEFAULTS`: GUNICORN_MAX_REQUESTS=0) unless `env` sets it.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import itertools
import json
import os
import pathlib
import runpy
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

REPO = pathlib.Path(__file__).resolve().parent.parent
ECHO_APP = "bench.echo_app:create_app()"
KIT_APP = "handlers:create_app()"
PLACEHOLDER = "{{N}}"
# The kit's variables (as in tests/conftest.py): dropped from the inherited environment.
KIT_PREFIXES = ("WEBHOOK_", "PREMESSAGE_", "POSTMESSAGE_", "ORCHESTRATE_", "LOG_", "TRANSLAT",
                "LANGUAGE", "DATABASE_", "REDIS_", "CONTENT_DIR", "SKILL_TYPE",
                "ASSISTANT_LANGUAGE",
                "SUPPORTED_LANGUAGES", "UNSUPPORTED_", "MAX_CONTENT_LENGTH", "OFFERED_OPTIONS",
                "SESSION_", "BREAKER_", "WEB_CONCURRENCY", "GUNICORN_", "PORT", "APP_LOG_LEVEL",
                "WEBHOOKS", "REQUEST_READ_TIMEOUT", "METRICS", "PROMETHEUS_")
# Measured servers run in steady state: no worker recycling (GUNICORN_MAX_REQUESTS, 10,000 as
# shipped), which a few rounds at thousands of req/s cross. A replaced worker's CPU time drops
# out of `cpu_seconds` (negative CPU per request), and before the kit's worker retired
# gracefully each replacement cost wrk read errors. A caller's `env` may set it back.
BENCH_DEFAULTS = {"GUNICORN_MAX_REQUESTS": "0"}


# --- the server -------------------------------------------------------------------------------

def gunicorn_command() -> list[str]:
    """The project's gunicorn: the .venv's if there is one, else the running interpreter's."""
    for candidate in (REPO / ".venv" / "bin" / "gunicorn",
                      pathlib.Path(sys.executable).parent / "gunicorn"):
        if candidate.exists():
            return [str(candidate)]
    return [sys.executable, "-m", "gunicorn"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(env: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The environment a benchmarked server gets: ours without the kit's variables, plus `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(KIT_PREFIXES)}
    base.update(BENCH_DEFAULTS)
    base.update({k: str(v) for k, v in (env or {}).items() if v is not None})
    return base


class ServerURL(str):
    """The base URL `serve` yields; also knows the gunicorn master's `pid` and its `log_path`."""

    pid: int
    log_path: pathlib.Path

    def __new__(cls, url: str, pid: int, log_path: pathlib.Path) -> "ServerURL":
        value = super().__new__(cls, url)
        value.pid = pid
        value.log_path = log_path
        return value


def cpu_seconds(pid: int) -> float:
    """User + system CPU time used so far by gunicorn master `pid` and its live workers (its
    process group). Dividing by requests gives a cost per request that other load on the box
    hardly changes, unlike req/s."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command: state, ppid, pgrp, ... utime (14th field), stime (15th).
        if int(fields[2]) == pid:
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (a gunicorn master's workers), in pid order."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == pid:
                found.append(int(entry))
    return sorted(found)


def gunicorn_settings(env: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What gunicorn.conf.py sets under `env` (workers, threads, worker_class, ...), for labels."""
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(server_env(env))
        values = runpy.run_path(str(REPO / "server" / "gunicorn_conf.py"))
    except Exception:  # a label is not worth failing a benchmark for
        return {}
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return {k: v for k, v in values.items() if not k.startswith("_")}


def _tail(path: pathlib.Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def serve(app_spec: str = KIT_APP, env: Mapping[str, Any] | None = None,
          extra_args: Sequence[str] = (), *, log_path: str | os.PathLike[str] | None = None,
          start_timeout: float = 60.0) -> Iterator[ServerURL]:
    """Run `app_spec` under gunicorn with the project's gunicorn.conf.py; yield its base URL."""
    port = free_port()
    environment = server_env(env)
    environment["PORT"] = str(port)
    own_log = log_path is None
    if own_log:
        handle, name = tempfile.mkstemp(prefix="bench-gunicorn-", suffix=".log")
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


@contextlib.contextmanager
def libre_process(delay_ms: float = 0.0, start_timeout: float = 30.0) -> Iterator[str]:
    """The stand-in LibreTranslate server (tests/libre_server.py) in a process of its own, so it
    shares no GIL with the script that measures; yields its URL. `delay_ms` delays each answer."""
    import re

    process = subprocess.Popen([sys.executable, "-m", "tests.libre_server", "--delay-ms",
                                str(delay_ms)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        timer = threading.Timer(start_timeout, process.kill)  # a silent server ends readline
        timer.start()
        try:
            line = process.stdout.readline() if process.stdout else ""
        finally:
            timer.cancel()
        match = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        if not match:
            raise RuntimeError(f"the libre server did not start: {line!r}")
        yield match.group(1)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- what to send -----------------------------------------------------------------------------

def _encode(body: Any) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class Load:
    """One kind of request: a path, a method, headers, and its bodies (see the module docstring)."""

    path: str
    body: Any = None
    bodies: Sequence[Any] | None = None
    template: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    method: str = "POST"
    name: str | None = None
    placeholder: str = PLACEHOLDER

    def __post_init__(self) -> None:
        given = [x for x in (self.body, self.bodies, self.template) if x is not None]
        if len(given) > 1:
            raise ValueError("give one of body, bodies or template")
        if not self.path.startswith("/"):
            raise ValueError(f"path {self.path!r} must start with /")
        if self.template is not None:
            for parts in self.parts():
                if len(parts) < 2:
                    raise ValueError(f"a template has no {self.placeholder} to replace")

    @property
    def label(self) -> str:
        return self.name or f"{self.method} {self.path}"

    def parts(self) -> list[list[bytes]]:
        """Each body split on the placeholder (one part when it is a fixed body)."""
        if self.template is not None:
            items = self.template if isinstance(self.template, (list, tuple)) else [self.template]
            marker = self.placeholder.encode()
            return [_encode(item).split(marker) for item in items]
        if self.bodies is not None:
            if not self.bodies:
                raise ValueError("bodies is empty")
            return [[_encode(item)] for item in self.bodies]
        return [[_encode(self.body)] if self.body is not None else [b""]]

    def all_headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"} if self.method in ("POST", "PUT") else {}
        headers.update(self.headers)
        return headers


def render(parts: list[bytes], unique_id: str) -> bytes:
    return unique_id.encode().join(parts)


@dataclass
class Result:
    """One run of the load generator against one server."""

    name: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    errors: int
    non2xx: int
    generator: str
    cpu_ms: float | None = None  # server CPU per request (compare() fills it in)


def probe(url: str, load: Load, timeout: float = 10.0) -> tuple[int, bytes]:
    """Send one request of `load` (ids `probe-...`); return (status, body). For sanity checks."""
    parts = load.parts()[0]
    data = render(parts, f"probe-{uuid.uuid4().hex[:8]}") if len(parts) > 1 else parts[0]
    request = urllib.request.Request(url + load.path, data=data if data else None,
                                     method=load.method, headers=load.all_headers())
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


# --- the load generators ----------------------------------------------------------------------

_wrk_path: list[str | None] = []


def find_wrk() -> str | None:
    """wrk's path, installing it with apt-get (as root) the first time if it is missing."""
    if _wrk_path:
        return _wrk_path[0]
    path = shutil.which("wrk")
    if path is None and shutil.which("apt-get") and os.geteuid() == 0:
        print("bench: wrk is missing; installing it with apt-get", file=sys.stderr, flush=True)
        apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        try:
            subprocess.run(["apt-get", "update", "-qq"], env=apt_env, check=True, timeout=300,
                           stdout=subprocess.DEVNULL)
            subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=apt_env, check=True,
                           timeout=300, stdout=subprocess.DEVNULL)
        except (subprocess.SubprocessError, OSError) as exc:
            print(f"bench: could not install wrk ({exc})", file=sys.stderr, flush=True)
        path = shutil.which("wrk")
    _wrk_path.append(path)
    return path


def _lua_string(data: bytes) -> str:
    return '"' + "".join(chr(c) if 32 <= c < 127 and c not in (34, 92) else f"\\{c:03d}"
                         for c in data) + '"'


def _wrk_script(load: Load, run_id: str) -> str:
    bodies = ",\n".join("{" + ", ".join(_lua_string(p) for p in parts) + "}"
                        for parts in load.parts())
    headers = ", ".join(f"[{_lua_string(k.encode())}] = {_lua_string(v.encode())}"
                        for k, v in load.all_headers().items())
    return f"""
local method = {_lua_string(load.method.encode())}
local path = {_lua_string(load.path.encode())}
local headers = {{ {headers} }}
local bodies = {{ {bodies} }}
local run_id = {_lua_string(run_id.encode())}
local prepared = {{}}
local index = 0
local counter = 0
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("tid", thread_count)
end

function init(args)
  for i, parts in ipairs(bodies) do
    if #parts == 1 then
      local body = parts[1]
      if body == "" then body = nil end
      prepared[i] = wrk.format(method, path, headers, body)
    end
  end
end

function request()
  index = index % #bodies + 1
  local ready = prepared[index]
  if ready then return ready end
  counter = counter + 1
  local id = run_id .. "-" .. tostring(tid) .. "-" .. tostring(counter)
  return wrk.format(method, path, headers, table.concat(bodies[index], id))
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"mean_us": %f, "max_us": %d, "connect": %d, "read": %d, "write": %d, "timeout": %d, ' ..
    '"status": %d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, latency.max, e.connect, e.read, e.write, e.timeout, e.status))
end
"""


def _run_wrk(wrk: str, url: str, load: Load, duration: float, connections: int, threads: int,
             timeout: float) -> Result:
    run_id = uuid.uuid4().hex[:8]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="bench-", delete=False) as script:
        script.write(_wrk_script(load, run_id))
    try:
        command = [wrk, "-t", str(threads), "-c", str(max(connections, threads)),
                   "-d", f"{max(duration, 1):.0f}s", "--timeout", f"{timeout:.0f}s",
                   "-s", script.name, url + load.path]
        answer = subprocess.run(command, capture_output=True, text=True,
                                timeout=duration + 30, check=False)
    finally:
        os.unlink(script.name)
    line = next((l for l in answer.stdout.splitlines() if l.startswith("WRK_RESULT ")), None)
    if answer.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({answer.returncode}): {answer.stderr.strip()[-500:]}")
    data = json.loads(line[len("WRK_RESULT "):])
    seconds = data["duration_us"] / 1e6
    return Result(name=load.label, requests=data["requests"], seconds=seconds,
                  rps=data["requests"] / seconds if seconds else 0.0,
                  p50_ms=data["p50_us"] / 1000, p99_ms=data["p99_us"] / 1000,
                  mean_ms=data["mean_us"] / 1000, max_ms=data["max_us"] / 1000,
                  errors=data["connect"] + data["read"] + data["write"] + data["timeout"],
                  non2xx=data["status"], generator="wrk")


def _run_python(url: str, load: Load, duration: float, connections: int, timeout: float,
                max_requests: int) -> Result:
    """The fallback: one thread per keep-alive connection, same closed loop as wrk."""
    host, port = url.removeprefix("http://").split(":")
    bodies = load.parts()
    headers = load.all_headers()
    run_id = uuid.uuid4().hex[:8]
    issued = itertools.count()
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections
    non2xx = [0] * connections
    deadline = time.monotonic() + duration

    def worker(slot: int) -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
        counter = 0
        while time.monotonic() < deadline and next(issued) < max_requests:
            parts = bodies[counter % len(bodies)]
            counter += 1
            data = render(parts, f"{run_id}-p{slot}-{counter}") if len(parts) > 1 else parts[0]
            started = time.perf_counter()
            try:
                connection.request(load.method, load.path, body=data or None, headers=headers)
                answer = connection.getresponse()
                answer.read()
            except (OSError, http.client.HTTPException):
                errors[slot] += 1
                connection.close()
                connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
                continue
            latencies[slot].append(time.perf_counter() - started)
            if answer.status >= 400:
                non2xx[slot] += 1
        connection.close()

    started = time.monotonic()
    workers = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(connections)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(duration + timeout + 5)
    seconds = time.monotonic() - started
    samples = sorted(itertools.chain.from_iterable(latencies))

    def pct(p: float) -> float:
        return samples[min(len(samples) - 1, int(len(samples) * p))] * 1000 if samples else 0.0

    return Result(name=load.label, requests=len(samples), seconds=seconds,
                  rps=len(samples) / seconds if seconds else 0.0, p50_ms=pct(0.50),
                  p99_ms=pct(0.99), mean_ms=statistics.fmean(samples) * 1000 if samples else 0.0,
                  max_ms=samples[-1] * 1000 if samples else 0.0, errors=sum(errors),
                  non2xx=sum(non2xx), generator="python")


_warned: list[bool] = []


def generator_name() -> str:
    """"wrk" or "python": what `run_load` will use."""
    if os.environ.get("BENCH_GENERATOR", "").lower() == "python":
        return "python"
    return "wrk" if find_wrk() else "python"


def run_load(url: str, load: Load, *, duration: float = 8.0, connections: int = 16,
             threads: int = 1, timeout: float = 10.0, max_requests: int = 2_000_000) -> Result:
    """Drive `url` with `load` for `duration` seconds over `connections` connections."""
    if not url.startswith(("http://127.", "http://localhost", "http://[::1]")):
        raise ValueError(f"benchmarks only target loopback, not {url}")
    if generator_name() == "wrk":
        wrk = find_wrk()
        assert wrk is not None
        return _run_wrk(wrk, url, load, duration, connections, threads, timeout)
    if not _warned:
        _warned.append(True)
        print("\n*** WARNING: using the Python load generator (wrk is not available, or "
              "BENCH_GENERATOR=python). It saturates "
              "before the server does: req/s are a floor and ratios are pulled towards 1. "
              "Install wrk (apt-get install wrk) for real figures. ***\n", file=sys.stderr,
              flush=True)
    return _run_python(url, load, duration, connections, timeout, max_requests)


# --- one benchmark at a time ----------------------------------------------------------------

LOCK_PATH = "/tmp/bench.lock"


def _lock_inherited(path: str) -> bool:
    """True when a parent (`flock /tmp/bench.lock ...`, run_all.py) holds the lock for us."""
    target = os.path.realpath(path)
    with contextlib.suppress(OSError):
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/self/fd/{fd}") == target:
                    return True
    return False


@contextlib.contextmanager
def bench_lock(path: str = LOCK_PATH, wait: float = 3600.0) -> Iterator[int | None]:
    """Hold /tmp/bench.lock (benchmarks on one box disturb each other); yields the locked fd
    (inheritable: pass it to child scripts with `pass_fds`), or None when a parent holds it."""
    if _lock_inherited(path):
        yield None
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        os.set_inheritable(fd, True)
        deadline = time.monotonic() + wait
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{path} stayed locked for {wait:.0f} s") from None
                if not told:
                    print(f"bench: waiting for {path} (another benchmark is running)",
                          file=sys.stderr, flush=True)
                    told = True
                time.sleep(1)
        yield fd
    finally:
        os.close(fd)


# --- app versus echo --------------------------------------------------------------------------

@dataclass
class Comparison:
    """One load measured on the app and on the echo (`app`/`echo` summarise the rounds)."""

    name: str
    app: Result
    echo: Result
    rounds: list[tuple[Result, Result]]

    @property
    def ratio(self) -> float:
        return self.app.rps / self.echo.rps if self.echo.rps else 0.0

    @property
    def cpu_ratio(self) -> float | None:
        """Echo CPU per request / app CPU per request: the ratio with the box's noise removed."""
        if not (self.app.cpu_ms and self.echo.cpu_ms):
            return None
        return self.echo.cpu_ms / self.app.cpu_ms


def measure(url: str, load: Load, **options: Any) -> Result:
    """`run_load`, plus the server's CPU per request when `url` came from `serve`."""
    pid = getattr(url, "pid", None)
    before = cpu_seconds(pid) if pid else 0.0
    result = run_load(url, load, **options)
    if pid and result.requests:
        result.cpu_ms = (cpu_seconds(pid) - before) * 1000 / result.requests
    return result


def summarise(results: list[Result], how: str = "best") -> Result:
    """One Result for several rounds of the same load on the same server.

    "best": the round with the most req/s (its latencies with it) and the least CPU per request:
    on a shared machine other processes only ever slow a run down, so the best round is the
    least disturbed estimate (as timeit takes the minimum). "median": the median of each figure.
    Errors are summed over all rounds either way.
    """
    cpu = [r.cpu_ms for r in results if r.cpu_ms is not None]
    if how == "best":
        top = max(results, key=lambda r: r.rps)
        chosen = Result(**{**top.__dict__, "cpu_ms": min(cpu) if cpu else None})
    elif how == "median":
        def med(attr: str) -> float:
            return statistics.median(getattr(r, attr) for r in results)

        chosen = Result(name=results[0].name, requests=0, seconds=0.0, rps=med("rps"),
                        p50_ms=med("p50_ms"), p99_ms=med("p99_ms"), mean_ms=med("mean_ms"),
                        max_ms=max(r.max_ms for r in results), errors=0, non2xx=0,
                        generator=results[0].generator,
                        cpu_ms=statistics.median(cpu) if cpu else None)
    else:
        raise ValueError(f"summary {how!r} is not 'best' or 'median'")
    chosen.requests = sum(r.requests for r in results)
    chosen.seconds = sum(r.seconds for r in results)
    chosen.errors = sum(r.errors for r in results)
    chosen.non2xx = sum(r.non2xx for r in results)
    return chosen


RESULT_HEAD = f"{'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'cpu ms/req':>10}"


def result_cells(result: Result) -> str:
    """One Result as the table columns under RESULT_HEAD (errors = socket errors + >= 400)."""
    cpu = f"{result.cpu_ms:10.3f}" if result.cpu_ms is not None else f"{'-':>10}"
    return (f"{result.rps:9.1f} {result.p50_ms:8.2f} {result.p99_ms:8.2f} "
            f"{result.errors + result.non2xx:7d} {cpu}")


def format_table(rows: Sequence[Comparison], target: float | None = None) -> str:
    """endpoint | server | req/s | p50 ms | p99 ms | errors | cpu ms/req | ratio | cpu ratio.

    `ratio` is app req/s / echo req/s (the target applies to it); `cpu ratio` is echo CPU per
    request / app CPU per request, the same question asked of CPU time, which other load on the
    box disturbs much less. `errors` counts socket errors plus answers >= 400.
    """
    width = max([len("endpoint")] + [len(row.name) for row in rows])
    head = (f"{'endpoint':<{width}}  {'server':<6} {RESULT_HEAD} {'ratio':>6} {'cpu ratio':>9}")
    lines = [head, "-" * len(head)]
    for row in rows:
        for who, result in (("app", row.app), ("echo", row.echo)):
            ratio = cpu_ratio = ""
            verdict = ""
            if who == "app":
                ratio = f"{row.ratio:.2f}"
                cpu_ratio = f"{row.cpu_ratio:.2f}" if row.cpu_ratio is not None else "-"
                if target is not None:
                    verdict = "  ok" if row.ratio >= target else f"  BELOW {target}"
            lines.append(f"{row.name if who == 'app' else '':<{width}}  {who:<6} "
                         f"{result_cells(result)} {ratio:>6} {cpu_ratio:>9}{verdict}".rstrip())
    for row in rows:
        for who, result in (("app", row.app), ("echo", row.echo)):
            if result.errors or result.non2xx:
                lines.append(f"  {row.name}, {who}: {result.errors} socket errors or timeouts, "
                             f"{result.non2xx} answers >= 400")
    return "\n".join(lines)


def _int_env(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def knobs(duration: float | None = None, rounds: int | None = None,
          connections: int | None = None) -> tuple[float, int, int]:
    """(duration, rounds, connections): the values given, else BENCH_DURATION (8),
    BENCH_ROUNDS (3) and BENCH_CONNECTIONS (16), so every script honours the same knobs."""
    return (float(duration or _int_env("BENCH_DURATION", 8)),
            rounds or _int_env("BENCH_ROUNDS", 3),
            connections or _int_env("BENCH_CONNECTIONS", 16))


def round_arguments(description: str, argv: Sequence[str] | None = None
                    ) -> tuple[float, int, int, float]:
    """(duration, rounds, connections, warm-up seconds) from a script's command line
    (--duration, --rounds, --connections, --warmup), defaulting as `knobs` does."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--duration", type=float, default=None,
                        help="seconds per run (BENCH_DURATION, 8)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (BENCH_ROUNDS, 3)")
    parser.add_argument("--connections", type=int, default=None,
                        help="connections (BENCH_CONNECTIONS, 16)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds per server (2)")
    args = parser.parse_args(argv)
    return (*knobs(args.duration, args.rounds, args.connections), args.warmup)


def check_answers(servers: Mapping[str, str], load: Load) -> None:
    """One request of `load` on each server must answer 2xx before anything is measured (a
    benchmark of 4xx answers measures nothing); RuntimeError names the server otherwise."""
    for who, url in servers.items():
        status, answer = probe(url, load)
        if not 200 <= status < 300:
            raise RuntimeError(f"{load.label} on the {who} answered {status}: {answer[:300]!r}")


def measure_rounds(servers: Mapping[str, str], load: Load, *, duration: float, rounds: int,
                   connections: int, threads: int = 1,
                   warmup: float = 2.0) -> dict[str, list[Result]]:
    """Warm every server up with `load`, then `rounds` rounds, each measuring the servers one
    after another in the order given: a drift of the machine hits every side alike. Returns
    each server's Results, one per round."""
    if warmup > 0:
        for url in servers.values():
            run_load(url, load, duration=warmup, connections=connections, threads=threads)
    results: dict[str, list[Result]] = {who: [] for who in servers}
    for _ in range(rounds):
        for who, url in servers.items():
            results[who].append(measure(url, load, duration=duration, connections=connections,
                                        threads=threads))
    return results


def machine() -> str:
    """What a figure was measured on, for the top of a benchmark's output (and RESULTS.md):
    date, cores, CPU model, memory, Python, load generator, commit."""
    model = "unknown CPU"
    memory = ""
    with contextlib.suppress(OSError):
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f", {int(line.split()[1]) / 2**20:.0f} GiB"
                break
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                                capture_output=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "handlers", "bench",
                                "examples"], cwd=REPO, text=True, capture_output=True,
                               check=True, timeout=10).stdout.strip()
        code = f"commit {commit}" + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        code = "commit unknown"
    load_avg = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{time.strftime('%Y-%m-%d %H:%M %Z')}; {os.cpu_count()} cores, {model}{memory}; "
            f"Python {sys.version.split()[0]}; load generator {generator_name()}; {code}; "
            f"load average before the run {load_avg}")


def compare(loads: Sequence[Load], *, app: str = KIT_APP, env: Mapping[str, Any] | None = None,
            echo_env: Mapping[str, Any] | None = None, extra_args: Sequence[str] = (),
            duration: float | None = None, rounds: int | None = None,
            connections: int | None = None, threads: int = 1, warmup: float = 2.0,
            target: float | None = 0.8, title: str | None = None,
            app_log: str | os.PathLike[str] | None = None,
            summary: str | None = None) -> list[Comparison]:
    """Measure every load on `app` and on the echo under the same gunicorn settings; print the
    table and return the comparisons.

    Both servers run at once (an idle gunicorn costs nothing) and each round measures the app
    then the echo, so a drift of the machine hits both sides alike. `echo_env` defaults to `env`
    (the echo ignores the kit's settings but honours WEB_CONCURRENCY, GUNICORN_THREADS, ...).
    `summary` ("best", the default, or "median"; BENCH_SUMMARY) says how the rounds become the
    table's figures (see `summarise`). Raises RuntimeError if a load does not answer 2xx on
    either server before measuring.
    """
    duration, rounds, connections = knobs(duration, rounds, connections)
    echo_env = env if echo_env is None else echo_env
    summary = summary or os.environ.get("BENCH_SUMMARY", "best")
    generator = generator_name()
    conf = gunicorn_settings(env)
    print(f"\n== {title or 'benchmark'} ==")
    print(f"app {app} vs echo {ECHO_APP}; gunicorn.conf.py: {conf.get('workers')} workers x "
          f"{conf.get('threads')} threads ({conf.get('worker_class')}) "
          f"{' '.join(extra_args)}".rstrip())
    print(f"load: {generator}, {connections} connections, {threads} thread(s), "
          f"{rounds} x {duration:.0f} s per server and endpoint after {warmup:.0f} s warm-up; "
          f"{os.cpu_count()} cores; {summary} of the rounds shown", flush=True)

    rows: list[Comparison] = []
    with bench_lock(), serve(app, env, extra_args, log_path=app_log) as app_url, \
            serve(ECHO_APP, echo_env, extra_args) as echo_url:
        servers = {"app": app_url, "echo": echo_url}
        for load in loads:
            check_answers(servers, load)
            results = measure_rounds(servers, load, duration=duration, rounds=rounds,
                                     connections=connections, threads=threads, warmup=warmup)
            runs = list(zip(results["app"], results["echo"]))
            row = Comparison(load.label, summarise([a for a, _ in runs], summary),
                             summarise([e for _, e in runs], summary), runs)
            rows.append(row)
            print(f"  {row.name}: app/echo req/s per round: "
                  f"{', '.join(f'{a.rps:.0f}/{e.rps:.0f}' for a, e in runs)}", flush=True)
    print()
    print(format_table(rows, target))
    print(flush=True)
    return rows
