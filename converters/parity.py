"""Check a converted file against the source it came from, on held-out inputs.

Metrics (over every output, every sample): max-abs and mean-abs error, cosine similarity
(per sample over the flattened outputs; the mean is checked, the minimum reported), top-1
agreement for classifiers (one output of shape [N, C], C >= 2), and, when labels are given,
the accuracy of the source and of the output side by side.

Default tolerances, one row per (format, :class:`~edgeship.facts.QuantMode`). ``rel_max_abs`` is max-abs error
divided by the largest absolute source output, so it means the same for logits and
probabilities; ``acc_drop`` is the largest allowed drop of accuracy (only with labels).
Quantized rows allow one flipped sample in 20 (5 %), so small validation sets of ~25
samples are not failed by a single borderline sample.
A key set to ``None`` is not checked. Pass ``tolerance={...}`` to override any of them.

Models with several outputs (detectors: scores + boxes + landmarks) get one row per output in
``ParityReport.outputs``, each judged against its own tolerance, and the file fails if any
output fails (the pooled figures are still reported). An output's default is the format's row
adjusted for its kind (:func:`output_kind`, from the name and the reference values). For
quantized formats, ``box``/``landmark`` regressions get ``rel_max_abs`` 0.35 (one int8 scale
spans the whole range of offsets), and ``score`` maps are judged by absolute error on the
[0, 1] probability scale, ``max_abs`` 0.3 (int8 YuNet / UltraFace score maps showed max errors of
0.22-0.36 on 20 held-out LFW faces, where the YuNet detector still found the same faces:
bench/onnx_int8_detectors.py), their cosine and relative error reported but not
judged (over a map of mostly-zero background scores they measure noise).
``output_tolerances={"output name": {...}}`` overrides any output's keys
(``convert(..., output_tolerances=...)``, ``edgeship convert --tolerance NAME:key=value``); the
model-wide ``tolerance`` applies to every output, except the keys an output's kind does not judge.

=====================  ==========  ===========  =========  ========
format / quantization  cosine_min  rel_max_abs  top1_min   acc_drop
=====================  ==========  ===========  =========  ========
tflite / fp32          0.99999     1e-4         0.99       0.0
tflite / fp16          0.999       0.01         0.98       0.01
tflite / dynamic       0.99        0.15         0.95       0.05
tflite / int8          0.98        0.25         0.90       0.05
tflite / int16x8       0.995       0.15         0.95       0.05
onnx / fp32            0.99999     1e-4         0.99       0.0
onnx / fp16            0.999       0.01         0.98       0.01
onnx / dynamic         0.99        0.15         0.95       0.05
onnx / int8            0.98        0.25         0.90       0.05
=====================  ==========  ===========  =========  ========

Example:
    >>> sorted(default_tolerance("tflite/int8"))
    ['acc_drop', 'cosine_min', 'max_abs', 'rel_max_abs', 'top1_min']
    >>> default_tolerance("tflite-fp16")["cosine_min"]
    0.999
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from edgeship.errors import ConversionError, ModelFormatError
from edgeship.facts import QuantMode

_T = lambda cos, rel, top1, acc: {"cosine_min": cos, "rel_max_abs": rel, "max_abs": None,
                                  "top1_min": top1, "acc_drop": acc}

DEFAULT_TOLERANCES: Dict[Tuple[str, QuantMode], dict] = {
    ("tflite", QuantMode.FP32): _T(0.99999, 1e-4, 0.99, 0.0),
    ("tflite", QuantMode.FP16): _T(0.999, 0.01, 0.98, 0.01),
    ("tflite", QuantMode.DYNAMIC): _T(0.99, 0.15, 0.95, 0.05),
    ("tflite", QuantMode.INT8): _T(0.98, 0.25, 0.90, 0.05),
    ("tflite", QuantMode.INT16X8): _T(0.995, 0.15, 0.95, 0.05),
    ("onnx", QuantMode.FP32): _T(0.99999, 1e-4, 0.99, 0.0),
    ("onnx", QuantMode.FP16): _T(0.999, 0.01, 0.98, 0.01),
    ("onnx", QuantMode.DYNAMIC): _T(0.99, 0.15, 0.95, 0.05),
    ("onnx", QuantMode.INT8): _T(0.98, 0.25, 0.90, 0.05),
}
TOLERANCE_KEYS = ("cosine_min", "rel_max_abs", "max_abs", "top1_min", "acc_drop")


def split_fmt_key(fmt_key: str) -> Tuple[str, QuantMode]:
    """``"tflite/int8"``, ``"tflite-int8"`` or a registered exporter name -> (format, QuantMode)."""
    from edgeship.converters.registry import EXPORTERS

    if fmt_key in EXPORTERS:
        e = EXPORTERS[fmt_key]
        return e.format, e.quantization
    sep = "/" if "/" in fmt_key else "-"
    fmt, _, quant = fmt_key.partition(sep)
    try:
        return fmt, QuantMode.parse(quant.split("-")[0] or None)
    except ModelFormatError as exc:
        raise ConversionError(f"parity key {fmt_key!r}: {exc}") from None


def default_tolerance(fmt_key: str) -> dict:
    """The documented default tolerance for ``fmt_key`` (a copy, safe to modify)."""
    key = split_fmt_key(fmt_key)
    if key not in DEFAULT_TOLERANCES:
        raise ConversionError(f"no default tolerance for {key[0]}/{key[1]}; known: "
                              f"{sorted(f'{f}/{q}' for f, q in DEFAULT_TOLERANCES)}")
    return dict(DEFAULT_TOLERANCES[key])


def merge_tolerance(fmt_key: str, override: Optional[dict]) -> dict:
    """Defaults for ``fmt_key`` with ``override`` applied; unknown keys are an error, not ignored."""
    tol = default_tolerance(fmt_key)
    for k, v in (override or {}).items():
        if k not in TOLERANCE_KEYS:
            raise ConversionError(f"unknown tolerance key {k!r}; known: {list(TOLERANCE_KEYS)}")
        tol[k] = None if v is None else float(v)
    return tol


OUTPUT_KINDS = ("score", "box", "landmark", "value")
# Per kind, for quantized formats (int8, int16x8, dynamic): keys that differ from the format's row.
# Scores are probabilities: judged by absolute error on the [0, 1] scale (cosine is reported, not
# judged: over a map of mostly-zero background scores it measures noise, not detections).
_KIND_QUANT_TOLERANCE = {"box": {"rel_max_abs": 0.35}, "landmark": {"rel_max_abs": 0.35},
                         "score": {"cosine_min": None, "rel_max_abs": None, "max_abs": 0.3}}
_KIND_WORDS = (("landmark", ("kps", "landmark", "lmk", "keypoint", "points")),
               ("box", ("bbox", "box", "loc", "reg", "anchor")),
               ("score", ("score", "cls", "obj", "conf", "prob", "class", "softmax")))


def output_kind(name: str, reference: Optional[np.ndarray] = None) -> str:
    """``score`` | ``box`` | ``landmark`` | ``value``: from the output's name and its values.

    A ``score`` holds probabilities: its values (when given) lie in [0, 1], whatever the name
    says (a ``cls`` output of logits is a ``value``); an unnamed output in [0, 1] is a score.

    Example:
        >>> output_kind("bbox_8"), output_kind("kps_16"), output_kind("scores"), output_kind("y")
        ('box', 'landmark', 'score', 'value')
        >>> output_kind("out0", np.array([0.1, 0.9])), output_kind("cls", np.array([-3.0, 4.0]))
        ('score', 'value')
    """
    low = name.lower()
    in_unit = reference is not None and reference.size > 0 and float(np.min(reference)) >= 0.0 \
        and float(np.max(reference)) <= 1.0
    for kind, words in _KIND_WORDS:
        if any(w in low for w in words):
            return kind if kind != "score" or reference is None or in_unit else "value"
    return "score" if in_unit else "value"


def output_tolerance(fmt_key: str, kind: str, override: Optional[dict] = None) -> dict:
    """Default tolerance of one output of ``kind`` for ``fmt_key``, with ``override`` applied.

    Example:
        >>> output_tolerance("tflite/int8", "box")["rel_max_abs"], output_tolerance("tflite/fp32", "box")["rel_max_abs"]
        (0.35, 0.0001)
    """
    tol = default_tolerance(fmt_key)
    if split_fmt_key(fmt_key)[1] in (QuantMode.INT8, QuantMode.INT16X8, QuantMode.DYNAMIC):
        tol.update(_KIND_QUANT_TOLERANCE.get(kind, {}))
    for k, v in (override or {}).items():
        if k not in TOLERANCE_KEYS:
            raise ConversionError(f"unknown tolerance key {k!r}; known: {list(TOLERANCE_KEYS)}")
        tol[k] = None if v is None else float(v)
    return tol


@dataclass
class OutputParity:
    """Parity figures of one model output (a row of the per-output table)."""

    name: str
    kind: str
    shape: List[int]
    max_abs: float
    mean_abs: float
    rel_max_abs: float
    cosine: float
    cosine_min: float
    tolerance: dict
    passed: bool = True
    failures: List[str] = field(default_factory=list)


@dataclass
class ParityReport:
    """Parity figures of one output file against its source."""

    fmt_key: str
    n_samples: int
    max_abs: float
    mean_abs: float
    rel_max_abs: float
    cosine: float
    cosine_min: float
    top1_agreement: Optional[float]
    accuracy_source: Optional[float]
    accuracy_output: Optional[float]
    latency_ms: Optional[float]
    tolerance: dict
    passed: bool
    failures: List[str] = field(default_factory=list)
    outputs: List[OutputParity] = field(default_factory=list)  # one row per model output

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        parts = [f"max_abs={self.max_abs:.4g}", f"mean_abs={self.mean_abs:.4g}", f"cos={self.cosine:.5f}"]
        if self.top1_agreement is not None:
            parts.append(f"top1_agree={self.top1_agreement:.1%}")
        if self.accuracy_output is not None:
            parts.append(f"acc {self.accuracy_source:.1%} -> {self.accuracy_output:.1%}")
        return ", ".join(parts)


def _load(path):
    """Load a converted file with edgeship.load (structure check + isolated first run)."""
    from edgeship.runtime import load

    return load(path, backend="onnxruntime" if str(path).endswith(".onnx") else "litert")


def _feed(model, sample: dict, source_inputs) -> object:
    """Map a sample keyed by source input names onto the output model's inputs."""
    if len(source_inputs) == 1:
        return sample[source_inputs[0].name]
    names = [s.name for s in model.inputs]
    feed = []
    for i, mname in enumerate(names):
        hit = [s.name for s in source_inputs if s.name == mname] or \
              [s.name for s in source_inputs if s.name in mname]
        feed.append(sample[hit[0]] if len(hit) == 1 else sample[source_inputs[i].name])
    return feed


def _as_list(pred, n_expected: int, ref_shapes, names=None) -> List[np.ndarray]:
    if not isinstance(pred, dict):
        return [np.asarray(pred)]
    outs = [np.asarray(v) for v in pred.values()]
    if len(outs) != n_expected:
        return outs
    if names is not None and set(names) == set(pred):  # same names as the source: pair by name
        return [np.asarray(pred[n]) for n in names]
    # Converters may reorder outputs: pair by shape where that is unambiguous, else keep order.
    ordered = []
    pool = list(outs)
    for shp in ref_shapes:
        same = [o for o in pool if o.shape == shp]
        pick = same[0] if len(same) >= 1 else pool[0]
        del pool[next(i for i, o in enumerate(pool) if o is pick)]  # by identity: == on arrays broadcasts
        ordered.append(pick)
    return ordered


def check_parity(source, model_path, samples: Sequence[dict], *, labels=None,
                 tolerance: Optional[dict] = None, fmt_key: Optional[str] = None,
                 reference: Optional[List[List[np.ndarray]]] = None,
                 output_tolerances: Optional[Dict[str, dict]] = None) -> ParityReport:
    """Run ``model_path`` and ``source`` on ``samples`` and compare them against a tolerance.

    Args:
        source: the :class:`~edgeship.converters.sources.Source` the file was made from.
        model_path: the converted .tflite/.onnx file (loaded with ``edgeship.load``).
        samples: held-out inputs ``{source input name: float array with batch 1}``.
        labels: optional class indices, one per sample, for accuracy.
        tolerance: overrides of the defaults for ``fmt_key`` (see the table above).
        fmt_key: ``"tflite/int8"``, ``"tflite-int8"`` or an exporter name; default: the file's own
            format and quantization from :func:`edgeship.facts.read_facts` (``mixed`` is judged as int8).
        reference: source outputs per sample, if already computed (saves re-running the source).
        output_tolerances: ``{output name: {key: value}}``, overrides for single outputs on top of
            ``tolerance`` and the output's kind default (see :func:`output_tolerance`).

    Returns:
        A :class:`ParityReport`; ``passed`` is False when any checked figure is out of tolerance
        and ``failures`` says which and by how much. This function does not raise on failure.
    """
    from edgeship.progress import track

    if not samples:
        raise ConversionError("parity needs at least one validation sample; none were given")
    if fmt_key is None:
        from edgeship.facts import read_facts

        facts = read_facts(model_path)
        quant = QuantMode.INT8 if facts.quantization is QuantMode.MIXED else facts.quantization
        fmt_key = f"{facts.format}-{quant}"
    tol = merge_tolerance(fmt_key, tolerance)
    if labels is not None:
        labels = np.asarray(labels).astype(np.int64).reshape(-1)
        rows = sum(int(np.shape(next(iter(s.values())))[0]) for s in samples)  # a sample may hold a batch
        if len(labels) != rows:
            raise ConversionError(f"{len(labels)} labels given for {rows} validation samples")
    out_names = [o.name for o in source.outputs]
    unknown = sorted(set(output_tolerances or {}) - set(out_names))
    if unknown:
        raise ConversionError(f"output_tolerances names {unknown}, which are not outputs of the source; "
                              f"its outputs are {out_names}")
    model = _load(model_path)
    if reference is None:   # batch-1 rows for a model with a fixed batch > 1: feed it whole batches
        from edgeship.converters.batching import fixed_batch, group_to_batch

        b = fixed_batch(model.inputs)
        if b is not None:
            import dataclasses

            samples, _ = group_to_batch(list(samples), [dataclasses.replace(s, shape=(b,) + tuple(s.shape[1:]))
                                                        for s in source.inputs])
            if labels is not None:
                labels = labels[:len(samples) * b]
    per_out: List[dict] = []  # running figures per output
    ref_all = reference if reference is not None else [None] * len(samples)
    diffs_max, abs_sum, abs_n, ref_peak, cosines = 0.0, 0.0, 0, 0.0, []
    top_src, top_out, times = [], [], []
    classifier = len(source.outputs) == 1 and len(source.outputs[0].shape) == 2 and source.outputs[0].shape[-1] >= 2
    for sample, ref in track(list(zip(samples, ref_all)), f"validating {fmt_key}"):
        if ref is None:
            ref = source.run(sample)
        t0 = time.perf_counter()
        pred = model.predict(_feed(model, sample, source.inputs))
        times.append(time.perf_counter() - t0)
        outs = _as_list(pred, len(ref), [np.shape(r) for r in ref], out_names)
        if len(outs) != len(ref):
            raise ConversionError(f"{model_path} has {len(outs)} outputs but the source has {len(ref)}")
        flat_r, flat_o = [], []
        if not per_out:
            per_out = [{"max": 0.0, "sum": 0.0, "n": 0, "peak": 0.0, "cos": [], "lo": np.inf, "hi": -np.inf,
                        "shape": [int(d) for d in np.shape(r)]} for r in ref]
        for r, o in zip(ref, outs):
            r = np.asarray(r, np.float64)
            o = np.asarray(o, np.float64)
            if r.size != o.size:
                raise ConversionError(f"{model_path}: output of shape {o.shape} cannot be compared with "
                                      f"the source's {r.shape}")
            flat_r.append(r.reshape(-1))
            flat_o.append(o.reshape(-1))
        for acc, r, o in zip(per_out, flat_r, flat_o):
            _accumulate(acc, r, o)
        fr, fo = np.concatenate(flat_r), np.concatenate(flat_o)
        d = np.abs(fr - fo)
        diffs_max = max(diffs_max, float(d.max()))
        abs_sum += float(d.sum())
        abs_n += d.size
        ref_peak = max(ref_peak, float(np.abs(fr).max()))
        denom = np.linalg.norm(fr) * np.linalg.norm(fo)
        cosines.append(float(fr @ fo / denom) if denom > 0 else (1.0 if np.allclose(fr, fo) else 0.0))
        if classifier:
            n_cls = source.outputs[0].shape[-1]   # one row per sample of the batch
            top_src.extend(int(i) for i in np.argmax(flat_r[0].reshape(-1, n_cls), axis=-1))
            top_out.extend(int(i) for i in np.argmax(flat_o[0].reshape(-1, n_cls), axis=-1))
    top1 = float(np.mean(np.equal(top_src, top_out))) if classifier else None
    acc_s = acc_o = None
    if classifier and labels is not None:
        acc_s = float(np.mean(np.equal(top_src, labels)))
        acc_o = float(np.mean(np.equal(top_out, labels)))
    rel = diffs_max / ref_peak if ref_peak > 0 else diffs_max
    report = ParityReport(fmt_key, len(samples), diffs_max, abs_sum / max(abs_n, 1), rel,
                          float(np.mean(cosines)), float(np.min(cosines)), top1, acc_s, acc_o,
                          float(np.median(times) * 1000.0), tol, True)
    # top-1 and accuracy are judged on the whole model; cosine and errors on each output's row
    whole = [f for f in _judge(report, tol) if f.startswith(("top-1", "accuracy"))]
    report.failures = []
    multi = len(per_out) > 1
    names = out_names if len(out_names) == len(per_out) else [f"output_{i}" for i in range(len(per_out))]
    for name, acc in zip(names, per_out):
        kind = output_kind(name, np.array([acc["lo"], acc["hi"]]) if acc["n"] else None)  # the range seen
        override = (output_tolerances or {}).get(name, {})
        # a single output keeps the format's row (plus overrides); several get their kind's default
        o_tol = output_tolerance(fmt_key, kind, {**_for_kind(fmt_key, kind, tolerance), **override}) if multi \
            else merge_tolerance(fmt_key, {**(tolerance or {}), **override})
        row = OutputParity(name, kind, acc["shape"], acc["max"],
                           acc["sum"] / max(acc["n"], 1), acc["max"] / acc["peak"] if acc["peak"] > 0 else acc["max"],
                           float(np.mean(acc["cos"])), float(np.min(acc["cos"])), o_tol)
        row.failures = _judge(row, o_tol)
        row.passed = not row.failures
        report.outputs.append(row)
        report.failures.extend(f"output {name!r}: {f}" if multi else f for f in row.failures)
    report.failures.extend(whole)
    report.passed = not report.failures
    return report


def _for_kind(fmt_key: str, kind: str, tolerance: Optional[dict]) -> dict:
    """The model-wide ``tolerance`` as it applies to one output of ``kind``: keys the kind does not
    judge (None in its default, e.g. cosine of a quantized score map) stay unjudged; only a
    per-output override turns them on."""
    off = {k for k, v in output_tolerance(fmt_key, kind).items() if v is None and default_tolerance(fmt_key)[k] is not None}
    return {k: v for k, v in (tolerance or {}).items() if k not in off}


def _accumulate(acc: dict, r: np.ndarray, o: np.ndarray) -> None:
    """Add one sample of one output to its running figures."""
    d = np.abs(r - o)
    if d.size:
        acc["max"] = max(acc["max"], float(d.max()))
        acc["peak"] = max(acc["peak"], float(np.abs(r).max()))
        acc["lo"], acc["hi"] = min(acc["lo"], float(r.min())), max(acc["hi"], float(r.max()))
    acc["sum"] += float(d.sum())
    acc["n"] += d.size
    denom = np.linalg.norm(r) * np.linalg.norm(o)
    acc["cos"].append(float(r @ o / denom) if denom > 0 else (1.0 if np.allclose(r, o) else 0.0))


def _judge(r, tol: dict) -> List[str]:
    """Each out-of-tolerance figure of a :class:`ParityReport` or :class:`OutputParity` as
    'name = value, limit L (off by D)'."""
    bad = []
    if tol.get("cosine_min") is not None and r.cosine < tol["cosine_min"]:
        bad.append(f"cosine {r.cosine:.6f} < {tol['cosine_min']} (short by {tol['cosine_min'] - r.cosine:.3g})")
    if tol.get("rel_max_abs") is not None and r.rel_max_abs > tol["rel_max_abs"]:
        bad.append(f"relative max-abs error {r.rel_max_abs:.4g} > {tol['rel_max_abs']:.4g} "
                   f"(max-abs {r.max_abs:.4g})")
    if tol.get("max_abs") is not None and r.max_abs > tol["max_abs"]:
        bad.append(f"max-abs error {r.max_abs:.4g} > {tol['max_abs']:.4g}")
    if tol.get("top1_min") is not None and getattr(r, "top1_agreement", None) is not None and r.top1_agreement < tol["top1_min"]:
        bad.append(f"top-1 agreement {r.top1_agreement:.1%} < {tol['top1_min']:.1%}")
    if tol.get("acc_drop") is not None and getattr(r, "accuracy_output", None) is not None and \
            r.accuracy_source - r.accuracy_output > tol["acc_drop"] + 1e-12:
        bad.append(f"accuracy dropped {r.accuracy_source:.1%} -> {r.accuracy_output:.1%} "
                   f"(> {tol['acc_drop']:.1%} allowed)")
    return bad


__all__ = ["ParityReport", "OutputParity", "output_kind", "output_tolerance", "check_parity", "DEFAULT_TOLERANCES", "TOLERANCE_KEYS", "default_tolerance",
           "merge_tolerance", "split_fmt_key"]
