"""The README stays true: every setting the kit reads and every endpoint it serves is documented."""

from __future__ import annotations

import pathlib
import re

from handlers import create_app

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_every_setting_is_documented():
    source = (ROOT / "handlers" / "settings.py").read_text()
    names = set(re.findall(r'_(?:text|choice|number|flag|codes)\(source, "([A-Z_]+)"', source))
    names |= {"WEBHOOK_" + key for key in re.findall(r'pick\("([A-Z_]+)"\)', source)}
    assert len(names) > 30
    missing = sorted(name for name in names if f"`{name}`" not in README)
    assert not missing, f"settings missing from README.md: {missing}"


def test_every_endpoint_is_documented(make_app):
    app = make_app()
    rules = {(method, rule.rule) for rule in app.url_map.iter_rules()
             if rule.endpoint != "static" for method in rule.methods - {"HEAD", "OPTIONS"}}
    for method, path in rules:
        assert f"`{method} {path}`" in README, f"{method} {path} is not in the README"


def test_quick_start_is_the_two_make_commands():
    quick = README.split("## Quick start", 1)[1].split("##", 1)[0]
    commands = [line.split("#")[0].strip() for line in quick.split("```sh", 1)[1].split("```")[0]
                .strip().splitlines()]
    assert commands == ["make run", "make test"]
