"""Targets declared as data: what a device accepts, how fast it is, what runs it.

Each target module builds one or more :class:`TargetProfile` and registers it
with :func:`register_target`; adapters (check, estimate, run, deploy files) are
plain functions next to the profile.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, FrozenSet, Optional, Tuple

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


TARGETS: Dict[str, TargetProfile] = {}
CHECKERS: Dict[str, Callable] = {}


def register_target(profile: TargetProfile, checker: Optional[Callable] = None) -> TargetProfile:
    """Add a profile (and its check function ``checker(model_path, profile) -> dict``)."""
    if profile.name in TARGETS:
        raise RuntimeError(f"target {profile.name!r} registered twice")
    TARGETS[profile.name] = profile
    if checker is not None:
        CHECKERS[profile.name] = checker
    return profile
