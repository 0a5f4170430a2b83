"""Structured mutations of TFLite flatbuffers (shared by tests and bench/fuzz.py).

:func:`sites` walks a well-formed model once and records where each interesting field lives
(shape entries, vector lengths, offsets, opcode/tensor/buffer indices, tensor types,
quantization scales/zero points/axes, operator I/O); :func:`mutate` writes one bad value at
one such site (or flips bytes), so most mutants get past the identifier and exercise the
model's meaning rather than only its framing.
"""
from __future__ import annotations

import random
import struct
from typing import Dict, List, Tuple

Site = Tuple[int, str]  # (byte position, value format: "I" u32, "i" i32, "B" u8, "f" f32, "q" i64, "H" u16)


def _u32(b, p):
    return struct.unpack_from("<I", b, p)[0]


class _Walk:
    def __init__(self, b: bytes):
        self.b = b
        self.s: Dict[str, List[Site]] = {}

    def add(self, kind: str, pos: int, fmt: str) -> None:
        self.s.setdefault(kind, []).append((pos, fmt))

    def table(self, pos: int):
        vt = pos - struct.unpack_from("<i", self.b, pos)[0]
        vt_len = struct.unpack_from("<H", self.b, vt)[0]
        self.add("vtable", vt, "H")
        self.add("vtable", vt + 2, "H")
        return pos, vt, vt_len

    def field(self, t, slot: int):
        pos, vt, vt_len = t
        off = 4 + 2 * slot
        if off >= vt_len:
            return None
        o = struct.unpack_from("<H", self.b, vt + off)[0]
        if o:
            self.add("vtable_entry", vt + off, "H")
        return pos + o if o else None

    def ref(self, t, slot: int):
        p = self.field(t, slot)
        if p is None:
            return None
        self.add("offset", p, "I")
        return p + _u32(self.b, p)

    def vector(self, t, slot: int, elem: int, kind: str = ""):
        p = self.ref(t, slot)
        if p is None:
            return []
        n = _u32(self.b, p)
        self.add("vector_length", p, "I")
        out = [p + 4 + i * elem for i in range(n)]
        return out

    def tables(self, t, slot: int):
        out = []
        for e in self.vector(t, slot, 4):
            self.add("offset", e, "I")
            out.append(self.table(e + _u32(self.b, e)))
        return out


def sites(data: bytes) -> Dict[str, List[Site]]:
    """Field positions of a well-formed TFLite model, grouped by kind."""
    w = _Walk(data)
    w.add("root_offset", 0, "I")
    model = w.table(_u32(data, 0))
    p = w.vector(model, 2, 4)
    if p:
        w.add("subgraph_count", p[0] - 4, "I")
    for oc in w.tables(model, 1):
        for slot, fmt, kind in ((0, "B", "builtin_code"), (3, "i", "builtin_code"), (2, "i", "op_version")):
            q = w.field(oc, slot)
            if q is not None:
                w.add(kind, q, fmt)
    for buf in w.tables(model, 4):
        w.vector(buf, 0, 1)
        for slot in (1, 2):
            q = w.field(buf, slot)
            if q is not None:
                w.add("buffer_offset", q, "q")
    for sg in w.tables(model, 2):
        for e in w.vector(sg, 1, 4) + w.vector(sg, 2, 4):
            w.add("tensor_index", e, "i")
        for t in w.tables(sg, 0):
            for e in w.vector(t, 0, 4) + w.vector(t, 7, 4):
                w.add("shape", e, "i")
            for slot, fmt, kind in ((1, "B", "tensor_type"), (2, "I", "buffer_index")):
                q = w.field(t, slot)
                if q is not None:
                    w.add(kind, q, fmt)
            qp = w.ref(t, 4)
            if qp is not None:
                qt = w.table(qp)
                for e in w.vector(qt, 2, 4):
                    w.add("quant_scale", e, "f")
                for e in w.vector(qt, 3, 8):
                    w.add("quant_zero_point", e, "q")
                for e in w.vector(qt, 0, 4) + w.vector(qt, 1, 4):
                    w.add("quant_minmax", e, "f")
                q = w.field(qt, 6)
                if q is not None:
                    w.add("quant_axis", q, "i")
        for op in w.tables(sg, 3):
            q = w.field(op, 0)
            if q is not None:
                w.add("opcode_index", q, "I")
            ins, outs = w.vector(op, 1, 4), w.vector(op, 2, 4)
            for e in ins + outs:
                w.add("tensor_index", e, "i")
            if ins and outs:
                w.add("cycle", outs[0], "i:" + str(struct.unpack_from("<i", data, ins[0])[0]))
            q = w.field(op, 3)
            if q is not None:
                w.add("options_type", q, "B")
            opts = w.ref(op, 4)
            if opts is not None:
                ot = w.table(opts)
                for slot in range(8):  # option scalars (strides, padding, activation, axes...)
                    q = w.field(ot, slot)
                    if q is not None:
                        w.add("option_field", q, "i" if (q - opts) % 4 == 0 else "B")
    return w.s


_BAD = {
    "I": (0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 0x10000000, 4096, 3),
    "i": (-1, 0, -7, 1 << 20, 0x7FFFFFFF, -0x80000000, 65535, 3),
    "B": (0, 1, 17, 127, 128, 200, 255),
    "H": (0, 2, 3, 4, 0xFFFF, 0x8000, 5),
    "f": (float("nan"), float("inf"), -float("inf"), 0.0, -1.0, 1e-45, 3.4e38),
    "q": (-1, 0, 1 << 40, (1 << 63) - 1, -(1 << 63), 255, -129),
}


def _write(b: bytearray, pos: int, fmt: str, rng: random.Random) -> None:
    if fmt.startswith("i:"):  # cycle: an operator writes the tensor it reads
        struct.pack_into("<i", b, pos, int(fmt[2:]))
        return
    val = rng.choice(_BAD[fmt])
    if fmt == "I" and rng.random() < 0.3:
        val = struct.unpack_from("<I", b, pos)[0] + rng.choice((1, -1, 4, 64, len(b)))
        val &= 0xFFFFFFFF
    struct.pack_into("<" + fmt, b, pos, val)


def byte_flip(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    what = rng.randrange(4)
    if what == 0:
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif what == 1:
        return bytes(b[: rng.randrange(1, len(b))])
    elif what == 2:
        pos = rng.randrange(len(b))
        b[pos:pos] = rng.randbytes(rng.randint(1, 32))
    else:
        pos = rng.randrange(len(b))
        del b[pos:pos + rng.randint(1, 32)]
    return bytes(b)


def mutate(data: bytes, site_map: Dict[str, List[Site]], rng: random.Random) -> Tuple[bytes, str]:
    """One structured mutation (three in four) or a byte-level one; returns (bytes, kind)."""
    if rng.random() < 0.25:
        return byte_flip(data, rng), "byte_flip"
    kind = rng.choice(sorted(site_map))
    b = bytearray(data)
    for _ in range(1 if rng.random() < 0.8 else rng.randint(2, 4)):
        pos, fmt = rng.choice(site_map[kind])
        if kind == "subgraph_count":
            struct.pack_into("<I", b, pos, 0 if rng.random() < 0.6 else rng.choice((2, 0xFFFF, 0xFFFFFFFF)))
        else:
            _write(b, pos, fmt, rng)
    return bytes(b), kind


def operator_input_sites(data: bytes) -> List[List[int]]:
    """Byte positions of each operator's input indices (first subgraph), in operator order."""
    w = _Walk(data)
    model = w.table(_u32(data, 0))
    sg = w.tables(model, 2)[0]
    return [w.vector(op, 1, 4) for op in w.tables(sg, 3)]
