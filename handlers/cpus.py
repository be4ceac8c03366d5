"""How many CPUs this process may really use, for gunicorn.conf.py's default `WEB_CONCURRENCY`."""

from __future__ import annotations

import math
import os
from pathlib import Path


def usable_cpus(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max"),
                cfs_quota: Path = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"),
                cfs_period: Path = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")) -> int:
    """The CPUs this process may use: its CPU affinity, lowered by a cgroup CPU quota (v2
    `cpu.max`, else v1 `cpu.cfs_quota_us`/`cpu.cfs_period_us`) rounded up. A container limited to
    2 CPUs on a 64-core host sees 64 in `os.cpu_count()`; sizing workers from that would start 128
    processes competing for 2 CPUs."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_quota(cpu_max, cfs_quota, cfs_period)
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def cgroup_quota(cpu_max: Path, cfs_quota: Path, cfs_period: Path) -> float | None:
    """The cgroup's CPU quota in CPUs, None when there is none (or no readable cgroup file)."""
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota, period = cfs_quota.read_text().strip(), cfs_period.read_text().strip()
        except OSError:
            return None
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:  # "max": no limit
        return None
    if quota_us <= 0 or period_us <= 0:  # v1 says -1 for no limit
        return None
    return quota_us / period_us
