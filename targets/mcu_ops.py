"""TFLM's op set, as data, and the op/shape checks a model must pass to run under TFLM.

Example:
    >>> resolver_method("DEPTHWISE_CONV_2D")
    'AddDepthwiseConv2D'
    >>> resolver_method("NOT_A_TFLM_OP") is None
    True
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional

from .._io import model_bytes as _model_bytes  # shared with the other targets
from ..errors import TargetError
from ..tflite_schema import read_tflite as _read
from ._mcu_types import PathOrBytes

# Builtin op name -> MicroMutableOpResolver method, from
# tensorflow/lite/micro/micro_mutable_op_resolver.h (tflite-micro main, 2025-26)
# cross-checked against the Register_* kernels linked into the tflite-micro
# Python wheel. An op missing here has no TFLM kernel.
TFLM_BUILTIN_OPS: Dict[str, str] = {
    "ABS": "AddAbs", "ADD": "AddAdd", "ADD_N": "AddAddN", "ARG_MAX": "AddArgMax",
    "ARG_MIN": "AddArgMin", "ASSIGN_VARIABLE": "AddAssignVariable",
    "AVERAGE_POOL_2D": "AddAveragePool2D", "BATCH_MATMUL": "AddBatchMatMul",
    "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd", "BROADCAST_ARGS": "AddBroadcastArgs",
    "BROADCAST_TO": "AddBroadcastTo", "CALL_ONCE": "AddCallOnce", "CAST": "AddCast",
    "CEIL": "AddCeil", "CONCATENATION": "AddConcatenation", "CONV_2D": "AddConv2D",
    "COS": "AddCos", "CUMSUM": "AddCumSum", "DEPTH_TO_SPACE": "AddDepthToSpace",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D", "DEQUANTIZE": "AddDequantize", "DIV": "AddDiv",
    "DYNAMIC_UPDATE_SLICE": "AddDynamicUpdateSlice", "ELU": "AddElu",
    "EMBEDDING_LOOKUP": "AddEmbeddingLookup", "EQUAL": "AddEqual", "EXP": "AddExp",
    "EXPAND_DIMS": "AddExpandDims", "FILL": "AddFill", "FLOOR": "AddFloor",
    "FLOOR_DIV": "AddFloorDiv", "FLOOR_MOD": "AddFloorMod",
    "FULLY_CONNECTED": "AddFullyConnected", "GATHER": "AddGather", "GATHER_ND": "AddGatherNd",
    "GREATER": "AddGreater", "GREATER_EQUAL": "AddGreaterEqual", "HARD_SWISH": "AddHardSwish",
    "IF": "AddIf", "L2_NORMALIZATION": "AddL2Normalization", "L2_POOL_2D": "AddL2Pool2D",
    "LEAKY_RELU": "AddLeakyRelu", "LESS": "AddLess", "LESS_EQUAL": "AddLessEqual",
    "LOG": "AddLog", "LOGICAL_AND": "AddLogicalAnd", "LOGICAL_NOT": "AddLogicalNot",
    "LOGICAL_OR": "AddLogicalOr", "LOGISTIC": "AddLogistic", "LOG_SOFTMAX": "AddLogSoftmax",
    "MAXIMUM": "AddMaximum", "MAX_POOL_2D": "AddMaxPool2D", "MEAN": "AddMean",
    "MINIMUM": "AddMinimum", "MIRROR_PAD": "AddMirrorPad", "MUL": "AddMul", "NEG": "AddNeg",
    "NOT_EQUAL": "AddNotEqual", "PACK": "AddPack", "PAD": "AddPad", "PADV2": "AddPadV2",
    "PRELU": "AddPrelu", "QUANTIZE": "AddQuantize", "READ_VARIABLE": "AddReadVariable",
    "REDUCE_MAX": "AddReduceMax", "REDUCE_MIN": "AddReduceMin", "RELU": "AddRelu",
    "RELU6": "AddRelu6", "RESHAPE": "AddReshape", "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor", "REVERSE_V2": "AddReverseV2",
    "ROUND": "AddRound", "RSQRT": "AddRsqrt", "SELECT_V2": "AddSelectV2", "SHAPE": "AddShape",
    "SIN": "AddSin", "SLICE": "AddSlice", "SOFTMAX": "AddSoftmax",
    "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd", "SPACE_TO_DEPTH": "AddSpaceToDepth",
    "SPLIT": "AddSplit", "SPLIT_V": "AddSplitV", "SQRT": "AddSqrt", "SQUARE": "AddSquare",
    "SQUARED_DIFFERENCE": "AddSquaredDifference", "SQUEEZE": "AddSqueeze",
    "STRIDED_SLICE": "AddStridedSlice", "SUB": "AddSub", "SUM": "AddSum", "SVDF": "AddSvdf",
    "TANH": "AddTanh", "TRANSPOSE": "AddTranspose", "TRANSPOSE_CONV": "AddTransposeConv",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM", "UNPACK": "AddUnpack",
    "VAR_HANDLE": "AddVarHandle", "WHILE": "AddWhile", "ZEROS_LIKE": "AddZerosLike",
}
# Custom ops TFLM ships kernels for (custom code -> resolver method).
TFLM_CUSTOM_OPS: Dict[str, str] = {
    "TFLite_Detection_PostProcess": "AddDetectionPostprocess",
    "CIRCULAR_BUFFER": "AddCircularBuffer",
    "ethos-u": "AddEthosU",
}
TFLM_IO_DTYPES = frozenset({"int8", "int16", "float32", "uint8", "int32", "bool"})


def resolver_method(op: str) -> Optional[str]:
    """The ``MicroMutableOpResolver`` method registering ``op`` (None if TFLM lacks it)."""
    return TFLM_BUILTIN_OPS.get(op) or TFLM_CUSTOM_OPS.get(op)


# --- op check --------------------------------------------------------------------
@dataclass(frozen=True)
class OpSupport:
    op: str
    count: int
    supported: bool
    resolver_call: Optional[str]


def check_tflm_ops(model: PathOrBytes) -> List[OpSupport]:
    """Every op the model uses (all subgraphs), and whether TFLM has a kernel for it.

    Example:
        >>> # ops = check_tflm_ops("kws_int8.tflite"); [o.op for o in ops if not o.supported]
    """
    m = _read(_model_bytes(model))
    counts: Dict[str, int] = {}
    for sg in m.subgraphs:
        for op in sg.operators:
            counts[op.op] = counts.get(op.op, 0) + 1
    return [OpSupport(op, n, resolver_method(op) is not None, resolver_method(op))
            for op, n in sorted(counts.items())]


def _check_static(m) -> None:
    sg = m.main
    for idx in list(sg.inputs) + list(sg.outputs):
        t = sg.tensors[idx]
        if any(d < 0 for d in t.shape) or any(d < 0 for d in t.shape_signature[1:]):
            raise TargetError(
                f"TFLM needs static shapes; tensor {t.name!r} has shape signature "
                f"{list(t.shape_signature)} (re-export with a fixed input shape)")

