"""Microcontrollers (Cortex-M) through TensorFlow Lite Micro (TFLM): the target profile,
``edgeship check --target mcu``, one report and the deploy bundler.

What this target proves on the host, with the real TFLM interpreter (the
``tflite-micro`` Python package, ``pip install 'edgeship[mcu]'``):

* the model runs under TFLM at all (every op has a TFLM kernel);
* the exact tensor-arena size it needs, and TFLM-vs-LiteRT parity on the same raw inputs.

One concern per module, all re-exported here (callers import from ``edgeship.targets.mcu``):

* :mod:`edgeship.targets.mcu_ops`: TFLM's op set as data, the op and static-shape checks;
* :mod:`edgeship.targets.mcu_run`: the TFLM interpreter on the host, arena bisection, parity;
* :mod:`edgeship.targets.mcu_codegen`: ``model_data.cc/.h`` and ``op_resolver.h``;
* :mod:`edgeship.targets.mcu_latency`: the Cortex-M latency estimate from MACs;
* :mod:`edgeship.targets.mcu_readme`: the bundle's README text.

Example:
    >>> from edgeship.targets.mcu import resolver_method
    >>> resolver_method("DEPTHWISE_CONV_2D")
    'AddDepthwiseConv2D'
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .._io import atomic_write_json, model_bytes as _model_bytes, sha256_bytes
from ..errors import TargetError
from ..tflite_schema import read_tflite as _read
from edgeship.facts import QuantMode

from ._mcu_types import PathOrBytes
from .mcu_codegen import c_array_source, export_firmware_files, parse_c_array, resolver_source
from .mcu_latency import (DSCNN_MACS, LATENCY_BAND, LATENCY_REFERENCES, LatencyEstimate,
                          LatencyReference, count_macs, estimate_latency)
from .mcu_ops import (TFLM_BUILTIN_OPS, TFLM_CUSTOM_OPS, TFLM_IO_DTYPES, OpSupport, _check_static,
                      check_tflm_ops, resolver_method)
from .mcu_readme import mcu_readme
from .mcu_run import ArenaReport, TFLMRun, find_arena_size, run_tflm
from .profile import DeviceSpec, Staged, TargetProfile, register_target

MCU_PROFILE = TargetProfile(
    name="mcu",
    title="Microcontroller (Cortex-M, TensorFlow Lite Micro)",
    formats=frozenset({"tflite"}),
    quantizations=frozenset({QuantMode.INT8, QuantMode.FP32}),
    io_dtypes=TFLM_IO_DTYPES,
    supported_ops=frozenset(TFLM_BUILTIN_OPS) | frozenset(TFLM_CUSTOM_OPS),
    max_tensor_rank=6,
    # TFLM plans the arena once from the stored shapes: only the batch dimension may be
    # marked dynamic (-1) in the signature (check_mcu tests the other dimensions).
    static_shapes_required=False,
    memory_limit_bytes=None,        # weights sit in flash, the arena in SRAM: checked apart
    runtimes=("tflite-micro",),
    device=DeviceSpec(cpu="Cortex-M4F (STM32L4R5ZI)", cores=1, clock_ghz=0.12,
                      ram_bytes=640 * 1024, flash_bytes=2 * 1024 * 1024),
    install=("pip install 'edgeship[mcu]'   # host-side TFLM interpreter",),
    notes=(
        "int8 is the practical choice: CMSIS-NN kernels are int8/int16; float32 runs on "
        "reference kernels only.",
        "The arena size is measured on the x86-64 host build of TFLM: 32-bit Cortex-M "
        "structs are smaller, CMSIS-NN kernels may ask for different scratch buffers, "
        "so keep the recommended margin.",
    ),
)



# --- one report --------------------------------------------------------------------
def mcu_report(model: PathOrBytes, *, inputs: Optional[Sequence[np.ndarray]] = None) -> dict:
    """Ops, exact arena, TFLM-vs-LiteRT parity, flash/RAM fit and latency estimate.

    Raises TargetError when an op has no TFLM kernel or shapes are dynamic.
    """
    data = _model_bytes(model)
    m = _read(data)
    ops = check_tflm_ops(data)
    missing = [o.op for o in ops if not o.supported]
    if missing:
        raise TargetError(f"TFLM has no kernel for: {', '.join(missing)}")
    arena = find_arena_size(data, inputs=inputs)
    run = run_tflm(data, inputs, arena_size=arena.min_bytes)
    macs = count_macs(model)
    in_dtypes = {m.main.tensors[i].dtype for i in m.main.inputs}
    notes = list(MCU_PROFILE.notes)
    if not in_dtypes <= {"int8", "int16"}:
        notes.append("latency calibration is for int8 models; this model's float kernels are "
                     "slower on Cortex-M than the estimate says")
    dev = MCU_PROFILE.device
    return {
        "target": "mcu",
        "model_bytes": len(data),
        "model_sha256": sha256_bytes(data),
        "ops": [asdict(o) for o in ops],
        "arena": asdict(arena),
        "parity": {"ok": run.ok, "max_abs_diff_raw": run.max_abs_diff, "against": "LiteRT"},
        "fits": {"board": "NUCLEO-L4R5ZI",
                 "flash": len(data) <= (dev.flash_bytes or 0),
                 "ram": arena.recommended_bytes <= (dev.ram_bytes or 0)},
        "macs": macs,
        "latency_estimates": [asdict(e) for e in estimate_latency(macs)],
        "latency_band": list(LATENCY_BAND),
        "notes": notes,
    }


def check_mcu(model_path, profile: TargetProfile = MCU_PROFILE):
    """``edgeship check MODEL --target mcu``: the profile's rules, then TFLM itself.

    When tflite-micro is installed and the rules pass, the model is run under TFLM:
    the exact arena goes into ``report.memory`` / ``report.details`` and a RAM problem
    is raised when it exceeds the board's SRAM; MACs give ``report.estimate``.
    """
    from .._deps import available
    from ..facts import read_facts
    from .rules import Problem, generic_check

    facts = read_facts(model_path)
    report = generic_check(model_path, profile, facts=facts)
    if report.format != "tflite":
        return report
    try:
        _check_static(facts.raw)
    except TargetError as exc:
        report.add(Problem("dynamic_shape", Path(str(model_path)).name, str(exc),
                           "re-convert with a fixed input shape"))
    flash = profile.device.flash_bytes
    size = Path(str(model_path)).stat().st_size
    if flash is not None and size > flash:
        report.add(Problem("memory", Path(str(model_path)).name,
                           f"model file is {size} B; {profile.device.cpu} has {flash} B of flash",
                           "re-convert with --quantize int8 or use a smaller model"))
    macs = facts.macs_total
    report.estimate = {"macs": macs, "band": list(LATENCY_BAND),
                       "latency_ms": [asdict(e) for e in estimate_latency(macs)]}
    if facts.quantization.value != "int8":   # the calibration is int8 (CMSIS-NN) kernels
        report.estimate["lower_bound"] = True
        report.notes.append("the latency estimate is calibrated on int8 kernels; this model's float "
                            "kernels are slower on Cortex-M, so the figure is a lower bound")
    if not report.compatible:
        return report
    if not available("tflite_micro"):
        report.notes.append("tflite-micro is not installed (pip install 'edgeship[mcu]'): "
                            "the model was not run under TFLM and the arena was not measured")
        return report
    try:
        arena = find_arena_size(model_path)
    except TargetError as exc:
        report.add(Problem("runtime", Path(str(model_path)).name, str(exc),
                           "use a smaller model or a board with more RAM"))
        return report
    run = run_tflm(model_path, arena_size=arena.min_bytes)
    report.memory["tflm_arena_bytes"] = arena.min_bytes
    report.memory["tflm_arena_recommended_bytes"] = arena.recommended_bytes
    report.details["tflm"] = {"arena": asdict(arena), "parity_max_abs_diff_raw": run.max_abs_diff,
                              "parity_ok": run.ok}
    if not run.ok:
        report.add(Problem("parity", Path(str(model_path)).name,
                           f"TFLM output differs from LiteRT by {run.max_abs_diff} raw units (beyond "
                           f"1 step for integer / 1e-4 relative for float outputs)",
                           "report the model: a TFLM kernel disagrees with LiteRT"))
    ram = profile.device.ram_bytes
    if ram is not None and arena.recommended_bytes > ram:
        report.add(Problem("memory", Path(str(model_path)).name,
                           f"TFLM arena needs {arena.recommended_bytes} B (measured {arena.min_bytes} B "
                           f"+ margin); {profile.device.cpu} has {ram} B SRAM",
                           "quantize to int8 or shrink the activations (fewer channels / lower resolution)"))
    return report


def bundle_mcu(model: Path, stage: Path, options: dict) -> Staged:
    """``edgeship deploy --target mcu``: firmware sources, TFLM report and README."""
    report = mcu_report(model)
    fw = export_firmware_files(model, stage / "firmware", arena_bytes=report["arena"]["recommended_bytes"])
    readme = mcu_readme(model.name, report)
    extra = {name: path for name, path in fw.items()}
    report_path = stage / "mcu_report.json"
    atomic_write_json(report_path, report)
    extra["mcu_report.json"] = report_path
    return Staged(files={"mcu": model}, extra_files=extra, readme=readme,
                  run_command="build the firmware with model_data.cc and op_resolver.h (see README)",
                  extra={"mcu": {"arena": report["arena"], "macs": report["macs"]}})


MCU_PROFILE = register_target(MCU_PROFILE, check_mcu, bundle_mcu)


__all__ = [
    "TFLM_BUILTIN_OPS", "TFLM_CUSTOM_OPS", "DSCNN_MACS", "LATENCY_REFERENCES", "LATENCY_BAND", "TFLM_IO_DTYPES", "MCU_PROFILE",
    "LatencyReference",
    "check_mcu", "bundle_mcu", "mcu_readme", "OpSupport", "ArenaReport", "TFLMRun", "LatencyEstimate", "resolver_method", "check_tflm_ops",
    "find_arena_size", "run_tflm", "c_array_source", "parse_c_array", "resolver_source",
    "export_firmware_files", "count_macs", "estimate_latency", "mcu_report",
]
