"""The ``host`` target: this machine's CPU with its real core count and runtimes.

Unlike ``null`` it describes the actual machine (cores, RAM) and notes which
runtimes are installed, so ``edgeship check`` tells you whether the model will
load here.

Example:
    >>> from edgeship.targets import get_target
    >>> get_target("host").device.cores >= 1
    True
"""
from __future__ import annotations

import os
import platform

from edgeship._deps import available

from .rules import Problem, generic_check
from .null import ALL_DTYPES, ALL_QUANTIZATIONS
from .profile import DeviceSpec, TargetProfile, register_target


def _ram_bytes():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


PROFILE = TargetProfile(
    name="host",
    title=f"This machine ({platform.system()} {platform.machine()})",
    formats=frozenset({"tflite", "onnx"}),
    quantizations=ALL_QUANTIZATIONS,
    io_dtypes=ALL_DTYPES,
    supported_ops=None,
    runtimes=("litert", "tflite-runtime", "onnxruntime"),
    delegates=("xnnpack",),
    device=DeviceSpec(cpu=platform.processor() or platform.machine(), cores=os.cpu_count() or 1,
                      ram_bytes=_ram_bytes()),
    # the runtimes pinned in pyproject.toml; `edgeship deploy --host` installs the line for the model's format
    install=("pip install ai-edge-litert==2.3.0   # TFLite models (LiteRT)",
             "pip install onnxruntime==1.31.1     # ONNX models",
             "pip install -e /path/to/edgeship   # from a checkout; `pip wheel --no-deps .` makes a wheel"),
)

# Which importable module provides each format here (first found wins).
_RUNTIME_MODULES = {"tflite": ("ai_edge_litert", "tflite_runtime", "tensorflow"), "onnx": ("onnxruntime",)}


def check_host(model_path, profile=PROFILE):
    """Generic check plus: is a runtime for this format installed on this machine?"""
    report = generic_check(model_path, profile, placement="cpu")
    mods = _RUNTIME_MODULES.get(report.format, ())
    found = [m for m in mods if available(m)]
    if found:
        report.notes.append(f"runtime here: {found[0]}")
    else:
        report.add(Problem("runtime", report.format,
                           f"no {report.format} runtime is installed here (looked for {', '.join(mods)})",
                           "pip install ai-edge-litert" if report.format == "tflite" else "pip install onnxruntime"))
    return report


PROFILE = register_target(PROFILE, check_host)
