"""Model facts: the one place that reads a model file and says what it holds.

:func:`read_facts` parses a ``.tflite`` or ``.onnx`` file once, with edgeship's bounds-checked
pure-Python readers (:mod:`edgeship.tflite_schema`, :mod:`edgeship.onnx_proto`; no TensorFlow,
no ``onnx`` package), into a :class:`ModelFacts`: format, I/O, ops with versions and MACs,
quantization mode (:class:`QuantMode`), parameter and tensor sizes, peak activation memory and
the minimum runtime version. ``inspect``, ``check``, ``bundle``, the MCU and Edge TPU adapters,
parity tolerances and ``deploy`` all read these facts, so every command uses the same words for
the same fact.

Example:
    >>> from edgeship.facts import QuantMode, read_facts
    >>> QuantMode.parse("int8") is QuantMode.INT8
    True
    >>> import edgeship.models
    >>> facts = read_facts(edgeship.models.path("shapes_cnn_int8"))
    >>> facts.format, str(facts.quantization), facts.inputs[0].dtype
    ('tflite', 'int8', 'int8')
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from ._io import sha256_bytes
from .errors import ModelFormatError
from .spec import TensorSpec
from .tflite_ops import ITEM_SIZE


class QuantMode(str, Enum):
    """How a model is quantized: the one vocabulary of exporters, inspect, check, parity, bundle
    keys, file names, JSON and the ``--quantize`` flag.

    * ``fp32``    float32 weights and activations (no quantization);
    * ``fp16``    float16 weights, float32 compute;
    * ``dynamic`` int8 weights, float activations (dynamic-range quantization);
    * ``int8``    8-bit integer compute with calibrated activations (uint8 TF1-style models
      included; the I/O dtype, int8 / uint8 / float32, is a separate fact of the inputs/outputs);
    * ``int16x8`` int16 activations with int8 weights;
    * ``mixed``   detected only, never requested: some compute ops float, some integer (e.g. the
      accuracy-budget fix keeping the worst layers in float).

    Members are strings, so ``QuantMode.INT8 == "int8"`` and JSON holds the plain value.

    Example:
        >>> QuantMode.parse(None), QuantMode.parse("fp16").value
        (<QuantMode.FP32: 'fp32'>, 'fp16')
        >>> f"{QuantMode.INT16X8}"
        'int16x8'
        >>> QuantMode.parse("int4")
        Traceback (most recent call last):
        ...
        edgeship.errors.ModelFormatError: unknown quantization 'int4'; expected one of fp32, fp16, dynamic, int8, int16x8
    """

    FP32 = "fp32"
    FP16 = "fp16"
    DYNAMIC = "dynamic"
    INT8 = "int8"
    INT16X8 = "int16x8"
    MIXED = "mixed"

    def __str__(self) -> str:
        return self.value

    def __hash__(self) -> int:  # hash like the plain string, so "int8" and INT8 find each other in sets
        return str.__hash__(self.value)

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @classmethod
    def requestable(cls) -> Tuple["QuantMode", ...]:
        """The modes a conversion can be asked for (every member but ``mixed``)."""
        return tuple(m for m in cls if m is not cls.MIXED)

    @classmethod
    def parse(cls, value: Union[str, "QuantMode", None]) -> "QuantMode":
        """A member from its value; ``None`` means ``fp32``. Unknown values raise ModelFormatError."""
        if value is None:
            return cls.FP32
        if isinstance(value, cls):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise ModelFormatError(
                f"unknown quantization {value!r}; expected one of "
                f"{', '.join(m.value for m in cls.requestable())}") from None


# --------------------------------------------------------------------------- the facts

@dataclass(frozen=True)
class TensorFact:
    """One tensor. ``shape`` uses -1 for a dynamic dimension; ``nbytes`` counts dynamic dims as 1."""

    index: int
    name: str
    shape: Tuple[int, ...]
    dtype: str
    is_const: bool = False
    nbytes: int = 0
    quantized: bool = False


@dataclass(frozen=True)
class OpFact:
    """One operator in execution order: TFLite builtin name / custom code, or ONNX op type."""

    index: int
    op: str
    version: int
    inputs: Tuple[int, ...]          # tensor indices (-1 = optional input absent)
    outputs: Tuple[int, ...]
    options: dict = field(default_factory=dict)
    macs: Optional[int] = 0          # None: shapes unknown (ONNX without shape information)


@dataclass
class ModelFacts:
    """Everything edgeship knows about one model file, from one parse (see module docstring)."""

    path: str
    format: str                      # "tflite" | "onnx"
    file_bytes: int
    sha256: str
    tensors: List[TensorFact]
    ops: List[OpFact]
    inputs: List[TensorFact]
    outputs: List[TensorFact]
    io: Dict[str, List[TensorSpec]]  # {"inputs": [...], "outputs": [...]} with quantization params
    quantization: QuantMode
    params: int                      # number of constant elements
    params_bytes: int                # bytes of constant data
    peak_activation_bytes: Optional[int]
    activations_total_bytes: int
    min_runtime_version: str
    min_runtime_version_source: str
    subgraphs: int = 1
    custom_ops: Tuple[str, ...] = ()
    edgetpu_compiled: bool = False
    header: dict = field(default_factory=dict)   # format-specific: schema version, opsets, producer...
    weight_dtypes: Dict[str, int] = field(default_factory=dict)
    activation_dtypes: Dict[str, int] = field(default_factory=dict)
    raw: object = None               # the parsed model (TFLiteModel / OnnxModel)

    def tensor(self, index: int) -> Optional[TensorFact]:
        return self.tensors[index] if 0 <= index < len(self.tensors) else None

    @property
    def macs_total(self) -> int:
        return sum(o.macs or 0 for o in self.ops)

    @property
    def key(self) -> str:
        """The bundle / file-name key of this model: ``<format>-<quantization>``, e.g. ``tflite-int8``."""
        return f"{self.format}-{self.quantization.value}"

    def const_value(self, index: int):
        """Numpy value of a constant TFLite tensor of the main subgraph, or None."""
        import numpy as np

        t = self.tensor(index)
        if t is None or not t.is_const or self.format != "tflite":
            return None
        data = self.raw.buffer_data(self.raw.subgraphs[0].tensors[index])
        if not data:
            return None
        try:
            arr = np.frombuffer(data, dtype=np.dtype(t.dtype))
            return arr.reshape(t.shape) if all(d >= 0 for d in t.shape) else arr
        except (TypeError, ValueError):
            return None

    def io_dict(self) -> Dict[str, List[dict]]:
        return {k: [s.to_dict() for s in v] for k, v in self.io.items()}

    def to_dict(self) -> dict:
        """The JSON of ``edgeship inspect``."""
        counts = Counter((o.op, o.version) for o in self.ops)
        unknown_macs = sum(1 for o in self.ops if o.macs is None)
        out = {
            "path": self.path, "bytes": self.file_bytes, "sha256": self.sha256, "format": self.format,
            **self.header,
            **self.io_dict(),
            "operators": [{"op": k[0], "version": k[1], "count": v} for k, v in sorted(counts.items())],
            "ops": [{"index": o.index, "op": o.op, "version": o.version, "macs": o.macs,
                     "inputs": list(o.inputs), "outputs": list(o.outputs),
                     "output_shape": list(self.tensors[o.outputs[0]].shape)
                     if o.outputs and o.outputs[0] >= 0 else []} for o in self.ops],
            "op_count": len(self.ops),
            "params": self.params,
            "weight_bytes": self.params_bytes,
            "weight_dtypes": dict(self.weight_dtypes),
            "activation_dtypes": dict(self.activation_dtypes),
            "quantization": self.quantization.value,
            "macs_total": self.macs_total,
            "macs_note": f"{unknown_macs} ops without known shapes are counted as 0" if unknown_macs else "",
            "memory": {"params_bytes": self.params_bytes,
                       "peak_activation_bytes": self.peak_activation_bytes,
                       "activations_total_bytes": self.activations_total_bytes,
                       "file_bytes": self.file_bytes},
            "min_runtime_version": self.min_runtime_version,
            "min_runtime_version_source": self.min_runtime_version_source,
            "subgraphs": self.subgraphs,
            "edgetpu_compiled": self.edgetpu_compiled,
            "custom_ops": list(self.custom_ops),
        }
        return out


# --------------------------------------------------------------------------- reading

def sniff_format(path: Path, head: bytes) -> str:
    """``tflite``, ``onnx``, ``bundle`` or ``zip`` from the content (the extension only breaks ties)."""
    if path.is_dir():
        return "bundle"
    if head[4:8] == b"TFL3":
        return "tflite"
    if head[:4] == b"PK\x03\x04":
        return "zip"
    if path.suffix.lower() in (".tflite", ".lite"):
        return "tflite"  # let the TFLite reader say precisely what is wrong
    if path.suffix.lower() == ".onnx" or head[:1] == b"\x08":
        return "onnx"
    raise ModelFormatError(
        f"{path.name}: unknown model format; expected a TFLite flatbuffer (.tflite, identifier TFL3), "
        f"an ONNX protobuf (.onnx) or an edgeship bundle directory/.zip; the file starts with {head[:8]!r}")


def read_facts(model: Union[str, Path, "ModelFacts"], *, data: Optional[bytes] = None) -> ModelFacts:
    """Read a ``.tflite`` or ``.onnx`` file into :class:`ModelFacts` (no interpreter is created).

    Args:
        model: the model file (or facts already read, returned as they are).
        data: the file's bytes when the caller already holds them (not read again).

    Raises:
        ModelFormatError: missing file, a folder, an unknown format or a malformed file.
    """
    if isinstance(model, ModelFacts):
        return model
    path = Path(model)
    if data is None:
        if path.is_dir():
            raise ModelFormatError(f"{path} is a folder; this takes a .tflite or .onnx file "
                                   "(convert the model first: edgeship convert SOURCE --to tflite -o model.tflite)")
        if not path.is_file():
            raise ModelFormatError(f"model file not found: {path}")
        data = path.read_bytes()
    fmt = sniff_format(path, data[:16])
    try:
        if fmt == "tflite":
            return _tflite_facts(path, data)
        if fmt == "onnx":
            return _onnx_facts(path, data)
    except ModelFormatError as exc:
        if str(path.name) in str(exc):
            raise
        raise ModelFormatError(f"{path.name}: {exc}") from None
    raise ModelFormatError(f"{path.name}: takes a .tflite or .onnx file; this is a {fmt}")


def _prod(shape) -> int:
    n = 1
    for d in shape:
        n *= max(int(d), 1) if isinstance(d, int) else 1
    return n


def _nbytes(shape: Sequence[int], dtype: str) -> int:
    return _prod(shape) * ITEM_SIZE.get(dtype, 4 if dtype.startswith(("float", "int", "uint")) else 1)


# ---- TFLite

# Minimum TFLite runtime for (op, version), for common ops (from TFLite's runtime_version table).
# Index i holds version i+1. Used only when the file does not record "min_runtime_version" itself.
_TFL_MIN_RUNTIME = {
    "CONV_2D": ("1.5.0", "1.14.0", "1.14.0", "2.3.0", "2.4.0", "2.9.0"),
    "DEPTHWISE_CONV_2D": ("1.5.0", "1.12.0", "1.14.0", "2.2.0", "2.3.0", "2.3.0"),
    "FULLY_CONNECTED": ("1.5.0", "1.10.0", "1.14.0", "1.14.0", "2.0.0", "2.1.0", "2.3.0", "2.3.0", "2.3.0"),
    "AVERAGE_POOL_2D": ("1.5.0", "1.14.0", "2.3.0"),
    "MAX_POOL_2D": ("1.5.0", "1.14.0", "2.3.0"),
    "ADD": ("1.5.0", "1.14.0", "2.4.0", "2.6.0"),
    "SUB": ("1.6.0", "1.14.0", "2.3.0", "2.4.0", "2.4.0"),
    "MUL": ("1.5.0", "1.14.0", "1.15.0", "2.3.0", "2.6.0"),
    "CONCATENATION": ("1.5.0", "1.14.0", "2.3.0"),
    "RESHAPE": ("1.5.0",),
    "SOFTMAX": ("1.5.0", "1.14.0", "2.3.0"),
    "PAD": ("1.5.0", "1.14.0", "2.4.0", "2.6.0"),
    "MEAN": ("1.6.0", "1.14.0", "2.4.0"),
    "RELU6": ("1.5.0", "1.14.0", "2.5.0"),
    "LOGISTIC": ("1.14.0", "1.14.0", "2.3.0"),
    "TANH": ("1.14.0", "1.14.0", "2.3.0"),
    "TRANSPOSE": ("1.6.0", "1.14.0", "1.15.0", "2.3.0", "2.4.0"),
    "SPLIT": ("1.5.0", "1.14.0", "1.14.0", "2.3.0"),
    "STRIDED_SLICE": ("1.6.0", "1.14.0", "2.1.0", "2.2.0", "2.5.0", "2.6.0"),
    "DEQUANTIZE": ("1.13.1", "1.14.0", "1.15.0", "2.2.0", "2.7.0"),
    "RESIZE_BILINEAR": ("1.7.0", "1.14.0", "2.2.0", "2.5.0"),
    "RESIZE_NEAREST_NEIGHBOR": ("1.13.1", "1.14.0", "2.3.0", "2.4.0"),
    "TRANSPOSE_CONV": ("1.9.0", "2.2.0", "2.3.0"),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": ("1.13.1", "1.14.0", "2.3.0"),
    "BATCH_MATMUL": ("2.3.0", "2.3.0", "2.4.0", "2.5.0"),
}

_ELEMENTWISE = {"ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "RELU", "RELU6", "RELU_N1_TO_1", "LEAKY_RELU",
                "LOGISTIC", "TANH", "HARD_SWISH", "PRELU", "SQUARED_DIFFERENCE", "SOFTMAX", "LOG_SOFTMAX",
                "QUANTIZE", "DEQUANTIZE", "EXP", "SQRT", "RSQRT", "ABS", "NEG", "GELU", "ELU", "POW"}

# Ops that only convert between float and integer at the graph boundary, or move data around.
BOUNDARY_OPS = frozenset({"QUANTIZE", "DEQUANTIZE", "QuantizeLinear", "DequantizeLinear"})
_SHAPE_OPS = frozenset({"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "SHAPE", "CAST"})


def _vkey(v: str):
    return tuple(int(x) for x in v.split(".") if x.isdigit())


def _tflite_macs(op, tensors) -> int:
    """Multiply-accumulates of one op from tensor shapes (batch as stored in the model)."""
    def t(i):
        return tensors[op.inputs[i]] if len(op.inputs) > i and op.inputs[i] >= 0 else None

    out = tensors[op.outputs[0]] if op.outputs else None
    if out is None:
        return 0
    o = _prod(out.shape)
    name = op.op
    if name == "CONV_2D" and t(1) is not None:
        return o * _prod(t(1).shape[1:])
    if name == "DEPTHWISE_CONV_2D" and t(1) is not None:
        return o * _prod(t(1).shape[1:3])
    if name == "CONV_3D" and t(1) is not None:
        return o * _prod(t(1).shape[:4])
    if name == "FULLY_CONNECTED" and t(1) is not None and t(1).shape:
        return o * t(1).shape[-1]
    if name == "TRANSPOSE_CONV" and t(1) is not None and t(2) is not None:
        return _prod(t(2).shape) * _prod(t(1).shape[:3])
    if name == "BATCH_MATMUL" and t(0) is not None and t(0).shape:
        return o * t(0).shape[-1]
    if name in ("AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D"):
        return o * max(op.builtin_options.get("filter_w", 1), 1) * max(op.builtin_options.get("filter_h", 1), 1)
    if name in ("UNIDIRECTIONAL_SEQUENCE_LSTM", "LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM"):
        steps = _prod(t(0).shape[:-1]) if t(0) is not None else 1
        weights = sum(_prod(t(i).shape) for i in range(1, 9) if t(i) is not None and t(i).has_data)
        return steps * weights
    if name in ("MEAN", "SUM"):
        return _prod(t(0).shape) if t(0) is not None else o
    if name in _ELEMENTWISE:
        return o
    return 0


def _tflite_facts(path: Path, data: bytes) -> ModelFacts:
    from .tflite_schema import min_runtime_version, read_tflite

    model = read_tflite(data)
    if not model.subgraphs:
        raise ModelFormatError("TFLite model has no subgraph")
    sg = model.main
    tensors = []
    for t in sg.tensors:
        shape = tuple(int(d) for d in t.shape_signature) if t.shape_signature else tuple(t.shape)
        tensors.append(TensorFact(t.index, t.name, shape, str(t.dtype), bool(t.has_data),
                                  int(t.data_bytes) if t.has_data else _nbytes(shape, str(t.dtype)),
                                  t.quantization is not None))
    ops = [OpFact(o.index, str(o.op), int(o.version or 1), tuple(o.inputs), tuple(o.outputs),
                  dict(o.builtin_options or {}), _tflite_macs(o, sg.tensors)) for o in sg.operators]
    consts = [t for g in model.subgraphs for t in g.tensors if t.has_data]

    def spec(t):
        return TensorSpec(t.name, t.shape_signature, t.dtype, t.quantization, t.index)

    recorded = min_runtime_version(model)
    computed, unknown = "1.5.0", []
    for name, ver in sorted({(o.op, o.version) for o in ops}):
        table = _TFL_MIN_RUNTIME.get(name)
        if table and 1 <= ver <= len(table):
            computed = max(computed, table[ver - 1], key=_vkey)
        else:
            unknown.append(f"{name}/v{ver}")
    source = "recorded in the file by its converter" if recorded else (
        "computed from op versions" + (f" (ops not in edgeship's table: {', '.join(unknown)})" if unknown else ""))
    facts = ModelFacts(
        path=str(path), format="tflite", file_bytes=len(data), sha256=sha256_bytes(data),
        tensors=tensors, ops=ops, inputs=[tensors[i] for i in sg.inputs], outputs=[tensors[i] for i in sg.outputs],
        io={"inputs": [spec(sg.tensors[i]) for i in sg.inputs], "outputs": [spec(sg.tensors[i]) for i in sg.outputs]},
        quantization=QuantMode.FP32, params=sum(_prod(t.shape) for t in consts),
        params_bytes=sum(t.data_bytes for t in consts), peak_activation_bytes=None,
        activations_total_bytes=sum(t.nbytes for t in tensors if not t.is_const),
        min_runtime_version=recorded or computed, min_runtime_version_source=source,
        subgraphs=len(model.subgraphs),
        custom_ops=tuple(sorted({oc.custom_code for oc in model.operator_codes if oc.custom_code})),
        edgetpu_compiled=model.is_edgetpu_compiled,
        header={"schema_version": model.version, "description": model.description,
                "signatures": model.signature_keys, "metadata": sorted(model.metadata)},
        weight_dtypes=dict(Counter(t.dtype for t in consts)),
        activation_dtypes=dict(Counter(tensors[o].dtype for op in ops for o in op.outputs)),
        raw=model)
    facts.quantization = quantization_mode(facts)
    facts.peak_activation_bytes = peak_activation_bytes(facts)
    return facts


# ---- ONNX

# ONNX Runtime release that first implements an ai.onnx opset (ORT's version matrix; 16+ from release notes).
_ORT_FOR_OPSET = {7: "0.1.4", 8: "0.1.4", 9: "0.3.0", 10: "0.4.0", 11: "1.0.0", 12: "1.3.0", 13: "1.6.0",
                  14: "1.8.0", 15: "1.9.0", 16: "1.13.0", 17: "1.13.0", 18: "1.14.0", 19: "1.16.0",
                  20: "1.17.0", 21: "1.18.0"}
_ONNX_ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Relu", "Sigmoid", "Tanh", "Softmax", "Clip", "LeakyRelu",
                     "PRelu", "BatchNormalization", "HardSwish", "HardSigmoid", "Max", "Min"}
# Ops whose presence marks an ONNX model as statically / dynamically quantized.
_ONNX_STATIC_Q = {"QLinearConv", "QLinearMatMul", "QuantizeLinear", "DequantizeLinear", "QLinearAdd"}
_ONNX_DYNAMIC_Q = {"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul"}


def _onnx_shapes(data: bytes, m) -> Dict[str, Tuple[int, ...]]:
    """Tensor shapes (-1 = unknown dim): from the file's value_info, or from onnx's shape inference
    when that package is installed (a dev-tool path, never needed on the device)."""
    def dims(shape):
        return tuple(d if isinstance(d, int) and d >= 0 else -1 for d in shape)

    shapes = {k: dims(v.shape) for k, v in m.value_info.items() if v.has_shape}
    shapes.update({v.name: dims(v.shape) for v in m.inputs + m.outputs if v.has_shape})
    shapes.update({k: tuple(i.dims) for k, i in m.initializers.items()})
    if all(n.outputs and n.outputs[0] in shapes for n in m.nodes):
        return shapes
    try:
        import onnx  # optional
        inferred = onnx.shape_inference.infer_shapes(onnx.load_model_from_string(data))
        for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
            shapes.setdefault(vi.name, tuple(d.dim_value if d.HasField("dim_value") else -1
                                             for d in vi.type.tensor_type.shape.dim))
    except Exception:  # noqa: BLE001 - no onnx package, or inference failed: those shapes stay unknown
        pass
    return shapes


def _onnx_macs(n, shapes) -> Optional[int]:
    out = shapes.get(n.outputs[0]) if n.outputs else None
    if out is None:
        return None
    o = _prod(out)
    w = shapes.get(n.inputs[1]) if len(n.inputs) > 1 else None
    if n.op_type in ("Conv", "ConvInteger", "QLinearConv"):
        wi = 3 if n.op_type == "QLinearConv" else 1
        w = shapes.get(n.inputs[wi]) if len(n.inputs) > wi else None
        return o * _prod(w[1:]) if w else None
    if n.op_type in ("Gemm", "MatMul", "MatMulInteger"):
        a = shapes.get(n.inputs[0])
        k = (a[-1] if not n.attributes.get("transA") else a[-2]) if a else None
        return o * k if isinstance(k, int) and k > 0 else None
    if n.op_type == "ConvTranspose" and w:
        x = shapes.get(n.inputs[0])
        return _prod(x) * _prod(w[1:]) if x else None
    if n.op_type in _ONNX_ELEMENTWISE:
        return o
    if n.op_type in ("MaxPool", "AveragePool"):
        return o * _prod(n.attributes.get("kernel_shape") or [1])
    return 0


_MAX_TENSOR_BYTES = 1 << 50   # 1 PiB: a declared tensor size beyond it is corruption, not a model


def _onnx_facts(path: Path, data: bytes) -> ModelFacts:
    from .onnx_proto import read_onnx

    m = read_onnx(data)
    shapes = _onnx_shapes(data, m)
    dtypes = {v.name: v.dtype for v in [*m.value_info.values(), *m.inputs, *m.outputs]}
    tensors: List[TensorFact] = []
    index: Dict[str, int] = {}

    def add(name, shape, dtype, const, nbytes=None):
        nbytes = nbytes if nbytes is not None else _nbytes(shape, dtype)
        if nbytes > _MAX_TENSOR_BYTES:  # declared sizes are not bounded by the file (external data, shapes)
            raise ModelFormatError(f"corrupt ONNX model: tensor {name!r} declares shape {list(shape)[:8]} "
                                   f"(about 2**{nbytes.bit_length() - 1} bytes), beyond any real model")
        index[name] = len(tensors)
        tensors.append(TensorFact(len(tensors), name, tuple(shape), dtype, const,
                                  nbytes if nbytes is not None else _nbytes(shape, dtype)))

    for init in m.initializers.values():
        add(init.name, init.dims, init.dtype, True, init.nbytes or _nbytes(init.dims, init.dtype))
    for v in [*m.inputs, *m.value_info.values(), *m.outputs]:
        if v.name not in index:
            add(v.name, shapes.get(v.name, ()), v.dtype, False)
    ops: List[OpFact] = []
    for i, n in enumerate(m.nodes):
        for name in n.outputs:
            if name and name not in index:
                add(name, shapes.get(name, ()), dtypes.get(name, "float32"), False,
                    _nbytes(shapes[name], "float32") if name in shapes else 0)
        op = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
        ops.append(OpFact(i, op, 1, tuple(index.get(x, -1) for x in n.inputs),
                          tuple(index.get(x, -1) for x in n.outputs),
                          {"domain": n.domain, "name": n.name}, _onnx_macs(n, shapes)))

    def spec(v):
        return TensorSpec(v.name, tuple(d if isinstance(d, int) and d >= 0 else -1 for d in v.shape), v.dtype)

    opset = m.opsets.get("ai.onnx", m.opsets.get("", 0))
    facts = ModelFacts(
        path=str(path), format="onnx", file_bytes=len(data), sha256=sha256_bytes(data),
        tensors=tensors, ops=ops, inputs=[tensors[index[v.name]] for v in m.inputs],
        outputs=[tensors[index[v.name]] for v in m.outputs],
        io={"inputs": [spec(v) for v in m.inputs], "outputs": [spec(v) for v in m.outputs]},
        quantization=QuantMode.FP32, params=sum(i.size for i in m.initializers.values()),
        params_bytes=sum(t.nbytes for t in tensors if t.is_const), peak_activation_bytes=None,
        activations_total_bytes=sum(t.nbytes for t in tensors if not t.is_const),
        min_runtime_version=_ORT_FOR_OPSET.get(opset, f"an onnxruntime implementing opset {opset}"),
        min_runtime_version_source=f"onnxruntime release implementing ai.onnx opset {opset}",
        custom_ops=tuple(sorted({n.op_type for n in m.nodes if n.domain not in ("", "ai.onnx")})),
        header={"ir_version": m.ir_version, "producer": m.producer, "opsets": m.opsets},
        weight_dtypes=dict(Counter(i.dtype for i in m.initializers.values())),
        activation_dtypes=dict(Counter(tensors[o].dtype for op in ops for o in op.outputs if o >= 0)),
        raw=m)
    facts.quantization = quantization_mode(facts)
    facts.peak_activation_bytes = peak_activation_bytes(facts)
    return facts


# --------------------------------------------------------------------------- derived facts

def quantization_mode(facts: ModelFacts) -> QuantMode:
    """Detect how a model is quantized (see :class:`QuantMode`).

    TFLite: ``int8`` means integer compute (float I/O allowed through boundary QUANTIZE /
    DEQUANTIZE ops); an int16 main input of a compute op (not an LSTM's internal state) means
    ``int16x8``; float and integer compute ops side by side mean ``mixed``. ONNX: integer ops of
    dynamic quantization mean ``dynamic``, QDQ / QLinear ops mean ``int8``.
    """
    if facts.format == "onnx":
        types = {o.op for o in facts.ops}
        if types & _ONNX_DYNAMIC_Q:
            return QuantMode.DYNAMIC
        if types & _ONNX_STATIC_Q:
            return QuantMode.INT8
        if any(t.is_const and t.dtype == "float16" for t in facts.tensors):
            return QuantMode.FP16
        return QuantMode.FP32
    float_compute = int_compute = 0
    act16 = False
    for op in facts.ops:
        if op.op in BOUNDARY_OPS or op.op in _SHAPE_OPS:
            continue
        acts = [facts.tensors[i] for i in (*op.inputs, *op.outputs)
                if 0 <= i < len(facts.tensors) and not facts.tensors[i].is_const]
        if not acts:
            continue
        if any(t.dtype in ("float32", "float16") for t in acts):
            float_compute += 1
        elif any(t.dtype in ("int8", "uint8", "int16") for t in acts):  # int32/int64 alone = shape arithmetic
            int_compute += 1
            main = facts.tensor(op.inputs[0]) if op.inputs else None
            act16 = act16 or (main is not None and main.dtype == "int16" and "LSTM" not in op.op
                              and "RNN" not in op.op)
    weights = [t for t in facts.tensors if t.is_const and len(t.shape) >= 2]
    if float_compute and int_compute:
        return QuantMode.MIXED
    if int_compute:
        return QuantMode.INT16X8 if act16 else QuantMode.INT8
    if any(t.dtype in ("int8", "uint8", "int4") for t in weights):
        return QuantMode.DYNAMIC
    if any(t.dtype == "float16" for t in weights):
        return QuantMode.FP16
    return QuantMode.FP32


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


__all__ = ["QuantMode", "ModelFacts", "TensorFact", "OpFact", "read_facts", "sniff_format",
           "quantization_mode", "peak_activation_bytes", "BOUNDARY_OPS"]
