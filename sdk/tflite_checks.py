"""Operator checks of a TFLite model that the native kernels take on trust (issue 11).

The bounds-checked reader (:mod:`edgeship.tflite_schema`) proves that every offset and index
lies inside the file; this module checks what the kernels then *do* with the values, where a
wrong one crashes the process instead of raising: builtin option tables of the wrong type,
strides / filter sizes / dilations / block sizes that are zero, negative or absurd, padding
and fused-activation enums out of range, axes outside the tensor's rank, RESHAPE target shapes
that do not match the element count, data-movement ops whose output type differs from their
input's (the kernel copies the input's bytes into the smaller output buffer), operators with
fewer or more inputs than their kernel reads, operators that read
a tensor nobody wrote or write one twice, and model inputs that are constants. Each finding is a :class:`~edgeship.errors.ModelFormatError` naming the
operator, the field, the value found and the valid range.

Only the ops listed in ``_OPTION_FIELDS`` / ``_SAME_TYPE`` are checked; other ops are left to
the isolation probe (``load(verify="full")``).

Example:
    >>> from edgeship.tflite_checks import ACTIVATIONS, PADDINGS
    >>> ACTIVATIONS[3], PADDINGS[1]
    ('RELU6', 'VALID')
"""
from __future__ import annotations

import math
import struct
from typing import Dict, List, Optional, Sequence, Tuple

from .errors import ModelFormatError

ACTIVATIONS = ("NONE", "RELU", "RELU_N1_TO_1", "RELU6", "TANH", "SIGN_BIT")   # ActivationFunctionType
PADDINGS = ("SAME", "VALID")                                                 # Padding
MAX_WINDOW = 1 << 16   # strides, filters, dilations, block sizes: far above real models, far below int overflow
MAX_RESHAPE_RANK = 8   # what LiteRT's RESHAPE supports

# Field kinds: "padding", "activation", "positive" (1..MAX_WINDOW), "nonneg" (0..MAX_WINDOW),
# "bool" (0/1), "axis_in" / "axis_out" (within -rank..rank-1 of input 0 / output 0),
# "axis_out_plus1" (PACK: -rank-1..rank of the output), "finite" (a finite float).
_Field = Tuple[str, int, str, object, str]
# op name -> (BuiltinOptions union code, fields (name, vtable slot, struct format, default, kind),
#             options required: the defaults of a missing table are invalid for the kernel)
_OPTION_FIELDS: Dict[str, Tuple[int, Sequence[_Field], bool]] = {
    "CONV_2D": (1, (("padding", 4, "b", 0, "padding"), ("stride_w", 6, "i", 0, "positive"),
                    ("stride_h", 8, "i", 0, "positive"), ("fused_activation", 10, "b", 0, "activation"),
                    ("dilation_w", 12, "i", 1, "positive"), ("dilation_h", 14, "i", 1, "positive")), True),
    "DEPTHWISE_CONV_2D": (2, (("padding", 4, "b", 0, "padding"), ("stride_w", 6, "i", 0, "positive"),
                              ("stride_h", 8, "i", 0, "positive"), ("depth_multiplier", 10, "i", 0, "nonneg"),
                              ("fused_activation", 12, "b", 0, "activation"),
                              ("dilation_w", 14, "i", 1, "positive"), ("dilation_h", 16, "i", 1, "positive")), True),
    **{pool: (5, (("padding", 4, "b", 0, "padding"), ("stride_w", 6, "i", 0, "positive"),
                  ("stride_h", 8, "i", 0, "positive"), ("filter_w", 10, "i", 0, "positive"),
                  ("filter_h", 12, "i", 0, "positive"), ("fused_activation", 14, "b", 0, "activation")), True)
       for pool in ("AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D")},
    "TRANSPOSE_CONV": (49, (("padding", 4, "b", 0, "padding"), ("stride_w", 6, "i", 0, "positive"),
                            ("stride_h", 8, "i", 0, "positive"),
                            ("fused_activation", 10, "b", 0, "activation")), True),
    "FULLY_CONNECTED": (8, (("fused_activation", 4, "b", 0, "activation"), ("weights_format", 6, "b", 0, "bool"),
                            ("keep_num_dims", 8, "b", 0, "bool"),
                            ("asymmetric_quantize_inputs", 10, "b", 0, "bool")), False),
    "SOFTMAX": (9, (("beta", 4, "f", 0.0, "finite"),), False),
    "CONCATENATION": (10, (("axis", 4, "i", 0, "axis_out"), ("fused_activation", 6, "b", 0, "activation")), False),
    "ADD": (11, (("fused_activation", 4, "b", 0, "activation"), ("pot_scale_int16", 6, "b", 1, "bool")), False),
    "MUL": (21, (("fused_activation", 4, "b", 0, "activation"),), False),
    "SUB": (28, (("fused_activation", 4, "b", 0, "activation"), ("pot_scale_int16", 6, "b", 1, "bool")), False),
    "DIV": (29, (("fused_activation", 4, "b", 0, "activation"),), False),
    "GATHER": (23, (("axis", 4, "i", 0, "axis_in"),), False),
    "PACK": (59, (("values_count", 4, "i", 0, "nonneg"), ("axis", 6, "i", 0, "axis_out")), False),
    "UNPACK": (64, (("num", 4, "i", 0, "nonneg"), ("axis", 6, "i", 0, "axis_in")), False),
    "SPACE_TO_DEPTH": (19, (("block_size", 4, "i", 0, "positive"),), True),
    "DEPTH_TO_SPACE": (94, (("block_size", 4, "i", 0, "positive"),), True),
    "MIRROR_PAD": (77, (("mode", 4, "b", 0, "bool"),), False),
    "LEAKY_RELU": (75, (("alpha", 4, "f", 0.0, "finite"),), False),
    "MEAN": (27, (("keep_dims", 4, "b", 0, "bool"),), False),
    "SUM": (27, (("keep_dims", 4, "b", 0, "bool"),), False),
    "REDUCE_MAX": (27, (("keep_dims", 4, "b", 0, "bool"),), False),
    "REDUCE_MIN": (27, (("keep_dims", 4, "b", 0, "bool"),), False),
    "RESHAPE": (17, (), False),
    "SQUEEZE": (30, (), False),
}

# Data-movement ops: the kernel copies or rearranges input 0's bytes into output 0, so both must
# have the same element type (a RESHAPE from int32[64] to int8[64] writes 256 bytes into 64).
_SAME_TYPE = frozenset((
    "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "TRANSPOSE", "MAX_POOL_2D", "AVERAGE_POOL_2D", "CONCATENATION",
    "PAD", "PADV2", "MIRROR_PAD", "SLICE", "STRIDED_SLICE", "SPACE_TO_DEPTH", "DEPTH_TO_SPACE", "TILE",
    "GATHER", "PACK", "UNPACK", "SPLIT_V", "RELU", "RELU6", "RELU_N1_TO_1", "MAXIMUM", "MINIMUM",
    "BATCH_TO_SPACE_ND", "SPACE_TO_BATCH_ND", "REVERSE_V2", "BROADCAST_TO"))

# How many inputs each op's kernel reads (min, max): the kernels index their inputs by position,
# so a SPLIT with one input (a mutated SOFTMAX opcode) reads past the node's input list.
_INPUT_COUNTS: Dict[str, Tuple[int, int]] = {
    **{op: (2, 3) for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "CONV_3D")},
    "TRANSPOSE_CONV": (3, 4),
    **{op: (2, 2) for op in ("ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE", "POW",
                             "PRELU", "EXPAND_DIMS", "MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "PAD",
                             "MIRROR_PAD", "TRANSPOSE", "GATHER", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR",
                             "ARG_MAX", "ARG_MIN", "SPLIT", "TILE", "BROADCAST_TO", "BATCH_MATMUL", "FLOOR_DIV",
                             "FLOOR_MOD", "LESS", "GREATER", "EQUAL", "NOT_EQUAL", "LESS_EQUAL", "GREATER_EQUAL",
                             "SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND")},
    **{op: (1, 1) for op in ("AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D", "SOFTMAX", "LOGISTIC", "TANH",
                             "RELU", "RELU6", "RELU_N1_TO_1", "LEAKY_RELU", "HARD_SWISH", "QUANTIZE", "DEQUANTIZE",
                             "RSQRT", "SQRT", "EXP", "LOG", "ABS", "NEG", "CAST", "FLOOR", "CEIL", "ROUND", "ELU",
                             "GELU", "SHAPE", "L2_NORMALIZATION", "LOCAL_RESPONSE_NORMALIZATION", "SPACE_TO_DEPTH",
                             "DEPTH_TO_SPACE", "LOG_SOFTMAX", "SQUEEZE", "UNPACK", "SQUARE", "SIN", "COS")},
    "RESHAPE": (1, 2), "PADV2": (2, 3), "SLICE": (3, 3), "STRIDED_SLICE": (4, 4), "SPLIT_V": (3, 3),
    "CONCATENATION": (1, 1 << 16), "PACK": (1, 1 << 16), "ADD_N": (1, 1 << 16),
}


def _bad(sg: str, i: int, op: str, what: str) -> ModelFormatError:
    return ModelFormatError(f"corrupt TFLite model: operator {i} ({op}) of {sg} {what}")


def _valid(kind: str, value, rank_in: Optional[int], rank_out: Optional[int]) -> Optional[str]:
    """None when ``value`` is valid for ``kind``, else the valid range in words."""
    if kind == "padding":
        return None if 0 <= value < len(PADDINGS) else f"one of {dict(enumerate(PADDINGS))}"
    if kind == "activation":
        return None if 0 <= value < len(ACTIVATIONS) else f"one of {dict(enumerate(ACTIVATIONS))}"
    if kind == "positive":
        return None if 1 <= value <= MAX_WINDOW else f"1..{MAX_WINDOW}"
    if kind == "nonneg":
        return None if 0 <= value <= MAX_WINDOW else f"0..{MAX_WINDOW}"
    if kind == "bool":
        return None if value in (0, 1) else "0 or 1"
    if kind == "finite":
        return None if math.isfinite(value) else "a finite number"
    rank = rank_in if kind == "axis_in" else rank_out
    if rank is None:
        return None
    return None if -rank <= value < max(rank, 1) else f"-{rank}..{max(rank, 1) - 1} (the tensor has rank {rank})"


def _options(table, code: int, fields: Sequence[_Field], op_type: int, where) -> Dict[str, object]:
    if table is None or op_type != code:
        return {name: default for name, _, _, default, _ in fields}
    return {name: table.scalar(slot, fmt, default) for name, slot, fmt, default, _ in fields}


def _const_ints(model_buffers, tensors, index: int) -> Optional[Tuple[int, ...]]:
    """The values of a constant int32/int64 tensor, or None when it is not a constant."""
    if index < 0:
        return None
    t = tensors[index]
    data = model_buffers[t.buffer] if 0 < t.buffer < len(model_buffers) else None
    if data is None or t.dtype not in ("int32", "int64"):
        return None
    fmt = "i" if t.dtype == "int32" else "q"
    n = len(data) // struct.calcsize(fmt)
    return struct.unpack_from(f"<{n}{fmt}", data, 0)


def _check_reshape(sg, i, op, new_shape: Sequence[int], tensors, ins, outs, source: str) -> None:
    if len(new_shape) > MAX_RESHAPE_RANK:
        raise _bad(sg, i, op, f"asks for a {len(new_shape)}-dimensional shape in {source}; at most "
                              f"{MAX_RESHAPE_RANK} dimensions are supported")
    if any(d < -1 for d in new_shape) or sum(d == -1 for d in new_shape) > 1:
        raise _bad(sg, i, op, f"has new shape {list(new_shape)} in {source}; expected sizes >= 0 and at most one -1")
    src = tensors[ins[0]]
    if src.is_dynamic or -1 in new_shape:
        return
    count_in, count_out = math.prod(src.shape), math.prod(new_shape)
    if count_in != count_out:
        raise _bad(sg, i, op, f"reshapes {count_in} elements ({list(src.shape)}) into new shape {list(new_shape)} "
                              f"({count_out} elements) in {source}")


def check_operators(sg: str, ops, op_tables: List, tensors, buffers) -> None:
    """Check the operators of one subgraph (see the module docstring); ModelFormatError on the first finding.

    Args:
        sg: the subgraph's name, for messages.
        ops: its :class:`~edgeship.tflite_schema.Operator` list (indices already checked).
        op_tables: the operators' flatbuffer tables, in the same order.
        tensors: the subgraph's :class:`~edgeship.tflite_schema.Tensor` list.
        buffers: the model's buffers (constant data by buffer index).
    """
    for op, table in zip(ops, op_tables):
        i, name, ins, outs = op.index, op.op, op.inputs, op.outputs
        rank_in = len(tensors[ins[0]].shape) if ins and ins[0] >= 0 else None
        rank_out = len(tensors[outs[0]].shape) if outs else None
        counts = _INPUT_COUNTS.get(name)
        if counts is not None and not counts[0] <= len(ins) <= counts[1]:
            want = counts[0] if counts[0] == counts[1] else f"{counts[0]} to {counts[1]}"
            raise _bad(sg, i, name, f"has {len(ins)} inputs; this op takes {want}")
        if counts is not None and not outs:
            raise _bad(sg, i, name, "has no output")
        spec = _OPTION_FIELDS.get(name)
        if spec is not None:
            code, fields, required = spec
            if op.builtin_options_type not in (0, code):
                raise _bad(sg, i, name, f"carries builtin options of union type {op.builtin_options_type}; "
                                        f"this op takes type {code} (or none)")
            opt_table = table.table(12, "builtin options") if op.builtin_options_type == code else None
            if required and opt_table is None:
                raise _bad(sg, i, name, "has no builtin options; its kernel needs them (strides, filter or block sizes)")
            values = _options(opt_table, code, fields, op.builtin_options_type, sg)
            for fname, _, _, _, kind in fields:
                rng = _valid(kind, values[fname], rank_in, rank_out)
                if rng is not None:
                    raise _bad(sg, i, name, f"has {fname} = {values[fname]!r}; expected {rng}")
            if name == "RESHAPE" and opt_table is not None:
                new_shape = opt_table.vector(4, "i", f"operator {i} new_shape")
                if new_shape and len(ins) < 2:
                    _check_reshape(sg, i, name, new_shape, tensors, ins, outs, "its options")
            if name == "SQUEEZE" and opt_table is not None and rank_in is not None:
                dims = opt_table.vector(4, "i", f"operator {i} squeeze_dims")
                bad = [d for d in dims if not -rank_in <= d < max(rank_in, 1)]
                if bad:
                    raise _bad(sg, i, name, f"squeezes axis {bad[0]} of a rank-{rank_in} tensor")
        if name in _SAME_TYPE and ins and outs and ins[0] >= 0:
            tin, tout = tensors[ins[0]], tensors[outs[0]]
            if tin.dtype != tout.dtype:
                raise _bad(sg, i, name, f"turns {tin.dtype} input {tin.name!r} into {tout.dtype} output "
                                        f"{tout.name!r}; this op keeps the element type")
        if name == "RESHAPE" and ins and ins[0] >= 0:
            if len(ins) >= 2 and ins[1] >= 0:
                shape_t = tensors[ins[1]]
                if shape_t.dtype != "int32" or len(shape_t.shape) > 1:
                    raise _bad(sg, i, name, f"takes its new shape from {shape_t.dtype}{list(shape_t.shape)} tensor "
                                            f"{shape_t.name!r}; expected a 1-D int32 tensor")
                if len(shape_t.shape) == 1 and shape_t.shape[0] > MAX_RESHAPE_RANK:
                    raise _bad(sg, i, name, f"takes a {shape_t.shape[0]}-dimensional new shape from tensor "
                                            f"{shape_t.name!r}; at most {MAX_RESHAPE_RANK} dimensions are supported")
                values = _const_ints(buffers, tensors, ins[1])
                if values is not None:
                    _check_reshape(sg, i, name, values, tensors, ins, outs, f"tensor {shape_t.name!r}")
            tin, tout = tensors[ins[0]], tensors[outs[0]] if outs else None
            if tout is not None and not tin.is_dynamic and not tout.is_dynamic \
                    and math.prod(tin.shape) != math.prod(tout.shape):
                raise _bad(sg, i, name, f"reshapes {list(tin.shape)} into output {list(tout.shape)}: the element "
                                        f"counts differ")
        if name in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN") and len(ins) >= 2 and rank_in is not None:
            axes = _const_ints(buffers, tensors, ins[1])
            bad = [a for a in axes or () if not -rank_in <= a < max(rank_in, 1)]
            if bad:
                raise _bad(sg, i, name, f"reduces over axis {bad[0]} of a rank-{rank_in} tensor")


def check_dataflow(sg: str, ops, inputs: Sequence[int], tensors, buffers) -> None:
    """Operators run in order: each tensor an operator reads must be a subgraph input, a constant,
    a variable or the output of an earlier operator, and no tensor is written twice (else the
    kernel reads memory nobody wrote, or the arena planner leaves it unallocated)."""
    ready = set(inputs)
    ready.update(t.index for t in tensors
                 if t.is_variable or (0 < t.buffer < len(buffers) and buffers[t.buffer] is not None))
    written: Dict[int, int] = {}
    producer = {x: op.index for op in reversed(ops) for x in op.outputs}
    for op in ops:
        for x in op.inputs:
            if x >= 0 and x not in ready:
                later = producer.get(x)
                why = (f"which operator {later} writes only afterwards" if later is not None else
                       "which no operator writes and which is neither an input nor a constant")
                raise _bad(sg, op.index, op.op, f"reads tensor {x} ({tensors[x].name!r}), {why}")
        for x in op.outputs:
            if x in written or x in inputs or (x in ready and not tensors[x].is_variable):
                raise _bad(sg, op.index, op.op, f"writes tensor {x} ({tensors[x].name!r}), which "
                                                f"{'operator %d also writes' % written[x] if x in written else 'is an input or a constant'}")
            written[x] = op.index
            ready.add(x)


def check_model_inputs(sg: str, inputs: Sequence[int], tensors, buffers) -> None:
    """A model input must not be a constant (its buffer would be both weights and the caller's data)."""
    for k in inputs:
        t = tensors[k]
        if 0 < t.buffer < len(buffers) and buffers[t.buffer] is not None:
            raise ModelFormatError(f"corrupt TFLite model: input {t.name!r} of {sg} is a constant tensor (it holds "
                                   f"{len(buffers[t.buffer])} bytes of data in buffer {t.buffer})")


__all__ = ["check_operators", "check_dataflow", "check_model_inputs", "ACTIVATIONS", "PADDINGS", "MAX_WINDOW"]
