"""The default worker count follows the container, not the host: its CPU quota and affinity, and
its memory limit (cgroup v2 `memory.max`, v1 `memory.limit_in_bytes`), read from a fake cgroup
tree in a folder of the test's own."""

from __future__ import annotations

import os
import pathlib

import pytest

from server.settings import load_server_settings
from server.sizing import (MB, SERVER_MB, SESSION_BYTES, WORKER_MB, default_workers,
                             memory_limit, usable_cpus, workers_for_memory)

AFFINITY = len(os.sched_getaffinity(0))


def cgroup(root: pathlib.Path, **files: str) -> pathlib.Path:
    """A cgroup tree under `root`: "cpu.max", "memory.max" (v2), "cpu/cpu.cfs_quota_us",
    "memory/memory.limit_in_bytes" (v1), ... given with "__" for "/"."""
    for name, text in files.items():
        path = root / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.mark.parametrize("files, quota", [
    ({"cpu.max": "max 100000\n"}, None),                          # cgroup v2, no limit
    ({"cpu.max": "150000 100000\n"}, 2),                          # 1.5 CPUs: rounded up
    ({"cpu.max": "50000 100000\n"}, 1),                           # half a CPU: still one
    ({"cpu.max": "100000 100000\n", "cpu__cpu.cfs_quota_us": "400000",
      "cpu__cpu.cfs_period_us": "100000"}, 1),                    # v2 wins over v1
    ({"cpu__cpu.cfs_quota_us": "-1\n", "cpu__cpu.cfs_period_us": "100000\n"}, None),  # v1, none
    ({"cpu__cpu.cfs_quota_us": "100000\n", "cpu__cpu.cfs_period_us": "100000\n"}, 1),
    ({}, None),                                                    # no cgroup files
    ({"cpu.max": "garbage\n"}, None),
])
def test_usable_cpus_follows_the_cgroup_quota(tmp_path, files, quota):
    expected = AFFINITY if quota is None else min(AFFINITY, quota)
    assert usable_cpus(cgroup(tmp_path, **files)) == expected


def test_usable_cpus_never_exceeds_the_affinity(tmp_path):
    assert usable_cpus(cgroup(tmp_path, **{"cpu.max": "6400000 100000\n"})) == AFFINITY


@pytest.mark.parametrize("files, limit", [
    ({"memory.max": "536870912\n"}, 512 * MB),                            # v2
    ({"memory.max": "max\n"}, None),
    ({"memory__memory.limit_in_bytes": "1073741824\n"}, 1024 * MB),       # v1
    ({"memory__memory.limit_in_bytes": "9223372036854771712\n"}, None),   # v1's "no limit"
    ({"memory.max": "268435456\n", "memory__memory.limit_in_bytes": "1073741824"}, 256 * MB),
    ({}, None),
    ({"memory.max": "lots\n"}, None),
])
def test_memory_limit_from_cgroup_v2_or_v1(tmp_path, files, limit):
    assert memory_limit(cgroup(tmp_path, **files)) == limit


def test_workers_fit_the_measured_figures():
    # The estimate is the sum of the measured parts, never below one worker.
    per_worker = WORKER_MB * MB + 100_000 * SESSION_BYTES
    for workers in (1, 2, 5):
        limit = int((SERVER_MB["lingua"] * MB + workers * per_worker) / 0.9) + MB
        assert workers_for_memory(limit, "lingua", 100_000) == workers
    assert workers_for_memory(256 * MB, "lingua", 100_000) == 1
    # langdetect's master is small: the same container holds more of its workers.
    assert workers_for_memory(512 * MB, "langdetect", 100_000) > \
        workers_for_memory(512 * MB, "lingua", 100_000)
    # Fewer sessions per worker, more workers.
    assert workers_for_memory(1024 * MB, "lingua", 20_000) > \
        workers_for_memory(1024 * MB, "lingua", 100_000)


@pytest.mark.parametrize("limit_mb, detector, sessions, expected", [
    (512, "lingua", 100_000, 1),
    (512, "lingua", 20_000, 3),
    (1024, "lingua", 100_000, 7),
    (512, "langdetect", 20_000, 9),
    (None, "lingua", 100_000, 16),       # no memory limit: two per CPU
])
def test_default_workers_are_the_smaller_of_cpus_and_memory(tmp_path, limit_mb, detector,
                                                            sessions, expected):
    files = {"cpu.max": "800000 100000\n"}   # 8 CPUs, when the affinity has them
    if limit_mb:
        files["memory.max"] = str(limit_mb * MB)
    cpus = min(8, AFFINITY)
    assert default_workers(detector, sessions, cgroup(tmp_path, **files)) == \
        min(2 * cpus, expected)


REDIS = {"REDIS_URL": "redis://cache.example:6379/0"}


def test_the_server_settings_size_workers_from_the_container(tmp_path):
    root = cgroup(tmp_path, **{"cpu.max": "200000 100000\n", "memory.max": str(512 * MB)})
    cpus = min(2, AFFINITY)
    # With Redis each worker holds a fallback copy of up to SESSION_MEMORY_SIZE sessions.
    assert load_server_settings(REDIS, root).workers == min(2 * cpus, 1)
    assert load_server_settings({**REDIS, "SESSION_MEMORY_SIZE": "20000"}, root).workers == \
        min(2 * cpus, 3)
    assert load_server_settings({**REDIS, "LANGUAGE_DETECTOR": "langdetect"}, root).workers == \
        2 * cpus
    assert load_server_settings({"WEB_CONCURRENCY": "3"}, root).workers == 3   # set: obeyed


def test_without_redis_the_sessions_are_not_in_the_workers(tmp_path):
    """The session memory is the instance's file: SESSION_MEMORY_SIZE does not lower the
    default, and 512 MB holds five lingua workers' own memory (30 MB each)."""
    root = cgroup(tmp_path, **{"cpu.max": "400000 100000\n", "memory.max": str(512 * MB)})
    cpus = min(4, AFFINITY)
    assert load_server_settings({}, root).workers == min(2 * cpus, 5)
    assert load_server_settings({"SESSION_MEMORY_SIZE": "1000000"}, root).workers == \
        min(2 * cpus, 5)


def test_a_platforms_guess_is_lowered_to_what_the_memory_holds(tmp_path):
    """Heroku's buildpack sets WEB_CONCURRENCY=2 on a 512 MB dyno (and WEB_CONCURRENCY_SET_BY);
    with lingua and full session memory (Redis's fallback copies) one worker fits."""
    root = cgroup(tmp_path, **{"memory__memory.limit_in_bytes": str(512 * MB)})
    heroku = {"WEB_CONCURRENCY": "2", "WEB_CONCURRENCY_SET_BY": "heroku/python", **REDIS}
    assert load_server_settings(heroku, root).workers == 1
    assert load_server_settings({**heroku, "SESSION_MEMORY_SIZE": "20000"}, root).workers == 2
    assert load_server_settings({"WEB_CONCURRENCY": "2"}, root).workers == 2   # the user's
