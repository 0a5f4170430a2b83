"""Structured mutations of ONNX protobuf files: wire-type changes, huge declared sizes, repeated
singular fields, out-of-range dims and data counts (shared by tests and bench/fuzz.py).

A file is decoded into a tree of ``[num, wire_type, value]`` fields, where the value of a field
known to be a message is itself a list of fields; a mutation edits one node and re-encodes.
"""
from __future__ import annotations

import random
from typing import List, Tuple

# (message kind, field number) -> kind of the nested message
_NESTED = {
    ("model", 7): "graph", ("model", 8): "opset",
    ("graph", 1): "node", ("graph", 5): "tensor", ("graph", 11): "vi", ("graph", 12): "vi", ("graph", 13): "vi",
    ("node", 5): "attr", ("attr", 5): "tensor", ("attr", 6): "graph",
    ("vi", 2): "type", ("type", 1): "ttype", ("ttype", 2): "shape", ("shape", 1): "dim",
}
HUGE = (1 << 31, 1 << 32, (1 << 63) - 1, (1 << 64) - 1, 1 << 62, 0x7FFFFFFF, 1 << 40)


def varint(x: int) -> bytes:
    x &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = x & 0x7F
        x >>= 7
        if x:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _read_varint(b: bytes, pos: int) -> Tuple[int, int]:
    shift = result = 0
    while True:
        byte = b[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def decode(b: bytes, kind: str = "model") -> list:
    """Fields of a (well-formed) message; known nested messages are decoded recursively."""
    out, pos = [], 0
    while pos < len(b):
        key, pos = _read_varint(b, pos)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, pos = _read_varint(b, pos)
        elif wt == 1:
            val, pos = b[pos:pos + 8], pos + 8
        elif wt == 5:
            val, pos = b[pos:pos + 4], pos + 4
        elif wt == 2:
            n, pos = _read_varint(b, pos)
            val, pos = b[pos:pos + n], pos + n
            sub = _NESTED.get((kind, num))
            if sub:
                val = (sub, decode(val, sub))
        else:
            raise ValueError(f"wire type {wt}")
        out.append([num, wt, val])
    return out


def encode(fields: list) -> bytes:
    out = bytearray()
    for num, wt, val in fields:
        out += varint((num << 3) | wt)
        if wt == 0:
            out += varint(val)
        elif wt in (1, 5):
            out += val
        elif wt == 2:
            body = encode(val[1]) if isinstance(val, tuple) else bytes(val)
            out += varint(len(body)) + body
        else:  # an invalid wire type: emit some bytes after the key
            out += bytes(val) if isinstance(val, (bytes, bytearray)) else b"\x00"
    return bytes(out)


def _nodes(fields: list, path=()) -> List[Tuple[list, int]]:
    """Every (containing list, index) in the tree."""
    out = []
    for i, f in enumerate(fields):
        out.append((fields, i))
        if f[1] == 2 and isinstance(f[2], tuple):
            out += _nodes(f[2][1], path + (i,))
    return out


def _copy(fields: list) -> list:
    return [[n, w, (v[0], _copy(v[1])) if isinstance(v, tuple) else v] for n, w, v in fields]


def _scalar(rng: random.Random, wt: int):
    if wt == 0:
        return rng.choice(HUGE + (0, 1, 2, 7, 255))
    if wt == 1:
        return rng.randbytes(8)
    if wt == 5:
        return rng.randbytes(4)
    if wt == 2:
        return rng.randbytes(rng.randint(0, 12))
    return rng.randbytes(rng.randint(0, 4))


KINDS = ("wire_type", "huge_varint", "huge_length", "duplicate_singular", "drop_field", "dims",
         "empty_message", "field_number")


def mutate(data: bytes, rng: random.Random, kind: str = "") -> Tuple[bytes, str]:
    """One structured mutation of an ONNX file; returns (bytes, what was done)."""
    tree = _copy(decode(data))
    nodes = _nodes(tree)
    kind = kind or rng.choice(KINDS)
    holder, i = rng.choice(nodes)
    num, wt, val = holder[i]
    if kind == "wire_type":
        new = rng.choice([w for w in (0, 1, 2, 3, 4, 5, 6, 7) if w != wt])
        holder[i] = [num, new, _scalar(rng, new) if not (new == 2 and wt == 2) else val]
    elif kind == "huge_varint":
        ints = [(h, j) for h, j in nodes if h[j][1] == 0] or [(holder, i)]
        h, j = rng.choice(ints)
        h[j] = [h[j][0], 0, rng.choice(HUGE)]
    elif kind == "huge_length":
        body = encode(tree)
        # re-encode one length-delimited field with a length far beyond the file
        lens = [(h, j) for h, j in nodes if h[j][1] == 2]
        h, j = rng.choice(lens) if lens else (holder, i)
        marker = rng.randbytes(6)
        h[j] = [h[j][0], 7, marker]  # placeholder, replaced below
        body = encode(tree)
        key = varint((h[j][0] << 3) | 7) + marker
        pos = body.find(key)
        fixed = varint((h[j][0] << 3) | 2) + varint(rng.choice(HUGE)) + b"\x08\x01"
        return (body[:pos] + fixed + body[pos + len(key):]) if pos >= 0 else body, kind
    elif kind == "duplicate_singular":
        holder.insert(i, [num, wt, val])
    elif kind == "drop_field":
        del holder[i]
    elif kind == "dims":
        # a dimension or tensor dims entry set to something absurd
        ints = [(h, j) for h, j in nodes if h[j][1] == 0 and h[j][0] in (1, 2)] or [(holder, i)]
        h, j = rng.choice(ints)
        h[j] = [h[j][0], 0, rng.choice(HUGE + ((1 << 64) - 1, (1 << 64) - 5))]
    elif kind == "empty_message":
        msgs = [(h, j) for h, j in nodes if h[j][1] == 2] or [(holder, i)]
        h, j = rng.choice(msgs)
        h[j] = [h[j][0], 2, b""]
    else:  # field_number: move a field to another number (unknown or colliding)
        holder[i] = [rng.choice((0, 1, 2, 7, 9, 14, 19, 536870911)), wt, val]
        if holder[i][0] == 0:
            holder[i][0] = 1
    return encode(tree), kind
