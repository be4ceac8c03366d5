"""The HTTP transport the kit owns for its provider clients: one pooled `requests.Session` per
provider per worker process, and timeouts taken from what is left of the request's deadline.

Why not deep-translator's own HTTP: it calls `requests.get/post` with no timeout, a new TCP (and
TLS) connection per string, and puts the text (and for some providers the key) in the URL. It
offers no public way to pass a session or a timeout, so every provider, mymemory and keyless
google included, has a client of the kit's (clients.py).

Bounds: a call gets `timeout=(connect, read)` with `connect = min(CONNECT_TIMEOUT, left)` and
`read = left` (seconds left before the deadline), so a provider that accepts and never answers
releases the pool thread at most `left + CONNECT_TIMEOUT` seconds after the call started: never
later than TRANSLATION_TIMEOUT + 1 s. (A read timeout applies to each read of the socket; a
provider trickling its answer a byte at a time is the one case it does not bound.)
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from .errors import TranslationError

CONNECT_TIMEOUT = 1.0  # a connection that takes longer than this to open is a failure


class ProviderSession:
    """A keep-alive session for one provider, created lazily in the process that uses it.

    The app (and so this object) is built before gunicorn forks; a session (its sockets, its
    pool's lock) must not cross a fork, so `session` builds a new one when the pid changed.
    `pool_size` is the pool's thread count, so every pool thread can keep one connection open.
    """

    def __init__(self, pool_size: int) -> None:
        self.pool_size = max(1, int(pool_size))
        self._session: requests.Session | None = None
        self._pid = 0
        self._lock = threading.Lock()

    @property
    def session(self) -> requests.Session:
        with self._lock:
            if self._session is None or self._pid != os.getpid():
                session = requests.Session()
                # No retries: a retry would spend the deadline of a request that waits for it.
                adapter = HTTPAdapter(pool_connections=1, pool_maxsize=self.pool_size,
                                      max_retries=0)
                session.mount("https://", adapter)
                session.mount("http://", adapter)
                session.trust_env = False  # no .netrc credentials or env proxies picked up
                self._session, self._pid = session, os.getpid()
            return self._session

    def request(self, method: str, url: str, deadline: float, *, html: bool = False,
                **options: Any) -> Any:
        """One HTTP exchange under `deadline` (time.monotonic()); the decoded JSON answer (the
        body as text when `html`).

        Raises TranslationError with a short reason ("http_503", "invalid_answer"), or requests'
        Timeout / ConnectionError (counted as such by `failure_reason`).
        """
        left = deadline - time.monotonic()
        if left <= 0:
            raise TranslationError("deadline_in_queue")
        response = self.session.request(method, url, timeout=(min(CONNECT_TIMEOUT, left), left),
                                        allow_redirects=False, **options)
        with response:
            if response.status_code != 200:
                raise TranslationError(f"http_{response.status_code}")
            if html:
                return response.text
            try:
                return response.json()
            except ValueError:
                raise TranslationError("invalid_answer") from None
