"""Targets declared as data: what a device accepts, how fast it is, what runs it.

Each target module builds one or more :class:`TargetProfile` and registers it with
:func:`register_target`, handing over its ``checker`` (what ``edgeship check`` runs; default:
the profile's declarative rules, :func:`edgeship.targets.rules.generic_check`) and its
``bundler`` (what ``edgeship deploy`` writes; default: model + README). So one device's
knowledge lives in one file.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Dict, FrozenSet, Optional, Tuple, Union

from edgeship.facts import QuantMode


@dataclass(frozen=True)
class DeviceSpec:
    """Numbers used by estimates. Sources are cited in the target module."""

    cpu: str = ""
    cores: int = 1
    clock_ghz: float = 0.0
    ram_bytes: Optional[int] = None
    flash_bytes: Optional[int] = None
    accelerator: Optional[str] = None


@dataclass(frozen=True)
class TargetProfile:
    name: str                                   # "rpi4", "edgetpu", "null", ...
    title: str                                  # human name
    formats: FrozenSet[str]                     # {"tflite", "onnx", "coreml"}
    quantizations: FrozenSet[QuantMode]         # edgeship.facts.QuantMode members
    io_dtypes: FrozenSet[str]                   # allowed input/output dtypes
    supported_ops: Optional[FrozenSet[str]]     # None = every op the runtime has
    op_limits: Dict[str, dict] = field(default_factory=dict)   # op -> {max_version, notes...}
    max_tensor_rank: Optional[int] = None
    static_shapes_required: bool = False
    memory_limit_bytes: Optional[int] = None
    runtimes: Tuple[str, ...] = ()              # preferred first
    delegates: Tuple[str, ...] = ()
    device: DeviceSpec = field(default_factory=DeviceSpec)
    install: Tuple[str, ...] = ()               # exact commands for the device
    notes: Tuple[str, ...] = ()
    # fn(model_path, profile) -> CheckReport; None = generic_check
    checker: Optional[Callable] = field(default=None, compare=False, repr=False)
    # fn(model_path, staging_dir, options) -> Staged; None = the generic bundle
    bundler: Optional[Callable] = field(default=None, compare=False, repr=False)


@dataclass
class Staged:
    """What a bundler prepared: model files by key, extra files, the README, a sub-folder."""

    files: Dict[str, Path]
    extra_files: Dict[str, Union[Path, bytes]] = field(default_factory=dict)
    readme: str = ""
    run_command: str = ""
    subdir: Optional[Path] = None       # copied as <bundle>/<subdir.name>/ (android assets/)
    extra: dict = field(default_factory=dict)


TARGETS: Dict[str, TargetProfile] = {}


def register_target(profile: TargetProfile, checker: Optional[Callable] = None,
                    bundler: Optional[Callable] = None) -> TargetProfile:
    """Add a profile, carrying its ``checker`` and ``bundler``; returns the registered profile."""
    if profile.name in TARGETS:
        raise RuntimeError(f"target {profile.name!r} registered twice")
    profile = replace(profile, checker=checker or profile.checker, bundler=bundler or profile.bundler)
    TARGETS[profile.name] = profile
    return profile
