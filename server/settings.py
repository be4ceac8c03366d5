"""The server's settings: what gunicorn_conf.py and `python -m server` read (PORT,
WEB_CONCURRENCY, GUNICORN_*, REQUEST_READ_TIMEOUT, APP_LOG_LEVEL), read and validated like the
app's, so a wrong value stops the start with a message naming the variable and the fix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from handlers.settings import DEFAULTS, DETECTORS
from handlers.settings.readers import read_choice, read_log_level, read_number

from .sizing import CGROUP, default_workers


@dataclass(frozen=True)
class ServerSettings:
    port: int
    workers: int
    threads: int
    timeout: int                  # gunicorn restarts a worker stuck this long
    request_read_timeout: float   # a client's whole request must arrive within it (408)
    max_requests: int             # a worker is replaced after about this many (0: never)
    max_requests_jitter: int
    log_level: str


def load_server_settings(environ: Mapping[str, str] | None = None,
                         cgroup: Path = CGROUP) -> ServerSettings:
    """The server settings from `environ` (the process environment by default); the default
    WEB_CONCURRENCY from the container's CPUs and memory limit (`server.sizing`), for the
    LANGUAGE_DETECTOR and (with REDIS_URL) SESSION_MEMORY_SIZE the app will use."""
    source = os.environ if environ is None else environ
    workers = read_number(source, "WEB_CONCURRENCY", None, cast=int)
    # Heroku's Python buildpack sets WEB_CONCURRENCY itself at boot, from 256 MB a process (2 on
    # a 512 MB dyno), and says so in WEB_CONCURRENCY_SET_BY: a guess for any app, which the
    # kit's own estimate replaces when that is lower. A value someone set is obeyed.
    if workers is None or source.get("WEB_CONCURRENCY_SET_BY"):
        detector = read_choice(source, "LANGUAGE_DETECTOR", DETECTORS,
                               DEFAULTS["language_detector"])
        # A worker holds sessions only as Redis's fallback copy: without REDIS_URL they are in
        # the instance's session file (handlers/session_file.py), not in the workers.
        sessions = read_number(source, "SESSION_MEMORY_SIZE", DEFAULTS["session_memory_size"],
                               cast=int) if source.get("REDIS_URL") else 0
        estimate = default_workers(detector, sessions, cgroup)
        workers = estimate if workers is None else min(workers, estimate)
    max_requests = read_number(source, "GUNICORN_MAX_REQUESTS", 10000, cast=int,
                               positive=False, minimum=0)
    return ServerSettings(
        port=read_number(source, "PORT", 8080, cast=int, minimum=1, maximum=65535),
        workers=workers,
        threads=read_number(source, "GUNICORN_THREADS", 16, cast=int),
        timeout=read_number(source, "GUNICORN_TIMEOUT", 40, cast=int),
        request_read_timeout=read_number(source, "REQUEST_READ_TIMEOUT", 10.0),
        max_requests=max_requests,
        max_requests_jitter=read_number(source, "GUNICORN_MAX_REQUESTS_JITTER",
                                        max_requests // 10, cast=int, positive=False, minimum=0),
        log_level=read_log_level(source, "APP_LOG_LEVEL"),
    )
