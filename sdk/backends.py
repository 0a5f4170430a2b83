"""Thin adapters over the interpreters edgeship can run: LiteRT, tflite-runtime, onnxruntime.

Each adapter exposes the same small surface (``inputs``, ``outputs``,
``resize``, ``run``) so :mod:`edgeship.runtime` never branches on the backend.
Interpreters are imported only when an adapter is created.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ._deps import available
from ._io import native_chatter_to_log
from .errors import MissingDependencyError, ModelFormatError, TargetError
from .spec import Quantization, TensorSpec

# backend name -> (python module to import, formats it runs)
BACKENDS: Dict[str, Tuple[str, Tuple[str, ...]]] = {
    "litert": ("ai_edge_litert.interpreter", ("tflite",)),
    "tflite-runtime": ("tflite_runtime.interpreter", ("tflite",)),
    "onnxruntime": ("onnxruntime", ("onnx",)),
}


_FOUND: set = set()  # backend modules found once (an installed package stays installed in a process)
_MISSING: dict = {}  # backend module -> the import path it was missing from
_DETAILS: dict = {}  # (sha256, backend, delegated) -> TFLite (inputs, outputs, signatures), this process
_BANNER_SHOWN: set = set()  # TFLite interpreter modules that allocated once in this process
# what TFLite runtimes print once per process, sent to the "edgeship.runtime" logger instead
_TFLITE_CHATTER = (b"INFO: Created TensorFlow Lite XNNPACK delegate",)


def _import_path() -> tuple:
    import sys

    return tuple(sys.path), tuple(map(id, sys.meta_path))


def available_backends(fmt: str) -> List[str]:
    """Installed backends that can run files of format ``fmt`` ("tflite" or "onnx").

    A module found once stays found; a missing one is looked for again only when ``sys.path``
    or the import finders changed (a lookup costs ~0.1 ms, as much as loading a small model).
    """
    out = []
    where = None
    for name, (mod, fmts) in BACKENDS.items():
        if fmt not in fmts:
            continue
        if mod not in _FOUND:
            where = where or _import_path()
            if _MISSING.get(mod) == where:
                continue
            if not available(mod.split(".")[0]):
                _MISSING[mod] = where
                continue
            _FOUND.add(mod)
        out.append(name)
    return out


def _import(backend: str):
    import importlib
    import sys

    mod = BACKENDS[backend][0]
    loaded = sys.modules.get(mod)
    if loaded is not None:
        return loaded
    try:
        return importlib.import_module(mod)
    except ImportError as exc:
        pip = {"litert": "ai-edge-litert", "tflite-runtime": "tflite-runtime", "onnxruntime": "onnxruntime"}[backend]
        raise MissingDependencyError(
            f"backend {backend!r} needs the Python package {pip!r}, which could not be imported ({exc}). "
            f"Install it with: pip install {pip}") from exc


def _tfl_quant(d: dict) -> Optional[Quantization]:
    qp = d.get("quantization_parameters") or {}
    scales = np.asarray(qp.get("scales", ()), dtype=np.float64)
    zps = np.asarray(qp.get("zero_points", ()), dtype=np.int64)
    if scales.size == 0 or not np.any(scales):
        return None
    axis = int(qp.get("quantized_dimension", 0)) if scales.size > 1 else None
    return Quantization(tuple(float(s) for s in scales), tuple(int(z) for z in zps), axis)


class TFLiteBackend:
    """LiteRT (``ai-edge-litert``) or ``tflite-runtime`` over one model's bytes.

    A TFLite interpreter holds its tensors in place, so resize, set, invoke and get must not
    interleave between threads: callers hold :attr:`lock` around them (``Model`` does).
    A failed resize leaves LiteRT's interpreter half-allocated (later calls raise untyped errors
    or corrupt the heap), so the interpreter is then rebuilt from the model's bytes.
    """

    def __init__(self, content: bytes, backend: str = "litert", threads: Optional[int] = None,
                 delegates: Sequence = (), sha256: Optional[str] = None):
        self._mod = _import(backend)
        self.name = backend
        self._content, self._threads, self._delegates = content, threads, list(delegates)
        self.lock = threading.Lock()
        self._direct = backend == "litert"  # run1 may call LiteRT's C++ wrapper (its _interpreter)
        key = (sha256, backend, bool(self._delegates)) if sha256 else None
        try:
            self.interp = self._new_interpreter()
            known = _DETAILS.get(key) if key else None
            if known is None:
                # memo: what callers derive from these specs, shared by every load of the same bytes
                self.memo: dict = {}
                self._refresh()  # reads names and details: a damaged name raises UnicodeDecodeError here
                if key:
                    if len(_DETAILS) > 256:
                        _DETAILS.clear()
                    _DETAILS[key] = (self.inputs, self.outputs, self.signatures, self.memo)
            else:  # the same bytes read before in this process: the same (immutable) specs
                self._set_specs(*known[:3])
                self.memo = known[3]
        except (ValueError, RuntimeError, TypeError, KeyError) as exc:
            raise ModelFormatError(f"{backend} could not load this TFLite model: {exc}") from exc

    def _new_interpreter(self):
        interp = self._mod.Interpreter(model_content=self._content, num_threads=self._threads,
                                       experimental_delegates=self._delegates or None)
        if self._mod in _BANNER_SHOWN:
            interp.allocate_tensors()
        else:  # the first allocation in a process prints the CPU delegate's banner on fd 2
            with native_chatter_to_log("edgeship.runtime", _TFLITE_CHATTER):
                interp.allocate_tensors()
            _BANNER_SHOWN.add(self._mod)
        return interp

    def _rebuild(self) -> str:
        """Replace a possibly half-allocated interpreter by a fresh one at the model's own shapes."""
        self.interp = None  # drop the broken one first: its buffers may be what memory is short of
        try:
            self.interp = self._new_interpreter()
        except (ValueError, RuntimeError, MemoryError) as exc:
            return f"; rebuilding the interpreter also failed ({exc}), the next call retries"
        return "; the model was restored to its previous state and stays usable"

    def _live(self):
        if self.interp is None:
            try:
                self.interp = self._new_interpreter()
            except (ValueError, RuntimeError, MemoryError) as exc:
                raise TargetError(f"{self.name} could not rebuild the interpreter after a failed resize: {exc}; "
                                  f"free memory or load the model again") from exc
        return self.interp

    def _refresh(self) -> None:
        ins, outs = self.interp.get_input_details(), self.interp.get_output_details()
        self._set_specs([self._spec(d) for d in ins], [self._spec(d) for d in outs],
                        [tuple(int(x) for x in d.get("shape_signature", d["shape"])) for d in ins])

    def _set_specs(self, inputs, outputs, signatures) -> None:
        self.inputs, self.outputs, self.signatures = list(inputs), list(outputs), list(signatures)
        self._in0 = self.inputs[0].index if self.inputs else None
        self._out0 = self.outputs[0].index if self.outputs else None

    @staticmethod
    def _spec(d: dict) -> TensorSpec:
        sig = d.get("shape_signature")
        shape = tuple(int(x) for x in (sig if sig is not None and len(sig) else d["shape"]))
        return TensorSpec(d["name"], shape, np.dtype(d["dtype"]).name, _tfl_quant(d), int(d["index"]))

    def current_shape(self, i: int) -> Tuple[int, ...]:
        return tuple(int(x) for x in self._live().get_input_details()[i]["shape"])

    def resize(self, shapes: Dict[int, Tuple[int, ...]]) -> None:
        interp = self._live()
        try:
            for i, shape in shapes.items():
                interp.resize_tensor_input(self.inputs[i].index, list(shape), strict=True)
            interp.allocate_tensors()
        except (ValueError, RuntimeError, MemoryError) as exc:
            state = self._rebuild()
            raise TargetError(f"{self.name} could not resize inputs to {list(shapes.values())}: {exc}{state}") from exc

    def run1(self, a: np.ndarray) -> np.ndarray:
        """:meth:`run` for a model with one input and one output: the output array itself."""
        interp = self.interp
        if interp is None:
            return self.run([a])[0]
        try:
            # LiteRT's public set_tensor/invoke/get_tensor are one-line wrappers over its C++
            # object, invoke adding a check that no tensor() view is alive; edgeship never makes
            # views of its private interpreter, so the wrapper is called directly (a few us per
            # call on KWS-sized models, where the whole invoke is ~60 us).
            w = interp._interpreter if self._direct else None
            if w is not None:
                w.SetTensor(self._in0, a)
                w.Invoke()
                return w.GetTensor(self._out0, 0)
            interp.set_tensor(self._in0, a)
            interp.invoke()
            return interp.get_tensor(self._out0)
        except (ValueError, RuntimeError, MemoryError) as exc:
            state = self._rebuild()
            raise TargetError(f"{self.name} failed to run the model: {exc}{state}") from exc

    def run(self, arrays: Sequence[np.ndarray]) -> List[np.ndarray]:
        interp = self._live()
        try:
            for spec, a in zip(self.inputs, arrays):
                interp.set_tensor(spec.index, a)
            interp.invoke()
            return [interp.get_tensor(o.index) for o in self.outputs]
        except (ValueError, RuntimeError, MemoryError) as exc:
            state = self._rebuild()
            raise TargetError(f"{self.name} failed to run the model: {exc}{state}") from exc


_ORT_TYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(int16)": "int16", "tensor(uint16)": "uint16",
    "tensor(int32)": "int32", "tensor(int64)": "int64", "tensor(bool)": "bool", "tensor(string)": "string",
}


class OnnxBackend:
    """onnxruntime CPU session over one model's bytes.

    ``InferenceSession.run`` is thread-safe and takes any shape the graph allows, so no lock is
    needed (:attr:`lock` is a no-op) and threads run in parallel.
    """

    lock = contextlib.nullcontext()

    def __init__(self, content: bytes, backend: str = "onnxruntime", threads: Optional[int] = None,
                 delegates: Sequence = (), model_dir: Optional[str] = None):
        ort = _import("onnxruntime")
        self.name = backend
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if model_dir is not None:
            # external data files are named relative to the model's folder, not the current one
            opts.add_session_config_entry("session.model_external_initializers_file_folder_path", str(model_dir))
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        try:
            self.sess = ort.InferenceSession(content, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception classes (Fail, InvalidGraph, ...)
            raise ModelFormatError(f"onnxruntime could not load this ONNX model: {exc}") from exc
        try:
            self.inputs = [self._spec(x, i) for i, x in enumerate(self.sess.get_inputs())]
            self.outputs = [self._spec(x, i) for i, x in enumerate(self.sess.get_outputs())]
        except (ValueError, RuntimeError) as exc:  # e.g. names that are not UTF-8
            raise ModelFormatError(f"onnxruntime could not describe this ONNX model's inputs/outputs: {exc}") from exc
        self.signatures = [s.shape for s in self.inputs]
        self._in_names = [s.name for s in self.inputs]
        self._out_names = [s.name for s in self.outputs]

    @staticmethod
    def _spec(x, i: int) -> TensorSpec:
        shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in (x.shape or ()))
        return TensorSpec(x.name, shape, _ORT_TYPES.get(x.type, x.type), None, i)

    def current_shape(self, i: int) -> Tuple[int, ...]:
        return self.inputs[i].shape

    def resize(self, shapes) -> None:  # ONNX sessions take any shape their graph allows
        pass

    def run(self, arrays: Sequence[np.ndarray]) -> List[np.ndarray]:
        try:
            return self.sess.run(self._out_names, dict(zip(self._in_names, arrays)))
        except Exception as exc:
            from .errors import InputSpecError

            raise InputSpecError(f"onnxruntime rejected the inputs: {exc}") from exc


def check_backend(fmt: str, backend: str) -> None:
    """Raise TargetError unless ``backend`` exists and runs ``fmt`` files."""
    if backend not in BACKENDS:
        raise TargetError(f"unknown backend {backend!r}; expected one of: auto, {', '.join(BACKENDS)}")
    if fmt not in BACKENDS[backend][1]:
        raise TargetError(f"backend {backend!r} cannot run {fmt} files; it runs {', '.join(BACKENDS[backend][1])}")


def make_backend(fmt: str, backend: str, content: bytes, threads: Optional[int], delegates: Sequence = (),
                 model_dir: Optional[str] = None, sha256: Optional[str] = None):
    """An adapter for ``content``; ``model_dir`` is the model file's folder (ONNX external data);
    ``sha256`` (the hash of ``content``) lets a TFLite model reuse the tensor specs read the last
    time the same bytes were loaded in this process."""
    check_backend(fmt, backend)
    if fmt == "onnx":
        return OnnxBackend(content, backend, threads, delegates, model_dir=model_dir)
    return TFLiteBackend(content, backend, threads, delegates, sha256)
