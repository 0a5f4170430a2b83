"""Lazy imports of optional dependencies, with errors that name the extra to install."""
from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependencyError


def require(module: str, extra: str, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra.

    Example:
        >>> np = require("numpy", "core")
        >>> np.__name__
        'numpy'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # the module or one of its own imports is missing
        why = f" for {purpose}" if purpose else ""
        raise MissingDependencyError(
            f"'{module}' is needed{why} but could not be imported ({exc}). "
            f"Install it with: pip install 'edgeship[{extra}]'"
        ) from exc


def available(module: str) -> bool:
    """True when ``module`` can be found, without importing it."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
