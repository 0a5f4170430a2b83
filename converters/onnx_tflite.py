"""Float TFLite from an ONNX model through onnx2tf (``tflite-fp32-onnx``).

onnx2tf rewrites the ONNX graph op by op into TensorFlow (NCHW -> NHWC inside) and
writes a TFLite flatbuffer. Two things are pinned down here:

* I/O layout and names: every input is kept in the ONNX layout
  (``keep_ncw_or_nchw_or_ncdhw_input_names``) and the graph's inputs/outputs are put back
  in the ONNX order under the ONNX names (:func:`align_io`), so the same feed dict runs the
  ONNX source and the TFLite file and parity compares output with output.
* No network: for models whose inputs all look like 3-channel images onnx2tf downloads
  a sample-image file from GitHub to test its conversion (even for float output). We run
  it in a private working directory and replace its download function with seeded local
  data for the duration of the call, so nothing is ever fetched.

onnx2tf is optional and no edgeship extra pulls it: its own pins would replace TensorFlow,
numpy and onnx. The line that works beside ``edgeship[convert]`` (tested: ``make venv-test``
builds exactly this into ``.overlay-onnx2tf/`` and tests/test_overlay_exporters.py converts
through it) is::

    pip install --no-deps onnx2tf==1.29.24 tf-keras==2.21.0 onnx-graphsurgeon==0.6.1 \\
        sne4onnx==2.0.1 sng4onnx==2.0.1 psutil==7.2.2

(``requests``, which onnx2tf also imports, comes with TensorFlow.) Without it the exporter
raises :class:`~edgeship.errors.MissingDependencyError`.

Side effect of tf-keras: once it is importable, ``tf.saved_model.load`` reads SavedModels
written by older Keras (e.g. the MLPerf Tiny KWS model), which without it fail with
``'_UserObject' object has no attribute 'add_slot'``; :func:`~edgeship.converters.sources.load_source`
then takes the TF2 path and marks them ``legacy=False`` instead of using the TF1 loader (both
are checked by parity the same way). onnx2tf also sets ``TF_USE_LEGACY_KERAS=1`` when imported,
which would make every later ``tf.keras`` in the process tf_keras; this module undoes that.

Example:
    >>> from edgeship.converters.sources import load_source  # doctest: +SKIP
    >>> data = export_tflite_from_onnx(load_source("model.onnx"), {})  # doctest: +SKIP
    >>> data[4:8]  # doctest: +SKIP
    b'TFL3'
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np

from edgeship._deps import require
from edgeship._io import stdout_to_stderr
from edgeship.errors import ConversionError, MissingDependencyError

from .onnx_fp32 import _first_line, to_onnx_model
from .registry import register

PIP_SPEC = "onnx2tf==1.29.24"
# Everything `pip install --no-deps` needs beside edgeship[convert] (the Makefile's ONNX2TF_PINS).
PIP_LINE = (f"pip install --no-deps {PIP_SPEC} tf-keras==2.21.0 onnx-graphsurgeon==0.6.1 sne4onnx==2.0.1 "
            f"sng4onnx==2.0.1 psutil==7.2.2")
SAMPLE_SHAPE = (20, 128, 128, 3)  # what onnx2tf's download_test_image_data returns


# onnx2tf sets these process-wide: TF_USE_LEGACY_KERAS=1 at import would turn every later
# ``tf.keras`` in this process into tf_keras (it uses tf_keras directly and does not need it).
_ENV_KEYS = ("TF_USE_LEGACY_KERAS", "TF_CPP_MIN_LOG_LEVEL", "CUDA_VISIBLE_DEVICES")


@contextlib.contextmanager
def _environ_kept():
    saved = {k: os.environ.get(k) for k in _ENV_KEYS}
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _import_onnx2tf():
    try:
        with _environ_kept():
            import onnx2tf  # noqa: F401
            import onnx2tf.onnx2tf as core
            import onnx2tf.utils.common_functions as common
    except ImportError as exc:
        raise MissingDependencyError(
            f"converting ONNX to TFLite needs onnx2tf, which could not be imported ({exc}). No edgeship "
            f"extra pulls it (its pins would replace TensorFlow, numpy and onnx); install it beside "
            f"edgeship[convert] with: {PIP_LINE}") from exc
    return core, common


@contextlib.contextmanager
def _offline(core, common, seed: int):
    """Replace onnx2tf's sample-image download with seeded local data; restore it afterwards."""
    data = np.random.default_rng(seed).random(SAMPLE_SHAPE, dtype=np.float32)

    def local_sample_images() -> np.ndarray:
        return data.copy()

    class NoNetwork:  # any other download attempt fails loudly instead of reaching out
        def __getattr__(self, name):
            raise ConversionError(f"onnx2tf tried to use the network (requests.{name}); edgeship runs it offline")

    saved = [(mod, attr, getattr(mod, attr)) for mod in (core, common)
             for attr in ("download_test_image_data", "requests") if hasattr(mod, attr)]
    for mod, attr, _ in saved:
        setattr(mod, attr, local_sample_images if attr == "download_test_image_data" else NoNetwork())
    try:
        yield
    finally:
        for mod, attr, value in saved:
            setattr(mod, attr, value)


@contextlib.contextmanager
def _cwd(path: Path):
    """onnx2tf reads and writes helper files in the working directory; give it a private one."""
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def run_onnx2tf(source, options: dict, workdir: Path):
    """Run onnx2tf on an ONNX source in ``workdir`` (inputs kept in the ONNX layout, offline, quiet):
    writes ``workdir/out/model_float32.tflite`` and returns onnx2tf's Keras (tf-keras) model."""
    onnx = require("onnx", "convert", "converting ONNX to TFLite")
    core, common = _import_onnx2tf()
    model = to_onnx_model(source, {k: v for k, v in options.items() if k == "opset"})
    if any(d < 0 for s in source.inputs for d in s.shape):
        raise ConversionError(f"onnx2tf needs fixed input shapes; this model has "
                              f"{[(s.name, s.shape) for s in source.inputs]}")
    onnx.save(model, str(workdir / "model.onnx"))
    try:
        with stdout_to_stderr(), _environ_kept(), _cwd(workdir), _offline(core, common, int(options.get("seed") or 0)):
            return core.convert(input_onnx_file_path=str(workdir / "model.onnx"),
                                output_folder_path=str(workdir / "out"),
                                keep_ncw_or_nchw_or_ncdhw_input_names=[s.name for s in source.inputs],
                                copy_onnx_input_output_names_to_tflite=True, non_verbose=True)
    except SystemExit as exc:  # onnx2tf calls sys.exit on conversion errors
        raise ConversionError(f"onnx2tf could not convert the model (exit {exc.code})") from exc
    except Exception as exc:
        raise ConversionError(f"onnx2tf could not convert the model: {_first_line(exc)}") from exc


@register("tflite-fp32-onnx", format="tflite", quantization="fp32", sources=("onnx",))
def export_tflite_from_onnx(source, options: dict) -> bytes:
    """Float32 TFLite from an ONNX model via onnx2tf, inputs kept in the ONNX (NCHW) layout."""
    for key in ("io_dtype", "keep_float_ops"):
        if options.get(key):
            raise ConversionError(f"{key}={options[key]!r} does not apply to a float TFLite model "
                                  f"(tflite-fp32-onnx has no quantization)")
    with tempfile.TemporaryDirectory(prefix="edgeship-onnx2tf-") as tmp:
        tmp = Path(tmp)
        run_onnx2tf(source, options, tmp)
        out = tmp / "out" / "model_float32.tflite"
        if not out.is_file():
            raise ConversionError(f"onnx2tf wrote no float32 TFLite file (found: "
                                  f"{sorted(p.name for p in (tmp / 'out').glob('*'))})")
        data = out.read_bytes()
    if data[4:8] != b"TFL3":
        raise ConversionError("onnx2tf wrote a file that is not a TFLite flatbuffer")
    return align_io(data, [s.name for s in source.inputs], [s.name for s in source.outputs])


def align_io(data: bytes, input_names, output_names) -> bytes:
    """Put the subgraph's inputs/outputs in the ONNX order and give their tensors the ONNX names.

    onnx2tf keeps the ONNX names only in the signature (and sorts them there); the graph's own
    output list comes in another order with names like ``PartitionedCall:3``. Runtimes and
    parity read the graph, so it is rewritten from the signature's name -> tensor map.
    """
    schema = require("ai_edge_litert.schema_py_generated", "convert", "rewriting TFLite I/O names")
    flatbuffers = require("flatbuffers", "convert", "rewriting TFLite I/O names")
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    if not model.signatureDefs or len(model.subgraphs) != 1:
        raise ConversionError("the onnx2tf TFLite file has no serving signature to map the ONNX names from")
    sig = model.signatureDefs[0]
    graph = model.subgraphs[0]

    def mapping(entries, names, what):
        by_name = {(e.name.decode() if isinstance(e.name, bytes) else e.name): e.tensorIndex for e in entries}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ConversionError(f"the onnx2tf TFLite signature lacks the ONNX {what} {missing} "
                                  f"(has {sorted(by_name)})")
        return [by_name[n] for n in names]

    ins = mapping(sig.inputs, input_names, "inputs")
    outs = mapping(sig.outputs, output_names, "outputs")
    if sorted(ins) != sorted(int(i) for i in graph.inputs) or sorted(outs) != sorted(int(o) for o in graph.outputs):
        raise ConversionError("the onnx2tf TFLite signature does not describe the graph's own inputs/outputs")
    graph.inputs, graph.outputs = ins, outs
    for idx, name in list(zip(ins, input_names)) + list(zip(outs, output_names)):
        graph.tensors[idx].name = name.encode()
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


__all__ = ["export_tflite_from_onnx", "align_io", "PIP_SPEC", "PIP_LINE"]
