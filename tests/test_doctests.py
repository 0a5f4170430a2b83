"""Every runnable example in edgeship's docstrings runs (one test per module that has examples).

Modules are found by walking the installed packages, so a new module's examples are checked
without being listed here. Examples run in a temporary folder (they may write files).
"""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest


PACKAGES = ("edgeship", "edgeship.converters", "edgeship.targets", "edgeship.models", "edgeship.cli")
# Modules that run as scripts or need extras missing from a base install are still imported here:
# every edgeship module must import without its heavy dependencies.


def _modules():
    names = set()
    for pkg_name in PACKAGES:
        pkg = importlib.import_module(pkg_name)
        names.add(pkg_name)
        for info in pkgutil.iter_modules(pkg.__path__):
            if not info.ispkg:
                names.add(f"{pkg_name}.{info.name}")
    return sorted(n for n in names if n != "edgeship.__main__")


def _with_examples(name):
    mod = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = [t for t in finder.find(mod) if any(not ex.options.get(doctest.SKIP) for ex in t.examples)]
    return tests


MODULES = [n for n in _modules() if _with_examples(n)]


def test_examples_are_found():
    assert len(MODULES) >= 10, MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in _with_examples(name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} failing example(s) in {name} (run: python -m doctest -v)"
    assert result.attempted > 0
