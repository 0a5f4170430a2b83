"""Microcontrollers (Cortex-M) through TensorFlow Lite Micro (TFLM).

What this module proves on the host, with the real TFLM interpreter (the
``tflite-micro`` Python package, ``pip install 'edgeship[mcu]'``):

* the model runs under TFLM at all (every op has a TFLM kernel);
* the exact tensor-arena size it needs: the smallest ``arena_size`` for which
  TFLM allocates *and* invokes the model, found by bisection, cross-checked
  against TFLM's own ``RecordingMicroAllocator`` total;
* its outputs match LiteRT's on the same raw inputs.

What it writes for the firmware: ``model_data.cc/.h`` (the model as an aligned
C array, byte-identical to the ``.tflite``) and ``op_resolver.h`` (the
``MicroMutableOpResolver`` registrations the model needs, plus the arena size).

The latency estimate scales MACs linearly from the MLPerf Tiny keyword-spotting
DS-CNN (see :data:`LATENCY_REFERENCES`); it is a first-order estimate, not a
measurement.

Example:
    >>> from edgeship.targets.mcu import resolver_method
    >>> resolver_method("DEPTHWISE_CONV_2D")
    'AddDepthwiseConv2D'
"""
from __future__ import annotations

import contextlib
import math
import os
import platform
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .._deps import require
from .._io import atomic_write_json, atomic_write_text, sha256_bytes
from ..errors import InputSpecError, TargetError
from edgeship.facts import QuantMode

from .profile import DeviceSpec, Staged, TargetProfile, register_target

PathOrBytes = Union[str, os.PathLike, bytes]

# --- TFLM's op set, as data ---------------------------------------------------
# Builtin op name -> MicroMutableOpResolver method, from
# tensorflow/lite/micro/micro_mutable_op_resolver.h (tflite-micro main, 2025-26)
# cross-checked against the Register_* kernels linked into the tflite-micro
# Python wheel. An op missing here has no TFLM kernel.
TFLM_BUILTIN_OPS: Dict[str, str] = {
    "ABS": "AddAbs", "ADD": "AddAdd", "ADD_N": "AddAddN", "ARG_MAX": "AddArgMax",
    "ARG_MIN": "AddArgMin", "ASSIGN_VARIABLE": "AddAssignVariable",
    "AVERAGE_POOL_2D": "AddAveragePool2D", "BATCH_MATMUL": "AddBatchMatMul",
    "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd", "BROADCAST_ARGS": "AddBroadcastArgs",
    "BROADCAST_TO": "AddBroadcastTo", "CALL_ONCE": "AddCallOnce", "CAST": "AddCast",
    "CEIL": "AddCeil", "CONCATENATION": "AddConcatenation", "CONV_2D": "AddConv2D",
    "COS": "AddCos", "CUMSUM": "AddCumSum", "DEPTH_TO_SPACE": "AddDepthToSpace",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D", "DEQUANTIZE": "AddDequantize", "DIV": "AddDiv",
    "DYNAMIC_UPDATE_SLICE": "AddDynamicUpdateSlice", "ELU": "AddElu",
    "EMBEDDING_LOOKUP": "AddEmbeddingLookup", "EQUAL": "AddEqual", "EXP": "AddExp",
    "EXPAND_DIMS": "AddExpandDims", "FILL": "AddFill", "FLOOR": "AddFloor",
    "FLOOR_DIV": "AddFloorDiv", "FLOOR_MOD": "AddFloorMod",
    "FULLY_CONNECTED": "AddFullyConnected", "GATHER": "AddGather", "GATHER_ND": "AddGatherNd",
    "GREATER": "AddGreater", "GREATER_EQUAL": "AddGreaterEqual", "HARD_SWISH": "AddHardSwish",
    "IF": "AddIf", "L2_NORMALIZATION": "AddL2Normalization", "L2_POOL_2D": "AddL2Pool2D",
    "LEAKY_RELU": "AddLeakyRelu", "LESS": "AddLess", "LESS_EQUAL": "AddLessEqual",
    "LOG": "AddLog", "LOGICAL_AND": "AddLogicalAnd", "LOGICAL_NOT": "AddLogicalNot",
    "LOGICAL_OR": "AddLogicalOr", "LOGISTIC": "AddLogistic", "LOG_SOFTMAX": "AddLogSoftmax",
    "MAXIMUM": "AddMaximum", "MAX_POOL_2D": "AddMaxPool2D", "MEAN": "AddMean",
    "MINIMUM": "AddMinimum", "MIRROR_PAD": "AddMirrorPad", "MUL": "AddMul", "NEG": "AddNeg",
    "NOT_EQUAL": "AddNotEqual", "PACK": "AddPack", "PAD": "AddPad", "PADV2": "AddPadV2",
    "PRELU": "AddPrelu", "QUANTIZE": "AddQuantize", "READ_VARIABLE": "AddReadVariable",
    "REDUCE_MAX": "AddReduceMax", "REDUCE_MIN": "AddReduceMin", "RELU": "AddRelu",
    "RELU6": "AddRelu6", "RESHAPE": "AddReshape", "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor", "REVERSE_V2": "AddReverseV2",
    "ROUND": "AddRound", "RSQRT": "AddRsqrt", "SELECT_V2": "AddSelectV2", "SHAPE": "AddShape",
    "SIN": "AddSin", "SLICE": "AddSlice", "SOFTMAX": "AddSoftmax",
    "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd", "SPACE_TO_DEPTH": "AddSpaceToDepth",
    "SPLIT": "AddSplit", "SPLIT_V": "AddSplitV", "SQRT": "AddSqrt", "SQUARE": "AddSquare",
    "SQUARED_DIFFERENCE": "AddSquaredDifference", "SQUEEZE": "AddSqueeze",
    "STRIDED_SLICE": "AddStridedSlice", "SUB": "AddSub", "SUM": "AddSum", "SVDF": "AddSvdf",
    "TANH": "AddTanh", "TRANSPOSE": "AddTranspose", "TRANSPOSE_CONV": "AddTransposeConv",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM", "UNPACK": "AddUnpack",
    "VAR_HANDLE": "AddVarHandle", "WHILE": "AddWhile", "ZEROS_LIKE": "AddZerosLike",
}
# Custom ops TFLM ships kernels for (custom code -> resolver method).
TFLM_CUSTOM_OPS: Dict[str, str] = {
    "TFLite_Detection_PostProcess": "AddDetectionPostprocess",
    "CIRCULAR_BUFFER": "AddCircularBuffer",
    "ethos-u": "AddEthosU",
}
TFLM_IO_DTYPES = frozenset({"int8", "int16", "float32", "uint8", "int32", "bool"})

# --- latency calibration -------------------------------------------------------
# MLPerf Tiny keyword spotting, DS-CNN int8 (kws_ref_model.tflite). Its MAC count
# is what edgeship.inspect reports for that file (its macs_total: conv, depthwise and FC
# MACs plus the average pool and softmax element operations).
DSCNN_MACS = 2_664_780


@dataclass(frozen=True)
class LatencyReference:
    board: str
    core: str
    latency_ms: float
    basis: str


LATENCY_REFERENCES: Tuple[LatencyReference, ...] = (
    LatencyReference("NUCLEO-L4R5ZI", "Cortex-M4F @ 120 MHz", 182.0,
                     "MLPerf Tiny KWS DS-CNN, reference submission"),
    LatencyReference("NUCLEO-H7A3ZI-Q (STM32H7A3)", "Cortex-M7 @ 280 MHz", 16.8,
                     "MLPerf Tiny KWS DS-CNN, optimised submission"),
)
# MAC-linear scaling ignores the op mix (depthwise and FC layers do fewer MACs
# per cycle than 1x1 convs, memory-bound layers scale with bytes not MACs), so
# the estimate is given with a factor-of-two band.
LATENCY_BAND = (0.5, 2.0)

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


# --- small helpers ---------------------------------------------------------------
def resolver_method(op: str) -> Optional[str]:
    """The ``MicroMutableOpResolver`` method registering ``op`` (None if TFLM lacks it)."""
    return TFLM_BUILTIN_OPS.get(op) or TFLM_CUSTOM_OPS.get(op)


from .._io import model_bytes as _model_bytes  # noqa: E402  (shared with the other targets)
from ..tflite_schema import read_tflite as _read  # noqa: E402


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


# --- op check --------------------------------------------------------------------
@dataclass(frozen=True)
class OpSupport:
    op: str
    count: int
    supported: bool
    resolver_call: Optional[str]


def check_tflm_ops(model: PathOrBytes) -> List[OpSupport]:
    """Every op the model uses (all subgraphs), and whether TFLM has a kernel for it.

    Example:
        >>> # ops = check_tflm_ops("kws_int8.tflite"); [o.op for o in ops if not o.supported]
    """
    m = _read(_model_bytes(model))
    counts: Dict[str, int] = {}
    for sg in m.subgraphs:
        for op in sg.operators:
            counts[op.op] = counts.get(op.op, 0) + 1
    return [OpSupport(op, n, resolver_method(op) is not None, resolver_method(op))
            for op, n in sorted(counts.items())]


def _check_static(m) -> None:
    sg = m.main
    for idx in list(sg.inputs) + list(sg.outputs):
        t = sg.tensors[idx]
        if any(d < 0 for d in t.shape) or any(d < 0 for d in t.shape_signature[1:]):
            raise TargetError(
                f"TFLM needs static shapes; tensor {t.name!r} has shape signature "
                f"{list(t.shape_signature)} (re-export with a fixed input shape)")


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


# --- firmware files ----------------------------------------------------------------
def _c_ident(name: str) -> str:
    import re

    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name or ""):
        raise InputSpecError(f"C identifier expected (letters, digits, _), got {name!r}")
    return name


def c_array_source(data: bytes, var: str = "g_model") -> Tuple[str, str]:
    """(header, source) declaring ``alignas(16) const unsigned char var[]`` = the model bytes."""
    var = _c_ident(var)
    guard = f"EDGESHIP_{var.upper()}_DATA_H_"
    header = (
        f"// Generated by edgeship. Model sha256: {sha256_bytes(data)}\n"
        f"#ifndef {guard}\n#define {guard}\n\n"
        f"extern const unsigned char {var}[];\n"
        f"extern const unsigned int {var}_len;\n\n#endif  // {guard}\n"
    )
    lines = []
    for i in range(0, len(data), 12):
        lines.append("  " + ", ".join(f"0x{b:02x}" for b in data[i:i + 12]) + ",")
    source = (
        f"// Generated by edgeship. Model sha256: {sha256_bytes(data)}\n"
        f'#include "model_data.h"\n\n'
        "// 16-byte alignment: TFLM reads the flatbuffer in place.\n"
        f"alignas(16) const unsigned char {var}[] = {{\n" + "\n".join(lines) + "\n};\n"
        f"const unsigned int {var}_len = {len(data)};\n"
    )
    return header, source


def parse_c_array(source: str) -> bytes:
    """Read back the bytes of a generated array (used to verify what was written)."""
    import re

    body = source[source.index("{") + 1: source.index("};")]
    return bytes(int(h, 16) for h in re.findall(r"0x([0-9a-fA-F]{2})", body))


def resolver_source(model: PathOrBytes, *, arena_bytes: Optional[int] = None) -> str:
    """``op_resolver.h``: a function registering exactly the ops the model uses.

    Raises:
        TargetError: the model uses an op TFLM has no kernel for.
    """
    ops = check_tflm_ops(model)
    missing = [o.op for o in ops if not o.supported]
    if missing:
        raise TargetError(f"TFLM has no kernel for: {', '.join(missing)} "
                          f"(supported ops: see edgeship.targets.mcu.TFLM_BUILTIN_OPS)")
    n = len(ops)
    calls = "\n".join(f"  if (r.{o.resolver_call}() != kTfLiteOk) return kTfLiteError;  // x{o.count}"
                      for o in ops)
    arena = ""
    if arena_bytes is not None:
        arena = (f"// Measured with edgeship (TFLM on the host); declare as\n"
                 f"//   alignas(16) static uint8_t tensor_arena[kTensorArenaSize];\n"
                 f"constexpr int kTensorArenaSize = {int(arena_bytes)};\n\n")
    return (
        "// Generated by edgeship: the TFLM op registrations this model needs.\n"
        "#ifndef EDGESHIP_OP_RESOLVER_H_\n#define EDGESHIP_OP_RESOLVER_H_\n\n"
        '#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"\n\n'
        f"constexpr int kNumOps = {n};\n{arena}"
        f"using EdgeshipOpResolver = tflite::MicroMutableOpResolver<kNumOps>;\n\n"
        "inline TfLiteStatus RegisterOps(EdgeshipOpResolver& r) {\n"
        f"{calls}\n  return kTfLiteOk;\n}}\n\n#endif  // EDGESHIP_OP_RESOLVER_H_\n"
    )


def export_firmware_files(model: PathOrBytes, out_dir: Union[str, os.PathLike], *,
                          var: str = "g_model", arena_bytes: Optional[int] = None) -> Dict[str, Path]:
    """Write model_data.h, model_data.cc and op_resolver.h into ``out_dir`` (atomically)
    and verify the C array reads back to the exact model bytes.

    Example:
        >>> # export_firmware_files("kws.tflite", "firmware/", arena_bytes=26880)
    """
    data = _model_bytes(model)
    _read(data)  # a bad file fails here, not in the firmware build
    header, source = c_array_source(data, var)
    if parse_c_array(source) != data:  # guards the formatter itself
        raise TargetError("internal error: generated C array does not match the model bytes")
    out = Path(out_dir)
    paths = {
        "model_data.h": atomic_write_text(out / "model_data.h", header),
        "model_data.cc": atomic_write_text(out / "model_data.cc", source),
        "op_resolver.h": atomic_write_text(out / "op_resolver.h",
                                           resolver_source(data, arena_bytes=arena_bytes)),
    }
    return paths


# --- latency ---------------------------------------------------------------------
@dataclass(frozen=True)
class LatencyEstimate:
    board: str
    core: str
    ms: float
    low_ms: float
    high_ms: float
    basis: str


def count_macs(model: PathOrBytes) -> int:
    """MACs of one inference, from :func:`edgeship.facts.read_facts` (the ``inspect`` figure)."""
    from ..facts import read_facts

    if isinstance(model, (bytes, bytearray, memoryview)):
        return read_facts(Path("model.tflite"), data=bytes(model)).macs_total
    return read_facts(model).macs_total


def estimate_latency(macs: int) -> List[LatencyEstimate]:
    """Cortex-M latency from MACs, scaled linearly from the MLPerf Tiny DS-CNN results.

    Example:
        >>> round(estimate_latency(DSCNN_MACS)[0].ms, 1)
        182.0
    """
    if macs < 0:
        raise InputSpecError(f"MAC count must be >= 0, got {macs}")
    ratio = macs / DSCNN_MACS
    return [LatencyEstimate(r.board, r.core, r.latency_ms * ratio, r.latency_ms * ratio * LATENCY_BAND[0],
                            r.latency_ms * ratio * LATENCY_BAND[1],
                            f"{r.basis}: {r.latency_ms} ms for {DSCNN_MACS} MACs, scaled linearly")
            for r in LATENCY_REFERENCES]


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


def mcu_readme(model_name: str, report: dict) -> str:
    a = report["arena"]
    est = "\n".join(f"| {e['board']} ({e['core']}) | {e['ms']:.3g} ms | {e['low_ms']:.3g}-{e['high_ms']:.3g} ms |"
                    for e in report["latency_estimates"])
    return f"""# {model_name} on a Cortex-M microcontroller (TensorFlow Lite Micro)

Files: `model_data.cc`/`model_data.h` (the model as a 16-byte aligned C array, byte-identical to
`{model_name}`), `op_resolver.h` (the {len(report['ops'])} op registrations and `kTensorArenaSize`).

```cpp
#include "model_data.h"
#include "op_resolver.h"
#include "tensorflow/lite/micro/micro_interpreter.h"

alignas(16) static uint8_t tensor_arena[kTensorArenaSize];

EdgeshipOpResolver resolver;
RegisterOps(resolver);
tflite::MicroInterpreter interpreter(tflite::GetModel(g_model), resolver, tensor_arena, kTensorArenaSize);
interpreter.AllocateTensors();
// fill interpreter.input(0)->data.int8, then:
interpreter.Invoke();
```

Tensor arena: **{a['min_bytes']} bytes** is the smallest arena TFLM ({a['tflm_version']}) allocated and ran
this model with on the host ({a['host']}); `kTensorArenaSize` = {a['recommended_bytes']} adds the margin
({a['margin_note']}).
TFLM vs LiteRT on seeded inputs: max difference {report['parity']['max_abs_diff_raw']} (raw output units).

Latency estimate ({report['macs']:,} MACs, scaled from the MLPerf Tiny DS-CNN results; a factor-of-two
band, not a measurement):

| board | estimate | band |
|---|---|---|
{est}
"""


MCU_PROFILE = register_target(MCU_PROFILE, check_mcu, bundle_mcu)


__all__ = [
    "TFLM_BUILTIN_OPS", "TFLM_CUSTOM_OPS", "DSCNN_MACS", "LATENCY_REFERENCES", "MCU_PROFILE",
    "check_mcu", "bundle_mcu", "mcu_readme", "OpSupport", "ArenaReport", "TFLMRun", "LatencyEstimate", "resolver_method", "check_tflm_ops",
    "find_arena_size", "run_tflm", "c_array_source", "parse_c_array", "resolver_source",
    "export_firmware_files", "count_macs", "estimate_latency", "mcu_report",
]
