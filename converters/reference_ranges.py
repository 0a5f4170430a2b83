"""Activation ranges taken from an existing quantized TFLite model of the same graph.

Use it to re-export a float model so that its int8 file quantizes every activation exactly as a
model already on the device does: the input scale and zero point the firmware's front end
hard-codes stay the same, and the reference's own calibration (often on data you do not have)
is reproduced. Weights are still quantized by edgeship from the float source, and the result
is still checked against the float source like any conversion.

Matching is structural, never by tensor name (names change across converter versions) nor by
op position (the quantizer may order independent branches differently): starting from the
model inputs, each op of the calibrated float model is paired with the reference op of the same
type, with the same output shapes (batch dimension aside), reading the paired tensors
(QUANTIZE/DEQUANTIZE seen through). An op without a partner, or a reference op left over, stops
the conversion with the first difference. Each model input and each op output then takes the
reference tensor's range,
``[scale * (qmin - zero_point), scale * (qmax - zero_point)]``. A reference tensor that is not
quantized per-tensor to int8/uint8 (a float layer, an int16 activation) leaves the calibrated
range in place, and is listed in :attr:`ReferenceRanges.kept`.

Example:
    >>> from edgeship.converters.reference_ranges import int_range
    >>> lo, hi = int_range("int8", 0.5, 3)
    >>> float(lo), float(hi)
    (-65.5, 62.0)
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Tuple

import numpy as np

from edgeship.errors import ConversionError, EdgeshipError

_SKIP_OPS = ("QUANTIZE", "DEQUANTIZE")
_INT_LIMITS = {"int8": (-128, 127), "uint8": (0, 255)}


@dataclass
class ReferenceRanges:
    """A quantized TFLite model whose activation ranges a conversion reuses (read once, hashed)."""

    path: str
    sha256: str
    data: bytes = field(repr=False)
    kept: List[str] = field(default_factory=list)  # source tensors left with their calibrated range

    def describe(self) -> dict:
        """For the conversion report: which file, its hash, the tensors that kept a calibrated range."""
        return {"path": self.path, "sha256": self.sha256, "kept_calibrated": list(self.kept)}


def int_range(dtype: str, scale: float, zero_point: int) -> Tuple[np.float32, np.float32]:
    """The real-valued range an int8/uint8 tensor with ``scale`` and ``zero_point`` covers."""
    qmin, qmax = _INT_LIMITS[dtype]
    return np.float32(scale * (qmin - zero_point)), np.float32(scale * (qmax - zero_point))


def load_reference(path) -> ReferenceRanges:
    """Read ``path`` and check it is a TFLite model with int8/uint8-quantized activations."""
    from edgeship.facts import read_facts

    p = Path(path)
    if not p.is_file():
        raise ConversionError(f"ranges_from: expected a quantized .tflite file, got '{path}', which is not a file")
    data = p.read_bytes()
    try:
        facts = read_facts(p, data=data)
    except EdgeshipError as exc:
        raise ConversionError(f"ranges_from: expected a quantized .tflite file, but '{path}' cannot be read as one "
                              f"({exc})") from None
    if facts.format != "tflite":
        raise ConversionError(f"ranges_from: expected a quantized .tflite file, got a {facts.format} model "
                              f"('{path}')")
    if not any(t.quantized and t.dtype in _INT_LIMITS and not t.is_const for t in facts.tensors):
        raise ConversionError(f"ranges_from: '{path}' has no int8/uint8 activations (it is a float model); give the "
                              f"int8 model whose quantization you want to reproduce")
    return ReferenceRanges(str(p), hashlib.sha256(data).hexdigest(), data)


def _shape(facts, index: int) -> tuple:
    return tuple(facts.tensors[index].shape[1:])


def _describe(facts, op) -> str:
    return f"{op.op} -> {[list(facts.tensors[i].shape) for i in op.outputs if i >= 0]}"


class _Graph:
    """A model's ops with QUANTIZE/DEQUANTIZE seen through: each tensor has a canonical producer tensor."""

    def __init__(self, facts):
        self.facts, self.alias, self.views = facts, {}, {}
        self.ops = []
        for op in facts.ops:
            if op.op in _SKIP_OPS and len(op.inputs) == 1 and len(op.outputs) == 1:
                c = self.canon(op.inputs[0])
                self.alias[op.outputs[0]] = c
                self.views.setdefault(c, []).append(op.outputs[0])
            elif any(facts.tensors[o].dtype != "int32" for o in op.outputs if o >= 0):
                self.ops.append(op)  # int32-only ops compute shapes (Keras' Flatten on a dynamic batch): no ranges

    def canon(self, i: int) -> int:
        return self.alias.get(i, i)

    def reads(self, op) -> list:
        """The canonical activation tensors an op reads (constants aside), in order."""
        ins = op.inputs[:1] if op.op == "RESHAPE" else op.inputs  # its shape input may be computed or constant
        r = [self.canon(i) for i in ins if i >= 0 and not self.facts.tensors[i].is_const]
        return sorted(r) if op.op in _COMMUTATIVE else r

    def quantized_view(self, i: int) -> int:
        """``i`` or, when it is float, the QUANTIZE output that carries its int8 range."""
        for t in [i] + self.views.get(i, []):
            if self.facts.tensors[t].dtype in _INT_LIMITS:
                return t
        return i


_COMMUTATIVE = ("ADD", "MUL", "MAXIMUM", "MINIMUM")


def _pairs(cal_facts, ref_facts, where: str) -> List[Tuple[int, int]]:
    """(calibrated tensor index, reference tensor index) for the model inputs and every op output.

    Ops are matched by what they compute and what they read, not by their position: the MLIR
    quantizer may order independent branches differently from the calibrated model.
    """
    cal, ref = _Graph(cal_facts), _Graph(ref_facts)
    cal_in, ref_in = [t.index for t in cal_facts.inputs], [t.index for t in ref_facts.inputs]
    if len(cal_in) != len(ref_in) or any(_shape(cal_facts, a) != _shape(ref_facts, b) for a, b in zip(cal_in, ref_in)):
        raise ConversionError(f"ranges_from: the inputs differ: the source has "
                              f"{[list(cal_facts.tensors[i].shape) for i in cal_in]}, '{where}' has "
                              f"{[list(ref_facts.tensors[i].shape) for i in ref_in]}; give the quantized model of "
                              f"this same network")
    to_ref = {cal.canon(a): ref.canon(b) for a, b in zip(cal_in, ref_in)}
    pairs = [(a, ref.quantized_view(ref.canon(b))) for a, b in zip(cal_in, ref_in)]
    unused = list(ref.ops)
    for k, op in enumerate(cal.ops):
        reads = [to_ref.get(i, -1) for i in cal.reads(op)]
        reads = sorted(reads) if op.op in _COMMUTATIVE else reads
        outs = [i for i in op.outputs if i >= 0]
        match = next((r for r in unused if r.op == op.op and ref.reads(r) == reads
                      and [_shape(ref_facts, i) for i in r.outputs if i >= 0] == [_shape(cal_facts, i) for i in outs]),
                     None)
        if match is None:
            raise ConversionError(f"ranges_from: the graphs differ at op {k}: the source converts to "
                                  f"{_describe(cal_facts, op)}, and '{where}' has no such op reading the same "
                                  f"tensors; the ranges of a different network cannot be reused")
        unused.remove(match)
        for a, b in zip(outs, [i for i in match.outputs if i >= 0]):
            to_ref[cal.canon(a)] = ref.canon(b)
            pairs.append((a, ref.quantized_view(ref.canon(b))))
    if unused:
        raise ConversionError(f"ranges_from: '{where}' has {len(unused)} op(s) the source does not convert to (e.g. "
                              f"{_describe(ref_facts, unused[0])}); give the quantized model of this same network")
    return pairs


def apply_reference_ranges(calibrated: bytes, ref: ReferenceRanges) -> bytes:
    """Give each activation of a calibrated float model (TFLite calibrate-only output) the reference's range.

    Fills ``ref.kept`` with the names of the tensors whose calibrated range stays (the reference
    keeps them in float or in another type).
    """
    from tensorflow.lite.tools import flatbuffer_utils

    from edgeship.facts import read_facts

    cal_facts = read_facts(Path("calibrated.tflite"), data=bytes(calibrated))
    ref_facts = read_facts(Path(ref.path), data=ref.data)
    pairs = _pairs(cal_facts, ref_facts, ref.path)
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(calibrated))
    reference = flatbuffer_utils.read_model_from_bytearray(bytearray(ref.data))
    cal_t, ref_t = model.subgraphs[0].tensors, reference.subgraphs[0].tensors
    kept = []
    for a, b in pairs:
        q, rq, rdtype = cal_t[a].quantization, ref_t[b].quantization, ref_facts.tensors[b].dtype
        if q is None or q.min is None or len(q.min) != 1:
            continue  # nothing calibrated there (an integer tensor, a shape)
        if (rdtype not in _INT_LIMITS or rq is None or rq.scale is None or len(rq.scale) != 1
                or rq.zeroPoint is None):
            kept.append(cal_facts.tensors[a].name)
            continue
        lo, hi = int_range(rdtype, float(rq.scale[0]), int(rq.zeroPoint[0]))
        q.min, q.max = np.array([lo], np.float32), np.array([hi], np.float32)
    ref.kept = kept
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
