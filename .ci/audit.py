"""pip-audit over the hashed locks, with a documented allow-list: `make audit` (CI runs it).

Why a wrapper and not plain pip-audit: pip-audit exits 0 when its vulnerability service cannot be
reached (each package is merely "skipped"), so a closed network would look like a clean audit.
Here a service counts only if it answered for every pinned package; the services are tried in
order; a finding fails unless the allow-list names its id *and* package with a reason and a date.
When no service answers (this workplace reaches PyPI's simple and project JSON APIs, but neither
its per-release JSON nor OSV), a fallback reads the advisories PyPI lists for each package's
latest release: exact for packages pinned at their latest release, so a finding there still
fails. What stays unaudited is said loudly; that fails only with --require (a machine without
network must still pass `make test`; CI where a service answers sets it).

Exit status: 0 audited and clean (or not audited without --require), 1 findings, 2 a broken
allow-list or command line, 3 not audited with --require.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_ALLOWLIST = ROOT / ".ci" / "audit-allowlist.toml"
ALLOWLIST_FIELDS = ("id", "package", "why", "date")


class AllowListError(Exception):
    """The allow-list is unusable: the audit must not guess which findings it excuses."""


@dataclass(frozen=True)
class Allowed:
    """One documented exception: this vulnerability id, in this package, does not apply."""

    id: str
    package: str
    why: str
    date: datetime.date


@dataclass(frozen=True)
class Finding:
    package: str
    version: str
    ids: tuple[str, ...]
    fix_versions: tuple[str, ...]
    description: str


def canonical(name: str) -> str:
    """PEP 503 name, so `PyYAML` in the allow-list matches pip-audit's `pyyaml`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def load_allowlist(path: pathlib.Path) -> list[Allowed]:
    """Read `[[exception]]` tables; every field is required so each exception stays explained."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise AllowListError(f"{path}: {exc}") from None
    entries = data.get("exception", [])
    if set(data) - {"exception"} or not isinstance(entries, list):
        raise AllowListError(f"{path}: only [[exception]] tables are allowed")
    allowed = []
    for number, entry in enumerate(entries, 1):
        missing = [name for name in ALLOWLIST_FIELDS if not entry.get(name)]
        if missing:
            raise AllowListError(f"{path}: exception {number} lacks {', '.join(missing)}")
        unknown = set(entry) - set(ALLOWLIST_FIELDS)
        if unknown:
            raise AllowListError(f"{path}: exception {number} has unknown keys "
                                 f"{', '.join(sorted(unknown))}")
        if not isinstance(entry["date"], datetime.date) or \
                isinstance(entry["date"], datetime.datetime):
            raise AllowListError(f"{path}: exception {number}: date must be a TOML date "
                                 "(2026-12-03), the day it was last reviewed")
        allowed.append(Allowed(str(entry["id"]), canonical(str(entry["package"])),
                                  str(entry["why"]), entry["date"]))
    return allowed


def run_pip_audit(service: str, requirements: list[str],
                  timeout: int) -> tuple[list[dict[str, Any]] | None, str]:
    """One pip-audit run: (dependencies, "") or (None, why this service gave no full answer)."""
    command = [sys.executable, "-m", "pip_audit", "--disable-pip", "--require-hashes",
               "--format", "json", "--progress-spinner", "off", "--vulnerability-service",
               service, "--timeout", str(timeout)]
    for path in requirements:
        command += ["--requirement", path]
    try:
        # A blackholed service costs up to `timeout` per package: bound the whole run too.
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout * 60)
    except subprocess.TimeoutExpired:
        return None, f"pip-audit did not finish within {timeout * 60} s"
    try:
        dependencies = json.loads(result.stdout)["dependencies"]
    except (ValueError, KeyError, TypeError):
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"pip-audit exited {result.returncode}: {last[:300]}"
    skipped = [dep for dep in dependencies if dep.get("skip_reason")]
    if skipped:
        return None, (f"{len(skipped)} of {len(dependencies)} packages unanswered, e.g. "
                      f"{skipped[0]['skip_reason'][:200]}")
    return dependencies, ""


def findings_of(dependencies: list[dict[str, Any]]) -> list[Finding]:
    return [Finding(canonical(dep["name"]), dep["version"],
                    tuple([vuln["id"], *vuln.get("aliases", [])]),
                    tuple(vuln.get("fix_versions", [])), vuln.get("description", ""))
            for dep in dependencies for vuln in dep.get("vulns", [])]


def excused_by(finding: Finding, allowed: list[Allowed]) -> Allowed | None:
    for entry in allowed:
        if entry.package == finding.package and entry.id in finding.ids:
            return entry
    return None


LOCK_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)\s*(?:;([^\\]*))?")


def locked_packages(requirements: list[str]) -> dict[str, str]:
    """name -> version of every lock entry whose marker holds for this Python."""
    from packaging.markers import Marker

    pins: dict[str, str] = {}
    for path in requirements:
        for line in pathlib.Path(path).read_text(encoding="utf-8").splitlines():
            match = LOCK_LINE.match(line)
            if match and (not match[3] or Marker(match[3].strip()).evaluate()):
                pins[canonical(match[1])] = match[2]
    return pins


def audit_latest_releases(requirements: list[str], pypi_url: str,
                          timeout: int) -> tuple[list[dict[str, Any]], list[str], str]:
    """The fallback when no service answers: PyPI's project JSON (the registry's own API, reached
    where per-release JSON and OSV are not) lists the advisories of the *latest* release. That is
    exact for a package pinned at its latest release and says nothing for one pinned behind it.

    Returns (audited dependencies in pip-audit's JSON shape, packages not audited, error)."""
    import requests

    audited: list[dict[str, Any]] = []
    behind: list[str] = []
    session = requests.Session()
    for name, version in sorted(locked_packages(requirements).items()):
        try:
            response = session.get(f"{pypi_url.rstrip('/')}/{name}/json", timeout=timeout)
            response.raise_for_status()
            project = response.json()
            latest = project["info"]["version"]
        except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
            return [], [], f"{name}: {type(exc).__name__}"
        if latest != version:
            behind.append(f"{name} {version} (latest {latest})")
            continue
        vulns = [{"id": vuln["id"], "aliases": vuln.get("aliases") or [],
                  "fix_versions": vuln.get("fixed_in") or [],
                  "description": vuln.get("summary") or vuln.get("details") or ""}
                 for vuln in project.get("vulnerabilities") or [] if not vuln.get("withdrawn")]
        audited.append({"name": name, "version": version, "vulns": vulns})
    return audited, behind, ""


def decide(dependencies: list[dict[str, Any]], allowed: list[Allowed], source: str,
           allowlist: pathlib.Path) -> int:
    """Print what the audit found; 1 if a finding is not excused by the allow-list, else 0."""
    findings = findings_of(dependencies)
    failing = [f for f in findings if excused_by(f, allowed) is None]
    for finding in findings:
        entry = excused_by(finding, allowed)
        if entry is not None:
            print(f"audit: allowed {entry.id} in {finding.package} {finding.version} "
                  f"(reviewed {entry.date}): {entry.why}")
    used = {excused_by(f, allowed) for f in findings}
    audited = {canonical(dep["name"]) for dep in dependencies}
    for entry in allowed:
        if entry not in used and entry.package in audited:
            print(f"audit: note: allow-list entry {entry.id} ({entry.package}) matches no "
                  "finding any more; remove it")
    for finding in failing:
        fixes = ", ".join(finding.fix_versions) or "no fixed release"
        print(f"audit: VULNERABLE {finding.package} {finding.version}: "
              f"{' / '.join(finding.ids)} (fixed in: {fixes}) {finding.description[:200]}")
    if failing:
        print(f"audit: {len(failing)} finding(s) via {source}: upgrade the package "
              f"(make lock UPGRADE='--upgrade-package NAME') or document an exception in "
              f"{allowlist.name}", file=sys.stderr)
        return 1
    print(f"audit: {len(dependencies)} packages audited via {source}: no known "
          f"vulnerability{' beyond the allow-list' if findings else ''}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("requirements", nargs="+", help="hashed requirement files (the locks)")
    parser.add_argument("--allowlist", type=pathlib.Path, default=DEFAULT_ALLOWLIST)
    parser.add_argument("--service", action="append", choices=["pypi", "osv", "esms"],
                        help="vulnerability services to try in order (default: pypi, osv)")
    parser.add_argument("--pypi-url", default="https://pypi.org/pypi",
                        help="PyPI's JSON API, for the latest-release fallback")
    parser.add_argument("--no-fallback", action="store_true",
                        help="skip the latest-release fallback when no service answers")
    parser.add_argument("--timeout", type=int, default=10, help="seconds per request")
    parser.add_argument("--require", action="store_true",
                        help="fail (exit 3) when no service could audit every package")
    args = parser.parse_args(argv)

    try:
        allowed = load_allowlist(args.allowlist)
    except AllowListError as exc:
        print(f"audit: broken allow-list: {exc}", file=sys.stderr)
        return 2

    reasons = []
    for service in args.service or ["pypi", "osv"]:
        dependencies, reason = run_pip_audit(service, args.requirements, args.timeout)
        if dependencies is not None:
            return decide(dependencies, allowed, service, args.allowlist)
        reasons.append(f"{service}: {reason}")

    partly = False
    if not args.no_fallback:
        audited, behind, error = audit_latest_releases(args.requirements, args.pypi_url,
                                                       args.timeout)
        if error:
            reasons.append(f"latest-release data: {error}")
        else:
            status = decide(audited, allowed, "PyPI's latest-release data", args.allowlist)
            partly = bool(audited)
            if status:
                return status
            reasons.append(f"latest-release data covers only packages pinned at their latest "
                           f"release; {len(behind)} are not: {', '.join(behind) or 'none'}")
            if not behind:
                return 0

    print(f"audit: {'PARTLY AUDITED' if partly else 'NOT AUDITED'}: no vulnerability service "
          "answered for every package:\n  " + "\n  ".join(reasons) + "\n(--require, or AUDIT_REQUIRED=1 for .ci/run, makes this "
          "a failure)", file=sys.stderr)
    return 3 if args.require else 0


if __name__ == "__main__":
    sys.exit(main())
