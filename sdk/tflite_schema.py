"""A bounds-checked, pure-Python reader of the TFLite flatbuffer schema.

Why our own reader: the native interpreters trust the bytes they are given, and
a truncated or mutated file can crash the Python process. Every offset read
here is checked against the buffer, and :func:`read_tflite` then checks the
model's meaning (tensor/buffer/opcode indices, constant sizes, quantization)
so a bad file becomes a :class:`~edgeship.errors.ModelFormatError` instead.
It is also the one place inspect, check and the targets read model structure.

Example:
    >>> from edgeship.tflite_schema import read_tflite
    >>> read_tflite(b"not a model")
    Traceback (most recent call last):
    ...
    edgeship.errors.ModelFormatError: not a TFLite flatbuffer: 11 bytes is too short (a model has at least 24)
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from .errors import ModelFormatError
from .spec import Quantization
from .tflite_checks import check_dataflow, check_model_inputs, check_operators
from .tflite_ops import ITEM_SIZE, TENSOR_TYPES, op_name

FILE_IDENTIFIER = b"TFL3"
MAX_RANK = 16          # far above any real model; guards absurd shapes
MAX_ELEMENTS = 1 << 40
CUSTOM_CODE = 32       # BuiltinOperator.CUSTOM


class _Buf:
    """Checked little-endian reads from a flatbuffer."""

    __slots__ = ("b", "n")

    def __init__(self, data: bytes):
        self.b = memoryview(data).cast("B") if not isinstance(data, memoryview) else data
        self.n = len(self.b)

    def _need(self, pos: int, size: int, what: str) -> None:
        if pos < 0 or size < 0 or pos + size > self.n:
            raise ModelFormatError(
                f"corrupt TFLite flatbuffer: {what} at byte {pos} (+{size}) lies outside the "
                f"{self.n}-byte file (truncated or damaged)"
            )

    def u8(self, pos, what="byte"):
        self._need(pos, 1, what)
        return self.b[pos]

    def i8(self, pos, what="byte"):
        self._need(pos, 1, what)
        return struct.unpack_from("<b", self.b, pos)[0]

    def u16(self, pos, what="u16"):
        self._need(pos, 2, what)
        return struct.unpack_from("<H", self.b, pos)[0]

    def i32(self, pos, what="i32"):
        self._need(pos, 4, what)
        return struct.unpack_from("<i", self.b, pos)[0]

    def u32(self, pos, what="u32"):
        self._need(pos, 4, what)
        return struct.unpack_from("<I", self.b, pos)[0]

    def u64(self, pos, what="u64"):
        self._need(pos, 8, what)
        return struct.unpack_from("<Q", self.b, pos)[0]


class _Table:
    """A flatbuffer table: fields looked up through its vtable, all reads checked."""

    __slots__ = ("buf", "pos", "vt", "vt_len", "size", "kind")

    def __init__(self, buf: _Buf, pos: int, kind: str):
        self.buf, self.pos, self.kind = buf, pos, kind
        vt = pos - buf.i32(pos, f"{kind} vtable offset")
        vt_len = buf.u16(vt, f"{kind} vtable")
        size = buf.u16(vt + 2, f"{kind} vtable")
        if vt_len < 4 or vt_len % 2:
            raise ModelFormatError(f"corrupt TFLite flatbuffer: {kind} vtable length {vt_len} is invalid")
        buf._need(vt, vt_len, f"{kind} vtable")
        buf._need(pos, max(size, 4), f"{kind} table")
        self.vt, self.vt_len, self.size = vt, vt_len, size

    def _off(self, slot: int) -> int:
        if slot >= self.vt_len:
            return 0
        o = self.buf.u16(self.vt + slot)
        if o and o >= self.size:
            raise ModelFormatError(
                f"corrupt TFLite flatbuffer: {self.kind} field at offset {o} is outside its {self.size}-byte table")
        return o

    def scalar(self, slot: int, fmt: str, default=0):
        o = self._off(slot)
        if not o:
            return default
        size = struct.calcsize(fmt)
        self.buf._need(self.pos + o, size, f"{self.kind} field")
        return struct.unpack_from("<" + fmt, self.buf.b, self.pos + o)[0]

    def _indirect(self, slot: int) -> Optional[int]:
        o = self._off(slot)
        if not o:
            return None
        p = self.pos + o
        return p + self.buf.u32(p, f"{self.kind} reference")

    def table(self, slot: int, kind: str) -> Optional["_Table"]:
        p = self._indirect(slot)
        return None if p is None else _Table(self.buf, p, kind)

    def _vector(self, slot: int, elem: int, what: str) -> Tuple[int, int]:
        p = self._indirect(slot)
        if p is None:
            return 0, 0
        n = self.buf.u32(p, what)
        self.buf._need(p + 4, n * elem, what)
        return p + 4, n

    def vector(self, slot: int, fmt: str, what: str) -> tuple:
        start, n = self._vector(slot, struct.calcsize(fmt), what)
        if not n:
            return ()
        return struct.unpack_from(f"<{n}{fmt}", self.buf.b, start)

    def bytes_(self, slot: int, what: str) -> Optional[memoryview]:
        p = self._indirect(slot)
        if p is None:
            return None
        n = self.buf.u32(p, what)
        self.buf._need(p + 4, n, what)
        return self.buf.b[p + 4:p + 4 + n]

    def string(self, slot: int, what: str) -> Optional[str]:
        raw = self.bytes_(slot, what)
        return None if raw is None else bytes(raw).decode("utf-8", errors="replace")

    def tables(self, slot: int, kind: str) -> List["_Table"]:
        start, n = self._vector(slot, 4, f"{kind} list")
        out = []
        for i in range(n):
            p = start + 4 * i
            out.append(_Table(self.buf, p + self.buf.u32(p, kind), kind))
        return out


@dataclass(frozen=True)
class OpCode:
    name: str               # builtin op name, or the custom code for CUSTOM ops
    builtin_code: int
    custom_code: Optional[str]
    version: int


@dataclass
class Tensor:
    index: int
    name: str
    shape: Tuple[int, ...]
    shape_signature: Tuple[int, ...]   # -1 marks a dynamic dimension
    dtype: str
    type_code: int
    buffer: int
    quantization: Optional[Quantization]
    is_variable: bool
    has_data: bool = False          # a constant (weights) tensor
    data_bytes: int = 0

    @property
    def is_dynamic(self) -> bool:
        return any(d < 0 for d in self.shape_signature)


@dataclass
class Operator:
    index: int
    opcode_index: int
    op: str
    version: int
    inputs: Tuple[int, ...]
    outputs: Tuple[int, ...]
    builtin_options_type: int
    builtin_options: Dict[str, float] = field(default_factory=dict)
    custom_options: Optional[bytes] = None


@dataclass
class Subgraph:
    name: str
    tensors: List[Tensor]
    inputs: Tuple[int, ...]
    outputs: Tuple[int, ...]
    operators: List[Operator]


@dataclass
class TFLiteModel:
    version: int
    description: str
    operator_codes: List[OpCode]
    subgraphs: List[Subgraph]
    buffers: List[Optional[memoryview]]
    metadata: Dict[str, bytes]
    signature_keys: List[str]
    size: int

    @property
    def main(self) -> Subgraph:
        return self.subgraphs[0]

    @property
    def custom_ops(self) -> List[str]:
        return [c.custom_code or "" for c in self.operator_codes if c.builtin_code == CUSTOM_CODE]

    @property
    def is_edgetpu_compiled(self) -> bool:
        return "edgetpu-custom-op" in self.custom_ops

    def buffer_data(self, tensor: Tensor) -> Optional[memoryview]:
        if 0 < tensor.buffer < len(self.buffers):
            return self.buffers[tensor.buffer]
        return None


# Builtin options we parse (union type code -> (name, [(field, slot, fmt, default)])).
_OPTIONS = {
    1: ("Conv2DOptions", [("padding", 4, "b", 0), ("stride_w", 6, "i", 0), ("stride_h", 8, "i", 0),
                          ("fused_activation", 10, "b", 0), ("dilation_w", 12, "i", 1), ("dilation_h", 14, "i", 1)]),
    2: ("DepthwiseConv2DOptions", [("padding", 4, "b", 0), ("stride_w", 6, "i", 0), ("stride_h", 8, "i", 0),
                                   ("depth_multiplier", 10, "i", 0), ("fused_activation", 12, "b", 0),
                                   ("dilation_w", 14, "i", 1), ("dilation_h", 16, "i", 1)]),
    5: ("Pool2DOptions", [("padding", 4, "b", 0), ("stride_w", 6, "i", 0), ("stride_h", 8, "i", 0),
                          ("filter_w", 10, "i", 0), ("filter_h", 12, "i", 0), ("fused_activation", 14, "b", 0)]),
    8: ("FullyConnectedOptions", [("fused_activation", 4, "b", 0), ("weights_format", 6, "b", 0),
                                  ("keep_num_dims", 8, "b", 0)]),
    9: ("SoftmaxOptions", [("beta", 4, "f", 0.0)]),
    10: ("ConcatenationOptions", [("axis", 4, "i", 0), ("fused_activation", 6, "b", 0)]),
    11: ("AddOptions", [("fused_activation", 4, "b", 0)]),
    21: ("MulOptions", [("fused_activation", 4, "b", 0)]),
    27: ("ReducerOptions", [("keep_dims", 4, "b", 0)]),
    28: ("SubOptions", [("fused_activation", 4, "b", 0)]),
}


def _quantization(t: Optional[_Table], rank: int, where: str) -> Optional[Quantization]:
    if t is None:
        return None
    scale = t.vector(8, "f", f"{where} scales")
    zp = t.vector(10, "q", f"{where} zero points")
    if not scale:
        return None
    if zp and len(zp) != len(scale):
        raise ModelFormatError(
            f"corrupt TFLite model: {where} has {len(scale)} scales but {len(zp)} zero points")
    axis = t.scalar(16, "i", 0)
    if len(scale) > 1 and not (0 <= axis < max(rank, 1)):
        raise ModelFormatError(
            f"corrupt TFLite model: {where} quantized_dimension {axis} is outside rank {rank}")
    return Quantization(tuple(float(s) for s in scale), tuple(int(z) for z in (zp or (0,) * len(scale))),
                        axis if len(scale) > 1 else None)


def _read_tensor(t: _Table, i: int, n_buffers: int) -> Tensor:
    name = t.string(10, "tensor name") or f"tensor_{i}"
    shape = t.vector(4, "i", f"tensor {name!r} shape")
    sig = t.vector(18, "i", f"tensor {name!r} shape signature") or shape
    code = t.scalar(6, "b", 0)
    dtype = TENSOR_TYPES.get(code)
    if dtype is None:
        raise ModelFormatError(f"corrupt TFLite model: tensor {name!r} has unknown type code {code}")
    if len(shape) > MAX_RANK or any(d < 0 for d in shape):
        raise ModelFormatError(f"corrupt TFLite model: tensor {name!r} has invalid shape {list(shape)}")
    if len(sig) != len(shape) or any(d < -1 or (d != -1 and d != s) for d, s in zip(sig, shape)):
        raise ModelFormatError(
            f"corrupt TFLite model: tensor {name!r} shape signature {list(sig)} does not match shape {list(shape)}")
    buffer = t.scalar(8, "I", 0)
    if buffer >= n_buffers:
        raise ModelFormatError(
            f"corrupt TFLite model: tensor {name!r} refers to buffer {buffer} but the model has {n_buffers}")
    quant = _quantization(t.table(12, "QuantizationParameters"), len(shape), f"tensor {name!r}")
    if quant is not None and quant.axis is not None and not 0 <= quant.axis < len(shape):
        raise ModelFormatError(
            f"corrupt TFLite model: tensor {name!r} is quantized along axis {quant.axis} but has rank {len(shape)}")
    if quant is not None and quant.axis is not None and len(quant.scale) != shape[quant.axis]:
        raise ModelFormatError(
            f"corrupt TFLite model: tensor {name!r} has {len(quant.scale)} per-channel scales for "
            f"{shape[quant.axis]} channels on axis {quant.axis}")
    return Tensor(i, name, tuple(shape), tuple(sig), dtype, code, buffer, quant, bool(t.scalar(14, "B", 0)))


# Builtin ops whose inputs are all required except the positions listed (-1 marks an omitted
# optional input). Ops not listed (LSTMs, ...) are not checked here; the isolation probe covers them.
_OPTIONAL_INPUTS = {
    "CONV_2D": (2,), "DEPTHWISE_CONV_2D": (2,), "FULLY_CONNECTED": (2,), "TRANSPOSE_CONV": (3,),
    "CONV_3D": (2,),
    **{name: () for name in (
        "ADD", "SUB", "MUL", "DIV", "AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D", "SOFTMAX", "LOGISTIC",
        "TANH", "RELU", "RELU6", "RELU_N1_TO_1", "LEAKY_RELU", "PRELU", "HARD_SWISH", "RESHAPE", "SQUEEZE",
        "EXPAND_DIMS", "CONCATENATION", "MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "QUANTIZE", "DEQUANTIZE",
        "PAD", "PADV2", "TRANSPOSE", "STRIDED_SLICE", "SLICE", "GATHER", "RESIZE_BILINEAR",
        "RESIZE_NEAREST_NEIGHBOR", "MAXIMUM", "MINIMUM", "ARG_MAX", "ARG_MIN", "SHAPE", "PACK", "UNPACK",
        "SPLIT", "SPLIT_V", "BATCH_MATMUL", "SQUARED_DIFFERENCE", "RSQRT", "SQRT", "EXP", "LOG", "ABS",
        "NEG", "POW", "L2_NORMALIZATION", "LOCAL_RESPONSE_NORMALIZATION", "SPACE_TO_DEPTH", "DEPTH_TO_SPACE",
        "CAST", "FLOOR", "ELU", "GELU", "MIRROR_PAD", "TILE", "BROADCAST_TO", "LOG_SOFTMAX")},
}


def _read_operator(t: _Table, i: int, codes: List[OpCode], n_tensors: int, sg: str) -> Operator:
    idx = t.scalar(4, "I", 0)
    if idx >= len(codes):
        raise ModelFormatError(
            f"corrupt TFLite model: operator {i} of {sg} uses opcode {idx} but the model defines {len(codes)}")
    ins = t.vector(6, "i", f"operator {i} inputs")
    outs = t.vector(8, "i", f"operator {i} outputs")
    for kind, lst, lo in (("input", ins, -1), ("output", outs, 0)):
        bad = [x for x in lst if not lo <= x < n_tensors]
        if bad:
            raise ModelFormatError(
                f"corrupt TFLite model: operator {i} ({codes[idx].name}) of {sg} has {kind} tensor index "
                f"{bad[0]} outside 0..{n_tensors - 1}")
    code = codes[idx]
    optional = _OPTIONAL_INPUTS.get(code.name)
    if optional is not None:
        missing = [k for k, x in enumerate(ins) if x == -1 and k not in optional]
        if missing:  # LiteRT's kernels dereference required inputs: a -1 there crashes the process
            raise ModelFormatError(
                f"corrupt TFLite model: operator {i} ({code.name}) of {sg} leaves its required input {missing[0]} "
                f"empty (tensor index -1)")
    opt_type = t.scalar(10, "B", 0)
    options: Dict[str, float] = {}
    if opt_type in _OPTIONS:
        ot = t.table(12, _OPTIONS[opt_type][0])
        if ot is not None:
            options = {f: ot.scalar(slot, fmt, d) for f, slot, fmt, d in _OPTIONS[opt_type][1]}
    custom = t.bytes_(14, f"operator {i} custom options")
    return Operator(i, idx, code.name, code.version, tuple(ins), tuple(outs), opt_type, options,
                    bytes(custom) if custom is not None else None)


def _read_buffers(root: _Table, buf: _Buf) -> List[Optional[memoryview]]:
    out: List[Optional[memoryview]] = []
    for b in root.tables(12, "Buffer"):
        data = b.bytes_(4, "buffer data")
        offset, size = b.scalar(6, "Q", 0), b.scalar(8, "Q", 0)
        if offset > 1:  # large models keep buffers after the flatbuffer
            buf._need(offset, size, "external buffer")
            data = buf.b[offset:offset + size]
        out.append(data if data is not None and len(data) else None)
    return out


def read_tflite(data: bytes) -> TFLiteModel:
    """Parse and verify a TFLite model; raise ModelFormatError on anything malformed.

    Args:
        data: the bytes of a ``.tflite`` file.

    Returns:
        A :class:`TFLiteModel` with operator codes, subgraphs (tensors and
        operators), buffers, metadata and signature keys.
    """
    n = len(data)
    if n < 24:
        raise ModelFormatError(f"not a TFLite flatbuffer: {n} bytes is too short (a model has at least 24)")
    if bytes(data[4:8]) != FILE_IDENTIFIER:
        raise ModelFormatError(
            f"not a TFLite flatbuffer: expected file identifier {FILE_IDENTIFIER!r} at byte 4, "
            f"found {bytes(data[4:8])!r}")
    buf = _Buf(data)
    root = _Table(buf, buf.u32(0, "root"), "Model")
    version = root.scalar(4, "I", 0)
    if version != 3:
        raise ModelFormatError(f"unsupported TFLite schema version {version} (expected 3)")
    codes = []
    for c in root.tables(6, "OperatorCode"):
        deprecated = c.scalar(4, "b", 0)
        builtin = max(c.scalar(10, "i", 0), deprecated)
        custom = c.string(6, "custom code")
        name = op_name(builtin)
        codes.append(OpCode(custom if name == "CUSTOM" and custom else name, builtin, custom,
                            c.scalar(8, "i", 1)))
    buffers = _read_buffers(root, buf)
    subgraphs = []
    for si, s in enumerate(root.tables(8, "SubGraph")):
        sg = s.string(12, "subgraph name") or f"subgraph {si}"
        tensors = [_read_tensor(t, i, len(buffers)) for i, t in enumerate(s.tables(4, "Tensor"))]
        nt = len(tensors)
        ins, outs = s.vector(6, "i", "subgraph inputs"), s.vector(8, "i", "subgraph outputs")
        for kind, lst in (("input", ins), ("output", outs)):
            bad = [x for x in lst if not 0 <= x < nt]
            if bad:
                raise ModelFormatError(
                    f"corrupt TFLite model: {sg} {kind} refers to tensor {bad[0]} but it has {nt} tensors")
        op_tables = s.tables(10, "Operator")
        ops = [_read_operator(o, i, codes, nt, sg) for i, o in enumerate(op_tables)]
        check_operators(sg, ops, op_tables, tensors, buffers)  # option values and types the kernels trust
        check_dataflow(sg, ops, ins, tensors, buffers)
        subgraphs.append(Subgraph(sg, tensors, tuple(ins), tuple(outs), ops))
    if not subgraphs:
        raise ModelFormatError("corrupt TFLite model: it has no subgraph")
    if not subgraphs[0].inputs or not subgraphs[0].outputs:
        raise ModelFormatError("TFLite model's main subgraph declares no inputs or no outputs")
    check_model_inputs(subgraphs[0].name, subgraphs[0].inputs, subgraphs[0].tensors, buffers)
    model = TFLiteModel(version, root.string(10, "description") or "", codes, subgraphs, buffers, {},
                        [], n)
    _check_constants(model)
    for m in root.tables(16, "Metadata"):
        name, b = m.string(4, "metadata name") or "", m.scalar(6, "I", 0)
        if b >= len(buffers):
            raise ModelFormatError(f"corrupt TFLite model: metadata {name!r} refers to missing buffer {b}")
        model.metadata[name] = bytes(buffers[b]) if buffers[b] is not None else b""
    model.signature_keys = [sd.string(8, "signature key") or "" for sd in root.tables(18, "SignatureDef")]
    return model


def _check_constants(model: TFLiteModel) -> None:
    """A constant's byte size must match its shape and type, or kernels read past the end."""
    for sg in model.subgraphs:
        for t in sg.tensors:
            data = model.buffer_data(t)
            if data is None:
                continue
            t.has_data, t.data_bytes = True, len(data)
            count = 1
            for d in t.shape:
                count *= d
            if count > MAX_ELEMENTS:
                raise ModelFormatError(f"corrupt TFLite model: tensor {t.name!r} shape {list(t.shape)} is absurd")
            item = ITEM_SIZE.get(t.dtype)
            if item is not None and len(data) != count * item:
                raise ModelFormatError(
                    f"corrupt TFLite model: constant tensor {t.name!r} ({t.dtype}{list(t.shape)}) needs "
                    f"{count * item} bytes but its buffer holds {len(data)}")


def min_runtime_version(model: TFLiteModel) -> Optional[str]:
    """The ``min_runtime_version`` the converter recorded in the model's metadata, if any."""
    raw = model.metadata.get("min_runtime_version")
    if not raw:
        return None
    return raw.split(b"\0", 1)[0].decode("ascii", errors="replace") or None
