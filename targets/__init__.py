"""Targets as data: a registry of device profiles and ``check(model, target)``.

Each target module (imported below) declares its :class:`TargetProfile`
with its checker and bundler; the generic rules live in :mod:`edgeship.targets.rules`.
Importing this package registers every target (profiles are plain data; heavy imports happen
inside functions).

Example:
    >>> from edgeship import targets
    >>> "null" in targets.list_targets()
    True
    >>> targets.get_target("rpi4").device.cpu
    'Cortex-A72'
"""
from __future__ import annotations

from typing import List

from edgeship.errors import TargetError

from . import android, edgetpu, host, ios, mcu, null, rpi  # noqa: F401  (each registers its profiles)
from .profile import TARGETS, DeviceSpec, TargetProfile, register_target


def list_targets() -> List[str]:
    """Names of every registered target, sorted."""
    return sorted(TARGETS)


def get_target(name: str) -> TargetProfile:
    """The profile called ``name``; :class:`TargetError` listing the known names otherwise."""
    try:
        return TARGETS[name]
    except KeyError:
        raise TargetError(f"unknown target {name!r}; known targets: {', '.join(sorted(TARGETS))}") from None


def check(model_path, target):
    """Check a model file against a target (name or profile) and return a
    :class:`~edgeship.targets.rules.CheckReport` (the profile's checker, else the generic rules).

    Example:
        >>> import edgeship.models
        >>> report = check(edgeship.models.path("shapes_cnn_fp32"), "edgetpu")
        >>> report.compatible, report.problems[0].kind
        (False, 'quantization')
    """
    from .rules import generic_check

    profile = target if isinstance(target, TargetProfile) else get_target(str(target))
    registered = TARGETS.get(profile.name)
    checker = profile.checker or (registered.checker if registered else None) or generic_check
    return checker(model_path, profile)


__all__ = ["list_targets", "get_target", "check", "TargetProfile", "DeviceSpec", "register_target", "TARGETS"]
