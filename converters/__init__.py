"""Convert a trained model to TFLite / ONNX, quantize it, and check every output against its source.

One function, :func:`convert`; one module per output format registered in
:mod:`edgeship.converters.registry`. Each output file is written atomically, loaded with
:func:`edgeship.load` and compared with the source on held-out inputs
(:mod:`edgeship.converters.parity`). An output out of tolerance is renamed ``*.rejected``,
the report is still written, and :class:`~edgeship.errors.ParityError` is raised: nothing
is silently shipped.

Example:
    >>> import numpy as np, keras  # doctest: +SKIP
    >>> from edgeship.converters import convert  # doctest: +SKIP
    >>> m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])  # doctest: +SKIP
    >>> res = convert(m, to="tflite", quantize="int8", calibration=np.random.rand(64, 8),
    ...               out="out/")  # doctest: +SKIP
    >>> res.outputs[0].parity["passed"]  # doctest: +SKIP
    True
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, List, Optional

import numpy as np

from edgeship.converters.registry import EXPORTERS, Exporter, find, load_exporters
from edgeship.errors import ConversionError, MissingDependencyError, ParityError
from edgeship.facts import QuantMode
FILE_SUFFIX = {"tflite": ".tflite", "onnx": ".onnx"}
REPORT_NAME = "edgeship-convert.json"
SYNTHETIC_VALIDATION = 32  # samples of N(0, 1) when no data at all is given (float outputs only)


@dataclass
class OutputRecord:
    """One written (or rejected) output file and its parity figures."""

    path: str
    format: str
    quantization: QuantMode       # what the written file is (edgeship.facts), not only what was asked
    bytes: int
    parity: dict
    exporter: str
    notes: List[str] = field(default_factory=list)
    shipped: bool = True
    fix: Optional[dict] = None


@dataclass
class _LayerReport:
    layers: List[dict]
    plot: str

    def to_dict(self) -> dict:
        return {"layers": self.layers, "plot": self.plot, "attempts": [], "changes": []}


@dataclass
class ConversionResult:
    source: dict
    outputs: List[OutputRecord]
    calibration: Optional[dict]
    validation: dict
    report_path: str
    versions: dict
    skipped: List[str] = field(default_factory=list)  # exporters not run, and why

    @property
    def passed(self) -> bool:
        return all(o.parity.get("passed") for o in self.outputs)

    def to_dict(self) -> dict:
        return {"ok": self.passed, "source": self.source, "calibration": self.calibration,
                "validation": self.validation, "outputs": [asdict(o) for o in self.outputs],
                "report": self.report_path, "versions": self.versions, "skipped": self.skipped}


def _plan(source, to, quantize, all_formats) -> List[Exporter]:
    load_exporters()
    if all_formats:
        exps = [e for e in EXPORTERS.values() if source.kind in e.sources]
        if not exps:
            raise ConversionError(f"no exporter accepts a {source.kind} source")
        return exps
    return [find(to, quantize, source.kind)]


def _synthetic(source, n: int, seed: int) -> List[dict]:
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n):
        s = {}
        for spec in source.inputs:
            if any(d < 0 for d in spec.shape[1:]):
                raise ConversionError(f"input '{spec.name}' has dynamic dims {spec.shape}: give --validation "
                                      f"data so the outputs can be checked")
            s[spec.name] = rng.standard_normal((1,) + tuple(spec.shape[1:])).astype(np.float32)
        samples.append(s)
    return samples


def _out_path(out, exp: Exporter, source, plan: List[Exporter]) -> Path:
    """``-o`` itself for one file named with the format's suffix; else ``OUT/<stem>_<quantization>.<fmt>``
    (``model_int8.tflite``, ``model_fp32.onnx``), or ``<stem>_<exporter>`` when two exporters of the
    plan make the same format and quantization."""
    out = Path(out)
    suffix = FILE_SUFFIX.get(exp.format, f".{exp.format}")
    if len(plan) == 1 and out.suffix.lower() == suffix:
        return out
    stem = Path(source.path).stem if source.path else "model"
    twins = [e for e in plan if (e.format, e.quantization) == (exp.format, exp.quantization)]
    return out / f"{stem}_{exp.quantization if len(twins) == 1 else exp.name}{suffix}"


def convert(src: Any, *, to: str = "tflite", quantize: Optional[str] = None, calibration: Any = None,
            validation: Any = None, labels: Any = None, accuracy_budget: Optional[float] = None,
            tolerance: Optional[dict] = None, out: Any = "edgeship_out", all_formats: bool = False,
            example_inputs: Any = None, preprocessing: Any = None, max_calibration: Optional[int] = None,
            holdout: Optional[int] = None, seed: int = 0, debug_layers: bool = False, static_batch: bool = False,
            output_tolerances: Optional[dict] = None, **options) -> ConversionResult:
    """Convert ``src`` and check every output against it.

    Args:
        src: Keras model or .keras/.h5, SavedModel dir (legacy too), .onnx/ModelProto,
            torch.nn.Module (+ ``example_inputs``).
        to / quantize: output format ("tflite" | "onnx") and quantization
            (a :class:`~edgeship.facts.QuantMode` or its value: None/"fp32" | "fp16" | "dynamic" |
            "int8" | "int16x8").
        calibration: data for calibrated quantization (see
            :func:`~edgeship.converters.calibration.resolve_calibration`).
        preprocessing: how folders of images/audio become inputs: an image spec
            (:class:`edgeship.preprocessing.ImagePreprocessing`, its dict or a ``.json`` file: the
            same arrays the app computes at run time) or a named function (``image_0_1``, ``kws_mfcc``).
        validation: held-out data for parity. If omitted, ``holdout`` samples (default 20 %,
            at most 100) are drawn from the calibration data and kept out of calibration; with
            no data at all, float outputs are checked on 32 seeded N(0, 1) inputs (noted).
        labels: class indices for the validation samples (or for the whole calibration source
            when validation is drawn from it) -> accuracy of source and output side by side.
        accuracy_budget: max drop of accuracy (with labels) or of top-1 agreement; int8 TFLite
            outputs that miss it go through :func:`~edgeship.converters.quant_debug.auto_fix`.
        tolerance: overrides of the parity defaults, e.g. ``{"cosine_min": 0.999}``.
        output_tolerances: per-output overrides for models with several outputs, e.g.
            ``{"boxes": {"rel_max_abs": 0.5}}``; each output gets its own parity row and
            tolerance (default by output kind, see :mod:`edgeship.converters.parity`), and the
            file fails if any output fails.
        out: an output file (single format) or folder.
        all_formats: every exporter that accepts this source (calibrated ones need data).
        static_batch: fix a Keras source's batch dimension to 1 before converting (Edge TPU and
            microcontrollers need static shapes); recorded in the report.
        debug_layers: for int8 TFLite outputs, rank layers by quantization error and plot them
            (png next to the file); always done when the accuracy-budget fix runs.
        options: exporter options (``io_dtype``, ``per_channel``, ``keep_float_ops``, ``opset``...).

    Raises:
        ConversionError: bad source, no exporter, bad calibration data, converter failure.
        ParityError: an output is out of tolerance (after the report is written); ``.report``
            holds the :meth:`ConversionResult.to_dict`.
    """
    from edgeship._io import atomic_write_json, versions
    from edgeship.converters.sources import load_source

    source = load_source(src, example_inputs=example_inputs)
    notes: List[str] = []
    if static_batch:
        from edgeship.converters.sources import with_static_batch

        before = [list(s.shape) for s in source.inputs]
        source = with_static_batch(source)
        notes.append(f"--static-batch: input shapes {before} -> {[list(s.shape) for s in source.inputs]}")
    exps = _plan(source, to, quantize, all_formats)
    if not all_formats and exps[0].needs_calibration and calibration is None:
        raise ConversionError(f"--quantize {exps[0].quantization} needs --calibration data (any iterable of "
                              f"inputs, a .npy/.npz file or a folder of images/audio)")
    if accuracy_budget is not None and not 0 <= float(accuracy_budget) < 1:
        raise ConversionError(f"accuracy_budget is a fraction in [0, 1), e.g. 0.02; got {accuracy_budget}")
    data = _resolve_data(source, calibration, validation, labels, preprocessing, max_calibration, holdout,
                         seed, notes)
    out_root = Path(out)
    many = len(exps) > 1 or all_formats
    if many and out_root.suffix.lower() in FILE_SUFFIX.values():
        raise ConversionError(f"--all writes several files: -o must be a folder, got '{out}'")
    reference = [source.run(s) for s in data.val_samples]  # the source runs once, every output reuses it
    records: List[OutputRecord] = []
    skipped: List[str] = []  # exporters not run, and why
    opts_base = dict(options, calibration=data.cal, seed=seed)
    for exp in exps:
        if exp.needs_calibration and data.cal is None:
            skipped.append(f"skipped {exp.name}: needs calibration data")
            continue
        try:
            records.append(_export_one(exp, source, data, reference, opts_base, options, notes,
                                       _out_path(out_root, exp, source, exps), many, tolerance,
                                       accuracy_budget, debug_layers, output_tolerances))
        except MissingDependencyError as exc:
            if not many:
                raise
            skipped.append(f"skipped {exp.name}: {exc}")
    report_dir = out_root if many or out_root.suffix.lower() not in FILE_SUFFIX.values() else out_root.parent
    result = ConversionResult(source.describe(), records, data.cal.describe() if data.cal else None,
                              data.val_desc, str(report_dir / REPORT_NAME), versions(), skipped)
    atomic_write_json(report_dir / REPORT_NAME, result.to_dict())
    failed = [r for r in records if not r.parity["passed"]]
    if failed:
        raise ParityError("; ".join(f"{Path(r.path).name} ({r.exporter}) out of tolerance: "
                                    f"{', '.join(r.parity['failures'])}" for r in failed),
                          report=result.to_dict())
    return result


@dataclass
class _Data:
    """Calibration and validation data of one conversion."""

    cal: Any                      # CalibrationSet or None
    val_samples: List[dict]
    val_desc: dict
    labels: Optional[np.ndarray]


def _resolve_data(source, calibration, validation, labels, preprocessing, max_calibration, holdout, seed,
                  notes: List[str]) -> _Data:
    """Calibration set, validation samples (given, held out of the calibration data, or synthetic)
    and the labels that go with the validation samples."""
    from edgeship.converters.calibration import image_spec, resolve_calibration

    image_spec(preprocessing)  # a bad image spec (dict or .json file) is an error even when no folder uses it
    cal = None
    if calibration is not None:
        cal = resolve_calibration(calibration, source.inputs, preprocessing=preprocessing,
                                  max_samples=max_calibration, seed=seed)
    label_arr = None if labels is None else np.asarray(labels).reshape(-1)
    if validation is not None:
        val = resolve_calibration(validation, source.inputs, preprocessing=preprocessing, seed=seed)
        return _Data(cal, val.samples, val.describe(), label_arr)
    if cal is not None:
        n_hold = holdout or min(100, max(1, cal.count // 5))
        if label_arr is not None and len(label_arr) != cal.count:
            raise ConversionError(f"{len(label_arr)} labels given for {cal.count} calibration samples")
        cal, val = cal.split(n_hold, seed)
        if label_arr is not None:
            label_arr = label_arr[val.extra["indices"]]
        notes.append(f"validation: {val.count} samples held out of the calibration data (not used to calibrate)")
        return _Data(cal, val.samples, val.describe(), label_arr)
    if label_arr is not None:
        raise ConversionError("labels were given without --validation or --calibration data")
    samples = _synthetic(source, SYNTHETIC_VALIDATION, seed)
    notes.append("validation: no data given; checked on 32 seeded N(0,1) inputs, which say nothing "
                 "about accuracy on real data")
    return _Data(None, samples, {"count": len(samples), "seed": seed, "source": "synthetic N(0,1)",
                                 "sha256": None}, None)


def _export_one(exp: Exporter, source, data: _Data, reference, opts_base: dict, options: dict,
                notes: List[str], path: Path, many: bool, tolerance, accuracy_budget,
                debug_layers: bool, output_tolerances: Optional[dict] = None) -> OutputRecord:
    """Export, write, check parity (and fix or rank layers when asked); a rejected file is renamed."""
    from edgeship._io import atomic_write_bytes
    from edgeship.converters.parity import check_parity
    from edgeship.facts import read_facts

    rec_notes = list(notes)
    tol = dict(tolerance or {})
    if accuracy_budget is not None:
        key = "acc_drop" if data.labels is not None else "top1_min"
        tol.setdefault(key, float(accuracy_budget) if key == "acc_drop" else 1.0 - float(accuracy_budget))
        rec_notes.append(f"accuracy budget {accuracy_budget}: checked as {key}={tol[key]}")
    exp_opts = dict(opts_base)
    if many and exp.format != "tflite" and exp_opts.get("io_dtype") not in (None, "float32"):
        exp_opts.pop("io_dtype")  # ONNX quantizers keep float I/O; said in the report, not silently
        rec_notes.append(f"io_dtype={options['io_dtype']} applies to TFLite outputs; {exp.name} keeps float I/O")
    blob = exp.fn(source, exp_opts)
    atomic_write_bytes(path, blob)
    rep = check_parity(source, path, data.val_samples, labels=data.labels, tolerance=tol, fmt_key=exp.name,
                       reference=reference, output_tolerances=output_tolerances)
    fix = None
    int8_tflite = exp.format == "tflite" and exp.quantization is QuantMode.INT8
    if not rep.passed and accuracy_budget is not None and int8_tflite:
        from edgeship.converters.quant_debug import auto_fix

        fix = auto_fix(source, exp, dict(opts_base), data.val_samples, reference, data.labels, tol, path, rep,
                       current=blob)
        if fix.data is not None:
            blob = fix.data
            atomic_write_bytes(path, blob)
            rep = fix.report
        rec_notes.extend(fix.notes)
    if debug_layers and int8_tflite and fix is None:
        from edgeship.converters.quant_debug import layer_errors, plot_layer_errors

        errs = layer_errors(source, dict(opts_base))
        png = plot_layer_errors(errs, path.with_suffix(".layers.png"))
        fix = _LayerReport([asdict(e) for e in errs], str(png))
        rec_notes.append(f"per-layer error: worst {errs[0].layer} ({errs[0].rel_error:.3f}); plot {png.name}"
                         if errs else "per-layer error: no quantized layers")
    quant = read_facts(path, data=blob).quantization   # what the file is, which may differ from the request
    if quant is not exp.quantization:
        rec_notes.append(f"asked for {exp.quantization}; the file is {quant} (e.g. the converter keeps small "
                         f"weight tensors in float, or layers were kept in float)")
    rec = OutputRecord(str(path), exp.format, quant, len(blob), rep.to_dict(), exp.name,
                       rec_notes, fix=fix.to_dict() if fix else None)
    if not rep.passed:
        rejected = path.with_name(path.name + ".rejected")
        os.replace(path, rejected)
        rec.path, rec.shipped = str(rejected), False
        rec.notes.append(f"out of tolerance: {'; '.join(rep.failures)}; file renamed to {rejected.name}")
    return rec


__all__ = ["convert", "ConversionResult", "OutputRecord", "load_exporters"]
