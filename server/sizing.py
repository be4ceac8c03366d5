"""How many gunicorn workers this container can run, for gunicorn_conf.py's default
`WEB_CONCURRENCY`: the CPUs it may use and the memory it may hold.

A container limited to 2 CPUs and 512 MB on a 64-core, 256 GB host sees the host in
`os.cpu_count()` and /proc/meminfo; sizing workers from that would start 128 processes that share
2 CPUs and die of their memory. The container's own limits are in its cgroup's files: v2
(`cpu.max`, `memory.max`) or v1 (`cpu/cpu.cfs_quota_us`, `memory/memory.limit_in_bytes`), read
under `root` (/sys/fs/cgroup; tests pass a folder of their own).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")
MB = 1024 * 1024

# What the server holds, measured with bench/memory.py (bench/RESULTS.md, docs/deployment.md;
# gunicorn_conf.py as shipped, the default LANGUAGES): the master with what its workers share (the
# detector's models, the libraries), counted once; each worker's own memory once it has served
# traffic; and each session its session memory holds (SESSION_MEMORY_SIZE, per worker). lingua's
# figure is the highest of the runs (its heap varies by 20 MB from one start to the next).
SERVER_MB = {"lingua": 310, "langdetect": 50}
WORKER_MB = 30
SESSION_BYTES = 600
# The share of the memory limit the processes may fill: page cache, kernel memory and socket
# buffers are counted against the limit too.
MEMORY_SHARE = 0.9
# cgroup v1 writes "no limit" as the largest multiple of the page size that fits in 63 bits.
NO_LIMIT = 2 ** 60


def usable_cpus(root: Path = CGROUP) -> int:
    """The CPUs this process may use: its CPU affinity, lowered by a cgroup CPU quota rounded
    up."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cpu_quota(root)
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def cpu_quota(root: Path = CGROUP) -> float | None:
    """The cgroup's CPU quota in CPUs, None when there is none (or no readable cgroup file)."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota = (root / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (root / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:  # "max": no limit
        return None
    if quota_us <= 0 or period_us <= 0:  # v1 says -1 for no limit
        return None
    return quota_us / period_us


def memory_limit(root: Path = CGROUP) -> int | None:
    """The cgroup's memory limit in bytes, None when there is none (or no readable file)."""
    for path in (root / "memory.max", root / "memory" / "memory.limit_in_bytes"):
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        try:
            limit = int(text)
        except ValueError:  # "max": no limit
            return None
        return limit if 0 < limit < NO_LIMIT else None
    return None


def workers_for_memory(limit: int, detector: str, sessions: int) -> int:
    """How many workers fit in `limit` bytes with `detector` (LANGUAGE_DETECTOR) and `sessions`
    per worker (SESSION_MEMORY_SIZE, full): at least one."""
    room = limit * MEMORY_SHARE - SERVER_MB.get(detector, max(SERVER_MB.values())) * MB
    per_worker = WORKER_MB * MB + sessions * SESSION_BYTES
    return max(1, int(room // per_worker))


def default_workers(detector: str, sessions: int, root: Path = CGROUP) -> int:
    """Two workers per usable CPU (webhook handlers mostly wait on the network), as many as the
    memory limit holds."""
    workers = 2 * usable_cpus(root)
    limit = memory_limit(root)
    if limit is not None:
        workers = min(workers, workers_for_memory(limit, detector, sessions))
    return workers
