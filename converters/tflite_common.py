"""TFLiteConverter setup shared by the tflite_* exporters, including the legacy TF1 path.

* Keras 3 models are traced once (``model(x, training=False)`` as a ``tf.function`` on the
  source's input specs) and that concrete function, variables frozen into constants, is
  converted (``from_concrete_functions`` with ``experimental_lower_to_saved_model = False``). This
  is what ``TFLiteConverter.from_keras_model`` does minus its round trip through a temporary
  SavedModel (export, write, load it twice): the same MLIR conversion of the same graph, about 4x
  faster on MobileNetV2 (~3 s instead of ~14 s, ``bench/convert_speed.py``). That route writes
  no SignatureDef, so a ``serving_default`` signature (inputs and outputs under the source's
  names) is added to the file afterwards (:func:`run_converter`): signature runners work as on
  a file made by ``from_keras_model``. Left with ``experimental_lower_to_saved_model`` on, a
  concrete function keeps its weights as uninitialised resource variables (NaN outputs).
* SavedModels that TF2 can load use ``TFLiteConverter.from_saved_model``.
* A float TFLite file is replayed with TensorFlow ops on its own weights
  (:mod:`edgeship.converters.tflite_graph`) and that concrete function is converted, so a float
  ``.tflite`` can be quantized again (int8, int16x8, fp16, dynamic).
* Legacy SavedModels (``Source.legacy``; TF2 fails with ``'_UserObject' object has no attribute
  'add_slot'``) use ``tf.compat.v1.lite.TFLiteConverter.from_saved_model``, which reads the
  serving signature from the graph.

Only TFLite builtin ops are allowed: a model needing Select TF ops (Flex) would not run on
the LiteRT/tflite-runtime/TFLM interpreters edgeship targets, so that is a ConversionError
naming the ops, never a silently larger runtime.

Example:
    >>> from edgeship.converters.tflite_common import TFLITE_SOURCES
    >>> TFLITE_SOURCES
    ('keras', 'saved_model', 'tflite')
"""
from __future__ import annotations

import re
from typing import List, Optional

import numpy as np

from edgeship._deps import require
from edgeship.errors import ConversionError

TFLITE_SOURCES = ("keras", "saved_model", "tflite")


def make_converter(source):
    """A fresh TFLiteConverter for ``source`` (builtin ops only)."""
    tf = require("tensorflow", "convert", "converting to TFLite")
    if source.kind == "keras":
        conv = _keras_converter(tf, source)
    elif source.kind == "saved_model" and source.legacy and getattr(source, "_session", None) is not None:
        conv = _from_legacy_session(tf, source)
    elif source.kind == "saved_model" and source.legacy:
        conv = tf.compat.v1.lite.TFLiteConverter.from_saved_model(
            source.path, signature_key="serving_default", tag_set={"serve"})
    elif source.kind == "saved_model":
        conv = tf.lite.TFLiteConverter.from_saved_model(source.path, signature_keys=["serving_default"])
    elif source.kind == "tflite":
        conv = _tflite_converter(tf, source)
    else:
        raise ConversionError(f"TFLite conversion takes a Keras model, a SavedModel or a float TFLite file, not a "
                              f"{source.kind} source")
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return conv


_TF_NAME = re.compile(r"[A-Za-z0-9.][A-Za-z0-9_.\\/>-]*$")


def _keras_converter(tf, source):
    """The TF2 converter on one frozen trace of the Keras model (see the module docstring)."""
    from edgeship.converters.sources import KERAS_LOCK, keras_output_list

    model = source.obj
    in_names = _input_names(source)
    specs = [tf.TensorSpec([None if d < 0 else d for d in s.shape], t.dtype, name=n)
             for s, t, n in zip(source.inputs, model.inputs, in_names)]

    def call(*args):
        return keras_output_list(model(list(args) if len(args) > 1 else args[0], training=False))

    try:
        with KERAS_LOCK:  # not while convert's reference thread traces or runs the same model
            fn = tf.function(call, input_signature=specs, autograph=False).get_concrete_function()
    except Exception as exc:
        raise conversion_error(exc, "tracing the Keras model") from exc
    return _from_function(tf, fn, model, source, in_names)


def _tflite_converter(tf, source):
    """The TF2 converter on a float TFLite file replayed with TensorFlow ops (:mod:`.tflite_graph`)."""
    from edgeship.converters.tflite_graph import concrete_function

    in_names = _input_names(source)
    fn = concrete_function(source.obj, source.path or "the TFLite model", in_names)
    return _from_function(tf, fn, tf.Module(), source, in_names)  # nothing to track: the weights are constants


def _input_names(source) -> List[str]:
    return [s.name if _TF_NAME.match(s.name) else f"input_{i}" for i, s in enumerate(source.inputs)]


def _from_function(tf, fn, trackable, source, in_names: List[str]):
    """A converter on one concrete function; the file gets a signature under the source's names."""
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn], trackable)
    conv.experimental_lower_to_saved_model = False
    out_names = [o.name for o in source.outputs]
    if len(set(out_names)) != len(out_names) or not all(out_names):
        out_names = [f"output_{i}" for i in range(len(out_names))]
    conv._edgeship_signature = (in_names, out_names)
    return conv


def add_signature(model_bytes: bytes, inputs: List[str], outputs: List[str],
                  key: str = "serving_default") -> bytes:
    """``model_bytes`` with a SignatureDef ``key`` mapping these names to subgraph 0's inputs/outputs.

    The output tensors take the same names (the converter calls them ``Identity``,
    ``Identity_1``...), so ``edgeship.load(...).predict`` keys a multi-output result by the
    source's output names. Does nothing when the file already has signatures or the counts do
    not match.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(model_bytes)
    graph = model.subgraphs[0]
    if model.signatureDefs or len(graph.inputs) != len(inputs) or len(graph.outputs) != len(outputs):
        return model_bytes

    def tensor_map(name: str, index: int):
        m = schema.TensorMapT()
        m.name, m.tensorIndex = name, int(index)
        return m

    sig = schema.SignatureDefT()
    sig.signatureKey, sig.subgraphIndex = key, 0
    sig.inputs = [tensor_map(n, i) for n, i in zip(inputs, graph.inputs)]
    sig.outputs = [tensor_map(n, i) for n, i in zip(outputs, graph.outputs)]
    model.signatureDefs = [sig]
    for name, index in zip(outputs, graph.outputs):
        graph.tensors[index].name = name
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _from_legacy_session(tf, source):
    """The TF1 converter on the session the source already holds.

    ``tf.compat.v1.lite.TFLiteConverter.from_saved_model`` loads the SavedModel twice more
    (a TF2 attempt, then a TF1 session to freeze): ~10 s on the MLPerf KWS model. Freezing the
    source's own session (the same serving-signature tensors, the same variables) gives the
    same graph without reloading; the file still records a SavedModel as its origin.
    """
    from tensorflow.lite.python import lite as tfl_lite

    sess = source._session
    ins, outs = source._tensor_names
    get = sess.graph.get_tensor_by_name
    conv = tf.compat.v1.lite.TFLiteConverter.from_session(sess, [get(n) for n in ins], [get(n) for n in outs])
    try:
        conv._metadata.environment.modelType = tfl_lite.conversion_metadata_fb.ModelType.TF_SAVED_MODEL
    except AttributeError:  # private API moved: only the file's origin metadata differs
        pass
    return conv


def representative_dataset(source, calibration):
    """A generator factory yielding each calibration sample as a list in the source's input order."""
    if calibration is None or calibration.count == 0:
        raise ConversionError("this quantization needs calibration data (--calibration): none was given")
    names = [s.name for s in source.inputs]

    def gen():
        from edgeship.progress import track

        for s in track(calibration.samples, "calibrating"):
            yield [s[n] for n in names]

    return gen


def run_converter(conv, what: str) -> bytes:
    """``conv.convert()`` with converter failures turned into a ConversionError that names the cause."""
    try:
        out = bytes(conv.convert())
    except ConversionError:
        raise
    except Exception as exc:
        raise conversion_error(exc, what) from exc
    sig = getattr(conv, "_edgeship_signature", None)
    return add_signature(out, *sig) if sig else out


def conversion_error(exc: BaseException, what: str) -> ConversionError:
    text = str(exc)
    ops = sorted(set(re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", text)))
    if ops or "flex op" in text or "Select TF" in text:
        listed = ", ".join(f"tf.{o}" for o in ops) or "(see converter log)"
        return ConversionError(
            f"{what}: the model uses TensorFlow ops with no TFLite builtin kernel: {listed}. edgeship only "
            f"emits builtin-op models (Select TF ops need the Flex delegate, which edge runtimes lack); "
            f"replace those layers or export to ONNX instead")
    lines = [ln.strip() for ln in text.splitlines() if "error" in ln.lower()] or text.strip().splitlines() or [
        type(exc).__name__]
    return ConversionError(f"{what} failed: {lines[0][:400]}")


def float_op_names(model_bytes: bytes) -> List[str]:
    """Compute ops (not QUANTIZE/DEQUANTIZE) that still run in float in a quantized model."""
    facts = _facts(model_bytes)
    out = []
    for op in facts.ops:
        if op.op in ("QUANTIZE", "DEQUANTIZE"):
            continue
        if any(facts.tensors[i].dtype == "float32" for i in op.inputs if i >= 0):
            out.append(f"{op.op}({', '.join(facts.tensors[i].name for i in op.outputs)})")
    return out


def _facts(model_bytes: bytes):
    """:class:`edgeship.facts.ModelFacts` of TFLite bytes (the one reader of model structure)."""
    from pathlib import Path

    from edgeship.facts import read_facts

    return read_facts(Path("model.tflite"), data=bytes(model_bytes))


def calibrate(source, options: dict) -> bytes:
    """Run the representative data through the model; returns the calibrated float model."""
    tf = require("tensorflow", "convert", "quantizing to int8")
    conv = make_converter(source)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative_dataset(source, options.get("calibration"))
    conv._experimental_disable_per_channel = not options.get("per_channel", True)
    conv._experimental_calibrate_only = True
    return run_converter(conv, "int8 calibration")


CALIBRATION_METHODS = ("minmax", "percentile")


def calibrate_with_method(source, options: dict) -> bytes:
    """Calibrate with ``options['calibration_method']``: "minmax" (TFLite's own) or "percentile".

    The result is kept on the source (``source.calibrated``), so the exporter, the accuracy-budget
    fix and the per-layer ranking of one conversion share one calibration per setting.
    """
    method = options.get("calibration_method") or "minmax"
    if method not in CALIBRATION_METHODS:
        raise ConversionError(f"calibration_method for TFLite must be one of {list(CALIBRATION_METHODS)}, "
                              f"got {method!r}")
    ref = options.get("ranges_from")  # a reference_ranges.ReferenceRanges: its ranges replace the calibrated ones
    if ref is not None and method != "minmax":
        raise ConversionError(f"ranges_from takes every activation range from {ref.path}; calibration_method "
                              f"{method!r} would have no effect: leave one of the two out")
    cal = options.get("calibration")
    pct = float(options.get("percentile", 99.99)) if method == "percentile" else None
    key = (getattr(cal, "sha256", None) or id(cal), bool(options.get("per_channel", True)), method, pct,
           ref.sha256 if ref is not None else None)
    cache = getattr(source, "calibrated", None)
    if cache is not None and key in cache:
        return cache[key]
    base_key = key[:2] + ("minmax", None, None)
    calibrated = cache.get(base_key) if cache is not None else None
    if calibrated is None:
        calibrated = calibrate(source, options)
        if cache is not None:
            cache[base_key] = calibrated
    if method == "percentile":
        calibrated = recalibrate_percentile(calibrated, source, cal, pct)
    if ref is not None:
        from edgeship.converters.reference_ranges import apply_reference_ranges

        calibrated = apply_reference_ranges(calibrated, ref)
    if cache is not None:
        cache[key] = calibrated
    return calibrated


def recalibrate_percentile(calibrated: bytes, source, calibration, percentile: float = 99.99,
                           max_values: int = 200_000, seed: int = 0) -> bytes:
    """Replace the min/max range of each intermediate activation with its [100-p, p] percentiles.

    The calibrated float model is run on the calibration samples with all tensors kept; values
    beyond the percentiles then saturate instead of stretching the int8 scale. Model inputs and
    outputs keep their min/max ranges (clipping logits could change the top class).
    """
    if not 50.0 < percentile <= 100.0:
        raise ConversionError(f"percentile must be in (50, 100], got {percentile}")
    from ai_edge_litert.interpreter import Interpreter
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(calibrated))
    sub = model.subgraphs[0]
    io = set(int(i) for i in sub.inputs) | set(int(i) for i in sub.outputs)
    targets = [i for i, t in enumerate(sub.tensors)
               if i not in io and t.quantization is not None and t.quantization.min is not None
               and len(t.quantization.min) == 1]
    if not targets:
        return calibrated
    it = Interpreter(model_content=calibrated, experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    in_idx = [d["index"] for d in it.get_input_details()]
    names = [s.name for s in source.inputs]
    rng = np.random.default_rng(seed)
    per_sample_cap = max(1, max_values // max(1, calibration.count))
    values = {i: [] for i in targets}
    for sample in calibration.samples:
        for idx, n in zip(in_idx, names):
            it.set_tensor(idx, sample[n].astype(np.float32))
        it.invoke()
        for i in targets:
            v = it.get_tensor(i).reshape(-1)
            if v.size > per_sample_cap:
                v = rng.choice(v, per_sample_cap, replace=False)
            values[i].append(v.astype(np.float32))
    for i in targets:
        v = np.concatenate(values[i])
        lo, hi = np.percentile(v, [100.0 - percentile, percentile])
        q = sub.tensors[i].quantization
        q.min = np.array([min(float(lo), 0.0)], np.float32)
        q.max = np.array([max(float(hi), 0.0)], np.float32)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def op_outputs(model_bytes: bytes) -> List[dict]:
    """[{op, outputs: [tensor names], inputs: [tensor names]}] for each op of a TFLite model."""
    facts = _facts(model_bytes)
    name = {t.index: t.name for t in facts.tensors}
    return [{"op": o.op, "inputs": [name[i] for i in o.inputs if i in name],
             "outputs": [name[i] for i in o.outputs if i in name]} for o in facts.ops]


def source_layer_names(source) -> Optional[set]:
    """Names of the Keras layers of a Keras source (None for other kinds)."""
    layers = getattr(source.obj, "layers", None) if source.kind == "keras" else None
    return {l.name for l in layers} if layers else None


def layer_of(tensor_name: str, known: Optional[set] = None) -> str:
    """Best-effort Keras layer name behind a converter tensor name.

    'model/conv2d_3/Relu' -> 'conv2d_3'. With the source's layer names ``known``, the innermost
    scope that is a real layer wins, so 'functional_1/bn3_1/batchnorm/mul_1' -> 'bn3' (not the TF
    op scope 'batchnorm' inside it); Keras 3 traces add '_1' to every scope, which is dropped when
    only the shorter name is a real layer.
    """
    first = tensor_name.split(";")[0]
    parts = [p for p in first.split("/") if p]
    if known:
        for seg in reversed(parts[:-1] or parts):
            if seg in known:
                return seg
            base = re.sub(r"_\d+$", "", seg)
            if base in known:
                return base
    seg = parts[-2] if len(parts) >= 2 else parts[0] if parts else tensor_name
    if known and seg not in known:
        base = re.sub(r"_\d+$", "", seg)
        if base in known:
            return base
    return seg


def unique_layer_names(model_bytes: bytes, known: Optional[set] = None) -> dict:
    """{op output tensor: layer name} where one name never covers two different layers.

    :func:`op_layer_names` may give the same generic scope to different layers of a model whose
    layer names are not known (a SavedModel: 'model/bn1/batchnorm/mul' and 'model/bn2/batchnorm/mul'
    are both 'batchnorm'); those are qualified with the scopes above them ('bn1/batchnorm') until
    they differ. The per-layer ranking names layers with this function and ``keep_float_ops``
    resolves names with it, so every ranked name can be passed back to ``--keep-float``.
    """
    names = op_layer_names(model_bytes, known)
    if known:   # Keras layer names are unique in their model
        return names

    def scope(t: str, name: str) -> List[str]:
        parts = [p for p in t.split(";")[0].split("/") if p]
        for i in range(len(parts) - 1, -1, -1):
            if parts[i] == name or re.sub(r"_\d+$", "", parts[i]) == name:
                return parts[:i + 1]
        return [name]   # named after its weights (an output op): keep the name

    by_name: dict = {}
    for t, n in names.items():
        by_name.setdefault(n, []).append(t)
    out = dict(names)
    for n, tensors in by_name.items():
        scopes = {t: scope(t, n) for t in tensors}
        if len({"/".join(s) for s in scopes.values()}) < 2:
            continue
        for k in range(2, 1 + max(len(s) for s in scopes.values())):
            quals = {t: "/".join(s[-k:]) for t, s in scopes.items()}
            groups: dict = {}
            for t, q in quals.items():
                groups.setdefault(q, set()).add("/".join(scopes[t]))
            if all(len(g) == 1 for g in groups.values()) or k >= max(len(s) for s in scopes.values()):
                out.update(quals)
                break
    return out


def op_layer_names(model_bytes: bytes, known: Optional[set] = None) -> dict:
    """{op output tensor: Keras layer name}; output ops named after the signature fall back to
    the layer named by their weight tensors (e.g. 'StatefulPartitionedCall:0' -> 'head')."""
    names = {}
    for o in op_outputs(model_bytes):
        for t in o["outputs"]:
            name = layer_of(t, known)
            if ":" in name or name.startswith(("StatefulPartitionedCall", "Identity", "serving_default")):
                for w in o["inputs"][1:]:
                    cand = layer_of(w, known)
                    if ":" not in cand and "/" in w:
                        name = cand
                        break
            names[t] = name
    return names


def resolve_keep_float(calibrated: bytes, keep: List[str], known: Optional[set] = None) -> List[str]:
    """Map layer or tensor names to the op-output tensor names of this calibrated model.

    Converter tensor names change between conversions (name scopes get suffixes), so users
    and the auto-fix name layers; each name must match at least one op output.
    """
    layers = unique_layer_names(calibrated, known)
    outs = list(layers)
    picked: List[str] = []
    for name in keep:
        hits = [t for t in outs if t == name] or [t for t in outs if layers[t] == name] or \
               [t for t in outs if any(seg == name or re.fullmatch(re.escape(name) + r"_\d+", seg)
                                       for part in t.split(";") for seg in part.split("/"))]
        if not hits:
            known = sorted(set(layers.values()))
            raise ConversionError(f"keep_float_ops: no layer or tensor named {name!r} in the model; "
                                  f"layers: {', '.join(known[:40])}")
        picked.extend(h for h in hits if h not in picked)
    return picked


def quantize_model(calibrated: bytes, options: dict, keep_tensors: Optional[List[str]] = None) -> bytes:
    """MLIR-quantize a calibrated model, leaving ``keep_tensors``' producers in float; set I/O types."""
    tf = require("tensorflow", "convert", "quantizing to int8")
    from tensorflow.lite.python import convert as tfl_convert
    from tensorflow.lite.python import util as tfl_util

    try:
        quant = tfl_convert.mlir_quantize(
            calibrated, disable_per_channel=not options.get("per_channel", True), fully_quantize=False,
            input_data_type=tf.float32, output_data_type=tf.float32,
            denylisted_nodes=list(keep_tensors) if keep_tensors else None)
    except Exception as exc:
        raise conversion_error(exc, "int8 quantization") from exc
    io_dtype = options.get("io_dtype", "int8")
    if io_dtype != "float32":
        dtypes = {"int8": tf.int8, "uint8": tf.uint8}
        if io_dtype not in dtypes:
            raise ConversionError(f"io_dtype must be one of int8, uint8, float32; got {io_dtype!r}")
        try:
            quant = tfl_util.modify_model_io_type(quant, dtypes[io_dtype], dtypes[io_dtype])
        except Exception as exc:
            raise conversion_error(exc, f"setting {io_dtype} input/output") from exc
    return io_names_from_signature(bytes(quant))


def io_names_from_signature(model_bytes: bytes) -> bytes:
    """Name subgraph 0's input and output tensors as its ``serving_default`` signature does.

    The quantizer leaves the signature right but renames the I/O tensors (``tfl.quantize``,
    ``StatefulPartitionedCall_1:01``); runtimes that list tensors, edgeship's included, then show
    those names instead of the source's. Unchanged when there is no signature or it does not
    cover exactly the graph's inputs and outputs.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(model_bytes)
    graph = model.subgraphs[0]
    sig = next((s for s in model.signatureDefs or [] if s.subgraphIndex == 0), None)
    if sig is None:
        return model_bytes
    names = {int(m.tensorIndex): m.name for m in list(sig.inputs or []) + list(sig.outputs or [])}
    io = [int(i) for i in graph.inputs] + [int(i) for i in graph.outputs]
    if set(names) != set(io) or len(set(names.values())) != len(names):
        return model_bytes
    if all(graph.tensors[i].name == names[i] for i in io):
        return model_bytes
    for i in io:
        graph.tensors[i].name = names[i]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def quantize_calibrated(source, options: dict) -> bytes:
    """Calibrate, then quantize with the MLIR quantizer, keeping ``keep_float_ops`` in float.

    This is what TFLiteConverter does for full-integer quantization, split in two so the
    selective-quantization denylist and the per-channel switch can be applied.
    """
    calibrated = calibrate_with_method(source, options)
    keep = list(options.get("keep_float_ops") or [])
    return quantize_model(calibrated, options,
                          resolve_keep_float(calibrated, keep, source_layer_names(source)) if keep else None)
