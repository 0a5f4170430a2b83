"""The runnable examples in the targets modules' docstrings."""
from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["edgeship.targets", "edgeship.targets.check", "edgeship.targets.null", "edgeship.targets.host",
           "edgeship.targets.rpi", "edgeship.targets.edgetpu", "edgeship.targets.costmodel"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
