"""Compatibility checks of a model file against a :class:`TargetProfile`.

A check reads the model once into :class:`ModelFacts` (format-neutral: tensors,
ops, quantization mode, memory) and applies the profile's data to it:
format, quantization mode, input/output dtypes, dynamic shapes, tensor rank,
op support and op version limits, memory. Every blocking problem names the op
or tensor it concerns and a concrete fix.

Target modules with extra rules (Edge TPU partitioning, Pi latency estimates,
MCU arenas) call :func:`generic_check` first and add to the report it returns.

Conventions for target profiles (``targets/<name>.py``):

* ``formats`` / ``quantizations`` / ``io_dtypes`` are plain string sets:
  formats ``tflite|onnx|coreml``; quantization modes as detected by
  :func:`quantization_mode` (``none|fp16|dynamic|int8|int16x8|mixed``; ``int8``
  means 8-bit integer compute, uint8 TF1-style models included);
  dtypes as numpy names (``float32``, ``int8``, ``uint8`` ...).
* ``supported_ops`` is ``None`` (every op the runtime has) or a set of TFLite
  builtin names (``CONV_2D``) / ONNX op types (``Conv``).
* ``op_limits[op]`` may hold ``max_version`` (int), ``min_version`` (int) and
  ``note`` (str, shown with the problem).
* ``memory_limit_bytes`` is compared with parameters + peak activations.
* A checker is ``fn(model_path, profile) -> CheckReport``, registered with
  ``register_target(profile, checker)``; without one :func:`generic_check` is used.

Example:
    >>> from edgeship.targets.check import Problem
    >>> Problem("dynamic_shape", "input", "input has a dynamic dimension", "make input shape static").blocking
    True
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from edgeship.errors import ModelFormatError

# Ops that only convert between float and integer at the graph boundary.
BOUNDARY_OPS = frozenset({"QUANTIZE", "DEQUANTIZE", "QuantizeLinear", "DequantizeLinear"})

_ITEM_BYTES = {"float32": 4, "float16": 2, "float64": 8, "int8": 1, "uint8": 1, "int16": 2,
               "uint16": 2, "int32": 4, "uint32": 4, "int64": 8, "uint64": 8, "bool": 1,
               "int4": 1, "bfloat16": 2, "complex64": 8}


# --------------------------------------------------------------------------- report

@dataclass
class Problem:
    """One finding: ``kind`` (format, quantization, dtype, dynamic_shape, rank, unsupported_op,
    op_version, op_constraint, memory, runtime, partition, ...), ``subject`` (op or tensor name),
    a ``message`` saying what was expected and found, and a concrete ``fix``."""

    kind: str
    subject: str
    message: str
    fix: str
    blocking: bool = True


@dataclass
class OpPlacement:
    """Where one op runs: placement is ``cpu``, ``device`` (the target's accelerator/runtime),
    ``tpu`` (Edge TPU), ``gpu``/``npu`` (mobile delegates) or ``unsupported``."""

    index: int
    op: str
    placement: str
    version: int = 1
    reason: str = ""


@dataclass
class CheckReport:
    """Result of ``edgeship check MODEL --target T``."""

    target: str
    model: str
    format: str
    quantization: str
    compatible: bool = True
    problems: List[Problem] = field(default_factory=list)
    ops: List[OpPlacement] = field(default_factory=list)
    cpu_fallback: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    estimate: Optional[dict] = None
    memory: Dict[str, Optional[int]] = field(default_factory=dict)
    details: Dict[str, object] = field(default_factory=dict)   # target-specific facts (compiler log, ...)

    def add(self, problem: Problem) -> None:
        """Record a problem; a blocking one makes the report incompatible."""
        self.problems.append(problem)
        if problem.blocking:
            self.compatible = False

    @property
    def blocking(self) -> List[Problem]:
        return [p for p in self.problems if p.blocking]

    def placement_counts(self) -> Dict[str, int]:
        counts: Dict[str, int] = {}
        for op in self.ops:
            counts[op.placement] = counts.get(op.placement, 0) + 1
        return counts

    def to_dict(self) -> dict:
        d = asdict(self)
        d["placement_counts"] = self.placement_counts()
        return d


# --------------------------------------------------------------------------- model facts

@dataclass(frozen=True)
class TensorFact:
    index: int
    name: str
    shape: Tuple[int, ...]          # -1 marks a dynamic dimension (from shape_signature)
    dtype: str
    is_const: bool = False
    nbytes: int = 0                 # static size (dynamic dims counted as 1)
    quantized: bool = False


@dataclass(frozen=True)
class OpFact:
    index: int
    op: str                         # TFLite builtin name / custom code, or ONNX op type
    version: int
    inputs: Tuple[int, ...]         # tensor indices (-1 = optional input absent)
    outputs: Tuple[int, ...]
    options: dict = field(default_factory=dict)


@dataclass
class ModelFacts:
    """What every target check needs to know about one model file."""

    path: str
    format: str                     # "tflite" | "onnx"
    file_bytes: int
    tensors: List[TensorFact]
    ops: List[OpFact]
    inputs: List[TensorFact]
    outputs: List[TensorFact]
    quantization: str
    params_bytes: int
    peak_activation_bytes: Optional[int]
    subgraphs: int = 1
    custom_ops: Tuple[str, ...] = ()
    raw: object = None              # the parsed model (TFLiteModel / onnx.ModelProto)
    buffers: Optional[list] = None  # TFLite buffers (constant data)

    def tensor(self, index: int) -> Optional[TensorFact]:
        return self.tensors[index] if 0 <= index < len(self.tensors) else None

    def const_value(self, index: int):
        """Numpy value of a constant TFLite tensor, or None."""
        import numpy as np

        t = self.tensor(index)
        if t is None or not t.is_const or self.buffers is None or self.format != "tflite":
            return None
        data = self.raw.buffer_data(self.raw.subgraphs[0].tensors[index])
        if not data:
            return None
        try:
            arr = np.frombuffer(data, dtype=np.dtype(t.dtype))
            return arr.reshape(t.shape) if all(d >= 0 for d in t.shape) else arr
        except (TypeError, ValueError):
            return None


def detect_format(path: Path) -> str:
    """``tflite`` (flatbuffer identifier TFL3) or ``onnx`` (by extension); else ModelFormatError."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    if len(head) >= 8 and head[4:8] == b"TFL3":
        return "tflite"
    if path.suffix.lower() == ".onnx":
        return "onnx"
    if path.suffix.lower() == ".tflite":
        raise ModelFormatError(f"{path} has a .tflite name but no TFL3 flatbuffer identifier: "
                               "the file is truncated or not a TFLite model")
    raise ModelFormatError(f"cannot tell the format of {path}: expected a .tflite flatbuffer or an .onnx file")


def read_facts(model_path) -> ModelFacts:
    """Read a .tflite or .onnx file into :class:`ModelFacts` (no interpreter is created)."""
    path = Path(model_path)
    if path.is_dir():
        raise ModelFormatError(f"{path} is a folder; check takes a .tflite or .onnx file "
                               "(convert the model first: edgeship convert SOURCE --to tflite -o model.tflite)")
    if not path.is_file():
        raise ModelFormatError(f"model file not found: {path}")
    fmt = detect_format(path)
    return _tflite_facts(path) if fmt == "tflite" else _onnx_facts(path)


def _nbytes(shape: Sequence[int], dtype: str) -> int:
    n = 1
    for d in shape:
        n *= max(int(d), 1)
    return n * _ITEM_BYTES.get(dtype, 4)


def _tflite_facts(path: Path) -> ModelFacts:
    from edgeship.tflite_schema import read_tflite

    data = path.read_bytes()
    model = read_tflite(data)
    if not model.subgraphs:
        raise ModelFormatError(f"{path}: TFLite model has no subgraph")
    sg = model.subgraphs[0]
    buffers = list(model.buffers)
    tensors: List[TensorFact] = []
    for t in sg.tensors:
        shape = tuple(int(d) for d in t.shape_signature) if t.shape_signature else tuple(t.shape)
        tensors.append(TensorFact(t.index, t.name, shape, str(t.dtype), bool(t.has_data),
                                  int(t.data_bytes) if t.has_data else _nbytes(shape, str(t.dtype)),
                                  t.quantization is not None))
    ops = [OpFact(i, str(o.op), int(o.version or 1), tuple(o.inputs), tuple(o.outputs),
                  dict(o.builtin_options or {})) for i, o in enumerate(sg.operators)]
    facts = ModelFacts(
        path=str(path), format="tflite", file_bytes=len(data), tensors=tensors, ops=ops,
        inputs=[tensors[i] for i in sg.inputs], outputs=[tensors[i] for i in sg.outputs],
        quantization="none", params_bytes=sum(t.nbytes for t in tensors if t.is_const),
        peak_activation_bytes=None, subgraphs=len(model.subgraphs),
        custom_ops=tuple(sorted({oc.custom_code for oc in model.operator_codes if oc.custom_code})),
        raw=model, buffers=buffers)
    facts.quantization = quantization_mode(facts)
    facts.peak_activation_bytes = peak_activation_bytes(facts)
    return facts


def _onnx_facts(path: Path) -> ModelFacts:
    from edgeship._deps import require

    onnx = require("onnx", "convert", "checking ONNX models")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise ModelFormatError(f"{path} is not a readable ONNX model ({exc})") from exc
    try:  # intermediate shapes feed memory and cost estimates; a model it cannot infer keeps what it has
        model = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - inference is best effort
        pass
    g = model.graph
    dtype_name = {v: k for k, v in {
        "float32": 1, "uint8": 2, "int8": 3, "uint16": 4, "int16": 5, "int32": 6, "int64": 7,
        "string": 8, "bool": 9, "float16": 10, "float64": 11, "uint32": 12, "uint64": 13,
        "bfloat16": 16}.items()}
    tensors: List[TensorFact] = []
    index: Dict[str, int] = {}

    def add(name, shape, dtype, const, nbytes=None):
        index[name] = len(tensors)
        tensors.append(TensorFact(len(tensors), name, tuple(shape), dtype, const,
                                  nbytes if nbytes is not None else _nbytes(shape, dtype)))

    for init in g.initializer:
        dt = dtype_name.get(init.data_type, "float32")
        add(init.name, [int(d) for d in init.dims], dt, True)
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        if vi.name in index:
            continue
        tt = vi.type.tensor_type
        shape = [int(d.dim_value) if d.HasField("dim_value") else -1 for d in tt.shape.dim]
        add(vi.name, shape, dtype_name.get(tt.elem_type, "float32"), False)
    ops: List[OpFact] = []
    for i, node in enumerate(g.node):
        for name in list(node.output):
            if name and name not in index:
                add(name, (), "float32", False, 0)
        ops.append(OpFact(i, node.op_type, 1,
                          tuple(index.get(n, -1) for n in node.input),
                          tuple(index.get(n, -1) for n in node.output),
                          {"domain": node.domain}))
    inits = {init.name for init in g.initializer}
    facts = ModelFacts(
        path=str(path), format="onnx", file_bytes=path.stat().st_size, tensors=tensors, ops=ops,
        inputs=[tensors[index[v.name]] for v in g.input if v.name not in inits],
        outputs=[tensors[index[v.name]] for v in g.output], quantization="none",
        params_bytes=sum(t.nbytes for t in tensors if t.is_const), peak_activation_bytes=None,
        custom_ops=tuple(sorted({n.op_type for n in g.node if n.domain not in ("", "ai.onnx")})),
        raw=model)
    facts.quantization = quantization_mode(facts)
    return facts


_QUANT_INT = {"int8", "uint8", "int16"}
# Ops whose integer presence marks an ONNX model as statically / dynamically quantized.
_ONNX_STATIC_Q = {"QLinearConv", "QLinearMatMul", "QuantizeLinear", "DequantizeLinear", "QLinearAdd"}
_ONNX_DYNAMIC_Q = {"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul"}


def quantization_mode(facts: ModelFacts) -> str:
    """Detect how a model is quantized: ``none`` (float), ``fp16`` (float16 weights),
    ``dynamic`` (int8 weights, float activations), ``int8`` (integer compute; float I/O
    allowed through boundary QUANTIZE/DEQUANTIZE), ``int16x8`` (int16 activations, int8
    weights) or ``mixed`` (some compute ops float, some integer)."""
    if facts.format == "onnx":
        types = {o.op for o in facts.ops}
        if types & _ONNX_DYNAMIC_Q:
            return "dynamic"
        if types & _ONNX_STATIC_Q:
            return "int8"
        if any(t.is_const and t.dtype == "float16" for t in facts.tensors):
            return "fp16"
        return "none"
    float_compute = int_compute = 0
    act16 = False
    for op in facts.ops:
        if op.op in BOUNDARY_OPS or op.op in ("RESHAPE", "SQUEEZE", "EXPAND_DIMS", "SHAPE", "CAST"):
            continue
        acts = [facts.tensors[i] for i in (*op.inputs, *op.outputs)
                if 0 <= i < len(facts.tensors) and not facts.tensors[i].is_const]
        if not acts:
            continue
        if any(t.dtype in ("float32", "float16") for t in acts):
            float_compute += 1
        elif any(t.dtype in _QUANT_INT for t in acts):   # int32/int64 alone = shape arithmetic
            int_compute += 1
            # int8 LSTMs keep int16 internals; only the main data input decides int16x8
            main = facts.tensor(op.inputs[0]) if op.inputs else None
            act16 = act16 or (main is not None and main.dtype == "int16" and "LSTM" not in op.op
                              and "RNN" not in op.op)
    weights = [t for t in facts.tensors if t.is_const and len(t.shape) >= 2]
    int_weights = any(t.dtype in ("int8", "uint8", "int4") for t in weights)
    fp16_weights = any(t.dtype == "float16" for t in weights)
    if float_compute and int_compute:
        return "mixed"
    if int_compute:
        return "int16x8" if act16 else "int8"
    if int_weights:
        return "dynamic"
    if fp16_weights:
        return "fp16"
    return "none"


def peak_activation_bytes(facts: ModelFacts) -> int:
    """Peak bytes of simultaneously live activation tensors when ops run in file order
    (a lower bound of the arena a runtime allocates; TFLite's planner gets close to it)."""
    n = len(facts.ops)
    first: Dict[int, int] = {}
    last: Dict[int, int] = {}
    for t in facts.inputs:
        first[t.index] = 0
    for step, op in enumerate(facts.ops):
        for i in op.outputs:
            if i >= 0:
                first.setdefault(i, step)
        for i in op.inputs:
            if i >= 0:
                last[i] = step
    for t in facts.outputs:
        last[t.index] = n
    live = [0] * (n + 1)
    for i, start in first.items():
        t = facts.tensor(i)
        if t is None or t.is_const:
            continue
        for s in range(start, min(last.get(i, start), n) + 1):
            live[s] += t.nbytes
    return max(live) if live else 0


# --------------------------------------------------------------------------- generic check

def _quant_fix(profile) -> str:
    for q in ("int8", "int16x8", "fp16", "dynamic", "none"):
        if q in profile.quantizations:
            return f"re-convert with --quantize {q}"
    return "re-convert with one of: --quantize " + ", ".join(sorted(profile.quantizations))


def _io_fix(profile) -> str:
    for dt in ("int8", "uint8", "float32"):
        if dt in profile.io_dtypes:
            return dt
    return sorted(profile.io_dtypes)[0]


def new_report(facts: ModelFacts, profile) -> CheckReport:
    return CheckReport(target=profile.name, model=facts.path, format=facts.format,
                       quantization=facts.quantization,
                       memory={"params_bytes": facts.params_bytes,
                               "peak_activation_bytes": facts.peak_activation_bytes,
                               "file_bytes": facts.file_bytes,
                               "limit_bytes": profile.memory_limit_bytes})


def generic_check(model_path, profile, *, facts: Optional[ModelFacts] = None,
                  placement: str = "device") -> CheckReport:
    """Apply a profile's declarative rules to a model.

    Args:
        model_path: a .tflite or .onnx file.
        profile: the :class:`~edgeship.targets.profile.TargetProfile` to check against.
        facts: already-read :class:`ModelFacts` (read from ``model_path`` when None).
        placement: label for ops the target runs (``cpu`` for CPU-only targets).

    Returns:
        A :class:`CheckReport`; ``compatible`` is False when any blocking problem was found.

    Example:
        >>> from edgeship.targets import get_target
        >>> from edgeship.targets.check import generic_check
        >>> report = generic_check("model.tflite", get_target("null"))  # doctest: +SKIP
    """
    facts = facts or read_facts(model_path)
    report = new_report(facts, profile)

    format_ok = facts.format in profile.formats
    if not format_ok:
        report.add(Problem("format", Path(facts.path).name,
                           f"{profile.name} runs {'/'.join(sorted(profile.formats))} models; this is {facts.format}",
                           f"convert with `edgeship convert SOURCE --to {sorted(profile.formats)[0]}`"))
    if facts.quantization not in profile.quantizations:
        what = {"none": "a float (unquantized) model", "mixed": "a partly quantized model (some ops float)",
                "dynamic": "dynamic-range quantized (float activations)"}.get(
                    facts.quantization, f"quantized as {facts.quantization}")
        report.add(Problem("quantization", Path(facts.path).name,
                           f"{profile.name} accepts quantization {', '.join(sorted(profile.quantizations))}; "
                           f"this is {what}", _quant_fix(profile)))
    for role, tensors in (("input", facts.inputs), ("output", facts.outputs)):
        for t in tensors:
            if profile.io_dtypes and t.dtype not in profile.io_dtypes:
                report.add(Problem("dtype", t.name,
                                   f"{role} {t.name!r} is {t.dtype}; {profile.name} accepts "
                                   f"{', '.join(sorted(profile.io_dtypes))}",
                                   _quant_fix(profile) + " --io-dtype " + _io_fix(profile)))
    if profile.static_shapes_required:
        for t in facts.inputs:
            if any(d < 0 for d in t.shape):
                report.add(Problem("dynamic_shape", t.name,
                                   f"input {t.name!r} has dynamic shape {list(t.shape)} (-1 = dynamic); "
                                   f"{profile.name} needs static shapes",
                                   "make input shape static: re-convert with --static-batch (Keras sources), "
                                   "or fix the dimension in the source model, so the input is "
                                   f"[{', '.join(str(d if d > 0 else 1) for d in t.shape)}]"))
    if profile.max_tensor_rank is not None:
        for t in facts.tensors:
            if len(t.shape) > profile.max_tensor_rank:
                report.add(Problem("rank", t.name,
                                   f"tensor {t.name!r} has rank {len(t.shape)} {list(t.shape)}; "
                                   f"{profile.name} supports rank <= {profile.max_tensor_rank}",
                                   f"reshape the model so tensors have at most {profile.max_tensor_rank} dimensions"))
    for op in facts.ops:
        if not format_ok:   # op names of another format mean nothing to this target
            report.ops.append(OpPlacement(op.index, op.op, "unsupported", op.version, f"{facts.format} not supported"))
            continue
        reason = op_problem(op, profile)
        if reason is None:
            report.ops.append(OpPlacement(op.index, op.op, placement, op.version))
        else:
            report.add(reason)
            report.ops.append(OpPlacement(op.index, op.op, "unsupported", op.version, reason.message))
    limit = profile.memory_limit_bytes
    need = facts.params_bytes + (facts.peak_activation_bytes or 0)
    if limit is not None and need > limit:
        report.add(Problem("memory", Path(facts.path).name,
                           f"model needs ~{need / 1e6:.2f} MB (params {facts.params_bytes / 1e6:.2f} MB + "
                           f"activations {(facts.peak_activation_bytes or 0) / 1e6:.2f} MB); "
                           f"{profile.name} has {limit / 1e6:.2f} MB",
                           "re-convert with --quantize int8 or use a smaller model (fewer channels / lower resolution)"))
    if facts.subgraphs > 1:
        report.notes.append(f"model has {facts.subgraphs} subgraphs; only the main one was checked op by op")
    return report


def op_problem(op: OpFact, profile) -> Optional[Problem]:
    """The problem with one op under a profile's supported_ops / op_limits, or None."""
    if profile.supported_ops is not None and op.op not in profile.supported_ops:
        return Problem("unsupported_op", f"{op.op}#{op.index}",
                       f"op {op.op} (index {op.index}) is not supported by {profile.name}",
                       f"replace op {op.op} in the source model with supported ops, or pick a target that runs it")
    lim = profile.op_limits.get(op.op) or {}
    note = f" ({lim['note']})" if lim.get("note") else ""
    if lim.get("max_version") is not None and op.version > lim["max_version"]:
        return Problem("op_version", f"{op.op}#{op.index}",
                       f"op {op.op} (index {op.index}) is version {op.version}; {profile.name} supports "
                       f"up to version {lim['max_version']}{note}",
                       f"re-convert with an older converter / simpler options so {op.op} stays "
                       f"<= v{lim['max_version']}, or replace op {op.op}")
    if lim.get("min_version") is not None and op.version < lim["min_version"]:
        return Problem("op_version", f"{op.op}#{op.index}",
                       f"op {op.op} (index {op.index}) is version {op.version}; {profile.name} needs "
                       f">= {lim['min_version']}{note}", "re-convert with a current converter")
    return None


def which_path(name: str) -> Optional[str]:
    """shutil.which, kept here so tests can monkeypatch one place."""
    import shutil

    return shutil.which(name, path=os.environ.get("PATH"))


__all__ = ["Problem", "OpPlacement", "CheckReport", "ModelFacts", "TensorFact", "OpFact",
           "read_facts", "detect_format", "quantization_mode", "peak_activation_bytes",
           "generic_check", "op_problem", "new_report"]
