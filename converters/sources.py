"""Load whatever the user hands in (Keras, SavedModel, ONNX, PyTorch, TFLite) as one :class:`Source`.

The kind is detected from the object or the path; a wrong or unreadable
source raises :class:`~edgeship.errors.ModelFormatError` (the thing given is
not a model we can read) or :class:`~edgeship.errors.ConversionError` (it is
a model but cannot be used as given, e.g. a torch module with no example input).

Every Source can run itself (``Source.run``) so each converted file can be
checked against the very model it came from.

Legacy SavedModels (written by older Keras; ``tf.saved_model.load`` fails on
them with ``'_UserObject' object has no attribute 'add_slot'``) are read with
the TF1 loader and marked ``legacy=True`` so exporters pick the TF1 converter.

Example:
    >>> import numpy as np, keras  # doctest: +SKIP
    >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])  # doctest: +SKIP
    >>> src = load_source(m)  # doctest: +SKIP
    >>> src.kind, src.inputs[0].shape  # doctest: +SKIP
    ('keras', (-1, 4))
    >>> src.run({src.inputs[0].name: np.zeros((1, 4), np.float32)})[0].shape  # doctest: +SKIP
    (1, 2)
"""
from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from edgeship._deps import require
from edgeship._io import sha256_file, tree_sha256
from edgeship.errors import ConversionError, ModelFormatError
from edgeship.spec import TensorSpec

#: Held while a Keras model is traced or run: by the source's ``run`` (each batch) and by every
#: exporter that traces the model (the TFLite converter's trace, tf2onnx). Graph building on one
#: model from two threads at once can crash TensorFlow (a segfault in op creation was seen with the
#: reference thread of ``convert`` tracing ``predict`` while the export traced the model); with the
#: lock, the reference still runs beside the export's conversion, which does not touch the model.
KERAS_LOCK = threading.RLock()

SOURCE_KINDS = ("keras", "saved_model", "onnx", "torch", "tflite")


@dataclass
class Source:
    """A loaded source model: what it is, where it came from, its I/O, and how to run it.

    ``inputs``/``outputs`` are float specs (batch dimension may be ``-1``).
    ``run`` takes ``{input name: float array}`` and returns the float outputs in
    the order of ``outputs``.
    """

    kind: str
    obj: Any
    path: Optional[str]
    sha256: str
    inputs: List[TensorSpec]
    outputs: List[TensorSpec]
    example_inputs: Optional[tuple] = None
    legacy: bool = False
    dynamic_batch: bool = False   # export with a dynamic batch dimension (see converters.batching)
    _runner: Optional[Callable[[Dict[str, np.ndarray]], List[np.ndarray]]] = field(
        default=None, repr=False, compare=False)
    # calibrated float models by (calibration sha256, per_channel, method, percentile, ranges_from sha256): one
    # conversion calibrates once, whatever exporters, fixes and layer rankings need it
    calibrated: Dict[tuple, bytes] = field(default_factory=dict, init=False, repr=False, compare=False)

    def run(self, feeds: Dict[str, np.ndarray]) -> List[np.ndarray]:
        """Float reference outputs for ``feeds`` (a dict by input name, or one array for one input)."""
        if not isinstance(feeds, dict):
            if len(self.inputs) != 1:
                raise ConversionError(
                    f"this {self.kind} source has {len(self.inputs)} inputs "
                    f"({', '.join(s.name for s in self.inputs)}); pass a dict by input name")
            feeds = {self.inputs[0].name: feeds}
        missing = [s.name for s in self.inputs if s.name not in feeds]
        if missing:
            raise ConversionError(f"missing input(s) {missing} for the {self.kind} source; "
                                  f"given: {sorted(feeds)}")
        feeds = {k: np.asarray(v, dtype=np.float32) if np.asarray(v).dtype.kind == "f" else np.asarray(v)
                 for k, v in feeds.items()}
        if self._runner is None:
            raise ConversionError(f"this {self.kind} source cannot be run")
        return [np.asarray(o) for o in self._runner(feeds)]

    def run_many(self, samples: List[Dict[str, np.ndarray]], chunk: int = 32) -> List[List[np.ndarray]]:
        """:meth:`run` on each sample, in batches where that gives the same answer faster.

        A Keras model or SavedModel with a dynamic batch runs ``chunk`` stacked samples per call
        (one eager Keras call costs about as much for 8 samples as for 1: ~1 s each on
        MobileNetV2); other sources, and any batch whose outputs lack the batch axis, run one
        sample at a time. Returns one list of outputs per sample, as :meth:`run` does.
        """
        batchable = (self.kind in ("keras", "saved_model") and len(samples) > 1 and
                     all(len(s.shape) > 0 and s.shape[0] < 0 for s in self.inputs))
        if not batchable:
            return [self.run(s) for s in samples]
        names = [s.name for s in self.inputs]
        out: List[List[np.ndarray]] = []
        for i in range(0, len(samples), chunk):
            part = samples[i:i + chunk]
            if any(n not in s or np.shape(s[n])[:1] != (1,) for s in part for n in names):
                out.extend(self.run(s) for s in part)  # run() raises the full error for a bad sample
                continue
            res = self.run({n: np.concatenate([s[n] for s in part], axis=0) for n in names})
            if not all(np.ndim(r) > 0 and np.shape(r)[0] == len(part) for r in res):
                out.extend(self.run(s) for s in part)
                continue
            out.extend([r[j:j + 1] for r in res] for j in range(len(part)))
        return out

    def describe(self) -> dict:
        """A JSON-able summary for reports and manifests."""
        return {"kind": self.kind, "path": self.path, "sha256": self.sha256, "legacy": self.legacy,
                "inputs": [s.to_dict() for s in self.inputs],
                "outputs": [s.to_dict() for s in self.outputs]}


# -- detection ------------------------------------------------------------------------------

def _mro_modules(obj: Any) -> List[str]:
    return [f"{c.__module__}.{c.__name__}" for c in type(obj).__mro__]


def _is_keras_model(obj: Any) -> bool:
    return any(m.startswith("keras.") and m.endswith(".Model") for m in _mro_modules(obj))


def _is_torch_module(obj: Any) -> bool:
    return any(m == "torch.nn.modules.module.Module" for m in _mro_modules(obj))


def _is_onnx_proto(obj: Any) -> bool:
    return any(m.startswith("onnx") and m.endswith("ModelProto") for m in _mro_modules(obj))


def load_source(src: Any, *, example_inputs: Any = None) -> Source:
    """Detect what ``src`` is and load it as a :class:`Source`.

    Args:
        src: a Keras 3 model, a ``.keras``/``.h5`` path, a SavedModel directory,
            an ``.onnx`` path or ``onnx.ModelProto``, a ``torch.nn.Module`` (with
            ``example_inputs``), a ``.tflite`` path, or raw TFLite/ONNX bytes.
            An existing Source is returned unchanged.
        example_inputs: a tensor or tuple of tensors (torch sources only).

    Raises:
        ModelFormatError: the path does not exist or is not a readable model.
        ConversionError: the object is not a supported model type.

    Example:
        >>> load_source("/nonexistent.keras")
        Traceback (most recent call last):
        ...
        edgeship.errors.ModelFormatError: source '/nonexistent.keras' does not exist
    """
    if isinstance(src, Source):
        return src
    if isinstance(src, (str, os.PathLike)):
        return _load_path(Path(src))
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
        if data[4:8] == b"TFL3":
            return _tflite_source(data, None)
        onnx = require("onnx", "convert", "reading an ONNX model")
        try:
            proto = onnx.load_model_from_string(data)
        except Exception as exc:  # protobuf raises its own DecodeError
            raise ModelFormatError(f"the {len(data)} bytes given are neither a TFLite flatbuffer "
                                   f"nor an ONNX model ({exc})") from exc
        if not proto.graph.node:
            raise ModelFormatError("the bytes given parse as ONNX but hold no graph nodes")
        return _onnx_source(proto, None)
    if _is_keras_model(src):
        return _keras_source(src, None)
    if _is_onnx_proto(src):
        return _onnx_source(src, None)
    if _is_torch_module(src):
        return _torch_source(src, example_inputs)
    raise ConversionError(
        f"cannot convert a {type(src).__module__}.{type(src).__name__}: expected a Keras model, "
        f"a .keras/.h5 file, a SavedModel directory, an .onnx file or onnx.ModelProto, "
        f"a torch.nn.Module (with example_inputs) or a .tflite file")


def _load_path(p: Path) -> Source:
    if not p.exists():
        raise ModelFormatError(f"source '{p}' does not exist")
    if p.is_dir():
        if (p / "saved_model.pb").is_file() or (p / "saved_model.pbtxt").is_file():
            return _saved_model_source(p)
        raise ModelFormatError(f"directory '{p}' is not a TF SavedModel (no saved_model.pb inside)")
    suffix = p.suffix.lower()
    data_head = p.open("rb").read(8)
    if suffix == ".tflite" or data_head[4:8] == b"TFL3":
        return _tflite_source(p.read_bytes(), str(p))
    if suffix in (".keras", ".h5", ".hdf5"):
        return _keras_file_source(p)
    if suffix == ".onnx":
        onnx = require("onnx", "convert", "reading an ONNX model")
        try:
            proto = onnx.load(str(p))
            onnx.checker.check_model(proto)
        except Exception as exc:
            raise ModelFormatError(f"'{p}' is not a readable ONNX model: {_first_line(exc)}") from exc
        return _onnx_source(proto, str(p))
    if suffix in (".pt", ".pth", ".pt2"):
        raise ConversionError(f"'{p}' is a PyTorch file; pass the torch.nn.Module itself with "
                              f"example_inputs (a pickled file is not loaded, for safety)")
    raise ModelFormatError(f"cannot tell what '{p}' is: expected .keras, .h5, .onnx, .tflite or a "
                           f"SavedModel directory, got a '{suffix or 'no'}' suffix")


def _first_line(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip() or type(exc).__name__
    line = text.splitlines()[0]
    return line[:limit] + ("..." if len(line) > limit else "")


def _shape(dims) -> tuple:
    return tuple(-1 if d is None or (isinstance(d, int) and d < 0) else int(d) for d in dims)


# -- Keras ----------------------------------------------------------------------------------

def _keras_file_source(p: Path) -> Source:
    keras = require("keras", "convert", "loading a Keras model")
    try:
        model = keras.models.load_model(str(p), compile=False)
    except Exception as exc:
        raise ModelFormatError(f"'{p}' is not a readable Keras model: {_first_line(exc)}") from exc
    return _keras_source(model, str(p), sha256_file(p))


def _keras_hash(model) -> str:
    h = hashlib.sha256()
    try:
        h.update(model.to_json().encode())
    except Exception:  # subclassed models have no config; the weights still identify them
        h.update(type(model).__name__.encode())
    for w in model.weights:
        h.update(np.ascontiguousarray(np.asarray(w)).tobytes())
    return h.hexdigest()


def _keras_name(t, fallback: str) -> str:
    """The layer name behind a Keras tensor ("input_layer"), not the tensor's ("keras_tensor_3")."""
    hist = getattr(t, "_keras_history", None)
    name = getattr(hist[0], "name", None) if hist else None
    return name or getattr(t, "name", None) or fallback


def keras_output_list(out) -> list:
    """A Keras model's outputs as a list in the source's output order (a dict by its values, one
    tensor as a list of one); the reference run and the TFLite trace both use it."""
    if isinstance(out, dict):
        return list(out.values())
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _keras_source(model, path: Optional[str], sha: Optional[str] = None) -> Source:
    try:
        ins = model.inputs
        outs = model.outputs
    except Exception:
        ins = outs = None
    if not ins:
        raise ConversionError("the Keras model has no defined inputs; build it (call it on an Input "
                              "or model.build(shape)) before converting")
    out_names = list(getattr(model, "output_names", None) or [])
    inputs = [TensorSpec(_keras_name(t, f"input_{i}"), _shape(t.shape), "float32", index=i)
              for i, t in enumerate(ins)]
    outputs = [TensorSpec(out_names[i] if len(out_names) == len(outs) else _keras_name(t, f"output_{i}"),
                          _shape(t.shape), "float32", index=i) for i, t in enumerate(outs)]

    graph = {"ok": hasattr(model, "predict_on_batch")}

    def run(feeds):
        args = [feeds[s.name] for s in inputs]
        x = args[0] if len(args) == 1 else args
        out = None
        with KERAS_LOCK:
            if graph["ok"]:
                # Keras' traced predict function: the same layers and weights as an eager call
                # (equal outputs on MobileNetV2), at about half the CPU time of eager kernels. A
                # model that cannot be traced runs eagerly from then on.
                try:
                    out = model.predict_on_batch(x)
                except Exception:
                    graph["ok"] = False
            if out is None:
                out = model(x, training=False)
            return [np.asarray(o) for o in keras_output_list(out)]

    return Source("keras", model, path, sha or _keras_hash(model), inputs, outputs, _runner=run)


def with_static_batch(source: Source) -> Source:
    """The same Keras model with its batch dimension fixed to 1 (same weights, same source hash).

    Edge TPU and microcontroller runtimes need static shapes; a Keras model built with
    ``keras.Input(shape)`` has a dynamic batch. Only Keras sources can be rebuilt here.
    """
    if source.kind != "keras":
        raise ConversionError(
            f"--static-batch rebuilds Keras models only; this is a {source.kind} source: fix the batch "
            f"dimension to 1 in the source model and export it again")
    return rebatch_keras(source, 1)


def rebatch_keras(source: Source, batch: Optional[int]) -> Source:
    """The same Keras model rebuilt on inputs of batch ``batch`` (None = dynamic); same weights and hash."""
    keras = require("keras", "convert", "changing the batch dimension")
    model = source.obj
    try:
        new_inputs = [keras.Input(batch_shape=(batch,) + tuple(t.shape[1:]), dtype=t.dtype, name=spec.name)
                      for t, spec in zip(model.inputs, source.inputs)]
        clone = keras.models.clone_model(model, input_tensors=new_inputs if len(new_inputs) > 1 else new_inputs[0])
        clone.set_weights(model.get_weights())
    except Exception as exc:  # subclassed models cannot be cloned onto new inputs
        raise ConversionError(f"could not rebuild the Keras model with batch {batch}: {_first_line(exc)}") from exc
    fixed = _keras_source(clone, source.path, source.sha256)
    return fixed


# -- SavedModel -----------------------------------------------------------------------------

def _saved_model_source(p: Path) -> Source:
    tf = require("tensorflow", "convert", "loading a SavedModel")
    sha = tree_sha256(p)
    why = _keras2_optimizer_slots(p)
    if why:  # tf.saved_model.load would spend seconds (~7 s on the MLPerf KWS model) and then fail
        return _legacy_saved_model_source(p, sha, why)
    try:
        loaded = tf.saved_model.load(str(p))
        fn = loaded.signatures["serving_default"]
    except Exception as exc:  # older Keras SavedModels: fall back to the TF1 loader below
        tf2_error = _first_line(exc)
    else:
        _, kw = fn.structured_input_signature
        in_names = sorted(kw)
        inputs = [TensorSpec(n, _shape(kw[n].shape), kw[n].dtype.name, index=i)
                  for i, n in enumerate(in_names)]
        out_struct = fn.structured_outputs
        out_names = sorted(out_struct)
        outputs = [TensorSpec(n, _shape(out_struct[n].shape), out_struct[n].dtype.name, index=i)
                   for i, n in enumerate(out_names)]

        def run(feeds):
            res = fn(**{n: tf.constant(feeds[n]) for n in in_names})
            return [res[n].numpy() for n in out_names]

        src = Source("saved_model", str(p), str(p), sha, inputs, outputs, _runner=run)
        src._keepalive = loaded  # the signature needs its object graph alive
        return src
    return _legacy_saved_model_source(p, sha, tf2_error)


def _keras2_optimizer_slots(p: Path) -> Optional[str]:
    """Why ``tf.saved_model.load`` cannot read ``p``, told from its object graph without loading it.

    A SavedModel written by Keras 2 with its optimizer keeps the optimizer's slot variables
    (``user_object`` "optimizer"); without ``tf_keras`` installed TF2 revives it as a plain
    ``_UserObject`` and fails with ``'_UserObject' object has no attribute 'add_slot'`` after
    loading every function. Returns None when that is not certain (then TF2 is tried first).
    """
    import importlib.util

    pb = p / "saved_model.pb"
    if not pb.is_file() or importlib.util.find_spec("tf_keras") is not None:
        return None
    try:
        from tensorflow.core.protobuf import saved_model_pb2

        sm = saved_model_pb2.SavedModel()
        sm.ParseFromString(pb.read_bytes())
        nodes = sm.meta_graphs[0].object_graph_def.nodes
    except Exception:  # unreadable here: let the loaders say why
        return None
    for n in nodes:
        if n.slot_variables and n.WhichOneof("kind") == "user_object" and n.user_object.identifier == "optimizer":
            return ("not tried: the SavedModel holds a Keras 2 optimizer with slot variables, which "
                    "tf.saved_model.load cannot revive without tf_keras")
    return None


def _legacy_saved_model_source(p: Path, sha: str, tf2_error: str) -> Source:
    """Read the serving signature with the TF1 loader and keep one session open for runs."""
    tf = require("tensorflow", "convert", "loading a SavedModel")
    graph = tf.Graph()
    sess = tf.compat.v1.Session(graph=graph)
    try:
        with graph.as_default():
            meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], str(p))
    except Exception as exc:
        sess.close()
        raise ModelFormatError(
            f"'{p}' could not be read as a SavedModel: tf.saved_model.load failed ({tf2_error}) "
            f"and the TF1 loader failed too ({_first_line(exc)})") from exc
    if "serving_default" not in meta.signature_def:
        sess.close()
        raise ModelFormatError(f"SavedModel '{p}' has no 'serving_default' signature "
                               f"(has: {sorted(meta.signature_def)})")
    sig = meta.signature_def["serving_default"]

    def spec(name, info, i):
        dims = [d.size for d in info.tensor_shape.dim]
        return TensorSpec(name, _shape(dims), tf.dtypes.as_dtype(info.dtype).name, index=i)

    in_names, out_names = sorted(sig.inputs), sorted(sig.outputs)
    inputs = [spec(n, sig.inputs[n], i) for i, n in enumerate(in_names)]
    outputs = [spec(n, sig.outputs[n], i) for i, n in enumerate(out_names)]
    in_tensors = [sig.inputs[n].name for n in in_names]
    out_tensors = [sig.outputs[n].name for n in out_names]

    def run(feeds):
        return sess.run(out_tensors, {t: feeds[n] for t, n in zip(in_tensors, in_names)})

    src = Source("saved_model", str(p), str(p), sha, inputs, outputs, legacy=True, _runner=run)
    src._session = sess
    src._tensor_names = (in_tensors, out_tensors)  # the converter freezes this session (no reload)
    return src


# -- ONNX -----------------------------------------------------------------------------------

def _onnx_source(proto, path: Optional[str]) -> Source:
    ort = require("onnxruntime", "convert", "running an ONNX source")
    data = proto.SerializeToString(deterministic=True)
    try:
        sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelFormatError(f"ONNX model{' ' + repr(path) if path else ''} cannot be loaded by "
                               f"onnxruntime: {_first_line(exc)}") from exc
    type_map = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
                "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8",
                "tensor(uint8)": "uint8", "tensor(bool)": "bool"}

    def specs(items):
        return [TensorSpec(a.name, tuple(d if isinstance(d, int) else -1 for d in a.shape),
                           type_map.get(a.type, a.type), index=i) for i, a in enumerate(items)]

    inputs, outputs = specs(sess.get_inputs()), specs(sess.get_outputs())

    def run(feeds):
        return sess.run(None, {s.name: np.asarray(feeds[s.name], dtype=s.dtype) for s in inputs})

    sha = sha256_file(path) if path else hashlib.sha256(data).hexdigest()
    return Source("onnx", proto, path, sha, inputs, outputs, _runner=run)


# -- PyTorch --------------------------------------------------------------------------------

def _torch_source(module, example_inputs) -> Source:
    torch = require("torch", "torch", "converting a PyTorch model")
    if example_inputs is None:
        raise ConversionError("a torch.nn.Module needs example_inputs (a tensor or tuple of tensors "
                              "with the input shape) to be converted; none was given")
    if not isinstance(example_inputs, (tuple, list)):
        example_inputs = (example_inputs,)
    example_inputs = tuple(torch.as_tensor(np.asarray(x)) if not isinstance(x, torch.Tensor) else x
                           for x in example_inputs)
    module.eval()
    try:
        with torch.no_grad():
            outs = module(*example_inputs)
    except Exception as exc:
        raise ConversionError(f"the torch module failed on its example_inputs "
                              f"({[tuple(x.shape) for x in example_inputs]}): {_first_line(exc)}") from exc
    outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
    inputs = [TensorSpec(f"input_{i}", tuple(x.shape), str(x.dtype).replace("torch.", ""), index=i)
              for i, x in enumerate(example_inputs)]
    outputs = [TensorSpec(f"output_{i}", tuple(o.shape), str(o.dtype).replace("torch.", ""), index=i)
               for i, o in enumerate(outs)]
    h = hashlib.sha256(repr(module).encode())
    for k, v in module.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())

    def run(feeds):
        with torch.no_grad():
            res = module(*[torch.from_numpy(np.ascontiguousarray(feeds[s.name])) for s in inputs])
        res = list(res) if isinstance(res, (list, tuple)) else [res]
        return [r.detach().cpu().numpy() for r in res]

    return Source("torch", module, None, h.hexdigest(), inputs, outputs,
                  example_inputs=example_inputs, _runner=run)


# -- TFLite ---------------------------------------------------------------------------------

def _tflite_source(data: bytes, path: Optional[str]) -> Source:
    from ai_edge_litert.interpreter import Interpreter

    try:
        interp = Interpreter(model_content=data)
        interp.allocate_tensors()
    except Exception as exc:
        raise ModelFormatError(f"{path or 'the bytes given'} is not a loadable TFLite model: "
                               f"{_first_line(exc)}") from exc
    ins, outs = interp.get_input_details(), interp.get_output_details()
    inputs = [TensorSpec(d["name"], _shape(d.get("shape_signature", d["shape"])), np.dtype(d["dtype"]).name,
                         index=int(d["index"])) for d in ins]
    outputs = [TensorSpec(d["name"], _shape(d.get("shape_signature", d["shape"])), np.dtype(d["dtype"]).name,
                          index=int(d["index"])) for d in outs]

    def run(feeds):
        for d, s in zip(ins, inputs):
            interp.set_tensor(d["index"], np.asarray(feeds[s.name], dtype=d["dtype"]))
        interp.invoke()
        return [interp.get_tensor(d["index"]).copy() for d in outs]

    return Source("tflite", data, path, hashlib.sha256(data).hexdigest(), inputs, outputs, _runner=run)


__all__ = ["Source", "load_source", "SOURCE_KINDS"]
