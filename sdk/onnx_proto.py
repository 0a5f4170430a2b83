"""A bounds-checked, pure-Python reader of the ONNX protobuf (the fields edgeship needs).

The runtime path must not import the ``onnx`` package, yet a bad ``.onnx`` file
must be refused before onnxruntime sees it, and ``inspect`` needs the node
list. Protobuf's wire format is small enough to read directly.

Example:
    >>> from edgeship.onnx_proto import read_onnx
    >>> read_onnx(b"\\x08\\x07\\x12\\x00")
    Traceback (most recent call last):
    ...
    edgeship.errors.ModelFormatError: not an ONNX model: the file holds no graph (ModelProto field 7)
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from .errors import ModelFormatError

# TensorProto.DataType -> numpy dtype name
ONNX_DTYPES = {
    1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 8: "string",
    9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 14: "complex64",
    15: "complex128", 16: "bfloat16", 17: "float8e4m3fn", 18: "float8e4m3fnuz", 19: "float8e5m2",
    20: "float8e5m2fnuz", 21: "uint4", 22: "int4", 23: "float4e2m1",
}
_MAX_DEPTH = 64


def _varint(b: memoryview, pos: int, end: int) -> Tuple[int, int]:
    shift = result = 0
    while True:
        if pos >= end:
            raise ModelFormatError(f"corrupt ONNX file: varint runs past the end of the data at byte {pos}")
        byte = b[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ModelFormatError(f"corrupt ONNX file: varint longer than 10 bytes at byte {pos}")


def parse_message(b: memoryview, start: int = 0, end: Optional[int] = None) -> Dict[int, list]:
    """Split one protobuf message into {field number: [values]} (bytes fields stay memoryviews)."""
    end = len(b) if end is None else end
    out: Dict[int, list] = {}
    pos = start
    while pos < end:
        key, pos = _varint(b, pos, end)
        num, wt = key >> 3, key & 7
        if num == 0:
            raise ModelFormatError(f"corrupt ONNX file: field number 0 at byte {pos}")
        if wt == 0:
            val, pos = _varint(b, pos, end)
        elif wt == 1:
            if pos + 8 > end:
                raise ModelFormatError(f"corrupt ONNX file: truncated 64-bit field at byte {pos}")
            val, pos = bytes(b[pos:pos + 8]), pos + 8
        elif wt == 2:
            n, pos = _varint(b, pos, end)
            if pos + n > end:
                raise ModelFormatError(
                    f"corrupt ONNX file: field {num} claims {n} bytes at byte {pos} but only {end - pos} remain")
            val, pos = b[pos:pos + n], pos + n
        elif wt == 5:
            if pos + 4 > end:
                raise ModelFormatError(f"corrupt ONNX file: truncated 32-bit field at byte {pos}")
            val, pos = bytes(b[pos:pos + 4]), pos + 4
        else:
            raise ModelFormatError(f"corrupt ONNX file: unsupported protobuf wire type {wt} at byte {pos}")
        out.setdefault(num, []).append(val)
    return out


def _sub(v) -> Dict[int, list]:
    if not isinstance(v, memoryview):
        raise ModelFormatError("corrupt ONNX file: expected a nested message, found a scalar")
    return parse_message(v)


def _str(msg: Dict[int, list], num: int, default: str = "") -> str:
    v = msg.get(num)
    if not v:
        return default
    if not isinstance(v[-1], memoryview):
        raise ModelFormatError(f"corrupt ONNX file: field {num} should be a string")
    return bytes(v[-1]).decode("utf-8", errors="replace")


def _int(msg: Dict[int, list], num: int, default: int = 0) -> int:
    v = msg.get(num)
    if not v:
        return default
    if not isinstance(v[-1], int):
        raise ModelFormatError(f"corrupt ONNX file: field {num} should be an integer")
    return v[-1]


def _ints(msg: Dict[int, list], num: int) -> List[int]:
    """Repeated int64, packed or not; values are two's complement."""
    out: List[int] = []
    for v in msg.get(num, []):
        if isinstance(v, int):
            out.append(v)
        else:
            pos, end = 0, len(v)
            while pos < end:
                x, pos = _varint(v, pos, end)
                out.append(x)
    return [x - (1 << 64) if x >= 1 << 63 else x for x in out]


@dataclass
class ValueInfo:
    name: str
    dtype: str
    shape: Tuple[object, ...]   # int, or str for a symbolic dimension, or None when unknown
    has_shape: bool


@dataclass
class Initializer:
    name: str
    dtype: str
    dims: Tuple[int, ...]
    nbytes: int
    external: bool

    @property
    def size(self) -> int:
        n = 1
        for d in self.dims:
            n *= d
        return n


@dataclass
class Node:
    name: str
    op_type: str
    domain: str
    inputs: List[str]
    outputs: List[str]
    attributes: Dict[str, object] = field(default_factory=dict)


@dataclass
class OnnxModel:
    ir_version: int
    producer: str
    opsets: Dict[str, int]
    graph_name: str
    inputs: List[ValueInfo]
    outputs: List[ValueInfo]
    value_info: Dict[str, ValueInfo]
    initializers: Dict[str, Initializer]
    nodes: List[Node]
    size: int


def _value_info(m: Dict[int, list]) -> ValueInfo:
    name = _str(m, 1)
    dtype, shape, has_shape = "unknown", (), False
    if m.get(2):
        tp = _sub(m[2][-1])
        if tp.get(1):
            tt = _sub(tp[1][-1])
            dtype = ONNX_DTYPES.get(_int(tt, 1), f"onnx_type_{_int(tt, 1)}")
            if tt.get(2):
                has_shape = True
                dims = []
                for d in _sub(tt[2][-1]).get(1, []):
                    dm = _sub(d)
                    if 1 in dm:
                        dims.append(_int(dm, 1))
                    elif 2 in dm:
                        dims.append(_str(dm, 2))
                    else:
                        dims.append(None)
                shape = tuple(dims)
    return ValueInfo(name, dtype, shape, has_shape)


_ITEM = {"float32": 4, "uint8": 1, "int8": 1, "uint16": 2, "int16": 2, "int32": 4, "int64": 8, "bool": 1,
         "float16": 2, "float64": 8, "uint32": 4, "uint64": 8, "bfloat16": 2}


def _initializer(m: Dict[int, list]) -> Initializer:
    name = _str(m, 8)
    dims = tuple(_ints(m, 1))
    if any(d < 0 for d in dims):
        raise ModelFormatError(f"corrupt ONNX model: initializer {name!r} has negative dims {list(dims)}")
    dtype = ONNX_DTYPES.get(_int(m, 2), f"onnx_type_{_int(m, 2)}")
    external = _int(m, 14) == 1
    raw = m.get(9)
    nbytes = len(raw[-1]) if raw else 0
    init = Initializer(name, dtype, dims, nbytes, external)
    item = _ITEM.get(dtype)
    if raw and item is not None and nbytes != init.size * item:
        raise ModelFormatError(
            f"corrupt ONNX model: initializer {name!r} ({dtype}{list(dims)}) needs {init.size * item} bytes "
            f"but holds {nbytes}")
    if not raw and not external:
        # typed repeated fields: packed data length is a lower bound check only
        init.nbytes = sum(len(v) if isinstance(v, memoryview) else 8 for f in (4, 5, 7, 10, 11) for v in m.get(f, []))
    return init


def _attribute(m: Dict[int, list]):
    name = _str(m, 1)
    if 3 in m:
        return name, _int(m, 3)
    if 8 in m:
        return name, _ints(m, 8)
    if 2 in m:  # float
        return name, struct.unpack("<f", m[2][-1])[0]
    if 4 in m:
        return name, _str(m, 4)
    return name, None


def read_onnx(data: bytes) -> OnnxModel:
    """Parse and sanity-check an ONNX ModelProto; raise ModelFormatError when malformed."""
    if len(data) < 4:
        raise ModelFormatError(f"not an ONNX model: {len(data)} bytes")
    b = memoryview(data).cast("B")
    model = parse_message(b)
    if not model.get(7):
        raise ModelFormatError("not an ONNX model: the file holds no graph (ModelProto field 7)")
    ir = _int(model, 1)
    if not 1 <= ir <= 64:
        raise ModelFormatError(f"not an ONNX model: ir_version {ir} is out of range")
    opsets = {}
    for o in model.get(8, []):
        om = _sub(o)
        opsets[_str(om, 1) or "ai.onnx"] = _int(om, 2)
    g = _sub(model[7][-1])
    inits = {}
    for t in g.get(5, []):
        init = _initializer(_sub(t))
        inits[init.name] = init
    init_names = set(inits)
    inputs = [vi for vi in (_value_info(_sub(v)) for v in g.get(11, [])) if vi.name not in init_names]
    outputs = [_value_info(_sub(v)) for v in g.get(12, [])]
    vinfo = {vi.name: vi for vi in (_value_info(_sub(v)) for v in g.get(13, []))}
    nodes = []
    for nv in g.get(1, []):
        nm = _sub(nv)
        attrs = dict(_attribute(_sub(a)) for a in nm.get(5, []))
        nodes.append(Node(_str(nm, 3), _str(nm, 4), _str(nm, 7), [bytes(x).decode("utf-8", "replace") for x in nm.get(1, [])],
                          [bytes(x).decode("utf-8", "replace") for x in nm.get(2, [])], attrs))
    if not nodes:
        raise ModelFormatError("ONNX model's graph has no nodes")
    if not inputs or not outputs:
        raise ModelFormatError("ONNX model's graph declares no inputs or no outputs")
    return OnnxModel(ir, _str(model, 2), opsets, _str(g, 2), inputs, outputs, vinfo, inits, nodes, len(data))
