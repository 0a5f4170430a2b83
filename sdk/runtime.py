"""``edgeship.load`` and :class:`Model`: run a .tflite, .onnx or bundle with float in, float out.

Example:
    >>> import edgeship, numpy as np
    >>> m = edgeship.load(edgeship.models.path("shapes_cnn_int8"))   # doctest: +SKIP
    >>> m.predict(np.zeros(m.inputs[0].shape, np.float32)).shape      # doctest: +SKIP
    (1, 3)
"""
from __future__ import annotations

import json
import math
import os
import stat
import struct
import time
from pathlib import Path
from typing import List, Mapping, Optional, Sequence, Union

import numpy as np

from ._io import sha256_bytes
from .probe import fingerprint, known_sha256, ok_record, probe, probed_ok, remember_sha256
from .backends import available_backends, make_backend
from .facts import sniff_format
from .errors import InputSpecError, MissingDependencyError, ModelFormatError, TargetError
from .spec import TensorSpec

EDGETPU_LIB = "libedgetpu.so.1"
_VERIFY_MODES = ("full", "structure", "none")
# predict runs a larger dynamic batch in chunks of this many samples (Model.max_batch), so that a
# huge batch needs bounded memory instead of failing to allocate the interpreter's tensors.
MAX_BATCH = 1024


def _edgetpu_delegate():
    """Load the Edge TPU delegate, or raise TargetError saying why it cannot be used here."""
    import ctypes

    from .backends import _import

    try:
        ctypes.CDLL(EDGETPU_LIB)  # fail fast and quietly before LiteRT's own loader
        return _import("litert").load_delegate(EDGETPU_LIB)
    except (ValueError, OSError, RuntimeError) as exc:
        raise TargetError(
            f"this model is compiled for the Coral Edge TPU (it holds an edgetpu-custom-op) but the Edge TPU "
            f"runtime could not be loaded here ({EDGETPU_LIB}: {exc}). Run it on a machine with a Coral device "
            f"and libedgetpu1-std installed, or load the CPU model it was compiled from "
            f"(the same name without '_edgetpu').") from exc


def _layout(fmt: str, impl) -> tuple:
    """What :class:`Model` derives once from its tensor specs (all immutable): input names and
    plans, predict's fast-path facts and the first input's static shape."""
    names = [s.name for s in impl.inputs]
    plans = [_input_plan(s) for s in impl.inputs]
    # predict's fast path: TFLite models with one (numeric) input.
    one = len(plans) == 1 and fmt == "tflite" and plans[0].dtype is not None
    fast: Optional[_InputPlan] = plans[0] if one else None
    # one output: run1 (no lists) and, for a per-tensor quantized output, its dequantization
    # constants (zero point, scale) as float32, computed once
    one_out = one and len(impl.outputs) == 1 and hasattr(impl, "run1")
    q = impl.outputs[0].quantization if one_out and impl.outputs[0].is_quantized else None
    deq0 = (np.float32(q.zero_point[0]), np.float32(q.scale[0])) if q is not None and q.per_tensor else None
    if one_out and q is not None and deq0 is None:
        one_out = False  # per-axis output quantization: the general dequantization
    # get_tensor returns a fresh float32 array: predict returns it as it is
    out_f32 = one_out and q is None and impl.outputs[0].dtype == "float32"
    shape0 = fast.fixed if fast is not None and all(d >= 0 for d in fast.fixed) else None
    return names, plans, fast, one_out, deq0, out_f32, shape0


class Model:
    """A loaded model. Create with :func:`edgeship.load`.

    Attributes:
        path: the model file that runs.
        format: "tflite" or "onnx".
        backend: the interpreter in use ("litert", "tflite-runtime", "onnxruntime").
        inputs / outputs: lists of :class:`~edgeship.TensorSpec` (shape uses -1 for dynamic dims).
        manifest: the bundle manifest when loaded from a bundle, else None.
        sha256: hash of the model file.
        max_batch: predict runs larger dynamic batches in chunks of this many samples.
    """

    def __init__(self, path: Path, fmt: str, backend_name: str, impl, sha256: str,
                 manifest: Optional[dict] = None, threads: Optional[int] = None):
        self.path, self.format, self.backend, self.sha256 = path, fmt, backend_name, sha256
        self.manifest, self.threads = manifest, threads
        self._impl = impl
        self.inputs: List[TensorSpec] = impl.inputs
        self.outputs: List[TensorSpec] = impl.outputs
        self._shapes_set: Optional[List[tuple]] = None  # input shapes last set by _ensure_shapes
        self.max_batch = MAX_BATCH
        memo = getattr(impl, "memo", None)  # shared by loads of the same bytes (the specs are immutable)
        layout = memo.get(fmt) if memo is not None else None
        if layout is None:
            layout = _layout(fmt, impl)
            if memo is not None:
                memo[fmt] = layout
        # the one input's shape the interpreter runs at (_shape0) starts as a static input shape
        # (a static input cannot be resized), else None; later, the last one set by _ensure_shapes
        (self._names, self._plans, self._fast, self._one_out, self._deq0, self._out_f32, self._shape0) = layout

    @property
    def preprocessing(self):
        """The image preprocessing spec the bundle's manifest records
        (:class:`~edgeship.preprocessing.ImagePreprocessing`; ``spec.apply(rgb_image)`` makes the
        input), or None for single files and bundles without an image spec."""
        from .preprocessing import from_manifest

        return from_manifest((self.manifest or {}).get("preprocessing"))

    def __repr__(self) -> str:
        ins = ", ".join(f"{s.name}:{s.dtype}{list(s.shape)}" for s in self.inputs)
        return f"<edgeship.Model {self.path.name} format={self.format} backend={self.backend} inputs=[{ins}]>"

    # -- public API -------------------------------------------------------------------------
    def predict(self, x, *, as_dict: bool = False):
        """Run the model on real-valued inputs and return real-valued outputs.

        Args:
            x: one array (single-input models), a list/tuple in input order, or a dict by input
               name. Values are real numbers (e.g. normalised features); edgeship quantizes them
               for integer inputs with the model's scale/zero point. A leading batch dimension of
               any size works: the model is resized when its batch is dynamic, else run per sample.
            as_dict: return {output name: array} even for single-output models.

        Returns:
            A float32 array for a single-output model, else a dict by output name. Quantized
            outputs are dequantized; integer outputs without quantization (e.g. class ids) keep
            their dtype.

        Raises:
            InputSpecError: wrong count, names, shape, dtype, empty, NaN/inf input, or values
                beyond the range of the dtype the model computes in (e.g. float64 > 3.4e38).
            TargetError: the runtime failed (e.g. out of memory); the model stays usable.

        A dynamic batch larger than :attr:`max_batch` (1024) runs in chunks of that size, with
        the same results, so memory stays bounded.

        Threads: ``predict`` may be called from several threads on one Model. TFLite
        interpreters are stateful, so calls on one TFLite Model are serialised by a per-model
        lock: correct results, no extra throughput from more threads (an uncontended lock costs
        well under a microsecond; contended, threads wait their turn; ``bench/soak_threads.py``
        measures it). For parallel throughput, load one Model per thread. ONNX models run
        concurrently (onnxruntime sessions are thread-safe).
        """
        fast = self._fast
        if fast is not None and type(x) is np.ndarray and not as_dict:
            # The common call: one array of the shape the model runs at (its static shape, or
            # the last one set). Same checks, fewer Python steps (bench/predict_overhead.py:
            # within 5 % of the raw LiteRT loop on the KWS models).
            shape = x.shape
            if shape == self._shape0:
                a = fast.prepare_exact(x)
                impl = self._impl
                with impl.lock:
                    if shape != self._shape0:  # another thread resized since the test above
                        self._ensure_shapes([shape])
                    raw = impl.run1(a) if self._one_out else impl.run([a])
            else:
                raw = None
            if raw is not None:
                if self._one_out:
                    deq = self._deq0
                    if deq is None:
                        return raw if self._out_f32 else _dequantize(raw, self.outputs[0])
                    out = np.subtract(raw, deq[0], dtype=np.float32)  # == (o.astype(f32) - zp)
                    out *= deq[1]
                    return out
                if len(raw) == 1:
                    return _dequantize(raw[0], self.outputs[0])
                return {spec.name: _dequantize(o, spec) for spec, o in zip(self.outputs, raw)}
        arrays = self._order(x)
        try:
            prepared = [plan.prepare(a) for plan, a in zip(self._plans, arrays)]
        except MemoryError as exc:
            raise InputSpecError(f"not enough memory to prepare the inputs ({exc}); pass fewer samples "
                                 f"per call") from None
        batch = self._batch_of(prepared)
        raw = self._run_batched(prepared, batch)
        outs = [_dequantize(o, spec) for o, spec in zip(raw, self.outputs)]
        if len(outs) == 1 and not as_dict:
            return outs[0]
        return {spec.name: o for spec, o in zip(self.outputs, outs)}

    def run_raw(self, arrays: Sequence[np.ndarray]) -> List[np.ndarray]:
        """Run with arrays already in the model's own dtypes (no quantization); returns raw outputs."""
        arrays = list(arrays)
        if len(arrays) != len(self.inputs):
            raise InputSpecError(f"model has {len(self.inputs)} inputs; given {len(arrays)} arrays")
        for spec, a in zip(self.inputs, arrays):
            if not isinstance(a, np.ndarray) or a.dtype != np.dtype(spec.dtype):
                raise InputSpecError(
                    f"run_raw: input {spec.name!r} must be a {spec.dtype} ndarray; given "
                    f"{getattr(a, 'dtype', type(a).__name__)}")
        with self._impl.lock:
            self._ensure_shapes([a.shape for a in arrays])
            return self._impl.run(arrays)

    # -- internals --------------------------------------------------------------------------
    def _order(self, x) -> List[np.ndarray]:
        n = len(self.inputs)
        if isinstance(x, Mapping):
            missing = [k for k in self._names if k not in x]
            extra = [k for k in x if k not in self._names]
            if missing or extra:
                raise InputSpecError(f"expected inputs named {self._names}; missing {missing}, unexpected {extra}")
            return [x[k] for k in self._names]
        if isinstance(x, (list, tuple)):
            if len(x) != n:
                raise InputSpecError(f"model has {n} inputs {self._names}; given a sequence of {len(x)} arrays")
            return list(x)
        if n != 1:
            raise InputSpecError(f"model has {n} inputs {self._names}; pass a list or a dict, not one array")
        return [x]

    def _batch_of(self, prepared: List[np.ndarray]) -> int:
        batches = {a.shape[0] for a, p in zip(prepared, self._plans) if p.rank}
        if len(batches) > 1:
            raise InputSpecError(f"all inputs must share the batch size; given batch sizes {sorted(batches)}")
        return batches.pop() if batches else 1

    def _ensure_shapes(self, shapes) -> None:
        shapes = [tuple(s) for s in shapes]
        # Every resize goes through here, so the last shapes set are the current ones: skip
        # asking the interpreter (LiteRT's get_input_details costs ~10 us per predict).
        if shapes == self._shapes_set:
            return
        want = {}
        for i, shape in enumerate(shapes):
            if shape != self._impl.current_shape(i):
                want[i] = shape
        if want:
            self._shapes_set = self._shape0 = None  # unknown if resize fails half-way
            self._impl.resize(want)
        self._shapes_set = shapes
        self._shape0 = shapes[0] if len(shapes) == 1 else None

    def _run_once(self, arrays: List[np.ndarray]) -> List[np.ndarray]:
        """Set shapes and run under the backend's lock: no other thread's call can interleave."""
        with self._impl.lock:
            if self.format == "tflite":
                self._ensure_shapes([a.shape for a in arrays])
            return self._impl.run(arrays)

    def _run_batched(self, prepared: List[np.ndarray], batch: int) -> List[np.ndarray]:
        native_ok = all(a.shape == p.fixed or p.accepts(a.shape) for p, a in zip(self._plans, prepared))
        chunk = self.max_batch
        if native_ok and batch > chunk and all(p.fixed[0] < 0 for p in self._plans if p.rank):
            # A dynamic batch larger than max_batch runs in chunks: memory stays bounded
            # (activations scale with the batch) and the results are the same.
            parts = [self._run_once([a[i:i + chunk] if p.rank else a for p, a in zip(self._plans, prepared)])
                     for i in range(0, batch, chunk)]
            return self._join(parts, batch, f"more than max_batch={chunk} samples")
        if native_ok:
            return self._run_once(prepared)
        # Fixed batch of 1 and more samples given: run one sample at a time.
        if not all(p.fixed_batch_one for p in self._plans if p.rank):
            raise InputSpecError(
                "given shapes " + ", ".join(f"{s.name}:{list(a.shape)}" for s, a in zip(self.inputs, prepared))
                + " do not fit the model's inputs " + ", ".join(f"{s.name}:{list(s.shape)}" for s in self.inputs))
        per_sample = [self._run_once([a[i:i + 1] for a in prepared]) for i in range(batch)]
        return self._join(per_sample, batch, "batch 1")

    def _join(self, parts: List[List[np.ndarray]], batch: int, why: str) -> List[np.ndarray]:
        """Concatenate per-chunk outputs along the batch axis (each output must have one)."""
        outs = []
        for j, spec in enumerate(self.outputs):
            pieces = [r[j] for r in parts]
            if any(o.ndim == 0 for o in pieces) or sum(o.shape[0] for o in pieces) != batch:
                raise InputSpecError(
                    f"the model runs {why} at a time and its output {spec.name!r} has no batch axis "
                    f"(shape {list(pieces[0].shape)}); call predict with fewer samples at a time")
            outs.append(np.concatenate(pieces, axis=0))
        return outs


_PLANS: dict = {}  # TensorSpec -> its _InputPlan (both immutable), this process


def _input_plan(spec: TensorSpec) -> "_InputPlan":
    """The plan for ``spec``, made once per distinct spec (``np.iinfo`` alone costs ~10 us a load)."""
    try:
        plan = _PLANS.get(spec)
    except TypeError:  # an unhashable spec (never made by edgeship's backends): no memo
        return _InputPlan(spec)
    if plan is None:
        if len(_PLANS) > 1024:
            _PLANS.clear()
        plan = _PLANS[spec] = _InputPlan(spec)
    return plan


class _InputPlan:
    """Everything predict needs per input, computed once at load time (never changed after: plans
    are shared by every model with the same input spec)."""

    __slots__ = ("spec", "dtype", "rank", "scale", "zp", "qmin", "qmax", "quantized", "fixed_batch_one",
                 "fixed", "plain_float")

    def __init__(self, spec: TensorSpec):
        self.spec = spec
        self.dtype = np.dtype(spec.dtype) if spec.dtype != "string" else None
        self.rank = len(spec.shape)
        self.quantized = spec.is_quantized
        if self.quantized:
            q = spec.quantization
            self.scale = np.float32(q.scale[0]) if q.per_tensor else np.asarray(q.scale, np.float32)
            self.zp = np.float32(q.zero_point[0]) if q.per_tensor else np.asarray(q.zero_point, np.float32)
            if not q.per_tensor:  # per-channel: broadcast along the channel axis (as _dequantize does)
                along = [1] * self.rank
                along[q.axis] = -1
                self.scale, self.zp = self.scale.reshape(along), self.zp.reshape(along)
            info = np.iinfo(self.dtype)
            self.qmin, self.qmax = info.min, info.max
        self.fixed_batch_one = self.rank > 0 and spec.shape[0] == 1
        self.fixed = tuple(spec.shape)
        self.plain_float = self.dtype is not None and self.dtype.kind == "f" and not self.quantized

    def accepts(self, shape) -> bool:
        return all(w < 0 or w == g for w, g in zip(self.fixed, shape))

    def prepare_exact(self, a: np.ndarray) -> np.ndarray:
        """:meth:`prepare` for an ndarray of a shape already known to fit (see ``predict``)."""
        if self.plain_float and (a.dtype is self.dtype or a.dtype == self.dtype):
            # the model's own float dtype: only the NaN/inf check (one reduction) and layout
            # vdot(a, a) is NaN or inf when any value is (and when a finite sum of squares
            # overflows): one BLAS call, several times cheaper than isfinite().all() on small inputs
            if a.flags.c_contiguous and a.size and math.isfinite(np.vdot(a, a)):
                return a
            return self.prepare(a)  # NaN/inf (or a sum that overflowed: checked value by value)
        if a.dtype.kind != "f" or a.size == 0:
            return self.prepare(a)  # the general path converts or raises the full error
        if self.quantized and self.scale.ndim == 0:
            # Quantize first; the min/max of the result are the NaN/inf check (both propagate)
            # and tell whether any value leaves the integer range: usually none, so no clip.
            # Same arithmetic as _quantize (clip before rint), in fewer numpy calls.
            q = np.divide(a, self.scale, dtype=np.float32)
            q += self.zp
            if not math.isfinite(np.vdot(q, q)):  # NaN/inf (or huge values): the general path decides
                return self.prepare(a)
            np.minimum(q, self.qmax, out=q)  # the clip, as two elementwise calls (np.clip costs more)
            np.maximum(q, self.qmin, out=q)
            np.rint(q, out=q)
            return q.astype(self.dtype)
        if not math.isfinite(float(np.add.reduce(a, axis=None))):
            # NaN, inf, or a finite sum that overflowed: the general path checks each value
            return self.prepare(a)
        if self.quantized:
            return self._quantize(a)
        if a.dtype == self.dtype and a.flags.c_contiguous:
            return a
        return self.prepare(a)

    def _quantize(self, a: np.ndarray, clip: bool = True) -> np.ndarray:
        # In place, one temporary: this runs on every call (bench/predict_overhead.py).
        q = np.divide(a, self.scale, dtype=np.float32)
        q += self.zp
        if clip:
            np.clip(q, self.qmin, self.qmax, out=q)
        np.rint(q, out=q)
        return q.astype(self.dtype)

    def prepare(self, a) -> np.ndarray:
        spec = self.spec
        if self.dtype is None:
            raise InputSpecError(f"input {spec.name!r} is a string tensor, which predict does not support")
        if not isinstance(a, np.ndarray):
            try:
                a = np.asarray(a)
            except Exception as exc:
                raise InputSpecError(f"input {spec.name!r}: could not make an array from {type(a).__name__}") from exc
        if a.dtype.kind not in "fiub":
            raise InputSpecError(
                f"input {spec.name!r} expects numbers ({spec.dtype}, real values); given dtype {a.dtype}")
        if a.size == 0:
            raise InputSpecError(f"input {spec.name!r} is empty (shape {list(a.shape)}); expected shape {list(spec.shape)}")
        if a.ndim != self.rank:
            raise InputSpecError(
                f"input {spec.name!r} expects rank {self.rank} shape {list(spec.shape)} ({spec.dtype}); "
                f"given shape {list(a.shape)} ({a.dtype})" + (" — add the batch axis with x[None]"
                                                               if a.ndim == self.rank - 1 else ""))
        bad = a.shape != self.fixed and [i for i, (w, g) in enumerate(zip(self.fixed, a.shape))
                                          if i > 0 and w >= 0 and w != g]
        if bad:
            raise InputSpecError(
                f"input {spec.name!r} expects shape {list(spec.shape)} ({spec.dtype}); given {list(a.shape)} "
                f"({a.dtype}) — dimension {bad[0]} differs")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise InputSpecError(
                f"input {spec.name!r} holds NaN or inf ({int((~np.isfinite(a)).sum())} values); "
                + ("the model's input is integer-quantized and cannot represent them"
                   if self.quantized else "expected finite values"))
        if a.dtype != self.dtype:
            self._check_range(a)
        if self.quantized:
            return self._quantize(a)
        if a.dtype == self.dtype:
            return np.ascontiguousarray(a)
        if self.dtype.kind in "iu" and a.dtype.kind == "f" and not np.array_equal(a, np.rint(a)):
            raise InputSpecError(
                f"input {spec.name!r} is {spec.dtype} without quantization; given fractional {a.dtype} values")
        return np.ascontiguousarray(a, dtype=self.dtype)

    def _check_range(self, a: np.ndarray) -> None:
        """Values the conversion to the model's dtype would turn into inf or wrap around are an error."""
        if self.quantized or self.dtype.kind == "f":
            # quantization computes in float32
            work = np.dtype(np.float32) if self.quantized else self.dtype
            if a.dtype.kind == "b" or (a.dtype.kind == "f" and a.dtype.itemsize <= work.itemsize):
                return
            lo, hi = -float(np.finfo(work).max), float(np.finfo(work).max)
        elif self.dtype.kind in "iu":
            info = np.iinfo(self.dtype)
            lo, hi = info.min, info.max
        else:
            return
        amin, amax = a.min(), a.max()
        if amin < lo or amax > hi:
            raise InputSpecError(
                f"input {self.spec.name!r} runs in {'float32' if self.quantized else self.spec.dtype}, "
                f"whose range is [{lo:.6g}, {hi:.6g}]; given {a.dtype} values from {float(amin):.6g} to "
                f"{float(amax):.6g}, which would become inf or wrap around. Scale the input into range")


def _dequantize(o: np.ndarray, spec: TensorSpec) -> np.ndarray:
    if spec.is_quantized:
        q = spec.quantization
        if q.per_tensor:
            return (o.astype(np.float32) - np.float32(q.zero_point[0])) * np.float32(q.scale[0])
        shape = [1] * o.ndim
        shape[q.axis] = -1
        return ((o.astype(np.float32) - np.asarray(q.zero_point, np.float32).reshape(shape))
                * np.asarray(q.scale, np.float32).reshape(shape))
    if o.dtype.kind == "f" and o.dtype != np.float32:
        return o.astype(np.float32)
    return o


def _choose_backend(fmt: str, backend: str, content: bytes, threads, sha: str, delegates) -> str:
    have = available_backends(fmt)
    if backend != "auto":
        from .backends import _import, check_backend

        check_backend(fmt, backend)
        if backend not in have:
            _import(backend)  # raises MissingDependencyError naming the package
        return backend
    if not have:
        wanted = "ai-edge-litert (or tflite-runtime)" if fmt == "tflite" else "onnxruntime"
        raise MissingDependencyError(f"no runtime for {fmt} files is installed; pip install {wanted}")
    if len(have) == 1 or delegates:
        return have[0]
    return _fastest(fmt, have, content, threads, sha)


def _fastest(fmt: str, names: List[str], content: bytes, threads, sha: str) -> str:
    """Time each installed runtime on this very file (cached per file and thread count)."""
    from ._cache import private_dir

    folder = private_dir("backend")
    cache = folder / f"{sha}-{threads}.json" if folder is not None else None
    try:
        if cache is not None:
            best = json.loads(cache.read_text())["backend"]
            if best in names:
                return best
    except (OSError, ValueError, KeyError, TypeError):
        pass
    timings = {}
    for name in names:
        try:
            impl = make_backend(fmt, name, content, threads)
            arrays = [np.zeros(tuple(d if d > 0 else 1 for d in impl.current_shape(i)), np.dtype(s.dtype))
                      for i, s in enumerate(impl.inputs)]
            impl.run(arrays)
            t0, n = time.perf_counter(), 0
            while n < 20 and time.perf_counter() - t0 < 0.5:
                impl.run(arrays)
                n += 1
            timings[name] = (time.perf_counter() - t0) / n
        except Exception:  # a runtime that cannot run this file is simply not a candidate
            continue
    if not timings:
        return names[0]
    best = min(timings, key=timings.get)
    if cache is not None:
        from ._io import atomic_write_json

        try:
            atomic_write_json(cache, {"backend": best, "seconds_per_run": timings})
        except OSError:
            pass
    return best


def load(path: Union[str, os.PathLike], *, backend: str = "auto", threads: Optional[int] = None,
         target: Optional[str] = None, verify: str = "full", trusted_keys: Optional[Sequence] = None) -> Model:
    """Load a ``.tflite``, ``.onnx`` or edgeship bundle for inference.

    Args:
        path: model file, bundle directory, or bundle ``.zip``.
        backend: "auto" (the fastest installed runtime for this file, measured once and cached),
            "litert", "tflite-runtime" or "onnxruntime".
        threads: interpreter threads (None = the runtime's default).
        target: for bundles, which of its files to load (a target or file key in the manifest).
        verify: "full" (check the file's structure, then run it once in an isolated child process,
            cached by hash), "structure" (structure only) or "none". The first "full" load of a
            file costs the child process (about 0.3-2 s); its "ok" is cached in edgeship's private
            cache, bound to the file's sha256, the runtime and edgeship versions, so later loads of
            the same bytes skip the structure check and the probe (about the raw interpreter's
            creation plus reading the file; an unchanged file is not hashed again, see
            :data:`edgeship.probe.RACY_S`, and a file this process loaded before with the same
            backend and threads, unchanged since, skips format and backend work too;
            ``bench/load_speed.py``). Files written by
            ``edgeship.converters.convert`` were probed by its parity check. To skip the probe for
            a file you built and trust, pass ``verify="structure"``; never for files from others.
        trusted_keys: Ed25519 public keys (paths to ``.pub`` files, key objects, raw bytes or hex;
            see :mod:`edgeship.signing`). When given, only a bundle whose manifest is signed by one
            of them loads; unsigned or changed bundles and single model files raise IntegrityError.

    Returns:
        A :class:`Model`.

    Raises:
        ModelFormatError: unreadable, truncated, corrupted or unknown file.
        IntegrityError: a bundle file does not match its manifest checksum, or (with
            ``trusted_keys``) the bundle is unsigned, signed by another key or changed after signing.
        TargetError: the bundle has no file for ``target``, or an Edge TPU model without its runtime.
        MissingDependencyError: no runtime for the format is installed.

    Example:
        >>> import edgeship
        >>> edgeship.load("missing.tflite")
        Traceback (most recent call last):
        ...
        edgeship.errors.ModelFormatError: missing.tflite: no such file
    """
    if verify not in _VERIFY_MODES:
        raise ValueError(f"verify must be one of {_VERIFY_MODES}; given {verify!r}")
    if verify == "full" and target is None and trusted_keys is None:
        again = _load_again(path, backend, threads)
        if again is not None:
            return again
    p = Path(path)
    try:
        is_dir = stat.S_ISDIR(os.stat(p).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        raise ModelFormatError(f"{path}: no such file") from None
    except OSError as exc:
        raise ModelFormatError(f"{path}: cannot read: {exc}") from None
    manifest = None
    if trusted_keys is not None and isinstance(trusted_keys, (str, bytes, os.PathLike)):
        trusted_keys = [trusted_keys]
    read = None if is_dir else _read_versioned(p)  # a single file is read once, here
    if read is None or read[0][:4] == b"PK\x03\x04":
        read = None
        from .bundle import resolve_bundle_file

        p, manifest = resolve_bundle_file(p, target)
        if trusted_keys is not None:
            from .signing import verify_bundle_signature

            verify_bundle_signature(manifest["_dir"], trusted_keys, manifest)
    elif trusted_keys is not None:
        from .errors import IntegrityError

        raise IntegrityError(f"{p.name} is a single model file, which carries no signature; trusted_keys "
                             f"requires a signed bundle (edgeship.signing.sign_bundle)")
    elif target is not None:
        raise TargetError(f"target={target!r} selects a file inside a bundle; {p.name} is a single model file")
    content, version, read_at = read if read is not None else _read_versioned(p)
    fmt = sniff_format(p, content[:16])
    if fmt in ("bundle", "zip"):
        raise ModelFormatError(f"{p.name}: a bundle may not contain another bundle")
    # A cached load of a file already hashed in this version (same inode, size, mtime and ctime:
    # see edgeship.probe.RACY_S) takes the recorded hash; anything else is hashed.
    cached_path = verify == "full" and fmt == "tflite" and not os.environ.get("EDGESHIP_NO_PROBE_CACHE")
    sha = None
    if cached_path and manifest is None and version is not None:
        sha = known_sha256(version)
    hashed = sha is None
    if hashed:
        sha = sha256_bytes(content)
    if manifest is not None:
        from .errors import IntegrityError

        wanted = {e.get("sha256") for e in manifest["files"].values() if isinstance(e, dict) and
                  Path(manifest["_dir"]) / str(e.get("path")) == p}
        if sha not in wanted:  # the file changed between verification and reading
            raise IntegrityError(f"{p.name} changed after its bundle was verified (sha256 {sha[:16]}...); load again")

    def remember():
        if cached_path and hashed and version is not None:
            remember_sha256(version, sha, read_at)
        if cached_path and manifest is None and version is not None and known_sha256(version) == sha:
            record = ok_record(sha, chosen)
            if record is not None:
                _remember_load(path, backend, threads, (version, p, fmt, sha, chosen, record))

    if cached_path:
        # A file this edgeship and runtime already checked (structure, then the isolated probe,
        # recorded by hash in the private cache) is not parsed again: a cached load costs about
        # what creating the interpreter does (bench/load_speed.py). Edge TPU models are never
        # probed, so a cached "ok" also says this file needs no delegate.
        chosen = _choose_backend(fmt, backend, content, threads, sha, [])
        if probed_ok(sha, chosen):
            impl = make_backend(fmt, chosen, content, threads, [], sha256=sha)
            remember()
            return Model(p, fmt, chosen, impl, sha, manifest, threads)
    delegates = []
    # A TFLite file is always parsed (once): even unverified, an Edge TPU model needs its delegate.
    parsed = _read_structure(fmt, content, p) if verify != "none" or fmt == "tflite" else None
    if fmt == "tflite" and parsed.is_edgetpu_compiled:
        delegates.append(_edgetpu_delegate())
    if fmt == "onnx" and parsed is not None:
        _check_external_data(parsed, p)
    chosen = _choose_backend(fmt, backend, content, threads, sha, delegates)
    if verify == "full" and not delegates:
        probe(str(p), fmt, chosen, sha)
    impl = make_backend(fmt, chosen, content, threads, delegates, model_dir=str(p.resolve().parent), sha256=sha)
    if not delegates:
        remember()
    return Model(p, fmt, chosen, impl, sha, manifest, threads)


# (path as given, backend, threads) -> (fingerprint, Path, format, sha256, backend used, its probe
# "ok" record as (path, fingerprint)). What one process learnt about one file version stays true
# for that process, whichever cache folder EDGESHIP_CACHE names later.
_AGAIN: dict = {}


def _again_key(path, backend: str, threads) -> tuple:
    return os.fspath(path), backend, threads


def _remember_load(path, backend: str, threads, facts: tuple) -> None:
    try:
        key = _again_key(path, backend, threads)
    except TypeError:
        return
    if len(_AGAIN) > 1024:
        _AGAIN.clear()
    _AGAIN[key] = facts


def _load_again(path, backend: str, threads) -> Optional[Model]:
    """A cached load of a single TFLite file already loaded in this process and unchanged since
    (the same fingerprint as then: same file, size, mtime and ctime, see
    :data:`edgeship.probe.RACY_S`) and whose probe record is unchanged: its format, hash and
    backend are known, so only the read, one ``stat`` of that record and the interpreter remain.
    None when anything differs: the full path then decides."""
    try:
        key = _again_key(path, backend, threads)
        hit = _AGAIN.get(key)
    except TypeError:  # not a path, or unhashable threads: the full path reports it
        return None
    if hit is None:  # (nothing is recorded while EDGESHIP_NO_PROBE_CACHE is set)
        return None
    version, p, fmt, sha, chosen, (record, record_version) = hit
    try:
        content, now, _ = _read_versioned(key[0])
        if now != version or fingerprint(os.stat(record)) != record_version:
            return None
    except (ModelFormatError, OSError):
        return None
    return Model(p, fmt, chosen, make_backend(fmt, chosen, content, threads, [], sha256=sha), sha, None, threads)


def _check_external_data(parsed, p: Path) -> None:
    """ONNX external data must be plain files beside the model (its folder, never elsewhere)."""
    import stat

    folder = p.resolve().parent
    for init in parsed.initializers.values():
        if not init.external:
            continue
        loc = init.location
        parts = loc.replace("\\", "/").split("/")
        if not loc or loc.startswith("/") or ".." in parts or ":" in parts[0]:
            raise ModelFormatError(f"{p.name}: initializer {init.name!r} keeps its data in {loc!r}, outside the "
                                   f"model's folder; external data must be a relative path inside {folder}")
        f = folder / loc
        try:
            st = os.stat(f)
        except OSError:
            raise ModelFormatError(f"{p.name}: initializer {init.name!r} keeps its data in {loc!r}, which is "
                                   f"missing from {folder}; copy it beside the model") from None
        if not stat.S_ISREG(st.st_mode):
            raise ModelFormatError(f"{p.name}: external data {loc!r} is not a regular file")


def read_model_file(p: Path) -> bytes:
    """The bytes of a regular file, read once and bounded by its size.

    A FIFO would block forever and ``/dev/zero`` would fill memory, so anything that is not a
    regular file is refused (opened non-blocking, checked on the open descriptor).

    Example:
        >>> read_model_file(Path("/dev/zero"))
        Traceback (most recent call last):
        ...
        edgeship.errors.ModelFormatError: /dev/zero: not a regular file (a character device); expected a model file
    """
    return _read_versioned(p)[0]


def _read_versioned(p: Path):
    """(bytes, fingerprint, read start in ns): the fingerprint (:func:`edgeship.probe.fingerprint`)
    is None when the file changed while it was read."""
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ModelFormatError(f"{p}: cannot read: {exc}") from exc
    try:  # plain descriptor reads: a buffered file object costs as much as reading a small model
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a character device" if stat.S_ISCHR(st.st_mode)
                    else "a block device" if stat.S_ISBLK(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                    else "a folder" if stat.S_ISDIR(st.st_mode) else "not a plain file")
            raise ModelFormatError(f"{p}: not a regular file ({kind}); expected a model file")
        t0 = time.time_ns()
        try:
            content = os.read(fd, st.st_size)
            if 0 < len(content) < st.st_size:  # a short read (large files, some file systems)
                parts = [content]
                got = len(content)
                while got < st.st_size:
                    more = os.read(fd, st.st_size - got)
                    if not more:
                        break
                    parts.append(more)
                    got += len(more)
                content = b"".join(parts)
        except (OSError, MemoryError, OverflowError) as exc:
            raise ModelFormatError(f"{p}: cannot read {st.st_size} bytes: {exc}") from exc
        fp = fingerprint(st)
        return content, (fp if fingerprint(os.fstat(fd)) == fp and len(content) == st.st_size else None), t0
    finally:
        os.close(fd)


def _read_structure(fmt: str, content: bytes, p: Path):
    """Parse and check the file with edgeship's bounds-checked reader; ModelFormatError if malformed."""
    try:
        if fmt == "tflite":
            from .tflite_schema import read_tflite

            return read_tflite(content)
        from .onnx_proto import read_onnx

        return read_onnx(content)
    except ModelFormatError as exc:
        raise ModelFormatError(f"{p.name}: {exc}") from None
    except (RecursionError, MemoryError, OverflowError, struct.error, IndexError, KeyError, TypeError,
            ValueError) as exc:  # a reader bug on a crafted file is still a refused file, never a crash
        raise ModelFormatError(f"{p.name}: corrupt {fmt} file ({type(exc).__name__}: {exc})") from None
