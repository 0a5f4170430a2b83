"""Per-layer quantization error of int8 TFLite models, and the automatic accuracy-budget fix.

:func:`layer_errors` instruments the quantized model with TFLite's ``QuantizationDebugger``
(NumericVerify ops: each quantized op is also run in float on the same dequantized input), so
each layer's error is its own, not the accumulated error of the layers before it. The ranking
metric is the mean per-channel relative RMS error of the layer's output
(``rms(dequant - float) / rms(float)`` per channel, averaged over channels that carry signal):
a tensor whose few huge channels crush the int8 resolution of the others scores near 1.
Fixed-range outputs (SOFTMAX, LOGISTIC, TANH: TFLite pins their scale) are judged by
``rms(error) / max|float|`` instead, since their tiny channels are meant to round to zero.

:func:`auto_fix` is used when an int8 output misses ``--accuracy-budget``. In order:

1. per-channel weight quantization, if it was off;
2. percentile calibration (activation ranges clipped to the 0.01/99.99 percentiles of the
   calibration data instead of TFLite's min/max), if min/max was used and the ranges are not
   taken from a reference model (``ranges_from``);
3. selective quantization: keep the worst-ranked layers in float, adding one layer at a time
   (with the layers reading its output, which would otherwise re-quantize it with the same
   crushed scale), up to ``max_float_layers``.

Each attempt is a full conversion checked by parity; the report lists every attempt with its
size and latency, and what the final change cost against the plain int8 file.

Example:
    >>> rel_channel_error(np.ones((1, 2)), np.array([[10, 10]]), 0.1, 0)
    0.0
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import List, Optional

import numpy as np

from edgeship._deps import require
from edgeship.errors import ConversionError


@dataclass
class LayerError:
    """Quantization error of one layer's output tensor (higher = worse)."""

    layer: str
    tensor: str
    op: str
    rel_error: float
    rmse: float
    max_abs_error: float
    scale: Optional[float] = None
    tensors: List[str] = field(default_factory=list)   # every op output of this layer (worst first)


def rel_channel_error(f, q, scale, zero_point) -> float:
    """Mean over channels (last axis) of rms(dequant(q) - f) / rms(f); silent channels skipped."""
    f = np.asarray(f, np.float64)
    d = scale * (np.asarray(q, np.float64) - zero_point) - f
    if f.ndim == 0:
        return float(abs(d) / (abs(f) + 1e-12))
    axes = tuple(range(f.ndim - 1))
    err = np.sqrt((d ** 2).mean(axis=axes)) if axes else np.abs(d)
    ref = np.sqrt((f ** 2).mean(axis=axes)) if axes else np.abs(f)
    live = ref > 1e-6 * max(float(ref.max()), 1e-30)
    return float((err[live] / ref[live]).mean()) if live.any() else 0.0


FIXED_RANGE_OPS = ("SOFTMAX", "LOGISTIC", "TANH", "LOG_SOFTMAX")


def rel_peak_error(f, q, scale, zero_point) -> float:
    """rms(dequant(q) - f) / max|f| over the whole tensor."""
    f = np.asarray(f, np.float64)
    d = scale * (np.asarray(q, np.float64) - zero_point) - f
    peak = float(np.abs(f).max()) if f.size else 0.0
    return float(np.sqrt((d ** 2).mean()) / peak) if peak > 0 else 0.0


def layer_errors(source, options: dict, calibrated: Optional[bytes] = None) -> List[LayerError]:
    """Rank the layers of the int8 model by their own quantization error (worst first).

    Args:
        source: a Keras / SavedModel Source.
        options: exporter options; ``calibration`` (CalibrationSet) is required and also used as
            the debug data set; ``per_channel`` is honoured.
        calibrated: an already calibrated model (from ``tflite_common.calibrate``), to reuse.
    """
    tf = require("tensorflow", "convert", "per-layer quantization debugging")
    from tensorflow.lite.python import convert as tfl_convert

    from edgeship.converters.tflite_common import (calibrate_with_method, conversion_error, layer_of,
                                                   representative_dataset)

    calibrated = calibrated or calibrate_with_method(source, options)
    try:
        debug_model = tfl_convert.mlir_quantize(calibrated, disable_per_channel=not options.get("per_channel", True),
                                                enable_numeric_verify=True)
    except Exception as exc:
        raise conversion_error(exc, "building the int8 debug model") from exc
    dbg_opts = tf.lite.experimental.QuantizationDebugOptions(
        layer_direct_compare_metrics={"rel_error": rel_channel_error, "rel_to_peak": rel_peak_error})
    dbg = tf.lite.experimental.QuantizationDebugger(
        quant_debug_model_content=debug_model,
        debug_dataset=representative_dataset(source, options.get("calibration")), debug_options=dbg_opts)
    dbg.run()
    from edgeship.converters.tflite_common import op_outputs, source_layer_names, unique_layer_names

    known = source_layer_names(source)
    ops = {t: o["op"] for o in op_outputs(calibrated) for t in o["outputs"]}
    layers = unique_layer_names(calibrated, known)
    rows = []
    for name, stats in dbg.layer_statistics.items():
        tensor, _ = dbg._get_operand_name_and_index(name)
        op = ops.get(tensor, "?")
        # Fixed-range outputs (softmax: scale 1/256 by design) lose their tiny channels on purpose;
        # judge them against the tensor's peak instead of per channel.
        err = stats["rel_to_peak"] if op in FIXED_RANGE_OPS else stats["rel_error"]
        rows.append(LayerError(layers.get(tensor, layer_of(tensor, known)), tensor, op, float(err),
                               float(np.sqrt(stats["mean_squared_error"])), float(stats["max_abs_error"])))
    rows.sort(key=lambda r: -r.rel_error)
    return _one_row_per_layer(rows)


def _one_row_per_layer(rows: List[LayerError]) -> List[LayerError]:
    """Rows sorted worst first, merged so each layer name appears once (its worst op), with every
    tensor of the layer listed: the ranking names are unique and each one is a ``--keep-float`` name."""
    merged: dict = {}
    for r in rows:
        if r.layer in merged:
            merged[r.layer].tensors.append(r.tensor)
        else:
            r.tensors = [r.tensor]
            merged[r.layer] = r
    return list(merged.values())


def ranking_labels(errors: List[LayerError], limit: int = 30) -> List[str]:
    """The plot's bar labels, worst first: the same order and names as the JSON ranking."""
    return [f"{i + 1}. {r.layer} ({r.op})" for i, r in enumerate(errors[:limit])]


def plot_layer_errors(errors: List[LayerError], path, title: str = "int8 per-layer error") -> Path:
    """Bar chart (png) of per-layer relative error, worst first; written atomically."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgeship._io import atomic_write_bytes

    import json

    rows = errors[:30]
    labels = ranking_labels(rows)
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(rows) + 1.2))
    # numeric positions: worst at the top, and two layers never share a bar (category axes merge equal labels)
    ax.barh(range(len(rows)), [r.rel_error for r in rows], color="tab:red")
    ax.set_yticks(range(len(rows)), labels)
    ax.invert_yaxis()
    ax.set_xlabel("relative RMS error per channel (mean)")
    ax.set_title(title)
    fig.tight_layout()
    buf = io.BytesIO()
    # the ranking the bars show, top to bottom, is stored in the png (text chunk) for checks and tools
    fig.savefig(buf, format="png", dpi=100, metadata={"Description": json.dumps([r.layer for r in rows])})
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


@dataclass
class FixResult:
    """What auto_fix tried, what it kept, and what it cost."""

    baseline: Optional[dict] = None
    attempts: List[dict] = field(default_factory=list)
    layers: List[dict] = field(default_factory=list)
    kept_float: List[str] = field(default_factory=list)
    changes: List[str] = field(default_factory=list)
    met_budget: bool = False
    plot: Optional[str] = None
    notes: List[str] = field(default_factory=list)
    data: Optional[bytes] = None
    report: object = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("data")
        d["report"] = self.report.to_dict() if self.report is not None else None
        return d


def _consumers(calibrated: bytes, tensors: List[str]) -> List[str]:
    """Output tensors of the ops that read ``tensors`` (they must stay float with them)."""
    from edgeship.converters.tflite_common import op_outputs

    return [t for o in op_outputs(calibrated) if set(o["inputs"]) & set(tensors) for t in o["outputs"]]


def auto_fix(source, exporter, options: dict, samples, reference, labels, tolerance: dict, path,
             baseline, *, current: bytes, max_float_layers: int = 4,
             output_tolerances: Optional[dict] = None) -> FixResult:
    """Try per-channel weights, then selective float layers, until the int8 output passes parity.

    Args:
        source, exporter, options: as for the exporter (``options['calibration']`` required).
        samples, reference, labels: held-out validation inputs, their source outputs, labels.
        tolerance: the tolerance (with the accuracy budget folded in) the output must meet.
        output_tolerances: the per-output overrides the conversion was given; every attempt is
            judged with them, as the plain file was.
        path: where the output file goes (attempts are written there to be loaded and checked).
        baseline: the ParityReport of the plain int8 file.
        current: the bytes of the plain int8 file (put back when no attempt meets the budget).
        max_float_layers: give up after keeping this many layers (plus their readers) in float.

    Returns:
        A FixResult; ``data``/``report`` are the best attempt that met the budget, else None
        (the caller keeps the plain file, which then fails loudly).
    """
    from edgeship._io import atomic_write_bytes
    from edgeship.converters.parity import check_parity
    from edgeship.converters.tflite_common import calibrate_with_method, quantize_model

    res = FixResult()
    res.baseline = {"change": "plain int8", "passed": baseline.passed, "bytes": len(current),
                    "latency_ms": baseline.latency_ms, "parity": baseline.summary(), "failures": baseline.failures}
    base_bytes = len(current)
    base_lat = baseline.latency_ms

    def attempt(change: str, opts: dict, calibrated: bytes, keep: List[str]):
        try:
            data = quantize_model(calibrated, opts, keep)
        except ConversionError as exc:  # e.g. a float first layer cannot take int8 I/O: a failed attempt
            res.attempts.append({"change": change, "passed": False, "bytes": None, "latency_ms": None,
                                 "parity": None, "failures": [f"could not be built: {exc}"]})
            return None, _NotBuilt()
        atomic_write_bytes(path, data)
        rep = check_parity(source, path, samples, labels=labels, tolerance=tolerance, fmt_key=exporter.name,
                           reference=reference, output_tolerances=output_tolerances)
        res.attempts.append({"change": change, "passed": rep.passed, "bytes": len(data),
                             "latency_ms": rep.latency_ms, "parity": rep.summary(), "failures": rep.failures})
        return data, rep

    opts = dict(options)
    changes: List[str] = []
    if not opts.get("per_channel", True):
        opts["per_channel"] = True
        changes.append("per-channel weight quantization (was per-tensor)")
        data, rep = attempt("per-channel weight quantization", opts, calibrate_with_method(source, opts), [])
        if rep.passed:
            return _done(res, data, rep, changes, base_bytes, base_lat)
    if (opts.get("calibration_method") or "minmax") == "minmax" and opts.get("ranges_from") is None:
        alt = dict(opts, calibration_method="percentile")
        pct = float(alt.get("percentile", 99.99))
        data, rep = attempt(f"percentile calibration ({pct} %)", alt, calibrate_with_method(source, alt), [])
        if rep.passed:
            return _done(res, data, rep, changes + [f"percentile calibration ({pct} %) instead of min/max"],
                         base_bytes, base_lat)
    calibrated = calibrate_with_method(source, opts)

    errors = layer_errors(source, opts, calibrated)
    res.layers = [asdict(e) for e in errors]
    try:
        res.plot = str(plot_layer_errors(errors, Path(path).with_suffix(".layers.png")))
    except Exception as exc:  # a missing plot must not hide the fix result
        res.notes.append(f"per-layer plot not written: {exc}")
    from edgeship.converters.tflite_common import resolve_keep_float, source_layer_names, unique_layer_names

    known = source_layer_names(source)
    layer_names = unique_layer_names(calibrated, known)
    keep: List[str] = []
    names: List[str] = []
    for e in errors[:max_float_layers]:
        if e.rel_error <= 0.0:
            break
        names.append(e.layer)
        mine = resolve_keep_float(calibrated, [e.layer], known)   # the same path --keep-float takes
        keep += mine + [t for t in _consumers(calibrated, mine) if t not in keep]
        keep = list(dict.fromkeys(keep))
        data, rep = attempt(f"keep float: {', '.join(names)} (+ readers)", opts, calibrated, keep)
        if rep.passed:
            res.kept_float = keep
            readers = [layer_names.get(t, t) for t in keep if layer_names.get(t, t) not in names]
            change = (f"kept {len(names)} layer(s) in float: {', '.join(names)} "
                      f"(ranked worst by per-layer error"
                      + (f"; the layers reading them stay float too: {', '.join(readers)})" if readers else ")"))
            return _done(res, data, rep, changes + [change], base_bytes, base_lat)
    res.notes.append(f"auto-fix: budget not met after {len(res.attempts)} attempts (per-channel/percentile "
                     f"calibration, then up to {len(names)} float layer(s)); the plain int8 file is kept and rejected")
    # leave the plain int8 file in place; the caller rejects it
    atomic_write_bytes(path, current)
    return res


class _NotBuilt:
    """The parity verdict of an attempt whose file could not be built."""

    passed = False


def _done(res: FixResult, data: bytes, rep, changes: List[str], base_bytes: int, base_lat) -> FixResult:
    res.data, res.report, res.met_budget, res.changes = data, rep, True, changes
    lat = (f"{base_lat:.3f} -> {rep.latency_ms:.3f} ms" if base_lat is not None and rep.latency_ms is not None
           else "n/a")
    res.notes.append(f"auto-fix: {'; '.join(changes)}. Cost: {base_bytes} -> {len(data)} bytes "
                     f"({len(data) - base_bytes:+d}), median latency {lat}")
    return res


__all__ = ["LayerError", "layer_errors", "plot_layer_errors", "ranking_labels", "auto_fix", "FixResult", "rel_channel_error", "rel_peak_error"]
