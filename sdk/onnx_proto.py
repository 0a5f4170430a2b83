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


def _one(msg: Dict[int, list], num: int):
    """The value of a singular field, or None. A repeated singular field is refused: protobuf would
    merge the copies (two graphs become one), which no exporter writes and no check here models."""
    v = msg.get(num)
    if not v:
        return None
    if len(v) > 1:
        raise ModelFormatError(
            f"corrupt ONNX file: singular field {num} appears {len(v)} times (e.g. two graphs in one file); "
            f"expected at most once")
    return v[0]


def _str(msg: Dict[int, list], num: int, default: str = "") -> str:
    v = _one(msg, num)
    if v is None:
        return default
    if not isinstance(v, memoryview):
        raise ModelFormatError(f"corrupt ONNX file: field {num} should be a string")
    return _utf8(v, num)


def _utf8(v: memoryview, num: int) -> str:
    """Protobuf strings are UTF-8; onnxruntime's Python API fails on names that are not."""
    try:
        return bytes(v).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelFormatError(f"corrupt ONNX file: string field {num} is not valid UTF-8 ({exc.reason} at byte "
                               f"{exc.start})") from None


def _strs(msg: Dict[int, list], num: int) -> List[str]:
    """A repeated string field (never ``bytes(int)``: a varint there would allocate its value in bytes)."""
    out = []
    for v in msg.get(num, []):
        if not isinstance(v, memoryview):
            raise ModelFormatError(f"corrupt ONNX file: repeated field {num} should hold strings")
        out.append(_utf8(v, num))
    return out


def _int(msg: Dict[int, list], num: int, default: int = 0) -> int:
    v = _one(msg, num)
    if v is None:
        return default
    if not isinstance(v, int):
        raise ModelFormatError(f"corrupt ONNX file: field {num} should be an integer")
    return v


def _ints(msg: Dict[int, list], num: int) -> List[int]:
    """Repeated int64, packed or not; values are two's complement."""
    out: List[int] = []
    for v in msg.get(num, []):
        if isinstance(v, int):
            out.append(v)
        elif isinstance(v, memoryview):
            pos, end = 0, len(v)
            while pos < end:
                x, pos = _varint(v, pos, end)
                out.append(x)
        else:
            raise ModelFormatError(f"corrupt ONNX file: field {num} should hold varint integers")
    return [x - (1 << 64) if x >= 1 << 63 else x for x in out]


def _count(msg: Dict[int, list], num: int, width: int) -> int:
    """Number of values in a repeated numeric field: fixed ``width`` bytes each, or varints (width 0)."""
    n = 0
    for v in msg.get(num, []):
        if isinstance(v, memoryview):
            if width:
                if len(v) % width:
                    raise ModelFormatError(f"corrupt ONNX file: packed field {num} is {len(v)} bytes, "
                                           f"not a multiple of {width}")
                n += len(v) // width
            else:
                n += sum(1 for byte in v.tobytes() if byte < 0x80)
        elif isinstance(v, int) != (width == 0) and not (isinstance(v, bytes) and len(v) == width):
            raise ModelFormatError(f"corrupt ONNX file: field {num} has the wrong wire type")
        else:
            n += 1
    return n


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
    location: str = ""   # external data file, relative to the model's folder

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
        tp = _sub(_one(m, 2))
        if tp.get(1):
            tt = _sub(_one(tp, 1))
            dtype = ONNX_DTYPES.get(_int(tt, 1), f"onnx_type_{_int(tt, 1)}")
            if tt.get(2):
                has_shape = True
                dims = []
                for d in _sub(_one(tt, 2)).get(1, []):
                    dm = _sub(d)
                    if 1 in dm:
                        v = _int(dm, 1)
                        v = v - (1 << 64) if v >= 1 << 63 else v
                        if not -1 <= v < 1 << 40:
                            raise ModelFormatError(f"corrupt ONNX model: {name!r} declares dimension {v}")
                        dims.append(v)
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
    raw = _one(m, 9)
    if raw is not None and not isinstance(raw, memoryview):
        raise ModelFormatError(f"corrupt ONNX model: initializer {name!r} raw_data is not bytes")
    nbytes = len(raw) if raw is not None else 0
    location = ""
    if external:
        for e in m.get(13, []):  # external_data: StringStringEntryProto {key 1, value 2}
            em = _sub(e)
            if _str(em, 1) == "location":
                location = _str(em, 2)
        if not location:
            raise ModelFormatError(f"corrupt ONNX model: initializer {name!r} is external but names no location")
    init = Initializer(name, dtype, dims, nbytes, external, location)
    item = _ITEM.get(dtype)
    if raw is not None and item is not None and nbytes != init.size * item:
        raise ModelFormatError(
            f"corrupt ONNX model: initializer {name!r} ({dtype}{list(dims)}) needs {init.size * item} bytes "
            f"but holds {nbytes}")
    if raw is None and not external:
        # typed repeated fields (float_data 4, int32_data 5, string_data 6, int64_data 7, double_data 10,
        # uint64_data 11): they must hold exactly one value per element (two for complex types), so a
        # declared shape can never ask the runtime for more memory than the file holds.
        counts = {4: _count(m, 4, 4), 5: _count(m, 5, 0), 6: len(m.get(6, [])), 7: _count(m, 7, 0),
                  10: _count(m, 10, 8), 11: _count(m, 11, 0)}
        held = sum(counts.values())
        want = init.size * (2 if dtype in ("complex64", "complex128") else 1)
        if held != want and not (dtype in ("uint4", "int4", "float4e2m1") and held == (want + 1) // 2):
            raise ModelFormatError(
                f"corrupt ONNX model: initializer {name!r} ({dtype}{list(dims)}) declares {want} values but "
                f"holds {held}")
        init.nbytes = sum(len(v) if isinstance(v, memoryview) else 8 for f in (4, 5, 7, 10, 11) for v in m.get(f, []))
    return init


def _attribute(m: Dict[int, list]):
    name = _str(m, 1)
    if 3 in m:
        return name, _int(m, 3)
    if 8 in m:
        return name, _ints(m, 8)
    if 2 in m:  # float
        v = _one(m, 2)
        if not isinstance(v, bytes) or len(v) != 4:
            raise ModelFormatError(f"corrupt ONNX file: attribute {name!r} float is not a 32-bit field")
        return name, struct.unpack("<f", v)[0]
    if 4 in m:
        return name, _str(m, 4)
    return name, None


def read_onnx(data: bytes) -> OnnxModel:
    """Parse and sanity-check an ONNX ModelProto; raise ModelFormatError when malformed.

    Every failure is a ModelFormatError: the checks above cover each wire-type variant, and
    anything a crafted file could still raise in Python is converted here.
    """
    try:
        return _read_onnx(data)
    except ModelFormatError:
        raise
    except (TypeError, ValueError, OverflowError, IndexError, KeyError, struct.error, RecursionError,
            MemoryError, UnicodeError) as exc:
        raise ModelFormatError(f"corrupt ONNX file ({type(exc).__name__}: {exc})") from None


def _read_onnx(data: bytes) -> OnnxModel:
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
    g = _sub(_one(model, 7))
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
        nodes.append(Node(_str(nm, 3), _str(nm, 4), _str(nm, 7), _strs(nm, 1), _strs(nm, 2), attrs))
    if not nodes:
        raise ModelFormatError("ONNX model's graph has no nodes")
    if not inputs or not outputs:
        raise ModelFormatError("ONNX model's graph declares no inputs or no outputs")
    return OnnxModel(ir, _str(model, 2), opsets, _str(g, 2), inputs, outputs, vinfo, inits, nodes, len(data))
