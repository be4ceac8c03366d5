"""What the first-day user reads is true of the code: every setting, endpoint, error code and
command that README.md, docs/troubleshooting.md and docs/templates.md name exists in the kit, the
step lists shown are the code's, and the settings table's defaults are the code's defaults.

tests/test_readme.py checks the other direction (everything the kit has is documented).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pathlib
import re
import runpy
from dataclasses import fields
from typing import Any

import pytest

import handlers
from handlers.settings import DEFAULTS, WEBHOOK_PREFIXES, Settings, load_settings
from tests.test_templates_contract import TEMPLATE_OF, load_template

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIRST_DAY = ("README.md", "docs/troubleshooting.md", "docs/templates.md")
TEXT = {name: (ROOT / name).read_text() for name in FIRST_DAY}
README = TEXT["README.md"]
CODE = [*sorted(ROOT.glob("handlers/**/*.py")), *sorted(ROOT.glob("server/*.py")),
        *sorted(ROOT.glob("examples/**/*.py"))]
MAKEFILE = (ROOT / "Makefile").read_text()


def string_constants(paths: list[pathlib.Path]) -> set[str]:
    """Every string literal of the code, f-strings' literal parts included."""
    return {node.value for path in paths for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def module_names(paths: list[pathlib.Path]) -> set[str]:
    """Names the code assigns at module level (PREMESSAGE_STEPS, ...)."""
    names: set[str] = set()
    for path in paths:
        for node in ast.parse(path.read_text()).body:
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, ast.AnnAssign) else []
            names |= {target.id for target in targets if isinstance(target, ast.Name)}
    return names


def names_the_code_knows() -> set[str]:
    """Upper-case names the kit, its templates, its Makefile, its tests and CI read or define."""
    known = {value for value in string_constants(CODE) if re.fullmatch(r"[A-Z][A-Z0-9_]*", value)}
    known |= module_names(CODE)
    known |= {f.name.upper() for f in fields(Settings)}
    auth = (ROOT / "handlers" / "settings" / "auth.py").read_text()
    known |= {prefix + key for key in re.findall(r'pick\("([A-Z_]+)"\)', auth)
              for prefix in ("WEBHOOK_", *WEBHOOK_PREFIXES.values())}
    known |= set(re.findall(r"^([A-Z_]+) *[?:+]?=", MAKEFILE, re.MULTILINE))
    known |= set(re.findall(r"\$\(([A-Z_]+)\)", MAKEFILE))
    tests = "".join(path.read_text() for path in ROOT.glob("tests/*.py"))
    known |= set(re.findall(r'os\.environ(?:\.get\(|\[)"([A-Z_]+)"', tests))
    known |= set(re.findall(r"export ([A-Z_]+)=", (ROOT / ".ci" / "run").read_text()))
    return known


def names_in(text: str) -> set[str]:
    """Upper-case names a page mentions: `NAME`, `NAME=value`, `PREFIX_`, `NAME_*`, `*_SUFFIX`,
    and any NAME_WITH_UNDERSCORES in its prose or code blocks."""
    names = {match.group(1) for span in re.findall(r"`([^`\n]+)`", text)
             if (match := re.fullmatch(r"(\*_[A-Z0-9_]+|[A-Z][A-Z0-9_]*\*?)(=\S*)?", span))}
    names |= set(re.findall(r"(?<![\w*])[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+(?![\w*])", text))
    return names


def test_every_upper_case_name_in_the_first_day_docs_exists_in_the_code():
    known = names_the_code_knows()

    def exists(name: str) -> bool:
        if name.startswith("*"):
            return any(other.endswith(name[1:]) for other in known)
        if name.endswith(("*", "_")):
            return any(other.startswith(name.rstrip("*")) for other in known)
        return name in known

    assert len(known) > 100
    for page, text in TEXT.items():
        missing = sorted(name for name in names_in(text) if not exists(name))
        assert not missing, f"{page} names {missing}, which the code does not have"


def test_the_names_check_finds_a_name_the_code_lacks():
    assert names_in("set `TRANSLATOR_TIMEOUT=3`, `LOG_*` or SESSION_LIFETIME") == {
        "TRANSLATOR_TIMEOUT", "LOG_*", "SESSION_LIFETIME"}
    assert not {"TRANSLATOR_TIMEOUT", "SESSION_LIFETIME"} & names_the_code_knows()


# --- the settings table -------------------------------------------------------------------------

SETTINGS_TABLE = README.split("## Settings", 1)[1].split("\n## ", 1)[0]
ROWS = re.findall(r"^\| `([A-Z_]+)`[^|]* \| ([^|]*) \|", SETTINGS_TABLE, re.MULTILINE)
# The server's settings: gunicorn_conf.py's own and those it reads through
# server/settings.py (WEB_CONCURRENCY, GUNICORN_THREADS, ...).
GUNICORN_READS = {value for value in string_constants([ROOT / "server/gunicorn_conf.py",
                                                       ROOT / "server/settings.py"])
                  if re.fullmatch(r"[A-Z][A-Z0-9_]*", value)}


def gunicorn_config(monkeypatch: pytest.MonkeyPatch, **environ: str) -> dict[str, Any]:
    """server/gunicorn_conf.py's settings (its plain values) under this environment."""
    for name in GUNICORN_READS:
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    namespace = runpy.run_path(str(ROOT / "server" / "gunicorn_conf.py"))
    return {key: value for key, value in namespace.items() if not key.startswith("_")
            and isinstance(value, (int, float, str, bool, type(None)))}


def test_every_row_of_the_settings_table_is_a_setting_the_kit_reads():
    read = {f.name.upper() for f in fields(Settings)} | GUNICORN_READS
    auth = (ROOT / "handlers" / "settings" / "auth.py").read_text()
    read |= {"WEBHOOK_" + key for key in re.findall(r'pick\("([A-Z_]+)"\)', auth)}
    read |= {"ORCHESTRATE_AUTH"}  # the first of the ORCHESTRATE_* row (docs/orchestrate.md)
    assert len(ROWS) > 50
    unknown = sorted(name for name, _ in ROWS if name not in read)
    assert not unknown, f"the README's settings table lists {unknown}, which the kit never reads"


@pytest.mark.parametrize("name, default", [
    (name, default) for name, default in ROWS
    if re.fullmatch(r"`[^`]+`( \([^)`]*\))?", default.strip())
    and default.strip("` ") not in {row for row, _ in ROWS}])  # not another setting's name
def test_a_documented_default_is_the_codes_default(monkeypatch, name, default):
    """Setting the documented default explicitly changes nothing."""
    literal = default.strip().split("`")[1]
    checked = False
    if name.lower() in DEFAULTS:
        assert load_settings({name: literal}, environ={}) == load_settings({}, environ={})
        checked = True
    if name in GUNICORN_READS:
        assert gunicorn_config(monkeypatch, **{name: literal}) == gunicorn_config(monkeypatch)
        checked = True
    assert checked, f"{name} has a default in the README but no default in the code"


@pytest.mark.parametrize("name", [name for name, default in ROWS
                                  if default.strip().startswith("unset")])
def test_a_setting_documented_as_unset_has_no_default(name):
    assert DEFAULTS[name.lower()] is None


# --- endpoints, error codes, commands -----------------------------------------------------------

def routes(app: Any) -> set[tuple[str, str]]:
    return {(method, re.sub(r"<[^>]*>", "<>", rule.rule)) for rule in app.url_map.iter_rules()
            for method in rule.methods - {"HEAD", "OPTIONS"}}


def test_every_endpoint_in_the_first_day_docs_is_served(make_app, monkeypatch, tmp_path,
                                                        libre_server):
    served = routes(make_app(METRICS="on", EXPLORER_AUTH="none",
                             WEBHOOKS="premessage,postmessage,logs,orchestrate"))
    monkeypatch.setenv("TRANSLATOR_URL", libre_server.url)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/events.sqlite3")
    templates = {name: routes(load_template(webhook).app) for webhook, name in TEMPLATE_OF.items()}
    paths = {path for _, path in served}
    for page, text in TEXT.items():
        for method, path in re.findall(r"\b(GET|POST|PUT|PATCH|DELETE) (/[^\s`|),]*)", text):
            assert (method, re.sub(r"<[^>]*>", "<>", path)) in served, f"{page}: {method} {path}"
        for path in re.findall(r"https://<host>(/[^\s`|),]*)", text):
            assert path in paths, f"{page}: https://<host>{path}"
        # A template's row names the route that template serves.
        for name, method, path in re.findall(r"^\| `(?:examples/templates/)?(\w+\.py)` \| "
                                             r"`(GET|POST) (/\S+)`", text, re.MULTILINE):
            assert (method, path) in templates[name], f"{page}: {name} serves {method} {path}"


def test_every_error_code_in_the_first_day_docs_is_one_the_code_answers():
    strings = string_constants([*ROOT.glob("handlers/**/*.py"), *ROOT.glob("server/*.py")])
    table = README.split("Errors are", 1)[1].split("\n\n", 2)[1]
    codes = {code for row in re.findall(r"^\| [^|]+ \| ([^|]+) \|", table, re.MULTILINE)
             for code in re.findall(r"`([a-z_]+)`", row)}
    assert {"invalid_json", "unauthorized", "store_unavailable"} <= codes
    codes |= set(re.findall(r"`([a-z]+(?:_[a-z]+)+)`", TEXT["docs/troubleshooting.md"]))
    missing = sorted(codes - strings)
    assert not missing, f"error codes and log fields in the docs the code never writes: {missing}"


def commands_in(text: str) -> list[str]:
    """Command lines: backticked spans and the lines of code blocks."""
    blocks = re.findall(r"```\w*\n(.*?)```", text, re.DOTALL)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    return lines + re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.DOTALL))


def test_every_command_in_the_first_day_docs_exists(make_app):
    cli = make_app().cli.commands
    targets = set(re.findall(r"^([\w-]+):", MAKEFILE, re.MULTILINE))
    seen = set()
    for page, text in TEXT.items():
        for line in commands_in(text):
            for command, sub in re.findall(r"flask --app handlers ([\w-]+)(?: ([\w|-]+))?", line):
                assert command in cli, f"{page}: {line}"
                for name in filter(None, sub.split("|")):
                    assert name in cli[command].commands, f"{page}: {line}"
                seen.add("flask")
            for target in re.findall(r"(?:^|&& )make ([a-z-]+)", line):
                assert target in targets, f"{page}: {line}"
                seen.add("make")
            for script in re.findall(r"\bpython3? (\S+\.py)\b", line):
                assert (ROOT / script).is_file(), f"{page}: {line}"
                seen.add("python")
            for module in re.findall(r"\bpython3? -m ([\w.]+)", line):
                assert importlib.util.find_spec(module) is not None, f"{page}: {line}"
            for module, factory in re.findall(r'gunicorn .*"([\w.]+):(\w+)\(\)"', line):
                assert callable(getattr(importlib.import_module(module), factory)), line
                seen.add("gunicorn")
            for template in re.findall(r"flask --app (\w+\.py)", line):
                assert (ROOT / "examples" / "templates" / template).is_file(), f"{page}: {line}"
    assert seen == {"flask", "make", "python", "gunicorn"}


# --- the step lists -----------------------------------------------------------------------------

@pytest.mark.parametrize("page", ["README.md", *(f"docs/{p.name}" for p in
                                                 sorted((ROOT / "docs").glob("*.md")))])
def test_the_step_lists_shown_are_the_codes(page):
    text = (ROOT / page).read_text()
    shown = re.findall(r"\b(\w+_STEPS)\s*=\s*\[([^\]]*)\]", text)
    for list_name, body in shown:
        module_name = next(module for module, steps in handlers.WEBHOOK_MODULES.values()
                           if steps == list_name)
        steps = getattr(importlib.import_module(f"handlers.{module_name}"), list_name)
        assert re.findall(r"\w+", body) == [step.__name__ for step in steps], f"{page}: {list_name}"
    if page == "README.md":
        assert sorted(name for name, _ in shown) == [
            "LOG_STEPS", "POSTMESSAGE_STEPS", "PREMESSAGE_STEPS"]
        block = text.split("PREMESSAGE_STEPS  =", 1)[1].split("```", 1)[0]
        assert re.findall(r"# handlers/(\w+)\.py", block) == [
            module for module, steps in handlers.WEBHOOK_MODULES.values() if steps]


# --- files and links ----------------------------------------------------------------------------

def anchors(page: pathlib.Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces to '-'."""
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
            for heading in re.findall(r"^#+ (.+)$", page.read_text(), re.MULTILINE)}


def test_every_file_and_link_in_the_first_day_docs_exists():
    for page, text in TEXT.items():
        here = (ROOT / page).parent
        for path in re.findall(r"(?<![\w/])((?:handlers|examples|tests|docs|bench|\.ci)/[\w./-]*"
                               r"\w)", text):
            assert (ROOT / path).exists(), f"{page} names {path}, which does not exist"
        for target, anchor in re.findall(r"\]\(([^)#:\s]*)(?:#([^)\s]+))?\)", text):
            linked = (here / target).resolve() if target else ROOT / page
            assert linked.exists(), f"{page} links to {target}, which does not exist"
            if anchor:
                assert anchor in anchors(linked), f"{page} links to {target}#{anchor}: no heading"
