"""Failed explorer logins counted per client address: after `limit` wrong passwords within a
minute, the address gets 429 until that minute is over.

The counts live in a small table in memory every gunicorn worker of the server shares: it is
made in `create_app`, before gunicorn forks its workers (the kit preloads the app), as a shared
mapping of an unnamed temporary file, so a guesser gets the same 10 tries a minute whichever
worker answers, and a replaced worker forgets nothing. (Run without preloading, each worker
would count alone.) A `lockf` lock on that file keeps the workers' updates apart and is released
by the kernel if a worker dies holding it; a thread lock keeps a worker's threads apart.

Each address has one slot among a few next to its hash: the address, when its minute started,
its failures in that minute. A full neighbourhood gives up its oldest minute (an address waiting
out its minute last), so memory stays fixed (SLOTS x 28 bytes) whatever the number of
addresses.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import mmap
import struct
import tempfile
import threading
import time
import zlib
from typing import Callable, Iterator

# address (16 bytes), when its minute started (time.monotonic(): one clock for every process of
# the machine, and one the wall clock's jumps do not move), its failures in that minute
SLOT = struct.Struct("=16sdI")
SLOTS = 4096
NEIGHBOURS = 16


class LoginThrottle:
    """`limit` wrong passwords per address and `window` seconds, counted by every worker."""

    def __init__(self, limit: int = 10, window: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._file = tempfile.TemporaryFile()
        self._file.truncate(SLOTS * SLOT.size)
        self._table = mmap.mmap(self._file.fileno(), SLOTS * SLOT.size)   # shared by forks
        self._thread_lock = threading.Lock()

    def retry_after(self, address: bytes) -> int:
        """Seconds `address` must wait before it may try a password again (0: it may)."""
        now = self._clock()
        with self._locked():
            for _, key, started, failures in self._neighbours(address):
                if key == address and failures >= self.limit and now < started + self.window:
                    return max(1, math.ceil(started + self.window - now))
        return 0

    def failed(self, address: bytes) -> None:
        """Count a wrong password from `address`."""
        now = self._clock()
        with self._locked():
            neighbours = list(self._neighbours(address))
            for index, key, started, failures in neighbours:
                if key == address and now < started + self.window:
                    self._write(index, address, started, failures + 1)
                    return
            mine = [slot for slot in neighbours if slot[1] == address]
            # Its own expired slot, else the one whose minute started first (empty ones: 0),
            # an address that is waiting out its minute last.
            index = (mine or sorted(neighbours, key=lambda slot: (
                slot[3] >= self.limit and now < slot[2] + self.window, slot[2])))[0][0]
            self._write(index, address, now, 1)

    def _neighbours(self, address: bytes) -> list[tuple[int, bytes, float, int]]:
        first = zlib.crc32(address) % SLOTS
        slots = []
        for step in range(NEIGHBOURS):
            index = (first + step) % SLOTS
            slots.append((index, *SLOT.unpack_from(self._table, index * SLOT.size)))
        return slots

    def _write(self, index: int, address: bytes, started: float, failures: int) -> None:
        SLOT.pack_into(self._table, index * SLOT.size, address, started, failures)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """This worker's threads apart, then the workers apart (lockf locks are per process)."""
        with self._thread_lock:
            fcntl.lockf(self._file.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.lockf(self._file.fileno(), fcntl.LOCK_UN)
