"""--static-batch: a dynamic-batch Keras model becomes Edge TPU-compatible int8, with the change reported."""
from __future__ import annotations

import numpy as np
import pytest

import edgeship
from edgeship.errors import ConversionError


@pytest.mark.slow
def test_static_batch_makes_keras_int8_edgetpu_compatible(weights, tmp_path):
    from edgeship import targets
    from edgeship.converters import convert
    from edgeship.models.shapes import make_dataset

    calib, _ = make_dataset(60, seed=7)
    val_x, val_y = make_dataset(40, seed=11)
    src = weights / "shapes_cnn.keras"
    dyn = convert(str(src), to="tflite", quantize="int8", calibration=calib, validation=val_x, labels=val_y,
                  out=str(tmp_path / "dyn.tflite"), io_dtype="int8")
    assert not targets.check(dyn.outputs[0].path, "edgetpu").compatible
    res = convert(str(src), to="tflite", quantize="int8", calibration=calib, validation=val_x, labels=val_y,
                  out=str(tmp_path / "static.tflite"), io_dtype="int8", static_batch=True)
    rec = res.outputs[0]
    assert rec.parity["passed"] and rec.parity["top1_agreement"] >= 0.95
    assert any("--static-batch" in n and "[1, 32, 32, 1]" in n for n in rec.notes)
    assert res.source["sha256"] == dyn.source["sha256"]  # same source, same weights
    m = edgeship.load(rec.path)
    assert m.inputs[0].shape == (1, 32, 32, 1)
    assert m.predict(val_x[:3]).shape == (3, 3)  # fixed batch: predict runs per sample
    report = targets.check(rec.path, "edgetpu")
    assert report.compatible, [p.message for p in report.problems]


def test_static_batch_refuses_non_keras(tmp_path):
    from edgeship.converters import convert
    from tests._onnx_models import dense_relu

    p, _, _ = dense_relu(tmp_path / "d.onnx", batch="N")
    with pytest.raises(ConversionError, match="Keras models only"):
        convert(str(p), to="onnx", out=str(tmp_path / "o.onnx"), static_batch=True,
                validation=np.zeros((4, 8), np.float32))
