"""Float ONNX from every source kind: Keras, SavedModel (legacy too), TFLite, PyTorch, ONNX.

One exporter, ``onnx-fp32``, with one small private function per source kind:

* Keras 3 model -> ``tf2onnx.convert.from_keras`` with an input signature built
  from the source's input specs (batch dimension left dynamic).
* SavedModel -> the serving signature is read with the TF1 loader into a graph,
  variables are frozen to constants and the frozen GraphDef goes through
  ``tf2onnx.convert.from_graph_def``. The TF1 path is used for every SavedModel,
  not only legacy ones, because older Keras SavedModels (``'_UserObject' object has
  no attribute 'add_slot'``) load nowhere else and one path is easier to trust.
* TFLite flatbuffer -> ``tf2onnx.convert.from_tflite``.
* ``torch.nn.Module`` -> ``torch.onnx.export(dynamo=True)`` at opset 18 (the
  dynamo exporter emits opset 18 or newer).
* ONNX -> optionally converted to another opset, initializers taken out of the graph
  inputs (old exporters put every weight there), shape-inferred and checked.

The ONNX graph's inputs and outputs are renamed to the source's own names
(``Source.inputs``/``Source.outputs``), so the same feed dict runs the source
and every converted file. Every result is checked with ``onnx.checker`` and
must open in onnxruntime before its bytes are returned: tf2onnx carries on past
ops it cannot convert, and a model that does not load must never be shipped.

Example:
    >>> import keras  # doctest: +SKIP
    >>> from edgeship.converters.sources import load_source  # doctest: +SKIP
    >>> m = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(2)])  # doctest: +SKIP
    >>> data = export_onnx_fp32(load_source(m), {})  # doctest: +SKIP
    >>> data[:2]  # an ONNX ModelProto starts with the ir_version field  # doctest: +SKIP
    b'\\x08\\x08'
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import List, Optional

from edgeship._deps import require
from edgeship._io import stdout_to_stderr
from edgeship.errors import ConversionError

from .registry import register

# Capabilities as data: the opsets each route can emit (tf2onnx 1.17 stops at 18;
# the torch dynamo exporter starts at 18).
DEFAULT_OPSET = {"keras": 17, "saved_model": 17, "tflite": 17, "torch": 18, "onnx": None}
OPSET_RANGE = {"keras": (13, 18), "saved_model": (13, 18), "tflite": (13, 18), "torch": (18, 23),
               "onnx": (7, 23)}
# Ops whose presence means a graph is already quantized.
QUANTIZED_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "ConvInteger",
                           "MatMulInteger", "QLinearConv", "QLinearMatMul", "QLinearAdd", "QLinearMul",
                           "QGemm", "DynamicQuantizeMatMul", "MatMulIntegerToFloat"})


def _first_line(exc: BaseException, limit: int = 300) -> str:
    text = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    return text[:limit] + ("..." if len(text) > limit else "")


def resolve_opset(kind: str, options: dict) -> Optional[int]:
    """The opset to emit for a source kind: ``options['opset']`` if given (checked), else the default."""
    opset = options.get("opset")
    if opset is None:
        return DEFAULT_OPSET[kind]
    if isinstance(opset, bool) or not isinstance(opset, int):
        raise ConversionError(f"opset must be an integer, got {opset!r}")
    lo, hi = OPSET_RANGE[kind]
    if not lo <= opset <= hi:
        why = {"torch": "torch.onnx.export(dynamo=True) emits opset 18 or newer",
               "onnx": "onnx's version converter covers opsets 7 to 23"}.get(kind, "tf2onnx 1.17 supports up to 18")
        raise ConversionError(f"opset {opset} is not available for a {kind} source: expected {lo}..{hi} ({why})")
    return opset


def to_onnx_model(source, options: Optional[dict] = None):
    """Convert ``source`` to a float ``onnx.ModelProto`` whose I/O names are the source's.

    Args:
        source: a :class:`~edgeship.converters.sources.Source`.
        options: exporter options; only ``opset`` is used here.

    Raises:
        ConversionError: the converter failed, or its result does not load in onnxruntime.
        MissingDependencyError: tf2onnx/onnx (extra ``convert``) or torch (extra ``torch``) missing.
    """
    options = options or {}
    onnx = require("onnx", "convert", "writing ONNX models")
    opset = resolve_opset(source.kind, options)
    route = {"keras": _from_keras, "saved_model": _from_saved_model, "tflite": _from_tflite,
             "torch": _from_torch, "onnx": _from_onnx}.get(source.kind)
    if route is None:
        raise ConversionError(f"cannot make ONNX from a {source.kind!r} source; expected one of "
                              f"keras, saved_model, tflite, torch, onnx")
    model = route(source, opset)
    finalize(model, source)
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ConversionError(f"the ONNX model made from the {source.kind} source is invalid: "
                              f"{_first_line(exc)}") from exc
    check_loads(model, f"the ONNX model made from the {source.kind} source")
    return model


@register("onnx-fp32", format="onnx", quantization="fp32",
          sources=("keras", "saved_model", "tflite", "torch", "onnx"))
def export_onnx_fp32(source, options: dict) -> bytes:
    """Float ONNX (tf2onnx for TF/Keras/TFLite, torch.onnx dynamo for PyTorch, checked pass-through for ONNX)."""
    return to_onnx_model(source, options).SerializeToString()


# -- shared clean-up ---------------------------------------------------------------------------

def finalize(model, source) -> None:
    """Give the graph the source's I/O names and drop what makes bytes irreproducible or stale."""
    rename_io(model, [s.name for s in source.inputs], [s.name for s in source.outputs])
    strip_initializer_value_info(model)
    for node in model.graph.node:  # torch stores Python stack traces with local paths here
        del node.metadata_props[:]
        node.doc_string = ""
    meta = {p.key: p for p in model.metadata_props}
    for key, value in (("edgeship.source_kind", source.kind), ("edgeship.source_sha256", source.sha256)):
        if key in meta:
            meta[key].value = value
        else:
            model.metadata_props.add(key=key, value=value)


def strip_initializer_value_info(model) -> None:
    """Remove value_info entries that describe initializers.

    Exporters (torch dynamo) record them; ORT's dynamic quantizer transposes Gemm
    weights and its shape inference then fails on the stale shape.
    """
    inits = {i.name for i in model.graph.initializer}
    keep = [v for v in model.graph.value_info if v.name not in inits]
    del model.graph.value_info[:]
    model.graph.value_info.extend(keep)


def rename_io(model, input_names: List[str], output_names: List[str]) -> None:
    """Rename graph inputs/outputs (in order) to the given names, everywhere they are used."""
    g = model.graph
    inits = {i.name for i in g.initializer}
    graph_inputs = [i for i in g.input if i.name not in inits]
    if len(graph_inputs) != len(input_names) or len(g.output) != len(output_names):
        raise ConversionError(
            f"the converted ONNX graph has {len(graph_inputs)} inputs / {len(g.output)} outputs but the "
            f"source has {len(input_names)} / {len(output_names)}")
    mapping = {}
    for vi, new in list(zip(graph_inputs, input_names)) + list(zip(g.output, output_names)):
        if vi.name != new:
            mapping[vi.name] = new
    if not mapping:
        return
    taken = {o for n in g.node for o in n.output} | {i.name for i in g.input} | inits
    clash = [new for old, new in mapping.items() if new in taken and new not in mapping]
    if clash:
        raise ConversionError(f"cannot name the ONNX I/O after the source: {clash} already name other tensors")
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        if vi.name in mapping:
            vi.name = mapping[vi.name]
    for node in g.node:
        for i, name in enumerate(node.input):
            if name in mapping:
                node.input[i] = mapping[name]
        for i, name in enumerate(node.output):
            if name in mapping:
                node.output[i] = mapping[name]


def check_loads(model, what: str) -> None:
    """Raise ConversionError unless onnxruntime can open ``model``."""
    ort = require("onnxruntime", "convert", "checking ONNX models")
    try:
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ConversionError(f"{what} does not load in onnxruntime: {_first_line(exc)}") from exc


# -- one route per source kind --------------------------------------------------------------------

def _from_keras(source, opset):
    tf = require("tensorflow", "convert", "converting Keras models to ONNX")
    tf2onnx = require("tf2onnx", "convert", "converting Keras models to ONNX")
    sig = [tf.TensorSpec([None if d < 0 else d for d in s.shape], tf.as_dtype(s.dtype), name=s.name)
           for s in source.inputs]
    from edgeship.converters.sources import KERAS_LOCK

    try:  # the lock: not while convert's reference thread traces or runs the same model
        with stdout_to_stderr(), KERAS_LOCK:
            model, _ = tf2onnx.convert.from_keras(source.obj, input_signature=sig, opset=opset)
    except Exception as exc:
        raise ConversionError(f"tf2onnx could not convert the Keras model: {_first_line(exc)}") from exc
    return model


def _freeze_serving_signature(tf, path: str):
    """TF1 loader -> (frozen GraphDef, input tensor names, output tensor names), in sorted key order."""
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
        try:
            meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], path)
        except Exception as exc:
            raise ConversionError(f"the TF1 loader cannot read SavedModel '{path}': {_first_line(exc)}") from exc
        if "serving_default" not in meta.signature_def:
            raise ConversionError(f"SavedModel '{path}' has no 'serving_default' signature "
                                  f"(has: {sorted(meta.signature_def)})")
        sig = meta.signature_def["serving_default"]
        in_t = [sig.inputs[k].name for k in sorted(sig.inputs)]
        out_t = [sig.outputs[k].name for k in sorted(sig.outputs)]
        try:
            frozen = tf.compat.v1.graph_util.convert_variables_to_constants(
                sess, graph.as_graph_def(), sorted({t.split(":")[0] for t in out_t}))
        except Exception as exc:
            raise ConversionError(f"could not freeze the variables of SavedModel '{path}': "
                                  f"{_first_line(exc)}") from exc
    return frozen, in_t, out_t


def _from_saved_model(source, opset):
    tf = require("tensorflow", "convert", "converting SavedModels to ONNX")
    tf2onnx = require("tf2onnx", "convert", "converting SavedModels to ONNX")
    from tf2onnx import tf_loader

    frozen, in_t, out_t = _freeze_serving_signature(tf, str(source.obj))
    try:
        with stdout_to_stderr():
            with tf.Graph().as_default():  # grappler pass: inlines the Keras call functions
                frozen = tf_loader.tf_optimize(in_t, out_t, frozen)
            model, _ = tf2onnx.convert.from_graph_def(frozen, input_names=in_t, output_names=out_t, opset=opset)
    except ConversionError:
        raise
    except Exception as exc:
        raise ConversionError(f"tf2onnx could not convert SavedModel '{source.obj}': {_first_line(exc)}") from exc
    return model


def _from_tflite(source, opset):
    require("tensorflow", "convert", "converting TFLite models to ONNX")
    tf2onnx = require("tf2onnx", "convert", "converting TFLite models to ONNX")
    with tempfile.TemporaryDirectory(prefix="edgeship-") as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(bytes(source.obj))
        try:
            with stdout_to_stderr():
                model, _ = tf2onnx.convert.from_tflite(str(path), opset=opset)
        except Exception as exc:
            raise ConversionError(f"tf2onnx could not convert the TFLite model: {_first_line(exc)}") from exc
    return model


def _from_torch(source, opset):
    torch = require("torch", "torch", "exporting PyTorch models to ONNX")
    require("onnxscript", "torch", "exporting PyTorch models to ONNX (torch.onnx dynamo exporter)")
    if not source.example_inputs:
        raise ConversionError("a torch source needs example_inputs to be exported to ONNX; none were given")
    from edgeship.converters.batching import torch_export_args

    module = source.obj.eval()
    args, dynamic = torch_export_args(source)
    try:
        with stdout_to_stderr(), torch.no_grad():
            program = torch.onnx.export(
                module, args, dynamo=True, opset_version=opset, dynamic_shapes=dynamic,
                input_names=[s.name for s in source.inputs], output_names=[s.name for s in source.outputs],
                verbose=False)
        model = program.model_proto
    except Exception as exc:
        from edgeship.converters.torch_errors import torch_export_error

        raise torch_export_error(exc, "torch.onnx.export(dynamo=True)") from exc
    return model


def _from_onnx(source, opset):
    onnx = require("onnx", "convert", "processing ONNX models")
    model = onnx.ModelProto()
    model.CopyFrom(source.obj)
    current = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None)
    if opset is not None and opset != current:
        try:
            model = onnx.version_converter.convert_version(model, opset)
        except Exception as exc:
            raise ConversionError(f"cannot convert the ONNX model from opset {current} to {opset}: "
                                  f"{_first_line(exc)}") from exc
    drop_initializer_inputs(model)
    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception as exc:
        raise ConversionError(f"ONNX shape inference failed: {_first_line(exc)}") from exc
    return model


def drop_initializer_inputs(model) -> None:
    """Remove initializers from the graph inputs (old exporters, IR < 4, listed every weight there).

    onnxruntime treats such weights as overridable inputs, so it neither folds BatchNorm nor
    constant-folds them, and the quantizer sees them as activations. The runtime inputs
    (what ``Source.inputs`` lists) are unchanged.
    """
    inits = {i.name for i in model.graph.initializer}
    keep = [i for i in model.graph.input if i.name not in inits]
    if len(keep) != len(model.graph.input):
        del model.graph.input[:]
        model.graph.input.extend(keep)


def is_quantized(model) -> bool:
    """True if the graph already holds quantize/dequantize or integer ops."""
    return any(n.op_type in QUANTIZED_OPS for n in model.graph.node)


__all__ = ["export_onnx_fp32", "to_onnx_model", "finalize", "rename_io", "check_loads", "drop_initializer_inputs",
           "strip_initializer_value_info", "resolve_opset", "is_quantized", "DEFAULT_OPSET", "OPSET_RANGE"]
