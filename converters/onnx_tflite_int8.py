"""Calibrated full-integer int8 TFLite from an ONNX model (``tflite-int8-onnx``).

The ONNX graph goes through onnx2tf (see :mod:`edgeship.converters.onnx_tflite` for how it is
installed, kept offline and kept from changing the process environment) into a Keras model
whose inputs keep the ONNX layout (NCHW stays NCHW, so the calibration and validation samples
that feed the ONNX source feed this model unchanged). That Keras model is then calibrated on
the representative data and quantized by the same code as every other int8 TFLite output
(:func:`~edgeship.converters.tflite_common.quantize_calibrated`: TFLite builtin int8 ops only,
``io_dtype`` int8 by default, ``per_channel``, ``keep_float_ops``, ``calibration_method``), and
its inputs/outputs get the ONNX names in the ONNX order
(:func:`~edgeship.converters.onnx_tflite.align_io`). This is the path that takes ONNX detectors
(YuNet, UltraFace) to the Coral Edge TPU: ``edgeship convert model.onnx --to tflite --quantize
int8 --calibration faces/ --preprocessing yunet.json`` then ``edgeship check --target edgetpu``.

Without ``keep_float_ops`` every compute op must be int8, else a ConversionError lists the
float ones (as for ``tflite-int8``).

Example:
    >>> from edgeship.converters.registry import load_exporters
    >>> e = load_exporters()["tflite-int8-onnx"]
    >>> e.sources, e.needs_calibration, str(e.quantization)
    (('onnx',), True, 'int8')
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from types import SimpleNamespace

from edgeship._deps import require
from edgeship.errors import ConversionError

from .onnx_tflite import _environ_kept, align_io, run_onnx2tf
from .registry import register
from .tflite_common import float_op_names, quantize_calibrated


def onnx_to_keras(source, options: dict, workdir: Path):
    """The onnx2tf Keras (tf-keras) model of an ONNX source, inputs in the ONNX layout."""
    keras_model = run_onnx2tf(source, options, workdir)
    if keras_model is None:
        raise ConversionError("onnx2tf returned no Keras model to quantize")
    if len(keras_model.inputs) != len(source.inputs) or len(keras_model.outputs) != len(source.outputs):
        raise ConversionError(f"onnx2tf's model has {len(keras_model.inputs)} inputs and {len(keras_model.outputs)} "
                              f"outputs, the ONNX model {len(source.inputs)} and {len(source.outputs)}")
    return _onnx_layout_outputs(keras_model, source)


def _onnx_layout_outputs(keras_model, source):
    """Put channels-last outputs (onnx2tf's NHWC) back in the ONNX layout (NCHW) with a Permute
    layer named like the ONNX output, so the file's outputs have the source's shapes."""
    import tf_keras  # comes with onnx2tf (the overlay)

    outs, changed = [], False
    for t, spec, name in zip(keras_model.outputs, source.outputs, keras_model.output_names):
        got, want = tuple(t.shape[1:]), tuple(spec.shape[1:])
        if len(want) >= 3 and got != want and got == want[1:] + want[:1]:
            keras_model.get_layer(name)._name = f"{name}_channels_last"
            t = tf_keras.layers.Permute((len(want),) + tuple(range(1, len(want))), name=name)(t)
            changed = True
        outs.append(t)
    return tf_keras.Model(keras_model.inputs, outs) if changed else keras_model


@register("tflite-int8-onnx", format="tflite", quantization="int8", sources=("onnx",), needs_calibration=True)
def export_tflite_int8_from_onnx(source, options: dict) -> bytes:
    """TFLite full-integer int8 from an ONNX model: onnx2tf, then calibrated int8 quantization."""
    with tempfile.TemporaryDirectory(prefix="edgeship-onnx2tf-int8-") as tmp:
        keras_model = onnx_to_keras(source, options, Path(tmp))
        with _environ_kept():
            # The Keras model stands in for the source: same input names and order, ONNX layout.
            as_keras = SimpleNamespace(kind="keras", obj=keras_model, inputs=source.inputs, outputs=source.outputs,
                                       path=None, legacy=False, calibrated=None)
            data = quantize_calibrated(as_keras, options)
    if not options.get("keep_float_ops"):
        still_float = float_op_names(data)
        if still_float:
            raise ConversionError(
                f"full-integer int8 left {len(still_float)} op(s) in float: {', '.join(still_float[:8])}. "
                f"Pass keep_float_ops to accept float layers (selective quantization) or use --quantize fp32")
    return _name_io(data, source)


def _name_io(data: bytes, source) -> bytes:
    """Give the file's inputs/outputs the ONNX names in the ONNX order: from the serving signature
    (:func:`align_io`), or, when the converter wrote none (seen with UltraFace), from the graph's own
    order, which is the Keras model's (the ONNX order), after checking every shape matches."""
    schema = require("ai_edge_litert.schema_py_generated", "convert", "rewriting TFLite I/O names")
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    if model.signatureDefs:
        return align_io(data, [s.name for s in source.inputs], [s.name for s in source.outputs])
    flatbuffers = require("flatbuffers", "convert", "rewriting TFLite I/O names")
    graph = model.subgraphs[0]
    for kind, idxs, specs in (("input", graph.inputs, source.inputs), ("output", graph.outputs, source.outputs)):
        got = [tuple(int(d) for d in graph.tensors[i].shape)[1:] for i in idxs]
        want = [tuple(int(d) for d in s.shape)[1:] for s in specs]
        if got != want:
            raise ConversionError(f"the int8 TFLite file has no signature and its {kind} shapes {got} do not match "
                                  f"the ONNX {kind}s {want} in order; cannot name them")
        for i, spec in zip(idxs, specs):
            graph.tensors[i].name = spec.name.encode()
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


__all__ = ["export_tflite_int8_from_onnx", "onnx_to_keras"]
