"""The manual stays true: every setting the kit reads and every endpoint it serves is documented
in the README or a page of docs/, and the README stays a manual (the two commands, <= 300 lines)."""

from __future__ import annotations

import pathlib
import re
from dataclasses import fields

from handlers.settings import Settings

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
MANUAL = README + "".join(page.read_text() for page in sorted((ROOT / "docs").glob("*.md")))


def test_every_setting_is_documented():
    source = "".join(path.read_text() for path in [*(ROOT / "handlers" / "settings").glob("*.py"),
                                                   ROOT / "server" / "settings.py"])
    names = set(re.findall(r'read_(?:text|choice|number|flag|codes)\(source, "([A-Z_]+)"', source))
    names |= {"WEBHOOK_" + key for key in re.findall(r'pick\("([A-Z_]+)"\)', source)}
    # Settings read by their field's name (number("translation_timeout") reads TRANSLATION_TIMEOUT)
    names |= {f.name.upper() for f in fields(Settings) if f.name not in ("auth", "log_level")}
    # What the server and any module read from the environment themselves.
    direct = "".join(path.read_text() for path in [*ROOT.glob("server/*.py"),
                                                   *ROOT.glob("handlers/**/*.py")])
    names |= set(re.findall(r'(?:_number\(|os\.environ\.get\(|os\.environ\[)\s*["\']([A-Z_]+)',
                            direct))
    assert len(names) > 30
    missing = sorted(name for name in names if f"`{name}`" not in MANUAL)
    assert not missing, f"settings missing from README.md and docs/: {missing}"


def test_the_settings_table_is_in_the_readme():
    table = README.split("## Settings", 1)[1].split("\n## ", 1)[0]
    for name in ("ASSISTANT_LANGUAGE", "TRANSLATOR", "DATABASE_URL", "WEBHOOKS", "REDIS_URL"):
        assert f"| `{name}` |" in table


def test_every_endpoint_is_documented(make_app):
    app = make_app(METRICS="on", EXPLORER_AUTH="none")
    rules = {(method, rule.rule) for rule in app.url_map.iter_rules()
             if rule.endpoint != "static" for method in rule.methods - {"HEAD", "OPTIONS"}}
    for method, path in rules:
        assert f"`{method} {path}`" in MANUAL, f"{method} {path} is not in README.md or docs/"


def test_quick_start_is_the_two_make_commands():
    quick = README.split("## Quick start", 1)[1].split("##", 1)[0]
    commands = [line.split("#")[0].strip() for line in quick.split("```sh", 1)[1].split("```")[0]
                .strip().splitlines()]
    assert commands == ["make run", "make test"]


def test_links_to_docs_resolve():
    for target in re.findall(r"\]\(((?:docs|bench|examples)/[^)#]+)", README):
        assert (ROOT / target).exists(), f"README links to {target}, which does not exist"


def test_the_readme_is_a_manual_not_a_notebook():
    assert len(README.splitlines()) <= 300
