"""The ``null`` target: everything runs on the host CPU with the stock interpreter.

It accepts every format, quantization mode and op the runtimes have, so every
code path (check, run, bench, bundle) can be exercised without any hardware.

Example:
    >>> from edgeship.targets import get_target
    >>> get_target("null").supported_ops is None
    True
"""
from __future__ import annotations

import platform

from .rules import generic_check
from edgeship.facts import QuantMode

from .profile import DeviceSpec, TargetProfile, register_target

ALL_QUANTIZATIONS = frozenset(QuantMode)
ALL_DTYPES = frozenset({"float32", "float16", "float64", "int8", "uint8", "int16", "int32", "int64", "bool",
                        "string"})

PROFILE = TargetProfile(
    name="null",
    title="Host CPU, no accelerator (test target)",
    formats=frozenset({"tflite", "onnx"}),
    quantizations=ALL_QUANTIZATIONS,
    io_dtypes=ALL_DTYPES,
    supported_ops=None,
    runtimes=("litert", "onnxruntime"),
    device=DeviceSpec(cpu=platform.machine() or "host", cores=1),
    notes=("runs every op on the host CPU; use it to test pipelines without hardware",),
)


def check_null(model_path, profile=PROFILE):
    """Generic check with every op placed on the CPU."""
    return generic_check(model_path, profile, placement="cpu")


PROFILE = register_target(PROFILE, check_null)
