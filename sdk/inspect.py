"""``edgeship inspect``: what a model file holds and what it will cost to run.

Reports format, size, I/O with quantization, operators with counts and
versions, parameters, MACs per op and in total, a tensor-memory estimate and
the minimum runtime version the file needs. Pure Python over the checked
readers, so it never hands bytes to a native runtime.

Example:
    >>> from edgeship.inspect import inspect_model
    >>> info = inspect_model("model.tflite")          # doctest: +SKIP
    >>> info["macs_total"], info["params"]            # doctest: +SKIP
    (2742784, 22372)
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional

from ._io import sha256_bytes
from .errors import ModelFormatError
from .tflite_ops import ITEM_SIZE

# TFLite: minimum runtime version for (op, version), for common ops (from TFLite's
# runtime_version table). Index i holds version i+1. Used only when the file does not
# record "min_runtime_version" itself.
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

# ONNX Runtime release that first implements an ai.onnx opset (ORT's version matrix;
# 16+ from ORT release notes).
_ORT_FOR_OPSET = {7: "0.1.4", 8: "0.1.4", 9: "0.3.0", 10: "0.4.0", 11: "1.0.0", 12: "1.3.0", 13: "1.6.0",
                  14: "1.8.0", 15: "1.9.0", 16: "1.13.0", 17: "1.13.0", 18: "1.14.0", 19: "1.16.0",
                  20: "1.17.0", 21: "1.18.0"}

_ELEMENTWISE = {"ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "RELU", "RELU6", "RELU_N1_TO_1", "LEAKY_RELU",
                "LOGISTIC", "TANH", "HARD_SWISH", "PRELU", "SQUARED_DIFFERENCE", "SOFTMAX", "LOG_SOFTMAX",
                "QUANTIZE", "DEQUANTIZE", "EXP", "SQRT", "RSQRT", "ABS", "NEG", "GELU", "ELU", "POW"}


def _vkey(v: str):
    return tuple(int(x) for x in v.split(".") if x.isdigit())


def _prod(shape) -> int:
    n = 1
    for d in shape:
        n *= max(int(d), 1) if isinstance(d, int) else 1
    return n


def _tflite_macs(op, tensors) -> int:
    """Multiply-accumulates of one op from tensor shapes (batch as stored in the model)."""
    t = lambda i: tensors[op.inputs[i]] if len(op.inputs) > i and op.inputs[i] >= 0 else None  # noqa: E731
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


def _nbytes(t) -> int:
    return _prod(t.shape) * ITEM_SIZE.get(t.dtype, 1)


def _peak_activation_bytes(sg) -> int:
    """Peak bytes of simultaneously live non-constant tensors, in execution order."""
    last_use: Dict[int, int] = {}
    for i, op in enumerate(sg.operators):
        for x in op.inputs:
            if x >= 0:
                last_use[x] = i
    n_ops = len(sg.operators)
    for x in sg.outputs:
        last_use[x] = n_ops
    live = {x: _nbytes(sg.tensors[x]) for x in sg.inputs}
    peak = sum(live.values())
    for i, op in enumerate(sg.operators):
        for x in op.outputs:
            t = sg.tensors[x]
            if not t.has_data:
                live[x] = _nbytes(t)
        peak = max(peak, sum(live.values()))
        for x in list(live):
            if last_use.get(x, -1) <= i and x not in sg.outputs:
                del live[x]
    return peak


def _io(specs) -> List[dict]:
    return [s.to_dict() for s in specs]


def inspect_tflite(data: bytes) -> dict:
    from .spec import TensorSpec
    from .tflite_schema import min_runtime_version, read_tflite

    m = read_tflite(data)
    sg = m.main
    ops = []
    for op in sg.operators:
        macs = _tflite_macs(op, sg.tensors)
        moved = sum(_nbytes(sg.tensors[x]) for x in op.inputs if x >= 0) + sum(_nbytes(sg.tensors[x]) for x in op.outputs)
        ops.append({"index": op.index, "op": op.op, "version": op.version, "macs": macs, "bytes_moved": moved,
                    "inputs": list(op.inputs), "outputs": list(op.outputs),
                    "output_shape": list(sg.tensors[op.outputs[0]].shape) if op.outputs else []})
    counts = Counter((o["op"], o["version"]) for o in ops)
    consts = [t for g in m.subgraphs for t in g.tensors if t.has_data]
    spec = lambda t: TensorSpec(t.name, t.shape_signature, t.dtype, t.quantization, t.index)  # noqa: E731
    recorded = min_runtime_version(m)
    computed, unknown = "1.5.0", []
    for (name, ver) in counts:
        table = _TFL_MIN_RUNTIME.get(name)
        if table and ver <= len(table):
            computed = max(computed, table[ver - 1], key=_vkey)
        else:
            unknown.append(f"{name}/v{ver}")
    weight_dtypes = Counter(t.dtype for t in consts)
    act_dtypes = Counter(sg.tensors[o].dtype for op in sg.operators for o in op.outputs)
    return {
        "format": "tflite",
        "schema_version": m.version,
        "description": m.description,
        "subgraphs": len(m.subgraphs),
        "signatures": m.signature_keys,
        "metadata": sorted(m.metadata),
        "inputs": _io(spec(sg.tensors[i]) for i in sg.inputs),
        "outputs": _io(spec(sg.tensors[i]) for i in sg.outputs),
        "operators": [{"op": k[0], "version": k[1], "count": v} for k, v in sorted(counts.items())],
        "ops": ops,
        "op_count": len(ops),
        "params": sum(_prod(t.shape) for t in consts),
        "weight_bytes": sum(t.data_bytes for t in consts),
        "weight_dtypes": dict(weight_dtypes),
        "activation_dtypes": dict(act_dtypes),
        "quantization": _quant_mode(sg, consts),
        "macs_total": sum(o["macs"] for o in ops),
        "memory": {"activations_peak_bytes": _peak_activation_bytes(sg),
                   "activations_total_bytes": sum(_nbytes(t) for t in sg.tensors if not t.has_data)},
        "min_runtime_version": recorded or computed,
        "min_runtime_version_source": "recorded in the file by its converter" if recorded else (
            "computed from op versions" + (f" (ops not in edgeship's table: {', '.join(sorted(unknown))})" if unknown else "")),
        "edgetpu_compiled": m.is_edgetpu_compiled,
        "custom_ops": m.custom_ops,
    }


def _quant_mode(sg, consts) -> str:
    """Classify: float32, fp16 (float16 weights), dynamic (int8 weights, float activations),
    int8 / uint8 (integer activations), int16x8."""
    w = {t.dtype for t in consts}
    acts = {sg.tensors[o].dtype for op in sg.operators for o in op.outputs}
    io = {sg.tensors[i].dtype for i in list(sg.inputs) + list(sg.outputs)}
    if "int16" in acts and "int8" in w:
        return "int16x8"
    if acts & {"int8", "uint8"} and not acts & {"float32"}:
        return "int8" if "int8" in acts else "uint8"
    if acts & {"int8", "uint8"}:
        return "int8 (float I/O)" if io <= {"float32"} else "mixed"
    if "float16" in w:
        return "fp16"
    if "int8" in w:
        return "dynamic"
    return "float32"


def inspect_onnx(data: bytes) -> dict:
    from .onnx_proto import read_onnx
    from .spec import TensorSpec

    m = read_onnx(data)
    shapes = _onnx_shapes(data, m)
    ops = []
    for i, n in enumerate(m.nodes):
        macs = _onnx_macs(n, m, shapes)
        ops.append({"index": i, "op": n.op_type if not n.domain or n.domain == "ai.onnx" else f"{n.domain}.{n.op_type}",
                    "name": n.name, "macs": macs, "output_shape": list(shapes.get(n.outputs[0], ()) or ()) if n.outputs else []})
    counts = Counter(o["op"] for o in ops)
    opset = m.opsets.get("ai.onnx", m.opsets.get("", 0))
    spec = lambda v: TensorSpec(v.name, tuple(d if isinstance(d, int) else -1 for d in v.shape), v.dtype)  # noqa: E731
    unknown_macs = sum(1 for o in ops if o["macs"] is None)
    return {
        "format": "onnx",
        "ir_version": m.ir_version,
        "producer": m.producer,
        "opsets": m.opsets,
        "inputs": _io(spec(v) for v in m.inputs),
        "outputs": _io(spec(v) for v in m.outputs),
        "operators": [{"op": k, "count": v} for k, v in sorted(counts.items())],
        "ops": ops,
        "op_count": len(ops),
        "params": sum(i.size for i in m.initializers.values()),
        "weight_bytes": sum(i.nbytes for i in m.initializers.values()),
        "weight_dtypes": dict(Counter(i.dtype for i in m.initializers.values())),
        "quantization": "int8 (QDQ)" if counts.get("QuantizeLinear") and counts.get("DequantizeLinear") else (
            "dynamic" if counts.get("DynamicQuantizeLinear") or counts.get("MatMulInteger") else "float"),
        "macs_total": sum(o["macs"] or 0 for o in ops),
        "macs_note": (f"{unknown_macs} ops without known shapes are counted as 0" if unknown_macs else ""),
        "memory": {"activations_total_bytes": sum(_prod(s) * 4 for k, s in shapes.items()
                                                  if s and k not in m.initializers)},
        "min_runtime_version": _ORT_FOR_OPSET.get(opset, f"an onnxruntime implementing opset {opset}"),
        "min_runtime_version_source": f"onnxruntime release implementing ai.onnx opset {opset}",
        "edgetpu_compiled": False,
        "custom_ops": sorted({n.domain for n in m.nodes if n.domain not in ("", "ai.onnx")}),
    }


def _onnx_shapes(data: bytes, m) -> Dict[str, tuple]:
    """Tensor shapes: from value_info, or from onnx's shape inference when the package is installed."""
    shapes = {k: v.shape for k, v in m.value_info.items() if v.has_shape}
    shapes.update({v.name: v.shape for v in m.inputs + m.outputs if v.has_shape})
    shapes.update({k: i.dims for k, i in m.initializers.items()})
    if all(n.outputs and n.outputs[0] in shapes for n in m.nodes):
        return shapes
    try:
        import onnx  # optional: a dev-tool path, never the on-device one

        inferred = onnx.shape_inference.infer_shapes(onnx.load_model_from_string(data))
        for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
            dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim)
            shapes.setdefault(vi.name, dims)
    except Exception:  # no onnx package, or inference failed: MACs for those ops stay unknown
        pass
    return shapes


def _onnx_macs(n, m, shapes) -> Optional[int]:
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
    if n.op_type in ("Add", "Sub", "Mul", "Div", "Relu", "Sigmoid", "Tanh", "Softmax", "Clip", "LeakyRelu",
                     "PRelu", "BatchNormalization", "HardSwish", "HardSigmoid", "Max", "Min"):
        return o
    if n.op_type in ("MaxPool", "AveragePool"):
        ks = n.attributes.get("kernel_shape") or [1]
        return o * _prod(ks)
    return 0


def inspect_model(path) -> dict:
    """Inspect a ``.tflite`` or ``.onnx`` file (see module docstring)."""
    from .runtime import detect_format

    p = Path(path)
    if not p.is_file():
        raise ModelFormatError(f"{path}: no such model file")
    data = p.read_bytes()
    fmt = detect_format(p, data[:16])
    if fmt == "tflite":
        info = inspect_tflite(data)
    elif fmt == "onnx":
        info = inspect_onnx(data)
    else:
        raise ModelFormatError(f"{p.name}: inspect takes a .tflite or .onnx file; this is a {fmt}")
    return {"path": str(p), "bytes": len(data), "sha256": sha256_bytes(data), **info}
