"""Measure how fast a model loads and runs through ``edgeship`` on this machine.

One call gives the numbers people ask for before shipping a model: load
(init) time, the first inference (which pays for lazy allocation and JIT-like
setup in the runtime), then latency percentiles over ``runs`` timed calls of
:meth:`edgeship.Model.predict`, throughput, and how much resident memory the
benchmark added at its peak.

Example:
    >>> from edgeship.benchmark import benchmark
    >>> r = benchmark("model.tflite", runs=50, threads=1)      # doctest: +SKIP
    >>> r.latency_ms.p50 <= r.latency_ms.p99                   # doctest: +SKIP
    True
    >>> r.to_dict()["throughput_ips"]                          # doctest: +SKIP
    812.3
"""
from __future__ import annotations

import gc
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .backends import BACKENDS as _RUNTIME_BACKENDS
from .errors import EdgeshipError, InputSpecError, ModelFormatError
from .spec import TensorSpec

# What ``backend=`` accepts; the runtime resolves "auto" to one of the others.
BACKENDS = ("auto", *_RUNTIME_BACKENDS)

# Distribution-package name of each backend, to record its version.
_BACKEND_DIST = {"litert": "ai-edge-litert", "tflite-runtime": "tflite-runtime",
                 "onnxruntime": "onnxruntime"}

# Non-quantized float inputs have no declared range; [0, 1) is what image and
# feature models are most often normalised to, and it never produces NaN/inf.
FLOAT_INPUT_RANGE = (0.0, 1.0)
# Plain (non-quantized) integer inputs are usually ids or indices: keep them small.
INT_INPUT_RANGE = (0, 10)


@dataclass(frozen=True)
class LatencyStats:
    """Latency of the timed ``predict`` calls, in milliseconds."""

    p50: float
    p90: float
    p99: float
    mean: float
    min: float
    max: float
    std: float

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float]) -> "LatencyStats":
        a = np.asarray(samples_ms, dtype=np.float64)
        p50, p90, p99 = np.percentile(a, [50, 90, 99])
        return cls(p50=float(p50), p90=float(p90), p99=float(p99), mean=float(a.mean()),
                   min=float(a.min()), max=float(a.max()), std=float(a.std()))


@dataclass(frozen=True)
class BenchResult:
    """Everything one benchmark measured, plus what is needed to reproduce it.

    ``init_ms`` is None when an already-loaded Model was passed (nothing was
    loaded). ``peak_rss_delta_bytes`` is None when the platform cannot tell;
    ``rss_method`` says how it was measured (see :func:`benchmark`).
    ``throughput_ips`` is ``batch * 1000 / latency_ms.mean``: items per second
    of one sequential stream of calls.
    """

    model: str
    sha256: Optional[str]
    format: str
    backend: str
    threads: Optional[int]
    runs: int
    warmup: int
    seed: int
    batch: int
    inputs: List[Dict[str, Any]]
    init_ms: Optional[float]
    first_inference_ms: float
    latency_ms: LatencyStats
    throughput_ips: float
    peak_rss_delta_bytes: Optional[int]
    rss_method: str
    versions: Dict[str, Optional[str]]
    host: Dict[str, Any]
    samples_ms: List[float] = field(repr=False, default_factory=list)

    def to_dict(self, samples: bool = False) -> dict:
        """Plain JSON-ready dict; per-call samples only when ``samples`` is True."""
        d = asdict(self)
        if not samples:
            d.pop("samples_ms")
        return d


# --------------------------------------------------------------------------- inputs

if TYPE_CHECKING:
    from .progress import ProgressCallback


def random_inputs(specs: Sequence[TensorSpec], seed: int = 0) -> List[np.ndarray]:
    """Seeded inputs for ``Model.predict`` inside each input's real range.

    Quantized inputs get floats spread over the whole range the integer type can
    represent (``scale * (q - zero_point)`` for q from the type's min to max), so
    quantizing them back never saturates. Float inputs get values in
    ``FLOAT_INPUT_RANGE``; plain integer inputs get integers in ``INT_INPUT_RANGE``.
    A dynamic leading (batch) dimension becomes 1; any other dynamic dimension
    cannot be guessed and raises :class:`InputSpecError`.

    Example:
        >>> from edgeship.spec import Quantization, TensorSpec
        >>> s = TensorSpec("x", (1, 4), "int8", Quantization((0.5,), (-128,)))
        >>> x = random_inputs([s])[0]
        >>> bool(x.min() >= 0.0 and x.max() <= 127.5), x.dtype.name
        (True, 'float32')
    """
    rng = np.random.default_rng(seed)
    out = []
    for s in specs:
        shape = _concrete_shape(s)
        dtype = np.dtype(s.dtype) if s.dtype not in ("string", "resource", "variant") else None
        if dtype is None or dtype.kind not in "fiub":
            raise InputSpecError(
                f"cannot make random data for input {s.name!r} of dtype {s.dtype!r}; "
                "pass inputs= (Python) with real data")
        if s.is_quantized:
            lo, hi = quantized_real_range(s)
            out.append(rng.uniform(lo, hi, size=shape).astype(np.float32))
        elif dtype.kind == "f":
            out.append(rng.uniform(*FLOAT_INPUT_RANGE, size=shape).astype(np.float32))
        elif dtype.kind == "b":
            out.append(rng.integers(0, 2, size=shape).astype(bool))
        else:
            out.append(rng.integers(*INT_INPUT_RANGE, size=shape).astype(dtype))
    return out


def quantized_real_range(spec: TensorSpec) -> Tuple[float, float]:
    """The real values a quantized tensor can hold (intersection over channels)."""
    info = np.iinfo(np.dtype(spec.dtype))
    q = spec.quantization
    scale = np.asarray(q.scale, dtype=np.float64)
    zp = np.asarray(q.zero_point, dtype=np.float64)
    lo = float(np.max(scale * (info.min - zp)))
    hi = float(np.min(scale * (info.max - zp)))
    return lo, hi


def _concrete_shape(s: TensorSpec) -> Tuple[int, ...]:
    shape = []
    for axis, d in enumerate(s.shape):
        if d is None or d < 0:
            if axis != 0:
                raise InputSpecError(
                    f"input {s.name!r} has dynamic dimension {axis} (shape {list(s.shape)}); "
                    "random data needs a fixed shape: pass inputs= with real arrays")
            d = 1
        shape.append(int(d))
    return tuple(shape)


def _as_list(inputs: Any, specs: Sequence[TensorSpec]) -> List[np.ndarray]:
    if isinstance(inputs, dict):
        return [np.asarray(inputs[s.name]) for s in specs if s.name in inputs]
    if isinstance(inputs, (list, tuple)):
        return [np.asarray(a) for a in inputs]
    return [np.asarray(inputs)]


def _batch_of(arrays: Sequence[np.ndarray]) -> int:
    a = arrays[0] if arrays else None
    return int(a.shape[0]) if a is not None and a.ndim >= 2 and a.shape[0] > 0 else 1


# --------------------------------------------------------------------------- memory


class _PeakRSS:
    """High-water mark of resident memory over a block of code, as a delta.

    Linux keeps the process peak in ``VmHWM``; writing ``5`` to
    ``/proc/self/clear_refs`` resets it to the current RSS (kernel >= 4.0), so
    the peak after the block minus the RSS before it is exactly what the block
    added. ``ru_maxrss`` cannot be reset: without clear_refs the delta is only
    known when the block pushed the process past its earlier peak.
    """

    def __init__(self):
        self.method = "unavailable"
        self.delta: Optional[int] = None
        self._before_rss: Optional[int] = None
        self._before_hwm: Optional[int] = None

    def __enter__(self):
        status = _proc_status()
        if status is not None:
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")
                self.method = "vmhwm-reset"
            except OSError:
                self.method = "vmhwm"
            status = _proc_status()
            self._before_rss, self._before_hwm = status["VmRSS"], status["VmHWM"]
        else:
            rss = _maxrss_bytes()
            if rss is not None:
                self.method = "ru_maxrss"
                self._before_hwm = rss
        return self

    def __exit__(self, *exc):
        if self.method in ("vmhwm-reset", "vmhwm"):
            status = _proc_status()
            if self.method == "vmhwm-reset" or status["VmHWM"] > self._before_hwm:
                # The peak was reached inside the block: it is the current HWM.
                self.delta = max(0, status["VmHWM"] - self._before_rss)
            else:
                self.method = "vmhwm (peak not exceeded; clear_refs not permitted)"
        elif self.method == "ru_maxrss":
            after = _maxrss_bytes()
            if after is not None and after > self._before_hwm:
                # Only growth of the process peak is visible: a lower bound.
                self.delta = after - self._before_hwm
                self.method = "ru_maxrss growth (lower bound)"
            else:
                self.method = "ru_maxrss (peak not exceeded; unknown)"
        return False


def _proc_status() -> Optional[Dict[str, int]]:
    try:
        with open("/proc/self/status") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    vals = {}
    for line in lines:
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            vals[key] = int(rest.split()[0]) * 1024  # reported in kB
    return vals if len(vals) == 2 else None


def _maxrss_bytes() -> Optional[int]:
    try:
        import resource
    except ImportError:  # Windows
        return None
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r) if sys.platform == "darwin" else int(r) * 1024  # macOS: bytes, else kB


# --------------------------------------------------------------------------- records


def _versions(backend: str) -> Dict[str, Optional[str]]:
    """:func:`edgeship._io.versions` plus the runtime that ran the benchmark."""
    from importlib import metadata

    from ._io import versions

    dist = _BACKEND_DIST.get(backend)
    try:
        runtime_version = metadata.version(dist) if dist else None
    except metadata.PackageNotFoundError:
        runtime_version = None
    return {**versions(), "runtime": dist, "runtime_version": runtime_version}


def host_info() -> Dict[str, Any]:
    """CPU, core count and OS of this machine: benchmark numbers mean little without them."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "Model", "Hardware")):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    return {"platform": platform.platform(), "machine": platform.machine(), "cpu": cpu,
            "cpu_count": os.cpu_count(), "usable_cpus": usable,
            "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}


# --------------------------------------------------------------------------- benchmark


def _check_args(runs, warmup, threads, backend, seed):
    def is_int(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    if not is_int(runs) or runs < 1:
        raise EdgeshipError(f"runs must be an integer >= 1, got {runs!r}")
    if not is_int(warmup) or warmup < 0:
        raise EdgeshipError(f"warmup must be an integer >= 0, got {warmup!r}")
    if threads is not None and (not is_int(threads) or threads < 1):
        raise EdgeshipError(f"threads must be None (runtime default) or an integer >= 1, got {threads!r}")
    if backend not in BACKENDS:
        raise EdgeshipError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if not is_int(seed):
        raise EdgeshipError(f"seed must be an integer, got {seed!r}")


def benchmark(model, *, runs: int = 100, warmup: int = 10, threads: Optional[int] = None,
              backend: str = "auto", inputs: Any = None, seed: int = 0,
              progress: Optional["ProgressCallback"] = None) -> BenchResult:
    """Load ``model`` (unless already loaded) and time ``runs`` calls of ``predict``.

    Order: load (``init_ms``), one first call (``first_inference_ms``), ``warmup``
    untimed calls, then ``runs`` timed calls with the garbage collector paused
    (as :mod:`timeit` does) so a collection does not land in one sample.
    Every call gets the same input: ``inputs`` when given (anything
    ``Model.predict`` accepts), else :func:`random_inputs` seeded with ``seed``.

    Peak memory: ``peak_rss_delta_bytes`` is the process resident-set high-water
    mark during load + all calls minus the RSS just before. ``rss_method`` is
    ``"vmhwm-reset"`` (Linux, peak reset through /proc/self/clear_refs: exact),
    ``"vmhwm"`` (no reset allowed, but the peak was exceeded: exact), or says why
    the value is a lower bound or None.

    Args:
        model: path to a .tflite/.onnx file or an edgeship bundle, or a Model from
            :func:`edgeship.load`. ``init_ms`` is the time of ``edgeship.load``, which includes
            its verification of the file (a run in a child process the first time a file is
            seen, cached by hash afterwards).
        runs: timed calls (>= 1).
        warmup: untimed calls after the first one (>= 0).
        threads: interpreter threads; None = the runtime's default. With a loaded
            Model it must be None or equal to the model's setting.
        backend: "auto", "litert", "tflite-runtime" or "onnxruntime".
        inputs: real input data; random when None.
        seed: seed of the random inputs.
        progress: a :data:`~edgeship.progress.ProgressCallback` for the warm-up and timed loops
            (called outside the timed interval); default: the one installed with
            :func:`edgeship.progress.reporting`, else none.

    Raises:
        EdgeshipError: bad arguments; ModelFormatError/InputSpecError from loading
        or from the inputs.

    Example:
        >>> r = benchmark("model.onnx", runs=20, warmup=2)     # doctest: +SKIP
        >>> r.runs, r.latency_ms.p50 <= r.latency_ms.p90       # doctest: +SKIP
        (20, True)
    """
    _check_args(runs, warmup, threads, backend, seed)
    from . import runtime

    loaded = isinstance(model, runtime.Model)
    if not loaded and not isinstance(model, (str, os.PathLike)):
        raise EdgeshipError(
            f"model must be a path or a Model from edgeship.load, got {type(model).__name__}")
    if loaded:
        _check_loaded(model, threads, backend)
    else:
        path = Path(model)
        if not path.exists():
            raise ModelFormatError(f"model file not found: {str(path)!r}")

    with _PeakRSS() as mem:
        if loaded:
            m, init_ms = model, None
        else:
            t0 = time.perf_counter_ns()
            m = runtime.load(path, backend=backend, threads=threads)
            init_ms = (time.perf_counter_ns() - t0) / 1e6

        x = inputs if inputs is not None else _single_or_list(random_inputs(m.inputs, seed))
        predict = m.predict

        t0 = time.perf_counter_ns()
        predict(x)
        first_ms = (time.perf_counter_ns() - t0) / 1e6

        samples = _timed_loop(predict, x, runs, warmup, progress, Path(str(m.path)).name)

    arrays = _as_list(x, m.inputs)
    batch = _batch_of(arrays)
    stats = LatencyStats.from_samples(samples)
    m_path = str(m.path)
    sha = getattr(m, "sha256", None) or _sha256(m_path)
    return BenchResult(
        model=m_path, sha256=sha, format=m.format, backend=m.backend,
        threads=threads if threads is not None else getattr(m, "threads", None),
        runs=runs, warmup=warmup, seed=seed, batch=batch,
        # dtype: what the model computes on (int8 for a quantized input); fed_dtype: the arrays
        # given to predict (real float32 values that predict quantizes)
        inputs=[{"name": s.name, "shape": list(a.shape), "dtype": s.dtype, "fed_dtype": a.dtype.name,
                 "source": "user" if inputs is not None else "random"}
                for s, a in zip(m.inputs, arrays)],
        init_ms=init_ms, first_inference_ms=first_ms, latency_ms=stats,
        throughput_ips=batch * 1000.0 / max(stats.mean, 1e-9),  # a 0 ms mean: clock granularity
        peak_rss_delta_bytes=mem.delta, rss_method=mem.method,
        versions=_versions(m.backend), host=host_info(), samples_ms=samples,
    )


def _single_or_list(arrays: List[np.ndarray]):
    return arrays[0] if len(arrays) == 1 else arrays


def _check_loaded(model, threads, backend):
    if backend != "auto" and backend != model.backend:
        raise EdgeshipError(
            f"backend={backend!r} was asked for but the Model passed in runs on {model.backend!r}; "
            "pass a path instead, or backend='auto'")
    have = getattr(model, "threads", None)
    if threads is not None and threads != have:
        raise EdgeshipError(
            f"threads={threads} was asked for but the Model passed in was loaded with threads={have}; "
            "pass a path instead, or threads=None")


def _sha256(path: str) -> Optional[str]:
    from ._io import sha256_file

    try:
        return sha256_file(path)
    except OSError:
        return None


def _timed_loop(predict, x, runs, warmup, progress, label) -> List[float]:
    """Warm-up calls, then ``runs`` timed calls; progress is reported outside the timed interval."""
    from .progress import current

    report = progress if callable(progress) else current()
    for i in range(warmup):
        predict(x)
        if report is not None:
            report(f"warm-up {label}", i + 1, warmup)
    samples = [0.0] * runs
    clock = time.perf_counter_ns
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for i in range(runs):
            t0 = clock()
            predict(x)
            samples[i] = (clock() - t0) / 1e6
            if report is not None:
                report(f"bench {label}", i + 1, runs)
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples
