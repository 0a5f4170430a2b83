"""Running a model under the real TFLM interpreter on the host.

* :func:`find_arena_size`: the smallest ``arena_size`` for which TFLM allocates *and*
  invokes the model, found by bisection, cross-checked against TFLM's own
  ``RecordingMicroAllocator`` total;
* :func:`run_tflm`: raw inputs through TFLM, compared against LiteRT.

Needs the ``tflite-micro`` Python package (``pip install 'edgeship[mcu]'``).
"""
from __future__ import annotations

import contextlib
import math
import os
import platform
import tempfile
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

from .._deps import require
from .._io import model_bytes as _model_bytes  # shared with the other targets
from ..errors import InputSpecError, TargetError
from ..tflite_schema import read_tflite as _read
from ._mcu_types import PathOrBytes
from .mcu_ops import _check_static


@contextlib.contextmanager
def _captured_native_stderr():
    """Route fd 2 to a temp file: TFLM prints allocation logs/errors from C++."""
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    log = tempfile.TemporaryFile(mode="w+b")
    os.dup2(log.fileno(), 2)
    box = {"text": ""}
    try:
        yield box
    finally:
        try:
            sys.stderr.flush()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            log.seek(0)
            box["text"] = log.read().decode("utf-8", "replace")
            log.close()



# --- running under TFLM ------------------------------------------------------------
def _tflm():
    return require("tflite_micro", "mcu", "running models under TensorFlow Lite Micro")


def _new_interpreter(data: bytes, arena: int):
    from tflite_micro.python.tflite_micro import runtime

    return runtime.Interpreter.from_bytes(data, arena_size=int(arena))


def _default_inputs(m, seed: int = 0) -> List[np.ndarray]:
    """Seeded raw inputs spanning each input's dtype range."""
    rng = np.random.default_rng(seed)
    out = []
    for idx in m.main.inputs:
        t = m.main.tensors[idx]
        dt = np.dtype(t.dtype)
        shape = tuple(max(1, d) for d in t.shape)
        if dt.kind in "iu":
            info = np.iinfo(dt)
            out.append(rng.integers(info.min, int(info.max) + 1, size=shape, dtype=dt))
        elif dt.kind == "b":
            out.append(rng.integers(0, 2, size=shape).astype(bool))
        else:
            out.append(rng.standard_normal(shape).astype(dt))
    return out


def _check_inputs(m, inputs: Sequence[np.ndarray]) -> List[np.ndarray]:
    sg = m.main
    if len(inputs) != len(sg.inputs):
        raise InputSpecError(f"model has {len(sg.inputs)} input(s), got {len(inputs)} array(s)")
    fixed = []
    for idx, x in zip(sg.inputs, inputs):
        t = sg.tensors[idx]
        x = np.asarray(x)
        if x.dtype != np.dtype(t.dtype) or tuple(x.shape) != tuple(t.shape):
            raise InputSpecError(
                f"input {t.name!r}: expected raw {t.dtype} array of shape {list(t.shape)}, "
                f"got {x.dtype} {list(x.shape)} (pass already-quantized data)")
        fixed.append(np.ascontiguousarray(x))
    return fixed


def _try_run(data: bytes, arena: int, inputs: Sequence[np.ndarray], n_out: int):
    """Outputs, or None when TFLM cannot allocate/invoke with this arena."""
    try:
        it = _new_interpreter(data, arena)
        for i, x in enumerate(inputs):
            it.set_input(x, i)
        it.invoke()
        return [np.array(it.get_output(i)) for i in range(n_out)]
    except RuntimeError:
        return None


@dataclass
class ArenaReport:
    """``min_bytes``: smallest arena TFLM allocated and invoked the model with (exact, host
    build); ``recorded_bytes``: TFLM's RecordingMicroAllocator total at that size;
    ``recommended_bytes``: what to declare on the device (see ``margin_note``)."""

    min_bytes: int
    recorded_bytes: Optional[int]
    recommended_bytes: int
    probes: int
    host: str
    tflm_version: str
    margin_note: str


def _recorded_total(data: bytes, arena: int, inputs) -> Optional[int]:
    import re

    with _captured_native_stderr() as box:
        it = _new_interpreter(data, arena)
        for i, x in enumerate(inputs):
            it.set_input(x, i)
        it.invoke()
        it.print_allocations()
    m = re.search(r"Arena allocation total (\d+) bytes", box["text"])
    return int(m.group(1)) if m else None


def find_arena_size(model: PathOrBytes, *, inputs: Optional[Sequence[np.ndarray]] = None,
                    max_bytes: int = 64 * 1024 * 1024) -> ArenaReport:
    """Bisect the smallest TFLM tensor arena that allocates and runs the model.

    Example:
        >>> # find_arena_size("kws_ref_model.tflite").min_bytes  ->  24272 on x86-64
    """
    _tflm()
    data = _model_bytes(model)
    m = _read(data)
    _check_static(m)
    xs = _check_inputs(m, inputs) if inputs is not None else _default_inputs(m)
    probes, n_out = 0, len(m.main.outputs)
    with _captured_native_stderr():  # failed probes print allocation errors in C++
        hi = 16 * 1024
        while True:
            probes += 1
            if _try_run(data, hi, xs, n_out) is not None:
                break
            if hi >= max_bytes:
                raise TargetError(f"TFLM could not run the model with a {max_bytes}-byte arena "
                                  f"(model needs more RAM than any MCU target allows)")
            hi = min(hi * 2, max_bytes)
        lo = 0  # invariant: lo fails (or is 0), hi works
        while hi - lo > 1:
            mid = (lo + hi) // 2
            probes += 1
            if _try_run(data, mid, xs, n_out) is not None:
                hi = mid
            else:
                lo = mid
    recorded = _recorded_total(data, hi, xs)
    # 16 bytes for arena alignment + 10 % for 32-bit/CMSIS-NN scratch differences,
    # rounded up to 256 bytes.
    recommended = int(math.ceil((hi * 1.10 + 16) / 256.0) * 256)
    from tflite_micro.python.tflite_micro import _version

    return ArenaReport(
        min_bytes=hi, recorded_bytes=recorded, recommended_bytes=recommended, probes=probes,
        host=f"{platform.system()} {platform.machine()}", tflm_version=_version.__version__,
        margin_note=("min_bytes is exact for this host build of TFLM; recommended adds 16 B "
                     "alignment and 10 % because 32-bit Cortex-M structs and optimised "
                     "(CMSIS-NN) kernels' scratch buffers differ from the host's"),
    )


@dataclass
class TFLMRun:
    outputs: List[np.ndarray]
    reference: List[np.ndarray]
    max_abs_diff: float          # in raw output units (quantization steps for int8)
    arena_bytes: int
    ok: bool


def _litert_raw(data: bytes, xs: Sequence[np.ndarray]) -> List[np.ndarray]:
    """Raw outputs from LiteRT, one thread: the reference the other interpreter is held to."""
    from ..backends import TFLiteBackend

    return TFLiteBackend(data, "litert", threads=1).run(list(xs))


def run_tflm(model: PathOrBytes, inputs: Optional[Sequence[np.ndarray]] = None, *,
             arena_size: int, tolerance: Optional[float] = None) -> TFLMRun:
    """Run raw inputs through TFLM with ``arena_size`` and compare against LiteRT.

    ``tolerance`` is the largest accepted |TFLM - LiteRT| in raw output units. Default:
    1 step for integer outputs (TFLM's reference kernels and LiteRT's optimised ones
    may round differently), 1e-4 x max(1, |LiteRT output|) for float outputs.

    Example:
        >>> # r = run_tflm("kws.tflite", arena_size=24272); r.ok, r.max_abs_diff
    """
    _tflm()
    data = _model_bytes(model)
    m = _read(data)
    _check_static(m)
    xs = _check_inputs(m, inputs) if inputs is not None else _default_inputs(m)
    with _captured_native_stderr() as box:
        outs = _try_run(data, arena_size, xs, len(m.main.outputs))
    if outs is None:
        raise TargetError(f"TFLM could not allocate/run the model in a {arena_size}-byte arena: "
                          + " | ".join(box["text"].strip().splitlines()[-3:]))
    ref = _litert_raw(data, xs)
    diff, ok = 0.0, True
    for a, b in zip(outs, ref):
        if a.shape != b.shape:
            raise TargetError(f"TFLM output shape {a.shape} differs from LiteRT's {b.shape}")
        d = np.abs(a.astype(np.float64) - b.astype(np.float64))
        worst = float(np.max(d)) if d.size else 0.0
        if np.isnan(worst):
            worst = float("inf")
        tol = tolerance
        if tol is None:
            tol = 1.0 if b.dtype.kind in "iub" else 1e-4 * max(1.0, float(np.max(np.abs(b))) if b.size else 1.0)
        diff, ok = max(diff, worst), ok and worst <= tol
    return TFLMRun(outs, ref, diff, int(arena_size), ok)
