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
SYNTHETIC_VALIDATION = 32  # random samples in the model's input range when no data at all is given


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
    next_step: Optional[dict] = None   # on rejection: what to do, and the measured figures behind it
    ranges_from: Optional[dict] = None  # int8 activation ranges taken from this model: path, sha256, kept


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
    failed: List[dict] = field(default_factory=list)  # keep_going: exporters that raised, and the error
    warnings: List[str] = field(default_factory=list)  # data problems that make parity figures weak

    @property
    def passed(self) -> bool:
        return all(o.parity.get("passed") for o in self.outputs)

    def to_dict(self) -> dict:
        return {"ok": self.passed, "source": self.source, "calibration": self.calibration,
                "validation": self.validation, "outputs": [asdict(o) for o in self.outputs],
                "report": self.report_path, "versions": self.versions, "skipped": self.skipped,
                "failed": self.failed, "warnings": self.warnings}


def _plan(source, to, quantize, all_formats) -> List[Exporter]:
    load_exporters()
    if all_formats:
        exps = [e for e in EXPORTERS.values() if source.kind in e.sources]
        if not exps:
            raise ConversionError(f"no exporter accepts a {source.kind} source")
        return exps
    return [find(to, quantize, source.kind)]


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
            keep_going: bool = False, dynamic_batch: bool = False, output_tolerances: Optional[dict] = None,
            **options) -> ConversionResult:
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
            no data at all, float outputs are checked on 32 seeded random inputs drawn from the
            model's declared or inferred input range (:mod:`edgeship.converters.input_range`; N(0, 1)
            only when nothing is known), said in ``validation["inputs"]`` and the notes. Validation
            rows that are also calibration rows are counted (``validation["shared_with_calibration"]``)
            and warned about; so is a source output that never changes (``warnings``). A rejected
            output carries ``next_step``: what to do, from what was measured.
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
        keep_going: with several exporters, an exporter that raises :class:`ConversionError` is
            recorded in ``result.failed`` (exporter, format, quantization, error) and the others
            still run (``edgeship report`` uses this); parity failures are unaffected.
        dynamic_batch: export with a dynamic batch dimension (PyTorch: symbolic dim 0 in
            ``torch.onnx.export``; Keras: rebuilt on a ``None`` batch; ONNX: symbolic dim 0), see
            :mod:`edgeship.converters.batching`. Without it a source traced on a batch-4 example
            keeps batch 4, and its calibration/validation rows are checked in batches of 4.
            PyTorch -> TFLite (litert-torch) is tried with a symbolic batch too; litert-torch 0.10
            cannot lower one, which stops with an error naming the ONNX route.
        debug_layers: for int8 TFLite outputs, rank layers by quantization error and plot them
            (png next to the file); always done when the accuracy-budget fix runs.
        options: exporter options (``io_dtype``, ``per_channel``, ``keep_float_ops``, ``opset``...);
            ``ranges_from``: a quantized .tflite of the same network whose activation ranges the
            int8 TFLite file takes instead of calibrated ones (:mod:`.reference_ranges`).

    Raises:
        ConversionError: bad source, no exporter, bad calibration data, converter failure.
        ParityError: an output is out of tolerance (after the report is written); ``.report``
            holds the :meth:`ConversionResult.to_dict`.
    """
    from edgeship.converters.sources import load_source
    from edgeship.progress import step

    with step("loading the source model"):
        source = load_source(src, example_inputs=example_inputs)
    notes: List[str] = []
    if static_batch and dynamic_batch:
        raise ConversionError("--static-batch and --dynamic-batch contradict each other: pick one (static for "
                              "Edge TPU/MCU, dynamic to run several inputs per call)")
    if static_batch:
        from edgeship.converters.sources import with_static_batch

        before = [list(s.shape) for s in source.inputs]
        source = with_static_batch(source)
        notes.append(f"--static-batch: input shapes {before} -> {[list(s.shape) for s in source.inputs]}")
    if dynamic_batch:
        from edgeship.converters.batching import with_dynamic_batch

        source, note = with_dynamic_batch(source)
        notes.append(note)
    exps = _plan(source, to, quantize, all_formats)
    if options.get("ranges_from") is not None:
        options = dict(options, ranges_from=_reference_ranges(exps, options["ranges_from"], notes))
    if not all_formats and exps[0].needs_calibration and calibration is None:
        raise ConversionError(f"--quantize {exps[0].quantization} needs --calibration data (any iterable of "
                              f"inputs, a .npy/.npz file or a folder of images/audio)")
    if accuracy_budget is not None and not 0 <= float(accuracy_budget) < 1:
        raise ConversionError(f"accuracy_budget is a fraction in [0, 1), e.g. 0.02; got {accuracy_budget}")
    data = _resolve_data(source, calibration, validation, labels, preprocessing, max_calibration, holdout,
                         seed, notes, ranges_fixed=options.get("ranges_from") is not None)
    data = _follow_batch(source, data, notes)
    out_root = Path(out)
    many = len(exps) > 1 or all_formats
    if many and out_root.suffix.lower() in FILE_SUFFIX.values():
        raise ConversionError(f"--all writes several files: -o must be a folder, got '{out}'")
    for w in data.warnings:
        _warn(w)
    reference = _Reference(source, data)  # the source runs once, every output reuses it
    try:
        return _export_all(source, exps, data, reference, options, notes, out_root, many, tolerance,
                           accuracy_budget, debug_layers, output_tolerances, keep_going, seed)
    finally:
        reference.join()


def _reference_ranges(exps, ranges_from, notes: List[str]):
    """Check ``ranges_from`` applies to the plan and read it (see :mod:`.reference_ranges`)."""
    from edgeship.converters.reference_ranges import ReferenceRanges, load_reference

    other = [e.name for e in exps if e.name != "tflite-int8"]
    if other:
        raise ConversionError(f"ranges_from sets the activation ranges of a TFLite int8 file; it does not apply to "
                              f"{', '.join(other)}: convert with --to tflite --quantize int8 (and without --all)")
    ref = ranges_from if isinstance(ranges_from, ReferenceRanges) else load_reference(ranges_from)
    notes.append(f"activation ranges from {ref.path} (sha256 {ref.sha256}), matched to the source op by op; the "
                 f"calibration data only runs the calibrator (a range the reference does not quantize is kept)")
    return ref


class _Reference:
    """The source's outputs on the validation inputs, for every output's parity check.

    A Keras source runs in a thread beside the first export: TensorFlow's kernels release the
    GIL and the converter is mostly one core, so on MobileNetV2 the source's ~3 s of inference
    overlap the ~3 s conversion (``bench/convert_speed.py``). The two never trace or run the
    model at the same time (:data:`~edgeship.converters.sources.KERAS_LOCK`: TensorFlow can crash
    when two threads build graphs on one model); the conversion itself runs beside the reference.
    Other sources run here, before exporting.
    Each value is the same as running the source alone: the thread only changes when it runs.
    """

    def __init__(self, source, data: "_Data"):
        import threading

        from edgeship.progress import step

        self._source, self._data = source, data
        self._value, self._error, self._thread, self._checked = None, None, None, False
        if source.kind == "keras" and len(data.val_samples) > 0:
            self._thread = threading.Thread(target=self._run, name="edgeship-source-reference", daemon=True)
            self._thread.start()
        else:
            with step("running the source on the validation inputs"):
                self._run()

    def _run(self) -> None:
        try:
            self._value = self._source.run_many(self._data.val_samples)
        except BaseException as exc:  # re-raised in the caller's thread by get()
            self._error = exc

    def join(self) -> None:
        if self._thread is not None:
            from edgeship.progress import step

            with step("running the source on the validation inputs"):
                self._thread.join()
            self._thread = None

    def get(self) -> list:
        """The outputs (waiting for the thread); the first call also checks for constant outputs."""
        self.join()
        if self._error is not None:
            raise self._error
        if not self._checked:
            from edgeship.converters.data_checks import constant_outputs

            self._checked = True
            found = constant_outputs(self._value, [o.name for o in self._source.outputs])
            self._data.constant = found
            for c in found:
                self._data.warnings.append(f"the source's {c}")
                _warn(f"the source's {c}")
        return self._value


def _export_all(source, exps, data: "_Data", reference: "_Reference", options: dict, notes: List[str],
                out_root: Path, many: bool, tolerance, accuracy_budget, debug_layers: bool,
                output_tolerances, keep_going: bool, seed: int) -> "ConversionResult":
    from edgeship._io import atomic_write_json, versions

    records: List[OutputRecord] = []
    skipped: List[str] = []  # exporters not run, and why
    failed: List[dict] = []  # keep_going: exporters that raised
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
        except ConversionError as exc:
            if not (keep_going and many):
                raise
            failed.append({"exporter": exp.name, "format": exp.format, "quantization": str(exp.quantization),
                           "error": f"{type(exc).__name__}: {exc}"})
    reference.get()  # even when no exporter ran: a source that cannot run, or never changes, is said
    report_dir = out_root if many or out_root.suffix.lower() not in FILE_SUFFIX.values() else out_root.parent
    result = ConversionResult(source.describe(), records, data.cal.describe() if data.cal else None,
                              data.val_desc, str(report_dir / REPORT_NAME), versions(), skipped, failed,
                              list(data.warnings))
    atomic_write_json(report_dir / REPORT_NAME, result.to_dict())
    failed = [r for r in records if not r.parity["passed"]]
    if failed:
        raise ParityError("; ".join(f"{Path(r.path).name} ({r.exporter}) out of tolerance: "
                                    f"{', '.join(r.parity['failures'])}"
                                    + (f". Next step: {r.next_step['text']}" if r.next_step else "")
                                    for r in failed),
                          report=result.to_dict())
    return result


@dataclass
class _Data:
    """Calibration and validation data of one conversion."""

    cal: Any                      # CalibrationSet or None
    val_samples: List[dict]
    val_desc: dict
    labels: Optional[np.ndarray]
    warnings: List[str] = field(default_factory=list)   # said in the report and as Python warnings
    constant: List[str] = field(default_factory=list)   # source outputs that never change


def _warn(message: str) -> None:
    """A data warning: Python ``warnings`` (tests, notebooks) and the converter log."""
    import logging
    import warnings

    warnings.warn(message, UserWarning, stacklevel=3)
    logging.getLogger("edgeship.convert").warning(message)


def _follow_batch(source, data: _Data, notes: List[str]) -> _Data:
    """Samples stacked to the source's fixed batch (e.g. a torch module traced on a batch-4 example),
    so the source, the calibrator and the parity check feed what the exported model accepts."""
    from edgeship.converters.batching import fixed_batch, group_to_batch

    b = fixed_batch(source.inputs)
    if b is None:
        return data
    cal = data.cal
    if cal is not None:
        rows, _ = group_to_batch(cal.samples, source.inputs)
        cal = type(cal)(rows, cal.seed, cal.source, extra={**cal.extra, "batch": b})
    val, note = group_to_batch(data.val_samples, source.inputs)
    if note:
        notes.append(f"validation: {note}")
    labels = data.labels
    if labels is not None:
        labels = labels[:len(val) * b] if len(labels) >= len(val) * b else np.resize(labels, len(val) * b)
    return _Data(cal, val, dict(data.val_desc, batch=b), labels, data.warnings)


def _resolve_data(source, calibration, validation, labels, preprocessing, max_calibration, holdout, seed,
                  notes: List[str], ranges_fixed: bool = False) -> _Data:
    """Calibration set, validation samples (given, held out of the calibration data, or synthetic)
    and the labels that go with the validation samples. ``ranges_fixed``: the int8 ranges come from
    ``ranges_from``, so validation rows shared with the calibration data fitted nothing (counted, not
    warned about)."""
    from edgeship.converters.calibration import image_spec, resolve_calibration

    image_spec(preprocessing)  # a bad image spec (dict or .json file) is an error even when no folder uses it
    cal = None
    if calibration is not None:
        cal = resolve_calibration(calibration, source.inputs, preprocessing=preprocessing,
                                  max_samples=max_calibration, seed=seed)
    label_arr = None if labels is None else np.asarray(labels).reshape(-1)
    if validation is not None:
        val = resolve_calibration(validation, source.inputs, preprocessing=preprocessing, seed=seed)
        desc = dict(val.describe(), inputs=f"the --validation data ({val.count} samples)", random=False)
        warns = []
        if cal is not None:
            from edgeship.converters.data_checks import shared_rows

            both = shared_rows(cal.samples, val.samples)
            desc["shared_with_calibration"] = both
            if both and not ranges_fixed:
                warns.append(f"calibration = validation: {both} of the {val.count} validation samples are also "
                             f"calibration samples (same values); the int8 ranges were fitted to them, so parity "
                             f"on them overstates accuracy on new data: give separate --validation data, or "
                             f"leave --validation out to hold samples out of the calibration data")
        return _Data(cal, val.samples, desc, label_arr, warns)
    if cal is not None:
        n_hold = holdout or min(100, max(1, cal.count // 5))
        if label_arr is not None and len(label_arr) != cal.count:
            raise ConversionError(f"{len(label_arr)} labels given for {cal.count} calibration samples")
        cal, val = cal.split(n_hold, seed)
        if label_arr is not None:
            label_arr = label_arr[val.extra["indices"]]
        notes.append(f"validation: {val.count} samples held out of the calibration data (not used to calibrate)")
        desc = dict(val.describe(), inputs=f"{val.count} samples held out of the calibration data", random=False)
        return _Data(cal, val.samples, desc, label_arr)
    if label_arr is not None:
        raise ConversionError("labels were given without --validation or --calibration data")
    from edgeship.converters.input_range import WORTH, synthetic_inputs

    samples, text = synthetic_inputs(source, SYNTHETIC_VALIDATION, seed, preprocessing)
    notes.append(f"validation: no data given; checked on {len(samples)} seeded {text}: {WORTH}")
    return _Data(None, samples, {"count": len(samples), "seed": seed, "source": f"synthetic: {text}",
                                 "sha256": None, "inputs": text, "random": True}, None)


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
    from edgeship.progress import step

    with step(f"converting: {exp.name}"):
        blob = exp.fn(source, exp_opts)
    if source.kind == "tflite" and exp.format == "tflite":  # the TFLite exporters replay the file's graph
        from edgeship.converters.tflite_graph import describe

        rec_notes.append(describe(source.obj))
    ref_ranges = exp_opts.get("ranges_from")
    if ref_ranges is not None and ref_ranges.kept:
        rec_notes.append(f"ranges_from: {len(ref_ranges.kept)} tensor(s) keep their calibrated range (not int8/uint8 "
                         f"per-tensor in the reference): {', '.join(ref_ranges.kept[:8])}")
    ranges_record = ref_ranges.describe() if ref_ranges is not None else None
    reference = reference.get()  # a source that fails to run leaves no unchecked file behind
    atomic_write_bytes(path, blob)
    rep = check_parity(source, path, data.val_samples, labels=data.labels, tolerance=tol, fmt_key=exp.name,
                       reference=reference, output_tolerances=output_tolerances)
    fix = None
    int8_tflite = exp.format == "tflite" and exp.quantization is QuantMode.INT8
    if not rep.passed and accuracy_budget is not None and int8_tflite:
        from edgeship.converters.quant_debug import auto_fix

        fix = auto_fix(source, exp, dict(opts_base), data.val_samples, reference, data.labels, tol, path, rep,
                       current=blob, output_tolerances=output_tolerances)
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
                       rec_notes, fix=fix.to_dict() if fix else None, ranges_from=ranges_record)
    if data.constant:
        rec.notes.append("the source's output does not change across the validation inputs: "
                         + "; ".join(data.constant))
    if not rep.passed:
        rec.next_step = _next_step(exp, source, data, reference, opts_base, rep, fix, path, tol, output_tolerances)
        rejected = path.with_name(path.name + ".rejected")
        os.replace(path, rejected)
        rec.path, rec.shipped = str(rejected), False
        rec.notes.append(f"out of tolerance: {'; '.join(rep.failures)}; file renamed to {rejected.name}")
    return rec


def _next_step(exp: Exporter, source, data: _Data, reference, opts_base: dict, rep, fix, path: Path,
               tol: dict, output_tolerances: Optional[dict] = None) -> dict:
    """What to do about a rejected output, from what was measured (see converters.next_step).

    For a rejected int8 TFLite file this measures what it needs: the per-layer ranking (unless the
    accuracy-budget fix or --debug-layers already made one) and an int16x8 conversion of the same
    source, checked on the same validation data.
    """
    from edgeship.converters.next_step import suggest

    int8_tflite = exp.format == "tflite" and exp.quantization is QuantMode.INT8
    layers, tried, int16 = None, [], None
    if fix is not None:
        layers = fix.layers or None
        tried = [n.strip() for a in getattr(fix, "attempts", []) if a["change"].startswith("keep float:")
                 for n in a["change"][len("keep float:"):].split("(+")[0].split(",")]
    measurable = int8_tflite and data.cal is not None and not data.constant
    if measurable and layers is None:
        from edgeship.converters.quant_debug import layer_errors

        try:
            layers = [asdict(e) for e in layer_errors(source, dict(opts_base))]
        except Exception:  # the step is advice: a failed debug run must not hide the rejection
            layers = None
    if measurable:
        int16 = _measure_int16x8(source, data, reference, opts_base, path, tol, output_tolerances)
    return suggest(exp.format, str(exp.quantization), failures=rep.failures, constant=data.constant,
                   random_inputs=data.val_desc.get("inputs") if data.val_desc.get("random") else None,
                   cal_count=data.cal.count if data.cal is not None and exp.needs_calibration else None,
                   layers=layers, tried_float=tried, int16x8=int16)


def _measure_int16x8(source, data: _Data, reference, opts_base: dict, path: Path, tol: dict,
                     output_tolerances: Optional[dict] = None) -> Optional[dict]:
    """Parity of an int16x8 conversion of ``source`` on the same validation data (None if not available)."""
    from edgeship._io import atomic_write_bytes
    from edgeship.converters.parity import check_parity

    exp16 = next((e for e in EXPORTERS.values() if e.format == "tflite" and e.quantization is QuantMode.INT16X8
                  and source.kind in e.sources), None)
    if exp16 is None:
        return None
    probe = path.with_name(path.stem + ".int16x8-probe.tflite")
    try:
        opts = {k: v for k, v in opts_base.items() if k not in ("keep_float_ops",)}
        opts.pop("io_dtype", None)
        atomic_write_bytes(probe, exp16.fn(source, opts))
        r = check_parity(source, probe, data.val_samples, labels=data.labels, fmt_key=exp16.name,
                         reference=reference, tolerance=tol,   # the user's overrides apply to it too
                         output_tolerances=output_tolerances)
        return {"passed": r.passed, "cosine": r.cosine, "top1_agreement": r.top1_agreement,
                "failures": r.failures}
    except Exception:  # advice only: an int16x8 that cannot be made is simply not suggested
        return None
    finally:
        probe.unlink(missing_ok=True)


__all__ = ["convert", "ConversionResult", "OutputRecord", "load_exporters"]
