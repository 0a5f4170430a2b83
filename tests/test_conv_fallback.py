"""Per-layer int8 debugging and the accuracy-budget fix on a model with one badly quantizing layer."""
from __future__ import annotations

import numpy as np
import pytest

import edgeship
from edgeship.converters import convert
from edgeship.errors import ParityError
from tests._conv_helpers import build_outlier_model


@pytest.fixture(scope="module")
def outlier():
    x = np.random.default_rng(1).standard_normal((90, 16)).astype(np.float32)
    return build_outlier_model(), x[:60], x[60:]


@pytest.mark.slow
def test_plain_int8_misses_budget_and_is_not_shipped(outlier, tmp_path):
    model, cal, val = outlier
    with pytest.raises(ParityError) as exc:
        convert(model, to="tflite", quantize="int8", calibration=cal, validation=val, out=tmp_path / "m.tflite",
                tolerance={"top1_min": 0.95})
    assert "top-1 agreement" in str(exc.value)
    rec = exc.value.report["outputs"][0]
    assert not rec["shipped"] and rec["path"].endswith(".rejected")
    assert not (tmp_path / "m.tflite").exists()
    assert rec["parity"]["top1_agreement"] < 0.95


@pytest.mark.slow
def test_auto_fix_keeps_the_outlier_layer_in_float(outlier, tmp_path):
    model, cal, val = outlier
    res = convert(model, to="tflite", quantize="int8", calibration=cal, validation=val,
                  out=tmp_path / "m.tflite", accuracy_budget=0.05)
    rec = res.outputs[0]
    assert rec.shipped and rec.parity["passed"] and rec.parity["top1_agreement"] >= 0.95
    fix = rec.fix
    assert fix["met_budget"]
    assert fix["layers"][0]["layer"] == "spiky"  # ranked worst by per-layer error
    assert any("spiky" in c for c in fix["changes"])
    assert any("bytes" in n and "latency" in n for n in rec.notes)  # cost is reported
    # tried in order: alternative (percentile) calibration first, then float layers
    assert fix["attempts"][0]["change"].startswith("percentile calibration") and not fix["attempts"][0]["passed"]
    assert fix["attempts"][-1]["passed"] and "spiky" in fix["attempts"][-1]["change"]
    assert fix["plot"] and (tmp_path / "m.layers.png").stat().st_size > 1000
    m = edgeship.load(rec.path)
    got = np.argmax(m.predict(val), axis=1)
    want = np.argmax(np.asarray(model(val)), axis=1)
    assert np.mean(got == want) >= 0.95


@pytest.mark.slow
def test_keep_float_by_layer_name_and_debug_ranking(outlier, tmp_path):
    model, cal, val = outlier
    res = convert(model, to="tflite", quantize="int8", calibration=cal, validation=val,
                  out=tmp_path / "k.tflite", keep_float_ops=["spiky", "head"], io_dtype="float32")
    assert res.outputs[0].parity["passed"]
    res2 = convert(model, to="tflite", quantize="int8", calibration=cal, validation=val,
                   out=tmp_path / "d.tflite", debug_layers=True, tolerance={"top1_min": None, "cosine_min": None,
                                                                            "rel_max_abs": None})
    layers = res2.outputs[0].fix["layers"]
    assert layers[0]["layer"] == "spiky" and layers[0]["rel_error"] > 0.5
    assert all(layers[0]["rel_error"] >= l["rel_error"] for l in layers)
