"""The package's layering, read from the source: no import cycle inside handlers/, and the store
and the translation package never reach up into a webhook blueprint.

Every import counts (module level, inside a function, under TYPE_CHECKING, relative or absolute):
a cycle hidden in a function still means neither module can be read, tested or copied alone.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "handlers"
BLUEPRINTS = {f"{PACKAGE}.{name}" for name in
              ("premessage", "postmessage", "logs", "orchestrate", "explorer")}
LOWER_PACKAGES = (f"{PACKAGE}.store", f"{PACKAGE}.translation")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted((ROOT / PACKAGE).rglob("*.py"))}


def resolve(importer: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute name of `from <level dots><name> import ...` written in `importer`."""
    if level == 0:
        return name or ""
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of handlers/ that `name` imports anywhere in its source."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = resolve(name, is_package, node.level, node.module)
            # `from . import fields` imports the module handlers.fields, not a name of handlers
            candidates = [f"{target}.{alias.name}" if f"{target}.{alias.name}" in known
                          else target for alias in node.names]
        else:
            continue
        for candidate in candidates:
            # `import handlers.store.schema` also runs handlers.store: the nearest known module
            while candidate and candidate not in known:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                found.add(candidate)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = modules()
    known = set(paths)
    return {name: imports_of(name, path, known) for name, path in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for child in sorted(graph.get(node, ())):
            if child not in index:
                visit(child)
                low[node] = min(low[node], low[child])
            elif child in on_stack:
                low[node] = min(low[node], index[child])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_every_kind_of_import() -> None:
    graph = import_graph()
    # relative, from a package's __init__
    assert "handlers.store.schema" in graph["handlers.store"]
    # `from . import fields` names a module
    assert "handlers.fields" in graph["handlers.postmessage"]
    # a function-level import counts as much as one at the top
    assert "handlers.store" in graph["handlers"]
    # a package's __init__ importing a submodule is an edge like any other
    assert "handlers.store.event_store" in graph["handlers.store"]


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_inside_handlers() -> None:
    assert cycles(import_graph()) == []


@pytest.mark.parametrize("lower", LOWER_PACKAGES)
def test_store_and_translation_import_no_blueprint(lower: str) -> None:
    def is_blueprint(name: str) -> bool:
        return any(name == b or name.startswith(b + ".") for b in BLUEPRINTS)

    graph = import_graph()
    offending = {name: sorted(filter(is_blueprint, imported)) for name, imported in graph.items()
                 if name == lower or name.startswith(lower + ".")}
    assert {name: found for name, found in offending.items() if found} == {}
