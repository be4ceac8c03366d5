"""The README's template quick start, run as written from an empty folder.

The commands and the answers the user should see are read out of the README's "Copy a template"
section, so the manual and this test cannot drift: each `flask --app ...` line starts a real
server on loopback (a subprocess, as the user's terminal would), each `json` block is what the
last `curl` line must print against the server started last. The install lines (a venv and
`pip install`) are checked, not run: this venv holds the packages. Only the port numbers are
swapped for free ones (the README's 8000, and LibreTranslate's 5000 for the stand-in of
testsupport/libre_server.py), so that parallel test runs do not collide.
"""

from __future__ import annotations

import ast
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Iterator

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "examples" / "templates"
SECTION = (ROOT / "README.md").read_text().split("## Copy a template", 1)[1].split("\n## ", 1)[0]
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", SECTION, re.DOTALL)
INSTALL = ("python3 -m venv ", "pip install ")
# pip's name of each package a template may import, by import name.
PIP_NAME_OF = {"flask": "flask", "langdetect": "langdetect", "deep_translator": "deep-translator",
               "jwt": "pyjwt"}
LIBRETRANSLATE_PORT = 5000  # its documented default (`libretranslate --port`)

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def commands(kind: str) -> list[str]:
    return [line.strip() for language, text in BLOCKS if language == "sh"
            for line in text.splitlines() if kind in line]


def server_port() -> int:
    ports = {int(port) for line in commands("flask --app")
             for port in re.findall(r"--port (\d+)", line)}
    assert len(ports) == 1, f"every flask command of the quick start names one port: {ports}"
    return ports.pop()


class Terminal:
    """The user's folder and shell: runs a command line there, with the tests' ports."""

    def __init__(self, folder: pathlib.Path, ports: dict[int, int]) -> None:
        self.folder, self.ports = folder, ports
        self.env = {key: value for key, value in os.environ.items()
                    if not key.startswith("FLASK_")}
        self.env["PATH"] = f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
        self.server: subprocess.Popen | None = None
        self.log = folder.parent / "server.log"

    def line(self, command: str) -> str:
        for documented, used in self.ports.items():
            command = re.sub(rf"(?<=:){documented}\b|(?<=--port ){documented}\b", str(used),
                             command)
        return command

    def serve(self, command: str) -> None:
        self.stop()
        port = self.ports[server_port()]
        with self.log.open("ab") as log:
            self.server = subprocess.Popen(["sh", "-c", self.line(command)], cwd=self.folder,
                                           env=self.env, stdout=log, stderr=log,
                                           start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.server.poll() is None, f"{command!r} stopped: {self.log.read_text()}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        pytest.fail(f"{command!r} did not listen on {port}: {self.log.read_text()}")

    def run(self, command: str) -> str:
        done = subprocess.run(["sh", "-c", self.line(command)], cwd=self.folder, env=self.env,
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, f"{command!r}: {done.stderr}\n{self.log.read_text()}"
        return done.stdout

    def stop(self) -> None:
        """Ctrl-C, and wait until the port is free (the shell may end before its flask)."""
        if self.server is None or self.server.poll() is not None:
            return
        os.killpg(self.server.pid, signal.SIGINT)  # the shell and the flask it started
        self.server.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.ports[server_port()]), 0.2).close()
                time.sleep(0.05)
            except OSError:
                return
        pytest.fail("the server still listens after Ctrl-C")


@pytest.fixture
def terminal(tmp_path: pathlib.Path, libre_server: Any) -> Iterator[Terminal]:
    """An empty folder holding only the template the quick start serves."""
    names = {match for line in commands("flask --app")
             for match in re.findall(r"--app (\S+\.py)", line)}
    assert len(names) == 1, f"the quick start serves one template: {names}"
    folder = tmp_path / "my-webhook"
    folder.mkdir()
    shutil.copy(TEMPLATES / names.pop(), folder)
    shell = Terminal(folder, {server_port(): free_port(), LIBRETRANSLATE_PORT: libre_server.port})
    yield shell
    shell.stop()


def test_the_quick_start_runs_as_written_from_an_empty_folder(terminal, libre_server):
    assert [path.name for path in terminal.folder.iterdir()] == ["premessage_translate.py"]
    curl: str | None = None
    answers = 0
    for language, text in BLOCKS:
        if language == "json":
            assert curl, "an expected answer comes after the curl that asks for it"
            assert terminal.run(curl).strip() == text.strip()
            answers += 1
            continue
        assert language == "sh", f"a {language} block in the quick start"
        for command in text.strip().splitlines():
            if command.startswith(INSTALL):
                continue  # this venv holds the packages (test_the_install_line_...)
            elif "flask --app" in command:
                terminal.serve(command)
            elif command.startswith("curl "):
                curl = command
            else:
                pytest.fail(f"the quick start runs {command!r}, which this test does not know")
    assert answers == 2  # detection only, then through the translator
    assert [(r["source"], r["target"]) for r in libre_server.requests] == [("es", "en")]


def test_the_two_servers_are_detection_only_and_the_local_libretranslate():
    servers = commands("flask --app")
    assert [line.split(" flask")[0] for line in servers] == [
        "TRANSLATOR=none", f"TRANSLATOR_URL=http://localhost:{LIBRETRANSLATE_PORT}"]
    assert server_port() != LIBRETRANSLATE_PORT  # the two run side by side
    assert f"default port, {LIBRETRANSLATE_PORT}" in SECTION
    assert f"-p {LIBRETRANSLATE_PORT}:5000 libretranslate/libretranslate" in SECTION


def test_the_install_line_names_every_package_the_template_imports():
    installed = {name.lower() for line in commands("pip install")
                 for name in line.split("pip install", 1)[1].split()}
    template = ast.parse((TEMPLATES / "premessage_translate.py").read_text())
    imported = {(node.module or "").split(".")[0] for node in ast.walk(template)
                if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name.split(".")[0] for node in ast.walk(template)
                 if isinstance(node, ast.Import) for alias in node.names}
    third_party = imported - set(sys.stdlib_module_names)
    assert {PIP_NAME_OF[name] for name in third_party} == installed
