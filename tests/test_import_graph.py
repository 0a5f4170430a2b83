"""The import graph of edgeship: no cycles, and library code never imports the CLI.

Every ``import`` statement of every module counts, the lazy ones inside functions too: a
cycle hidden in a function is still a cycle a reader has to untangle. Edges go to the module
imported (``from edgeship.facts import X`` -> ``edgeship.facts``; ``from . import rules`` ->
``edgeship.targets.rules``); importing a package's ``__init__`` is an edge to the package.
"""
from __future__ import annotations

import ast
import importlib.util
import pkgutil
from pathlib import Path
from typing import Dict, Set

PACKAGES = ("edgeship", "edgeship.converters", "edgeship.targets", "edgeship.models", "edgeship.cli")
CLI = "edgeship.cli"
ENTRY_POINTS = {"edgeship.__main__"}   # `python -m edgeship` is the CLI's own entry


def _modules() -> Dict[str, Path]:
    mods = {}
    for pkg_name in PACKAGES:
        spec = importlib.util.find_spec(pkg_name)
        mods[pkg_name] = Path(spec.origin)
        for info in pkgutil.iter_modules(spec.submodule_search_locations):
            if not info.ispkg:
                sub = importlib.util.find_spec(f"{pkg_name}.{info.name}")
                mods[sub.name] = Path(sub.origin)
    return mods


def _resolve(name: str, level: int, here: str, is_pkg: bool) -> str:
    if level == 0:
        return name
    base = here.split(".")
    base = base if is_pkg else base[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def import_graph() -> Dict[str, Set[str]]:
    mods = _modules()
    graph: Dict[str, Set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(node.module or "", node.level, mod, is_pkg)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            for t in targets:
                while t and t not in mods and "." in t:
                    t = t.rsplit(".", 1)[0]
                if t in mods and t != mod:
                    graph[mod].add(t)
    return graph


def _cycle(graph: Dict[str, Set[str]]):
    state: Dict[str, int] = {}
    stack: list = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_graph_covers_every_layer():
    g = import_graph()
    assert {"edgeship.facts", "edgeship.converters", "edgeship.targets.rules", "edgeship.cli.convert"} <= set(g)
    assert "edgeship.facts" in g["edgeship.targets.rules"]


def test_no_import_cycles():
    cycle = _cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_library_never_imports_the_cli():
    bad = sorted(f"{m} -> {t}" for m, ts in import_graph().items() for t in ts
                 if t.startswith(CLI) and not m.startswith(CLI) and m not in ENTRY_POINTS)
    assert not bad, "library code imports CLI code: " + ", ".join(bad)


def test_the_checks_catch_what_they_look_for():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
