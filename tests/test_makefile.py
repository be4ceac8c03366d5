"""The Makefile as a new user meets it: `make run` / `make test` on a Python too old say which one
they need and leave no venv behind, a failed venv is made again by the next make, the installs
show their progress, and `make clean` never deletes the log store in instance/.

Each case runs make in a copy of the Makefile and the locks in a temporary folder, with a fake
`python3` first on PATH: it answers the version check as the Python it pretends to be, and fails
`-m venv` after making half a venv, as a real failure can.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
FAKE_PYTHON = f"""#!{sys.executable}
import os, sys
if sys.argv[1:2] == ["-c"]:  # the Makefile's version check sees the pretended version
    sys.version_info = (*map(int, os.environ["FAKE_PYTHON_VERSION"].split(".")), "final", 0)
    exec(sys.argv[2])
elif sys.argv[1:3] == ["-m", "venv"]:
    os.makedirs(os.path.join(sys.argv[-1], "bin"), exist_ok=True)
    sys.exit("fake venv: failed half way")
else:
    os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
"""

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


@pytest.fixture
def folder(tmp_path: pathlib.Path) -> pathlib.Path:
    """The kit's Makefile and locks, and a bin/ holding the fake python3."""
    kit = tmp_path / "kit"
    kit.mkdir()
    for name in ("Makefile", "requirements.txt", "requirements-test.txt", ".python-version"):
        shutil.copy(ROOT / name, kit)
    fake = tmp_path / "bin" / "python3"
    fake.parent.mkdir()
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    return kit


def make(folder: pathlib.Path, *args: str, python: str = "3.11") -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHON", "VENV", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env.update(PATH=f"{folder.parent / 'bin'}{os.pathsep}{os.environ['PATH']}",
               FAKE_PYTHON_VERSION=python)
    return subprocess.run(["make", *args], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("target", ["run", "test"])
def test_an_old_python_stops_with_the_version_needed_and_no_venv(folder, target):
    done = make(folder, target, python="3.10.12")
    assert done.returncode != 0
    assert "The kit needs Python 3.11 or newer; python3 is 3.10." in done.stderr, done.stderr
    assert "make PYTHON=python3.11" in done.stderr
    assert not (folder / ".venv").exists()


def test_a_venv_that_failed_half_way_is_made_again_by_the_next_make(folder):
    for _ in range(2):
        done = make(folder, "run")
        assert done.returncode != 0
        assert "fake venv: failed half way" in done.stderr  # tried again, not taken as made
        assert (folder / ".venv" / "bin").is_dir()
        assert not (folder / ".venv" / ".created").exists()
    assert "python3 -m venv --clear .venv" in done.stdout  # the half-made one is wiped first


def test_installs_show_their_progress(folder):
    planned = make(folder, "-n", "test").stdout
    installs = [line for line in planned.splitlines() if " install " in line]
    assert len(installs) == 3  # pip itself, the runtime lock, the test lock
    assert not [line for line in installs if "--quiet" in line or " -q" in line]


def test_make_clean_keeps_the_log_store(folder):
    store = folder / "instance" / "events.sqlite3"
    store.parent.mkdir()
    store.write_bytes(b"events")
    (folder / ".venv" / "bin").mkdir(parents=True)
    (folder / ".pytest_cache").mkdir()
    assert make(folder, "clean").returncode == 0
    assert store.read_bytes() == b"events"
    assert not (folder / ".venv").exists() and not (folder / ".pytest_cache").exists()
