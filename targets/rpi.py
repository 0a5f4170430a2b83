"""Raspberry Pi 4 / 5: aarch64 CPU profiles, runtime choice and a calibrated latency estimate.

Runtimes (preferred first): LiteRT (``ai-edge-litert``) with the XNNPACK delegate and
``num_threads=4``; ``tflite-runtime`` (same kernels, older); ``onnxruntime`` for ONNX.
The pip lines below are the ones with aarch64 wheels for Raspberry Pi OS Bookworm
64-bit (Python 3.11, glibc 2.36), checked against PyPI with ``pip download
--platform manylinux_2_xx_aarch64 --python-version 3.11`` on 2026-11-22:
ai-edge-litert's newest aarch64/cp311 wheel is 1.4.0 (2.x has none), tflite-runtime
2.14.0 (manylinux_2_34), onnxruntime 1.31.1 (manylinux_2_28). 32-bit Raspberry Pi OS
has no wheels for these: use the 64-bit OS.

The estimate uses :mod:`edgeship.targets.costmodel` fitted to the four published
XNNPACK Pi 4 anchors (4 threads). Pi 5 has no anchor here: its constants are the
Pi 4 fit scaled by clock and micro-architecture (A76 2.4 GHz with int8 dot-product
vs A72 1.5 GHz), so its band is wider.

Example:
    >>> from edgeship.targets.rpi import calibration
    >>> cal = calibration("rpi4")
    >>> len(cal.rows)
    4
"""
from __future__ import annotations

import functools
import math
from dataclasses import replace

from edgeship.errors import TargetError

from edgeship.facts import ModelFacts, QuantMode, read_facts

from .rules import CheckReport, generic_check
from .costmodel import PI4_ANCHORS, CostParams, OpCost, leave_one_out, op_costs, predict_seconds
from .profile import DeviceSpec, TargetProfile, register_target

GIB = 1024 ** 3
VENV = "python3 -m venv ~/edgeship-venv && . ~/edgeship-venv/bin/activate   # Bookworm: pip needs a venv (PEP 668)"
INSTALL = (
    VENV,
    "pip install ai-edge-litert==1.4.0            # LiteRT + XNNPACK (newest aarch64 wheel for Python 3.11)",
    "pip install tflite-runtime==2.14.0 'numpy<2' # alternative TFLite interpreter (built against numpy 1.x)",
    "pip install onnxruntime==1.31.1              # ONNX models",
    "pip install --no-deps edgeship-*.whl numpy typer rich   # edgeship is not on an index: "
    "`edgeship deploy --host` builds, copies and installs this wheel",
)

_COMMON = dict(
    formats=frozenset({"tflite", "onnx"}),
    quantizations=frozenset(QuantMode),
    io_dtypes=frozenset({"float32", "float16", "int8", "uint8", "int16", "int32", "int64", "bool"}),
    supported_ops=None,
    memory_limit_bytes=1 * GIB,   # smallest board sold; larger boards have 2-16 GiB
    runtimes=("litert", "tflite-runtime", "onnxruntime"),
    delegates=("xnnpack",),
    install=INSTALL,
)

RPI4 = TargetProfile(
    name="rpi4", title="Raspberry Pi 4 (BCM2711, 4x Cortex-A72)",
    device=DeviceSpec(cpu="Cortex-A72", cores=4, clock_ghz=1.5, ram_bytes=1 * GIB),
    notes=("estimates assume LiteRT + XNNPACK, 4 threads, 64-bit Raspberry Pi OS",
           "boards made since 2020 clock 1.8 GHz: expect ~15 % lower latency than the 1.5 GHz anchors"),
    **_COMMON)
RPI5 = TargetProfile(
    name="rpi5", title="Raspberry Pi 5 (BCM2712, 4x Cortex-A76)",
    device=DeviceSpec(cpu="Cortex-A76", cores=4, clock_ghz=2.4, ram_bytes=1 * GIB),
    notes=("estimates assume LiteRT + XNNPACK, 4 threads, 64-bit Raspberry Pi OS",
           "no published Pi 5 anchor was used: the estimate is the Pi 4 fit scaled by clock and core"),
    **_COMMON)

# Per-class sums (class, dtype, MACs, bytes moved, ops) of the Keras MobileNet (alpha 1.0,
# 224x224) models converted to TFLite fp32 / int8, as counted by op_costs();
# tests/test_targets_rpi.py rebuilds the models and checks these numbers.
ANCHOR_COSTS = {
    ("mobilenet_v1", "fp32"): [("conv", "fp32", 551354368, 37466688, 15), ("dw", "fp32", 17385984, 20168448, 13),
                               ("other", "fp32", 0, 216872, 5)],
    ("mobilenet_v1", "int8"): [("conv", "int8", 551354368, 9387624, 15), ("dw", "int8", 17385984, 5056992, 13),
                               ("other", "fp32", 0, 48, 2), ("other", "int8", 0, 54224, 3)],
    ("mobilenet_v2", "fp32"): [("conv", "fp32", 280057856, 43274784, 36), ("dw", "fp32", 20716416, 24457728, 17),
                               ("other", "fp32", 0, 2860616, 12)],
    ("mobilenet_v2", "int8"): [("conv", "int8", 280057856, 10848456, 36), ("dw", "int8", 20716416, 6135840, 17),
                               ("other", "int8", 0, 715160, 12)],
}

# Priors not fitted (4 anchors cannot pin 6 constants). Pi 4: LPDDR4-3200 on a 32-bit bus,
# ~4 GB/s sustained by a streaming kernel; ~15 us per op for 4-thread dispatch and sync.
PI4_PRIOR = CostParams(rate_fp32=1e10, int8_speedup=2.0, dw_efficiency=0.3, bandwidth=4.0e9,
                       overhead_s=15e-6, threads=4)
# Pi 5 relative to Pi 4: clock 2.4/1.5 = 1.6x; A76 vs A72 per clock ~1.5x for fp32 NEON and
# ~2.5x for int8 (SDOT dot-product kernels); LPDDR4X-4267 on 32 bits, ~2x sustained bandwidth.
PI5_SCALE = {"fp32": 1.6 * 1.5, "int8": 1.6 * 2.5, "bandwidth": 2.0, "overhead": 1.0 / 1.6}
BASE_UNCERTAINTY = 0.25   # the goal band; widened to the measured leave-one-out error if larger
PI5_EXTRA_UNCERTAINTY = 0.35   # added in quadrature for the unanchored Pi 5 scaling


def _anchor_costs():
    return {a: [OpCost(-1, cls, cls, dt, m, b, n) for cls, dt, m, b, n in ANCHOR_COSTS[(a.name, a.dtype)]]
            for a in PI4_ANCHORS}


@functools.lru_cache(maxsize=None)
def calibration(target: str = "rpi4"):
    """Fitted constants and per-anchor fit / leave-one-out errors (see costmodel.leave_one_out)."""
    cal = leave_one_out(_anchor_costs(), PI4_PRIOR)
    if target == "rpi4":
        return cal
    if target == "rpi5":
        p = cal.params
        p5 = replace(p, rate_fp32=p.rate_fp32 * PI5_SCALE["fp32"],
                     int8_speedup=p.int8_speedup * PI5_SCALE["int8"] / PI5_SCALE["fp32"],
                     bandwidth=p.bandwidth * PI5_SCALE["bandwidth"], overhead_s=p.overhead_s * PI5_SCALE["overhead"])
        return replace(cal, params=p5)
    raise TargetError(f"no Raspberry Pi cost model for {target!r}; known: rpi4, rpi5")


def estimate(model, target: str = "rpi4", *, threads: int = 4) -> dict:
    """Latency estimate on a Raspberry Pi with LiteRT + XNNPACK.

    Args:
        model: path of a .tflite/.onnx file, or :class:`ModelFacts`.
        target: ``rpi4`` or ``rpi5``.
        threads: interpreter threads (1-4).

    Returns:
        dict with latency_ms, low_ms, high_ms, uncertainty (relative), breakdown, basis.

    Example:
        >>> from edgeship.targets.rpi import estimate
        >>> estimate("mobilenet_v2_int8.tflite", "rpi4")["latency_ms"]  # doctest: +SKIP
        17.4
    """
    if not 1 <= int(threads) <= 4:
        raise TargetError(f"threads must be 1..4 on a Raspberry Pi (4 cores); got {threads}")
    facts = model if isinstance(model, ModelFacts) else read_facts(model)
    cal = calibration(target)
    costs = op_costs(facts)
    parts = predict_seconds(costs, cal.params, threads=int(threads))
    rel = max(BASE_UNCERTAINTY, cal.max_abs_loo_error)
    why = [f"leave-one-out error on the 4 Pi 4 anchors: max {cal.max_abs_loo_error:.0%}"]
    other = sum(c.bytes for c in costs if c.cls == "other") / cal.params.bandwidth
    if parts["total_s"] > 0 and (other + parts["overhead_s"]) / parts["total_s"] > 0.3:
        rel *= 1.5
        why.append("more than 30 % of the time is in ops unlike the conv-heavy anchors: band x1.5")
    if facts.format == "onnx":
        rel *= 1.5
        why.append("calibrated on XNNPACK; onnxruntime's ARM kernels differ: band x1.5")
    if facts.quantization is QuantMode.INT16X8:
        rel *= 2
        why.append("int16x8 runs on reference kernels, not XNNPACK: band x2")
    if target == "rpi5":
        rel = math.hypot(rel, PI5_EXTRA_UNCERTAINTY)
        why.append(f"Pi 5 is scaled from the Pi 4 fit without its own anchor: +{PI5_EXTRA_UNCERTAINTY:.0%} "
                   "in quadrature")
    ms = parts["total_s"] * 1e3
    return {
        "target": target, "threads": int(threads), "runtime": "litert+xnnpack" if facts.format == "tflite"
        else "onnxruntime", "latency_ms": round(ms, 3), "low_ms": round(ms / (1 + rel), 3),
        "high_ms": round(ms * (1 + rel), 3), "uncertainty": round(rel, 3),
        "macs": sum(c.macs for c in costs),
        "breakdown_ms": {k.replace("_s", "_ms"): round(v * 1e3, 3) for k, v in parts.items()},
        "basis": "per-op cost model (MACs / rate + bytes / bandwidth + per-op overhead) fitted to XNNPACK "
                 "MobileNetV1/V2 fp32/int8 latencies on a Pi 4 (4 threads)",
        "uncertainty_why": why,
    }


def runtime_advice(facts: ModelFacts, threads: int = 4) -> str:
    if facts.format == "onnx":
        return (f"onnxruntime (CPUExecutionProvider, intra_op_num_threads={threads}); "
                "for speed convert to TFLite and use LiteRT + XNNPACK")
    return (f"LiteRT: Interpreter(model_path=..., num_threads={threads}) - XNNPACK is applied by default "
            "to fp32, fp16-weight and int8 models")


def _check_pi(model_path, profile: TargetProfile) -> CheckReport:
    facts = read_facts(model_path)
    report = generic_check(model_path, profile, facts=facts, placement="cpu")
    report.estimate = estimate(facts, profile.name)
    report.notes.append("runtime: " + runtime_advice(facts))
    if facts.quantization is QuantMode.INT16X8:
        report.notes.append("int16x8 models run on TFLite reference kernels (no XNNPACK): expect them to be slow")
    if facts.quantization is QuantMode.DYNAMIC:
        report.notes.append("dynamic-range models quantize activations at run time; full int8 is usually faster")
    return report


RPI4 = register_target(RPI4, _check_pi)
RPI5 = register_target(RPI5, _check_pi)

__all__ = ["RPI4", "RPI5", "INSTALL", "ANCHOR_COSTS", "calibration", "estimate", "runtime_advice"]
