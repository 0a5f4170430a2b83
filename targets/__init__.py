"""Targets as data: a registry of device profiles and ``check(model, target)``.

Importing this package registers every target module (each is light: profiles
are plain data; heavy imports happen inside functions).

Example:
    >>> from edgeship import targets
    >>> "null" in targets.list_targets()
    True
    >>> targets.get_target("rpi4").device.cpu
    'Cortex-A72'
"""
from __future__ import annotations

import importlib
from typing import List

from edgeship.errors import TargetError

from . import check as _check_module  # noqa: F401  (loaded first: the function below takes its name)
from .profile import CHECKERS, TARGETS, DeviceSpec, TargetProfile, register_target

# Every module that registers profiles; T2's modules are optional until they land.
TARGET_MODULES = ("null", "host", "rpi", "edgetpu", "android", "ios", "mcu")
_loaded = False


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for name in TARGET_MODULES:
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":  # a real missing import inside the module
                raise


def list_targets() -> List[str]:
    """Names of every registered target, sorted."""
    _load_all()
    return sorted(TARGETS)


def get_target(name: str) -> TargetProfile:
    """The profile called ``name``; :class:`TargetError` listing the known names otherwise."""
    _load_all()
    try:
        return TARGETS[name]
    except KeyError:
        raise TargetError(f"unknown target {name!r}; known targets: {', '.join(sorted(TARGETS))}") from None


def check(model_path, target):
    """Check a model file against a target (name or profile) and return a CheckReport.

    Note: ``edgeship.targets.check`` is this function; import the module's names with
    ``from edgeship.targets.check import generic_check, CheckReport``.

    Example:
        >>> from edgeship.targets import check
        >>> report = check("model_int8.tflite", "edgetpu")  # doctest: +SKIP
        >>> report.compatible, [p.fix for p in report.problems]  # doctest: +SKIP
    """
    from .check import generic_check

    profile = target if isinstance(target, TargetProfile) else get_target(str(target))
    checker = CHECKERS.get(profile.name, generic_check)
    return checker(model_path, profile)


_load_all()

__all__ = ["list_targets", "get_target", "check", "TargetProfile", "DeviceSpec", "register_target",
           "TARGETS", "CHECKERS"]
