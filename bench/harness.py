"""The load harness of bench/: wrk against a real gunicorn on loopback, one benchmark at a time.

Servers come from testsupport.gunicorn_process (`serve`; the URL it yields carries the master's
`.pid`). The load generator is wrk and nothing else: `require_wrk()` exits 2 with how to install
it (`make bench-tools`); a benchmark never installs anything. A `Load` is a path, bodies sent in
turn (every `{{N}}` in them becomes an id unique to the request, so a log id or a sentence is one
no cache or table has seen) and headers; `run_load` drives one server with it in a closed loop
(each keep-alive connection sends its next request when the previous answer arrives) and
`measure` adds the server's CPU time per request, which other load on the machine disturbs much
less than req/s. `check_answers`, `measure_rounds` and `summarise` (the best round) compare
servers; `bench_lock`, `machine` and `arguments` are what every script starts with.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

REPO = pathlib.Path(__file__).resolve().parent.parent
PLACEHOLDER = b"{{N}}"
LOCK_PATH = "/tmp/bench.lock"
WRK_MISSING = ("bench: wrk is not installed. Install it with `make bench-tools` (Debian and "
               "Ubuntu: apt-get install wrk; macOS: brew install wrk), then run again.")


def require_wrk() -> str:
    """wrk's path; exit status 2 with the install hint when it is missing."""
    path = shutil.which("wrk")
    if path is None:
        print(WRK_MISSING, file=sys.stderr, flush=True)
        raise SystemExit(2)
    return path


@dataclass(frozen=True)
class Load:
    """One kind of request: a path, its JSON bodies (sent in turn) and headers, a label."""

    path: str
    bodies: Sequence[Any]
    headers: Mapping[str, str] = field(default_factory=dict)
    name: str = ""

    def parts(self) -> list[list[bytes]]:
        """Each body split on the placeholder (one part when it has none)."""
        return [json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode().split(
            PLACEHOLDER) for body in self.bodies]

    def all_headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json", **self.headers}


@dataclass
class Result:
    """One wrk run against one server."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int     # socket errors and timeouts
    non2xx: int     # answers >= 400
    cpu_ms: float | None = None  # the server's CPU per request (`measure` fills it in)


def probe(url: str, load: Load, timeout: float = 10.0) -> tuple[int, bytes]:
    """Send one request of `load`; return (status, body). For sanity checks."""
    data = f"probe-{uuid.uuid4().hex[:8]}".encode().join(load.parts()[0])
    request = urllib.request.Request(url + load.path, data=data, method="POST",
                                     headers=load.all_headers())
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _lua(data: bytes) -> str:
    return '"' + "".join(chr(c) if 32 <= c < 127 and c not in (34, 92) else f"\\{c:03d}"
                         for c in data) + '"'


def _wrk_script(load: Load, run_id: str) -> str:
    """wrk's Lua: requests without a placeholder are formatted once; the others get an id made of
    the run, wrk's thread and a counter. `done` prints one JSON line for `run_load` to read."""
    bodies = ", ".join("{" + ", ".join(_lua(p) for p in parts) + "}" for parts in load.parts())
    headers = ", ".join(f"[{_lua(k.encode())}] = {_lua(v.encode())}"
                        for k, v in load.all_headers().items())
    return f"""
local path, headers, run_id = {_lua(load.path.encode())}, {{ {headers} }}, {_lua(run_id.encode())}
local bodies, prepared, index, counter, threads = {{ {bodies} }}, {{}}, 0, 0, 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
function init(args)
  for i, parts in ipairs(bodies) do
    if #parts == 1 then prepared[i] = wrk.format("POST", path, headers, parts[1]) end
  end
end
function request()
  index = index % #bodies + 1
  if prepared[index] then return prepared[index] end
  counter = counter + 1
  local id = run_id .. "-" .. tostring(tid) .. "-" .. tostring(counter)
  return wrk.format("POST", path, headers, table.concat(bodies[index], id))
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK_RESULT {{"requests": %d, "duration_us": %d, "p50_us": %d, ' ..
    '"p99_us": %d, "errors": %d, "status": %d}}\\n', summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.connect + e.read + e.write + e.timeout,
    e.status))
end
"""


def run_load(url: str, load: Load, *, duration: float = 8.0, connections: int = 16,
             timeout: float = 10.0) -> Result:
    """Drive `url` with `load` for `duration` seconds over `connections` connections (wrk)."""
    if not url.startswith("http://127."):
        raise ValueError(f"benchmarks only target loopback, not {url}")
    wrk = require_wrk()
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="bench-", delete=False) as script:
        script.write(_wrk_script(load, uuid.uuid4().hex[:8]))
    try:
        command = [wrk, "-t", "1", "-c", str(connections), "-d", f"{max(duration, 1):.0f}s",
                   "--timeout", f"{timeout:.0f}s", "-s", script.name, url + load.path]
        answer = subprocess.run(command, capture_output=True, text=True,
                                timeout=duration + 30, check=False)
    finally:
        os.unlink(script.name)
    line = next((l for l in answer.stdout.splitlines() if l.startswith("WRK_RESULT ")), None)
    if answer.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({answer.returncode}): {answer.stderr.strip()[-500:]}")
    data = json.loads(line.removeprefix("WRK_RESULT "))
    seconds = data["duration_us"] / 1e6
    return Result(requests=data["requests"], seconds=seconds,
                  rps=data["requests"] / seconds if seconds else 0.0,
                  p50_ms=data["p50_us"] / 1000, p99_ms=data["p99_us"] / 1000,
                  errors=data["errors"], non2xx=data["status"])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time used so far by gunicorn master `pid` and its live workers (its
    process group)."""
    total = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                # after the command: state, ppid, pgrp, ... utime (14th field), stime (15th)
                if int(fields[2]) == pid:
                    total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def measure(url: str, load: Load, **options: Any) -> Result:
    """`run_load`, plus the server's CPU per request (`url` from `serve`, which knows its pid)."""
    before = cpu_seconds(url.pid)  # type: ignore[attr-defined]
    result = run_load(url, load, **options)
    if result.requests:
        result.cpu_ms = (cpu_seconds(url.pid) - before) * 1000 / result.requests  # type: ignore
    return result


def summarise(results: list[Result]) -> Result:
    """One Result for several rounds of one load on one server: the round with the most req/s
    (its latencies with it) and the least CPU per request. Other processes only ever slow a run
    down, so the best round is the least disturbed estimate (as timeit takes the minimum).
    Requests and errors are summed over the rounds."""
    top = max(results, key=lambda r: r.rps)
    cpu = [r.cpu_ms for r in results if r.cpu_ms is not None]
    return Result(sum(r.requests for r in results), sum(r.seconds for r in results), top.rps,
                  top.p50_ms, top.p99_ms, sum(r.errors for r in results),
                  sum(r.non2xx for r in results), min(cpu, default=None))


RESULT_HEAD = f"{'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'cpu ms/req':>10}"


def result_cells(result: Result) -> str:
    """One Result as the columns under RESULT_HEAD (errors = socket errors + answers >= 400)."""
    cpu = f"{result.cpu_ms:10.3f}" if result.cpu_ms is not None else f"{'-':>10}"
    return (f"{result.rps:9.1f} {result.p50_ms:8.2f} {result.p99_ms:8.2f} "
            f"{result.errors + result.non2xx:7d} {cpu}")


def check_answers(servers: Mapping[str, str], load: Load) -> None:
    """One request of `load` on each server must answer 2xx before anything is measured (a
    benchmark of 4xx answers measures nothing); RuntimeError names the server otherwise."""
    for who, url in servers.items():
        status, answer = probe(url, load)
        if not 200 <= status < 300:
            raise RuntimeError(f"{load.name} on the {who} answered {status}: {answer[:300]!r}")


def measure_rounds(servers: Mapping[str, str], load: Load, *, duration: float, rounds: int,
                   connections: int) -> dict[str, list[Result]]:
    """`rounds` rounds, each measuring the servers one after another in the order given (warm
    them up first with `run_load`). Returns each server's Results, one per round."""
    results: dict[str, list[Result]] = {who: [] for who in servers}
    for _ in range(rounds):
        for who, url in servers.items():
            results[who].append(measure(url, load, duration=duration, connections=connections))
    return results


def _lock_inherited(path: str) -> bool:
    """True when a parent (`flock /tmp/bench.lock ...`) holds the lock for us."""
    target = os.path.realpath(path)
    with contextlib.suppress(OSError):
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/self/fd/{fd}") == target:
                    return True
    return False


@contextlib.contextmanager
def bench_lock(path: str = LOCK_PATH) -> Iterator[None]:
    """Hold /tmp/bench.lock for the benchmark (benchmarks on one machine disturb each other),
    waiting for it if another holds it; nothing to do when a parent holds it for us."""
    if _lock_inherited(path):
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"bench: waiting for {path} (another benchmark is running)", file=sys.stderr,
                  flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def machine() -> str:
    """What a figure was measured on: date, cores, CPU model, memory, Python, commit, load."""
    model, memory = "unknown CPU", ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        info = pathlib.Path("/proc/cpuinfo").read_text()
        model = info.split("model name", 1)[1].split(":", 1)[1].splitlines()[0].strip()
        total_kb = pathlib.Path("/proc/meminfo").read_text().split("MemTotal:", 1)[1].split()[0]
        memory = f", {int(total_kb) / 2**20:.0f} GiB"
    try:
        def git(*args: str) -> str:
            return subprocess.run(["git", *args], cwd=REPO, text=True, capture_output=True,
                                  check=True, timeout=10).stdout.strip()

        dirty = git("status", "--porcelain", "--", "handlers", "bench", "testsupport")
        code = f"commit {git('rev-parse', '--short', 'HEAD')}" + (
            " + uncommitted changes" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        code = "commit unknown"
    load_avg = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{time.strftime('%Y-%m-%d %H:%M %Z')}; {os.cpu_count()} cores, {model}{memory}; "
            f"Python {sys.version.split()[0]}; {code}; load average before the run {load_avg}")


def arguments(description: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """--duration, --rounds, --connections and --warmup, defaulting to BENCH_DURATION (8),
    BENCH_ROUNDS (3), BENCH_CONNECTIONS (16) and 2 s, so every script honours the same knobs."""
    env = os.environ.get
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--duration", type=float, default=float(env("BENCH_DURATION", 8)),
                        help="seconds per run (BENCH_DURATION, 8)")
    parser.add_argument("--rounds", type=int, default=int(env("BENCH_ROUNDS", 3)),
                        help="rounds (BENCH_ROUNDS, 3)")
    parser.add_argument("--connections", type=int, default=int(env("BENCH_CONNECTIONS", 16)),
                        help="keep-alive connections (BENCH_CONNECTIONS, 16)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds per server (2)")
    return parser.parse_args(argv)
