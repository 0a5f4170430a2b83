"""ONNX int8 through onnxruntime.quantization: dynamic (``onnx-dynamic``) and static QDQ (``onnx-qdq-int8``).

Both start from the float ONNX of the source (:func:`~edgeship.converters.onnx_fp32.to_onnx_model`)
and pre-process it with ORT's ``quant_pre_process`` (ORT graph optimisation: BatchNorm
folded into Conv, constants folded; then ONNX shape inference). Symbolic shape inference
is skipped (``skip_symbolic_shape=True``): it fails on many exported graphs and the
quantizer only needs the static shapes.

Static int8 writes the QDQ format (QuantizeLinear/DequantizeLinear pairs around float
ops), calibrated on ``options['calibration']`` (a CalibrationSet, or any iterable of
``{input name: array}`` dicts) with ``minmax`` (default), ``percentile`` (99.999th) or
``entropy`` ranges (KL divergence over a 512-bin histogram; see ``ENTROPY_BINS`` for why
not ORT's default). The model's inputs and outputs stay float32, so ``io_dtype`` other than
float32 is refused. QDQ needs opset >= 13; older graphs (e.g. opset-11 detectors) are lifted
to 13 with onnx's version converter first, unless an explicit lower ``opset`` was asked for
(then it is an error).

8-bit types: activations AND weights are uint8 (asymmetric), in both modes. Measured here
(AMD EPYC, AVX2 without VNNI, ORT 1.31.1): with int8 weights ORT's x86 kernels (u8s8 via
VPMADDUBSW) saturate, so a QDQ file that is accurate when simulated loses accuracy when
ORT runs it optimised. Mean cosine vs float, simulated / optimised ORT:

=================  ===============  ===============
model              s8 weights       u8 weights
=================  ===============  ===============
small Keras CNN    0.998 / 0.891    0.998 / 0.998
UltraFace (p-ch)   0.992 / 0.923    0.992 / 0.992
YuNet-n (p-ch)     0.997 / 0.989    0.997 / 0.997
=================  ===============  ===============

ORT documents this saturation and suggests U8U8 (or reduce_range, which cost UltraFace
~0.03 cosine) when it shows; u8/u8 never saturates and was as accurate everywhere measured.
The dynamic mode had the same problem (small CNN max-abs error 0.035 with s8 weights,
0.0013 with u8).

Options (all optional): ``per_channel`` (weights per output channel; default True for static
int8, where it measured better with u8 weights, and False for dynamic), ``calibration_method``,
``keep_float_ops`` (node names, op types or tensor names to leave in float), ``opset``.

Example:
    >>> import numpy as np, torch  # doctest: +SKIP
    >>> from edgeship.converters.sources import load_source  # doctest: +SKIP
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())  # doctest: +SKIP
    >>> src = load_source(net, example_inputs=torch.zeros(1, 3, 8, 8))  # doctest: +SKIP
    >>> calib = [{"input_0": np.random.rand(1, 3, 8, 8).astype("float32")} for _ in range(8)]  # doctest: +SKIP
    >>> data = export_onnx_int8(src, {"calibration": calib, "calibration_method": "minmax"})  # doctest: +SKIP
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Dict, List

import numpy as np

from edgeship._deps import require
from edgeship._io import stdout_to_stderr
from edgeship.errors import ConversionError

from .onnx_fp32 import (_first_line, check_loads, is_quantized,
                        strip_initializer_value_info, to_onnx_model)
from .registry import register

CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
# ORT's quantize_static runs entropy with 128 histogram bins and 128 quantized bins, which
# leaves exactly one candidate threshold (the full range): it silently equals minmax. We run
# the entropy calibrator ourselves with more bins (512 keeps it ~10 s for a 100-tensor
# detector; 2048 took ~100 s) and hand ORT the ranges through its calibration cache.
ENTROPY_BINS = 512
ENTROPY_QUANTIZED_BINS = 128
QDQ_MIN_OPSET = 13  # DequantizeLinear's per-axis ``axis`` attribute and ORT's QDQ optimisations start here
ALL_SOURCES = ("keras", "saved_model", "tflite", "torch", "onnx")
# Defaults as data, so docs and reports can print them.
DEFAULTS = {
    "onnx-dynamic": {"per_channel": False, "weight_type": "uint8", "activation_type": "uint8, at run time"},
    "onnx-qdq-int8": {"per_channel": True, "calibration_method": "minmax", "weight_type": "uint8",
                      "activation_type": "uint8", "format": "QDQ"},
}


def _flag(options: dict, key: str, default: bool) -> bool:
    value = options.get(key)
    if value is None:
        return default
    if not isinstance(value, (bool, np.bool_)):
        raise ConversionError(f"{key} must be true or false, got {value!r}")
    return bool(value)


def _check_io_dtype(options: dict) -> None:
    io = options.get("io_dtype")
    if io not in (None, "float32"):
        raise ConversionError(f"io_dtype={io!r} is not available for ONNX: onnxruntime-quantized models keep "
                              f"float32 inputs and outputs (io_dtype applies to full-int8 TFLite)")


def _ai_onnx_opset(model) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def preprocessed_model(source, options: dict, workdir: Path, min_opset: int = 0) -> Path:
    """Float ONNX of ``source``, pre-processed for quantization, written under ``workdir``.

    ``min_opset``: graphs below it are lifted with onnx's version converter unless the
    user asked for a specific ``opset`` (then a lower one is an error, not rewritten).
    """
    onnx = require("onnx", "convert", "quantizing ONNX models")
    shape_inference = require("onnxruntime.quantization.shape_inference", "convert", "quantizing ONNX models")
    model = to_onnx_model(source, options)
    if is_quantized(model):
        raise ConversionError("the source is already quantized (it holds QuantizeLinear/DequantizeLinear or "
                              "integer ops); quantize its float original instead")
    if _ai_onnx_opset(model) < min_opset:
        if options.get("opset") is not None:
            raise ConversionError(f"opset {options['opset']} was asked for, but static QDQ int8 needs opset "
                                  f">= {min_opset} (per-axis DequantizeLinear); ask for {min_opset} or more")
        try:
            model = onnx.version_converter.convert_version(model, min_opset)
        except Exception as exc:
            raise ConversionError(f"static QDQ int8 needs opset >= {min_opset}; the model is at opset "
                                  f"{_ai_onnx_opset(model)} and could not be converted: {_first_line(exc)}") from exc
    fp32, pre = workdir / "fp32.onnx", workdir / "pre.onnx"
    onnx.save(model, str(fp32))
    try:
        shape_inference.quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    except Exception as exc:
        raise ConversionError(f"onnxruntime quant_pre_process failed: {_first_line(exc)}") from exc
    model = onnx.load(str(pre))
    strip_initializer_value_info(model)  # the optimiser may leave them; they break dynamic Gemm
    _name_nodes(model)
    onnx.save(model, str(pre))
    return pre


def _name_nodes(model) -> None:
    """Give unnamed nodes (old exporters leave them empty) a unique name: ORT excludes nodes by name."""
    taken = {n.name for n in model.graph.node if n.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)


def _exclusions(model, keep_float_ops) -> Dict[str, List[str]]:
    """Map ``keep_float_ops`` (node names, op types or tensor names) to ORT's node exclusions."""
    if not keep_float_ops:
        return {"nodes_to_exclude": []}
    if isinstance(keep_float_ops, str):
        keep_float_ops = [keep_float_ops]
    nodes = list(model.graph.node)
    excluded, unknown = [], []
    for item in keep_float_ops:
        hit = [n.name for n in nodes if item in (n.name, n.op_type) or item in n.output]
        if hit:
            excluded.extend(hit)
        else:
            unknown.append(item)
    if unknown:
        types = sorted({n.op_type for n in nodes})
        raise ConversionError(f"keep_float_ops names {unknown} which match no node name, op type or tensor of "
                              f"the (pre-processed) ONNX graph; its op types are {types}")
    return {"nodes_to_exclude": sorted(set(excluded))}


def _dims(value_info) -> tuple:
    return tuple(d.dim_value if d.HasField("dim_value") else -1 for d in value_info.type.tensor_type.shape.dim)


def calibration_feeds(calibration, model) -> List[Dict[str, np.ndarray]]:
    """Check calibration samples against the ONNX inputs and return them as float32 feed dicts.

    Raises:
        ConversionError: no data, a missing/unknown input, or a shape that does not fit.
    """
    if calibration is None:
        raise ConversionError("static int8 ONNX quantization needs calibration data (calibration=...: "
                              "a CalibrationSet or an iterable of {input name: array} dicts); none was given")
    samples = getattr(calibration, "samples", calibration)
    inits = {i.name for i in model.graph.initializer}
    inputs = {i.name: _dims(i) for i in model.graph.input if i.name not in inits}
    feeds = []
    for k, sample in enumerate(samples):
        if not isinstance(sample, dict):
            if len(inputs) != 1:
                raise ConversionError(f"calibration sample {k} is a {type(sample).__name__}; this model has "
                                      f"{len(inputs)} inputs {sorted(inputs)}, so pass dicts by input name")
            sample = {next(iter(inputs)): sample}
        if set(sample) != set(inputs):
            raise ConversionError(f"calibration sample {k} has inputs {sorted(sample)}; expected {sorted(inputs)}")
        feed = {}
        for name, value in sample.items():
            arr = np.asarray(value, dtype=np.float32)
            want = inputs[name]
            if arr.ndim != len(want) or any(w > 0 and w != g for w, g in zip(want, arr.shape)):
                raise ConversionError(f"calibration sample {k}, input {name!r}: expected shape "
                                      f"{tuple(w if w > 0 else None for w in want)}, got {arr.shape}")
            if not np.isfinite(arr).all():
                raise ConversionError(f"calibration sample {k}, input {name!r} holds NaN or inf values")
            feed[name] = arr
        feeds.append(feed)
    if not feeds:
        raise ConversionError("the calibration data is empty; give at least one sample")
    return feeds


def _calibration_reader(feeds: List[Dict[str, np.ndarray]]):
    quantization = require("onnxruntime.quantization", "convert", "quantizing ONNX models")

    class SamplesReader(quantization.CalibrationDataReader):
        """ORT's calibration protocol over a list of feed dicts (rewindable)."""

        def __init__(self):
            self._it = iter(feeds)

        def get_next(self):
            return next(self._it, None)

        def rewind(self):
            self._it = iter(feeds)

    return SamplesReader()


def _entropy_ranges(pre: Path, feeds: List[Dict[str, np.ndarray]], workdir: Path) -> Path:
    """KL-divergence (entropy) activation ranges, saved as an ORT calibration cache file."""
    calibrate = require("onnxruntime.quantization.calibrate", "convert", "entropy calibration")
    registry = require("onnxruntime.quantization.registry", "convert", "entropy calibration")
    op_types = sorted(set(registry.QLinearOpsRegistry) | set(registry.QDQRegistry))  # quantize_static's default
    with stdout_to_stderr():
        calibrator = calibrate.create_calibrator(
            str(pre), op_types, augmented_model_path=str(workdir / "augmented.onnx"),
            calibrate_method=calibrate.CalibrationMethod.Entropy,
            extra_options={"num_bins": ENTROPY_BINS, "num_quantized_bins": ENTROPY_QUANTIZED_BINS})
        calibrator.collect_data(_calibration_reader(feeds))
        ranges = calibrator.compute_data()
    cache = workdir / "entropy_ranges.json"
    calibrate.save_tensors_data(ranges, cache)
    return cache


@register("onnx-dynamic", format="onnx", quantization="dynamic", sources=ALL_SOURCES)
def export_onnx_dynamic(source, options: dict) -> bytes:
    """ONNX with int8 weights and activations quantized at run time (onnxruntime quantize_dynamic)."""
    onnx = require("onnx", "convert", "quantizing ONNX models")
    quantization = require("onnxruntime.quantization", "convert", "quantizing ONNX models")
    _check_io_dtype(options)
    per_channel = _flag(options, "per_channel", DEFAULTS["onnx-dynamic"]["per_channel"])
    with tempfile.TemporaryDirectory(prefix="edgeship-onnxq-") as tmp:
        pre = preprocessed_model(source, options, Path(tmp))
        excl = _exclusions(onnx.load(str(pre)), options.get("keep_float_ops"))
        out = Path(tmp) / "dynamic.onnx"
        try:
            with stdout_to_stderr():
                quantization.quantize_dynamic(str(pre), str(out), per_channel=per_channel,
                                              weight_type=quantization.QuantType.QUInt8, **excl)
        except Exception as exc:
            raise ConversionError(f"onnxruntime quantize_dynamic failed: {_first_line(exc)}") from exc
        model = onnx.load(str(out))
    check_loads(model, "the dynamically quantized ONNX model")
    return model.SerializeToString()


@register("onnx-qdq-int8", format="onnx", quantization="int8", sources=ALL_SOURCES, needs_calibration=True)
def export_onnx_int8(source, options: dict) -> bytes:
    """ONNX static int8 in QDQ format, calibrated with minmax, percentile or entropy ranges."""
    onnx = require("onnx", "convert", "quantizing ONNX models")
    quantization = require("onnxruntime.quantization", "convert", "quantizing ONNX models")
    _check_io_dtype(options)
    defaults = DEFAULTS["onnx-qdq-int8"]
    per_channel = _flag(options, "per_channel", defaults["per_channel"])
    method = options.get("calibration_method") or defaults["calibration_method"]
    if method not in CALIBRATION_METHODS:
        raise ConversionError(f"calibration_method must be one of {', '.join(CALIBRATION_METHODS)}, got {method!r}")
    ort_method = {"minmax": quantization.CalibrationMethod.MinMax,
                  "percentile": quantization.CalibrationMethod.Percentile,
                  "entropy": quantization.CalibrationMethod.Entropy}[method]
    with tempfile.TemporaryDirectory(prefix="edgeship-onnxq-") as tmp:
        pre = preprocessed_model(source, options, Path(tmp), min_opset=QDQ_MIN_OPSET)
        pre_model = onnx.load(str(pre))
        feeds = calibration_feeds(options.get("calibration"), pre_model)
        excl = _exclusions(pre_model, options.get("keep_float_ops"))
        out = Path(tmp) / "int8.onnx"
        try:
            if method == "entropy":
                reader, cache = None, str(_entropy_ranges(pre, feeds, Path(tmp)))
            else:
                reader, cache = _calibration_reader(feeds), None
            with stdout_to_stderr():  # ORT prints calibration progress on stdout
                quantization.quantize_static(
                    str(pre), str(out), reader, quant_format=quantization.QuantFormat.QDQ,
                    per_channel=per_channel, activation_type=quantization.QuantType.QUInt8,
                    weight_type=quantization.QuantType.QUInt8, calibrate_method=ort_method,
                    calibration_cache_path=cache, **excl)
        except ConversionError:
            raise
        except Exception as exc:
            raise ConversionError(f"onnxruntime quantize_static ({method}) failed: {_first_line(exc)}") from exc
        model = onnx.load(str(out))
    check_loads(model, "the static int8 ONNX model")
    return model.SerializeToString()


__all__ = ["export_onnx_dynamic", "export_onnx_int8", "preprocessed_model", "calibration_feeds",
           "CALIBRATION_METHODS", "DEFAULTS"]
