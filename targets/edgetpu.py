"""Coral Edge TPU: the rules the Edge TPU compiler enforces, applied to a .tflite.

Without the compiler or a device this predicts, op by op, what will run on the
TPU and what falls back to the CPU, following Coral's published model
requirements (https://coral.ai/docs/edgetpu/models-intro/):

* every tensor 8-bit quantized (int8/uint8; int32 biases, int16 LSTM state),
* static shapes (no dynamic-sized tensors),
* tensors of at most 3 dimensions, or only the 3 innermost dimensions > 1,
* only the ops in :data:`EDGETPU_OPS`, with their constraints,
* one TPU partition: it ends at the first op that cannot be mapped, and every
  op after it runs on the CPU, even a supported one,
* ~8 MB of on-chip SRAM caches parameters; the rest streams from host memory.

When ``edgetpu_compiler`` is on PATH, :func:`compile_model` runs it and
:func:`parse_compiler_log` reads its log; the check then reports the compiler's
verdict next to the prediction. Compiled ``*_edgetpu.tflite`` files (an
``edgetpu-custom-op``) are recognised by :func:`is_compiled`; :func:`edgeship.load` loads
their delegate (``libedgetpu.so.1``) or raises a clear :class:`TargetError` saying why it cannot.

Example:
    >>> from edgeship.targets.edgetpu import EDGETPU_OPS, is_compiled
    >>> "CONV_2D" in EDGETPU_OPS and "HARD_SWISH" not in EDGETPU_OPS
    True
"""
from __future__ import annotations

import ctypes
import ctypes.util
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from edgeship.errors import TargetError

from edgeship.facts import BOUNDARY_OPS, ModelFacts, OpFact, QuantMode, read_facts

from .rules import (STATIC_BATCH_FIX, CheckReport, OpPlacement, Problem, generic_check,
                    shape_ops, which_path)
from .profile import DeviceSpec, TargetProfile, register_target

CUSTOM_OP = "edgetpu-custom-op"
DELEGATE_LIBRARY = "libedgetpu.so.1"
COMPILER = "edgetpu_compiler"
PARAM_CACHE_BYTES = 8 * 1024 * 1024   # "roughly 8 MB of SRAM" (Coral docs: parameter data caching)
SOFTMAX_MAX_ELEMENTS = 16000

# TFLite op -> known limitation (Coral "Supported operations" table; "" = none listed).
EDGETPU_OPS: Dict[str, str] = {
    "ADD": "", "SUB": "", "MUL": "", "MAXIMUM": "", "MINIMUM": "", "SQUARED_DIFFERENCE": "",
    "LOGISTIC": "", "TANH": "", "RELU": "", "RELU6": "", "RELU_N1_TO_1": "", "PRELU": "alpha must be constant",
    "RSQRT": "", "L2_NORMALIZATION": "",
    "AVERAGE_POOL_2D": "no fused activation function",
    "MAX_POOL_2D": "no fused activation function",
    "CONCATENATION": "no fused activation; a constant input must be all zeros and the only other input",
    "CONV_2D": "same dilation in x and y",
    "DEPTHWISE_CONV_2D": "same dilation in x and y",
    "TRANSPOSE_CONV": "",
    "FULLY_CONNECTED": "default weights format only; output is one-dimensional",
    "MEAN": "no reduction in the batch dimension; x/y reduction only",
    "SUM": "no reduction in the batch dimension",
    "REDUCE_MAX": "no reduction in the batch dimension",
    "REDUCE_MIN": "no reduction in the batch dimension",
    "PAD": "no padding in the batch dimension; x/y padding only",
    "RESHAPE": "very large reshapes may not be mapped",
    "SQUEEZE": "", "EXPAND_DIMS": "", "TRANSPOSE": "",
    "RESIZE_BILINEAR": "3-D input/output; may not be mapped for some sizes (precision)",
    "RESIZE_NEAREST_NEIGHBOR": "3-D input/output; may not be mapped for some sizes (precision)",
    "SLICE": "", "STRIDED_SLICE": "", "SPLIT": "no split in the batch dimension",
    "PACK": "no packing in the batch dimension",
    "SPACE_TO_DEPTH": "",
    "SOFTMAX": f"1-D input only, at most {SOFTMAX_MAX_ELEMENTS} elements",
    "QUANTIZE": "requantization between 8-bit types only (float->int8 runs on the CPU)",
    "LSTM": "unidirectional only", "UNIDIRECTIONAL_SEQUENCE_LSTM": "",
}

# Replacements that keep a model on the TPU, for the usual offenders.
_REPLACE = {
    "HARD_SWISH": "use ReLU6 (or MobileNetV2-style blocks) instead of hard-swish",
    "GELU": "use ReLU instead of GELU",
    "DEQUANTIZE": "quantize fully to int8 (--quantize int8) so no float DEQUANTIZE remains",
    "DIV": "multiply by a constant reciprocal instead of dividing",
    "EXP": "avoid EXP (use LOGISTIC / SOFTMAX where that is what it computes)",
    "LEAKY_RELU": "use ReLU or PReLU with constant alpha",
    "BATCH_MATMUL": "express it as FULLY_CONNECTED with constant weights",
    "GATHER": "move the lookup out of the model (pre/post-processing)",
    "ARG_MAX": "take the arg-max in post-processing on the CPU",
    "CAST": "keep every tensor 8-bit (full-integer quantization)",
    "FLOOR_MOD": "move the modulo into post-processing",
}


PROFILE = TargetProfile(
    name="edgetpu",
    title="Coral Edge TPU (USB / M.2 / Dev Board)",
    formats=frozenset({"tflite"}),
    quantizations=frozenset({QuantMode.INT8}),
    io_dtypes=frozenset({"int8", "uint8", "float32"}),   # float I/O: boundary quantize runs on the CPU
    supported_ops=frozenset(EDGETPU_OPS) | {CUSTOM_OP},
    op_limits={op: {"note": note} for op, note in EDGETPU_OPS.items() if note},
    max_tensor_rank=None,           # the real rule (3 innermost dims) is applied per op below
    static_shapes_required=True,
    memory_limit_bytes=None,        # parameters beyond the cache stream from host memory
    runtimes=("tflite-runtime", "litert"),
    delegates=(DELEGATE_LIBRARY,),
    device=DeviceSpec(cpu="host CPU", cores=1, accelerator="Edge TPU, 4 TOPS int8, ~8 MB parameter SRAM"),
    install=(
        'echo "deb https://packages.cloud.google.com/apt coral-edgetpu-stable main" | '
        "sudo tee /etc/apt/sources.list.d/coral-edgetpu.list",
        "curl https://packages.cloud.google.com/apt/doc/apt-key.gpg | sudo apt-key add -",
        "sudo apt-get update && sudo apt-get install libedgetpu1-std",
        "sudo apt-get install edgetpu-compiler   # x86-64 Debian/Ubuntu host only",
    ),
    notes=("compile on an x86-64 host: edgetpu_compiler model_int8.tflite -> model_int8_edgetpu.tflite",),
)


# --------------------------------------------------------------------------- runtime detection

def compiler_path() -> Optional[str]:
    """Path of ``edgetpu_compiler`` on PATH, or None."""
    return which_path(COMPILER)


def delegate_available() -> bool:
    """True when the Edge TPU runtime library (libedgetpu.so.1) can be loaded here."""
    if ctypes.util.find_library("edgetpu"):
        return True
    try:
        ctypes.CDLL(DELEGATE_LIBRARY)
        return True
    except OSError:
        return False


def is_compiled(model) -> bool:
    """True for a model already compiled by edgetpu_compiler (holds an ``edgetpu-custom-op``).

    ``model`` is a path, the model's bytes, or :class:`ModelFacts`.
    """
    if isinstance(model, ModelFacts):
        return any(op.op == CUSTOM_OP for op in model.ops)
    if isinstance(model, (bytes, bytearray, memoryview)):
        return read_facts(Path("model.tflite"), data=bytes(model)).edgetpu_compiled
    path = Path(model)
    if not path.is_file() or path.suffix.lower() != ".tflite":
        return False
    return read_facts(path).edgetpu_compiled


# --------------------------------------------------------------------------- compiler

@dataclass
class CompilerLog:
    """What edgetpu_compiler printed: summary fields and the per-op table."""

    version: Optional[str] = None
    ok: bool = False
    tpu_ops: Optional[int] = None
    cpu_ops: Optional[int] = None
    subgraphs: Optional[int] = None
    on_chip_bytes: Optional[int] = None
    off_chip_bytes: Optional[int] = None
    rows: List[Tuple[str, int, str]] = field(default_factory=list)   # (op, count, status)
    fields: Dict[str, str] = field(default_factory=dict)
    text: str = ""

    @property
    def unmapped(self) -> List[Tuple[str, int, str]]:
        return [r for r in self.rows if not r[2].startswith("Mapped to Edge TPU")]


_SIZE_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3}
_ROW = re.compile(r"^([A-Z][A-Z0-9_]*|[a-z][a-z0-9_-]*-op)\s+(\d+)\s+(\S.*)$")


def _size(text: str) -> Optional[int]:
    m = re.match(r"\s*([0-9.]+)\s*(B|KiB|MiB|GiB)", text)
    return int(round(float(m.group(1)) * _SIZE_UNITS[m.group(2)])) if m else None


def parse_compiler_log(text: str) -> CompilerLog:
    """Parse edgetpu_compiler's console output / .log file (format of compiler 14-16)."""
    log = CompilerLog(text=text)
    in_table = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        m = re.match(r"Edge TPU Compiler version (\S+)", line)
        if m:
            log.version = m.group(1)
            continue
        if line.startswith("Model compiled successfully"):
            log.ok = True
        if re.match(r"Operator\s+Count\s+Status", line):
            in_table = True
            continue
        if in_table:
            row = _ROW.match(line)
            if row:
                log.rows.append((row.group(1), int(row.group(2)), row.group(3).strip()))
                continue
        if ":" in line and not in_table:
            key, _, value = line.partition(":")
            log.fields[key.strip()] = value.strip()
    f = log.fields
    num = lambda k: int(f[k]) if k in f and f[k].isdigit() else None  # noqa: E731
    log.tpu_ops = num("Number of operations that will run on Edge TPU")
    log.cpu_ops = num("Number of operations that will run on CPU")
    log.subgraphs = num("Number of Edge TPU subgraphs")
    log.on_chip_bytes = _size(f.get("On-chip memory used for caching model parameters", ""))
    log.off_chip_bytes = _size(f.get("Off-chip memory used for streaming uncached model parameters", ""))
    if log.rows and log.tpu_ops is None:  # older compilers print only the table
        log.tpu_ops = sum(c for _, c, s in log.rows if s.startswith("Mapped to Edge TPU"))
        log.cpu_ops = sum(c for _, c, s in log.rows if not s.startswith("Mapped to Edge TPU"))
    return log


def compile_model(model_path, out_dir=None, *, timeout_s: int = 180) -> Tuple[Path, CompilerLog]:
    """Run ``edgetpu_compiler`` on a .tflite; return (compiled path, parsed log).

    Raises:
        TargetError: the compiler is not on PATH, fails, or writes no output model.
    """
    exe = compiler_path()
    if exe is None:
        raise TargetError(f"{COMPILER} is not on PATH (it installs only on x86-64 Debian/Ubuntu: "
                          "sudo apt-get install edgetpu-compiler); the check used edgeship's prediction instead")
    src = Path(model_path)
    out = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="edgeship-edgetpu-"))
    out.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run([exe, "-s", "-o", str(out), str(src)], capture_output=True, text=True,
                              timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise TargetError(f"{COMPILER} did not finish within {timeout_s} s on {src}") from exc
    text = proc.stdout + ("\n" + proc.stderr if proc.stderr else "")
    log_file = out / (src.stem + "_edgetpu.log")
    if log_file.is_file():
        text += "\n" + log_file.read_text(errors="replace")
    log = parse_compiler_log(text)
    compiled = out / (src.stem + "_edgetpu.tflite")
    if proc.returncode != 0 or not compiled.is_file():
        raise TargetError(f"{COMPILER} failed on {src} (exit {proc.returncode}): "
                          f"{(proc.stderr or proc.stdout).strip()[-800:]}")
    return compiled, log


# --------------------------------------------------------------------------- per-op rules

_EIGHT_BIT = {"int8", "uint8"}


def _dims_ok(shape) -> bool:
    """Only the 3 innermost dimensions may be > 1."""
    return len(shape) <= 3 or all(d == 1 for d in shape[:-3])


def _shape_ops(facts: ModelFacts) -> set:
    """rules.shape_ops, computed once per parsed model."""
    key = (id(facts), len(facts.ops))
    if _SHAPE_CACHE.get("key") != key:
        _SHAPE_CACHE.update(key=key, ops=shape_ops(facts))
    return _SHAPE_CACHE["ops"]


_SHAPE_CACHE: dict = {}


def op_reason(facts: ModelFacts, op: OpFact) -> Optional[Tuple[str, str, str]]:
    """Why ``op`` cannot run on the Edge TPU: (kind, message, fix), or None when it can."""
    name = op.op
    if op.index in _shape_ops(facts):
        return ("dynamic_shape", f"{name} computes a tensor shape at run time (the model's batch is dynamic); "
                                 f"the Edge TPU needs static shapes", STATIC_BATCH_FIX)
    if name not in EDGETPU_OPS:
        fix = _REPLACE.get(name, f"replace op {name} with ops the Edge TPU supports (g.co/coral/model-reqs)")
        return ("unsupported_op", f"op {name} is not supported by the Edge TPU", fix)
    acts = [facts.tensors[i] for i in (*op.inputs, *op.outputs) if i >= 0 and not facts.tensors[i].is_const]
    if "LSTM" in name:   # int8 LSTMs keep int16 state; the data input and outputs decide
        acts = [facts.tensors[i] for i in (op.inputs[:1] + op.outputs) if i >= 0]
    for t in acts:
        if any(d < 0 for d in t.shape):
            return ("dynamic_shape", f"tensor {t.name!r} of {name} has a dynamic shape {list(t.shape)}",
                    "make input shape static: re-convert with --static-batch (Keras sources), or fix every "
                    "dimension in the source model (batch 1)")
    for t in acts:
        if t.dtype not in _EIGHT_BIT:
            return ("dtype", f"{name} works on {t.dtype} tensor {t.name!r}; the Edge TPU needs int8/uint8",
                    "re-convert with --quantize int8 (full-integer quantization)")
    for t in acts:
        if not _dims_ok(t.shape):
            return ("rank", f"tensor {t.name!r} of {name} has shape {list(t.shape)}: only the 3 innermost "
                            "dimensions may be larger than 1",
                    "reshape so tensors have at most 3 dimensions > 1 (batch 1; fold extra dimensions)")
    return _constraint(facts, op)


def _constraint(facts: ModelFacts, op: OpFact) -> Optional[Tuple[str, str, str]]:
    o, name = op.options, op.op
    shape = lambda i: facts.tensors[i].shape if 0 <= i < len(facts.tensors) else ()  # noqa: E731
    if name in ("AVERAGE_POOL_2D", "MAX_POOL_2D") and o.get("fused_activation", 0):
        return ("op_constraint", f"{name} has a fused activation; the Edge TPU needs none",
                f"put the activation after {name} as its own op")
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D") and o.get("dilation_w", 1) != o.get("dilation_h", 1):
        return ("op_constraint", f"{name} has dilation {o.get('dilation_h')}x{o.get('dilation_w')}; the Edge TPU "
                                 "needs the same dilation in x and y", "use equal dilation rates")
    if name == "FULLY_CONNECTED":
        if o.get("weights_format", 0) != 0:
            return ("op_constraint", "FULLY_CONNECTED uses shuffled weights; only the default format maps",
                    "re-convert without shuffled FC weights")
        out = shape(op.outputs[0])
        if sum(1 for d in out if d != 1) > 1:
            return ("op_constraint", f"FULLY_CONNECTED output {list(out)} is not one-dimensional",
                    "flatten the input so the dense layer gives a [1, N] output")
    if name == "SOFTMAX":
        inp = shape(op.inputs[0])
        n = 1
        for d in inp:
            n *= max(d, 1)
        if sum(1 for d in inp if d != 1) > 1 or n > SOFTMAX_MAX_ELEMENTS:
            return ("op_constraint", f"SOFTMAX input {list(inp)} must be 1-D with at most "
                                     f"{SOFTMAX_MAX_ELEMENTS} elements", "apply softmax on the CPU in post-processing")
    if name in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN") and len(op.inputs) > 1:
        axes = facts.const_value(op.inputs[1])
        rank = len(shape(op.inputs[0]))
        if axes is None:
            return ("op_constraint", f"{name} reduction axes are not constant", "use constant axes")
        axes = {int(a) % max(rank, 1) for a in axes.ravel()}
        if 0 in axes and rank > 1:
            return ("op_constraint", f"{name} reduces over the batch dimension",
                    "reduce over spatial/channel dimensions only")
        if name == "MEAN" and rank == 4 and not axes <= {1, 2}:
            return ("op_constraint", f"MEAN reduces over axes {sorted(axes)}; only x/y (1, 2) map",
                    "use global average pooling over height/width")
    if name == "PAD" and len(op.inputs) > 1:
        pads = facts.const_value(op.inputs[1])
        if pads is None:
            return ("op_constraint", "PAD paddings are not constant", "use constant paddings")
        pads = pads.reshape(-1, 2)
        if len(pads) == 4 and (pads[0].any() or pads[3].any()):
            return ("op_constraint", "PAD pads the batch or channel dimension; only x/y padding maps",
                    "pad height/width only")
    return None


def _is_boundary(facts: ModelFacts, op: OpFact) -> bool:
    """QUANTIZE float->int at the inputs or DEQUANTIZE int->float at the outputs."""
    if op.op not in BOUNDARY_OPS or not op.inputs or not op.outputs:
        return False
    src, dst = facts.tensors[op.inputs[0]], facts.tensors[op.outputs[0]]
    graph_in = {t.index for t in facts.inputs}
    graph_out = {t.index for t in facts.outputs}
    if op.op == "QUANTIZE":
        return src.dtype.startswith("float") and src.index in graph_in
    return dst.dtype.startswith("float") and dst.index in graph_out


# --------------------------------------------------------------------------- check

def predict_placement(facts: ModelFacts, report: CheckReport) -> None:
    """Fill report.ops / cpu_fallback / problems following the single-partition rule."""
    report.ops = []
    quant_problem = any(p.kind == "quantization" for p in report.problems)
    dynamic_problem = any(p.kind == "dynamic_shape" for p in report.problems)
    unsupported_flagged = {p.subject for p in report.problems if p.kind == "unsupported_op"}
    state = "before"          # before the TPU partition, inside it, after it
    end_op: Optional[str] = None
    on_chip = 0
    for op in facts.ops:
        reason = op_reason(facts, op)
        if reason is not None and _is_boundary(facts, op):
            subject = f"{op.op}#{op.index}"   # expected on the CPU: not a problem
            report.problems = [p for p in report.problems if p.subject != subject]
            report.ops.append(OpPlacement(op.index, op.op, "cpu", op.version,
                                          "float<->int conversion at the model boundary runs on the CPU"))
            report.cpu_fallback.append(f"{op.op}#{op.index}")
            continue
        if reason is None and state != "after":
            state = "in"
            report.ops.append(OpPlacement(op.index, op.op, "tpu", op.version))
            on_chip += sum(facts.tensors[i].nbytes for i in op.inputs if i >= 0 and facts.tensors[i].is_const)
            continue
        if reason is None:
            report.ops.append(OpPlacement(op.index, op.op, "cpu", op.version,
                                          f"supported, but after {end_op}: the TPU partition already ended"))
            report.cpu_fallback.append(f"{op.op}#{op.index}")
            continue
        kind, message, fix = reason
        if state != "after":
            end_op = f"{op.op}#{op.index}"
            state = "after"
            message += "; the Edge TPU partition ends here, so this op and every op after it run on the CPU"
        report.ops.append(OpPlacement(op.index, op.op, "cpu", op.version, message))
        report.cpu_fallback.append(f"{op.op}#{op.index}")
        duplicate = ((kind == "dtype" and quant_problem) or (kind == "dynamic_shape" and dynamic_problem)
                     or (kind == "unsupported_op" and f"{op.op}#{op.index}" in unsupported_flagged))
        if kind == "dynamic_shape":   # the generic unsupported-op finding for SHAPE gets the real fix
            for p in report.problems:
                if p.kind == "unsupported_op" and p.subject == f"{op.op}#{op.index}":
                    p.message, p.fix = message, fix
        if duplicate:
            # keep the generic problem but let it say where the partition ends
            for p in report.problems:
                if p.kind == "unsupported_op" and p.subject == f"{op.op}#{op.index}":
                    p.message, p.fix = message, fix
            continue
        report.add(Problem(kind, f"{op.op}#{op.index}", message, fix))
    report.compatible = not any(p.blocking for p in report.problems)
    tpu = sum(1 for p in report.ops if p.placement == "tpu")
    report.details.update({"tpu_ops": tpu, "cpu_ops": len(report.ops) - tpu, "partition_ends_at": end_op,
                           "on_chip_params_bytes": on_chip, "param_cache_bytes": PARAM_CACHE_BYTES,
                           "params_fit_on_chip": on_chip <= PARAM_CACHE_BYTES})
    if on_chip > PARAM_CACHE_BYTES:
        report.add(Problem("memory", Path(facts.path).name,
                           f"TPU parameters {on_chip / 2**20:.2f} MiB exceed the ~8 MiB on-chip cache; "
                           "the remainder streams from host memory on every inference (slower)",
                           "use a smaller model, or split it across Edge TPUs (edgetpu_compiler --num_segments)",
                           blocking=False))
    if any(r.startswith("RESIZE_") for r in (p.op for p in report.ops if p.placement == "tpu")):
        report.notes.append("RESIZE ops may still be left on the CPU by the compiler for some sizes (precision)")


def _check_compiled(facts: ModelFacts, report: CheckReport) -> None:
    segments = [op for op in facts.ops if op.op == CUSTOM_OP]
    code_bytes = sum(len(facts.raw.main.operators[op.index].custom_options or b"") for op in segments)
    for op in facts.ops:
        on_tpu = op.op == CUSTOM_OP
        report.ops.append(OpPlacement(op.index, op.op, "tpu" if on_tpu else "cpu", op.version,
                                      "compiled Edge TPU segment" if on_tpu else "left on the CPU by the compiler"))
        if not on_tpu:
            report.cpu_fallback.append(f"{op.op}#{op.index}")
    report.details.update({"compiled": True, "segments": len(segments), "compiled_bytes": code_bytes,
                           "delegate_available": delegate_available()})
    report.notes.append(f"already compiled for the Edge TPU: {len(segments)} {CUSTOM_OP} segment(s), "
                        f"{code_bytes / 1024:.1f} KiB of TPU code and parameters")
    twin = Path(facts.path).with_name(Path(facts.path).name.replace("_edgetpu.tflite", ".tflite"))
    if twin != Path(facts.path) and twin.is_file():
        inner = check_edgetpu(twin, PROFILE, use_compiler=False)
        report.details["mapped_inside"] = [f"{p.op}#{p.index}" for p in inner.ops if p.placement == "tpu"]
        report.notes.append(f"ops mapped inside (predicted from the CPU twin {twin.name}): "
                            f"{len(report.details['mapped_inside'])} of {len(inner.ops)}")
    if not report.details["delegate_available"]:
        report.add(Problem("runtime", CUSTOM_OP,
                           f"{DELEGATE_LIBRARY} is not installed on this machine: the compiled model cannot run "
                           "here (it can on a device with the Edge TPU runtime)",
                           "install libedgetpu1-std and attach a Coral device, or run the CPU twin on the host",
                           blocking=False))


def check_edgetpu(model_path, profile=PROFILE, *, use_compiler: bool = True) -> CheckReport:
    """Predict what maps to the Edge TPU; run edgetpu_compiler too when it is on PATH.

    Example:
        >>> from edgeship.targets import check
        >>> r = check("mobilenet_v1_0.25_128_quant.tflite", "edgetpu")  # doctest: +SKIP
        >>> r.compatible, r.placement_counts()  # doctest: +SKIP
        (True, {'tpu': 31})
    """
    facts = read_facts(model_path)
    if facts.format == "tflite" and is_compiled(facts):
        report = generic_check(model_path, profile, facts=facts, placement="tpu")
        report.problems = [p for p in report.problems if p.kind in ("format", "dynamic_shape")]
        report.compatible = not any(p.blocking for p in report.problems)
        report.ops, report.cpu_fallback = [], []
        _check_compiled(facts, report)
        return report
    report = generic_check(model_path, profile, facts=facts, placement="tpu")
    if facts.format != "tflite":
        return report
    predict_placement(facts, report)
    for t in facts.inputs + facts.outputs:
        if t.dtype.startswith("float") and facts.quantization is QuantMode.INT8:
            report.add(Problem("dtype", t.name, f"{t.name!r} is {t.dtype}: the quantize/dequantize at the "
                                                "boundary runs on the CPU", "re-convert with --quantize int8 "
                                                "--io-dtype int8 (or uint8) to skip it", blocking=False))
    if not delegate_available():
        report.notes.append(f"{DELEGATE_LIBRARY} not found: on this machine the model runs on the CPU only")
    if use_compiler:
        _run_compiler(model_path, report)
    return report


def _run_compiler(model_path, report: CheckReport) -> None:
    if compiler_path() is None:
        report.notes.append(f"{COMPILER} not on PATH: placement is edgeship's prediction from Coral's rules")
        return
    with tempfile.TemporaryDirectory(prefix="edgeship-edgetpu-") as tmp:
        try:
            _, log = compile_model(model_path, tmp)
        except TargetError as exc:
            report.add(Problem("compiler", Path(model_path).name, str(exc),
                               "fix the problems above and compile again"))
            return
    report.details["compiler"] = {"version": log.version, "tpu_ops": log.tpu_ops, "cpu_ops": log.cpu_ops,
                                  "subgraphs": log.subgraphs, "on_chip_bytes": log.on_chip_bytes,
                                  "off_chip_bytes": log.off_chip_bytes,
                                  "rows": [list(r) for r in log.rows]}
    predicted = report.details.get("tpu_ops")
    if log.tpu_ops is not None and predicted is not None and log.tpu_ops != predicted:
        report.notes.append(f"the compiler maps {log.tpu_ops} ops to the TPU; edgeship predicted {predicted}")
    for op, count, status in log.unmapped:
        report.add(Problem("compiler", op, f"edgetpu_compiler: {count} x {op}: {status}",
                           _REPLACE.get(op, f"replace op {op} or fix its inputs so the compiler maps it"),
                           blocking=op not in BOUNDARY_OPS))


PROFILE = register_target(PROFILE, check_edgetpu)

__all__ = ["PROFILE", "EDGETPU_OPS", "compiler_path", "delegate_available", "is_compiled",
           "compile_model", "parse_compiler_log", "CompilerLog", "check_edgetpu", "op_reason",
           "predict_placement"]
