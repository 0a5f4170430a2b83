"""ONNX -> calibrated int8 TFLite (``tflite-int8-onnx``) through the onnx2tf overlay, in a child process.

A tiny two-output detector head (scores through a Sigmoid, boxes linear) is converted in the
child (tests/_overlay_convert.py, onnx2tf on PYTHONPATH only there) with calibration data;
parity must pass with one row per output. Then this process checks the file itself: int8
I/O in the ONNX layout and names, outputs close to ONNX Runtime on fresh inputs, and the
Edge TPU target check accepts it (every op int8, static shapes).
Without the overlay the tests skip and say how to build it.
"""
from __future__ import annotations

import numpy as np
import pytest

import edgeship
from tests._onnx_helpers import image_batch, onnx_two_head
from tests.test_overlay_exporters import _convert_in_child, _overlay

SHAPE = (3, 16, 16)


@pytest.mark.slow
def test_onnx_two_head_to_int8_tflite_reaches_edgetpu(tmp_path):
    onnx = pytest.importorskip("onnx", reason="onnx (extra [convert]) is not installed")
    overlay = _overlay("onnx2tf")
    src = tmp_path / "two_head.onnx"
    onnx.save(onnx_two_head(), str(src))
    cal = tmp_path / "cal.npy"
    np.save(cal, image_batch(48, seed=1, shape=SHAPE))
    report, out = _convert_in_child(overlay, tmp_path, ["--onnx", str(src), "--quantize", "int8",
                                                        "--calibration", str(cal)],
                                    image_batch(10, seed=2, shape=SHAPE), "two_head_int8")
    (rec,) = report["outputs"]
    assert rec["exporter"] == "tflite-int8-onnx" and rec["shipped"] and rec["quantization"] == "int8"
    assert report["calibration"]["count"] == 48
    par = rec["parity"]
    rows = {r["name"]: r for r in par["outputs"]}
    assert par["passed"] and set(rows) == {"scores", "boxes"}, par
    assert rows["scores"]["kind"] == "score" and rows["boxes"]["kind"] == "box"
    for r in rows.values():
        print(f"\n{r['name']}: cosine={r['cosine']:.5f} max_abs={r['max_abs']:.4g} rel={r['rel_max_abs']:.4g}")

    model = edgeship.load(out)
    assert [(s.name, tuple(s.shape), s.dtype) for s in model.inputs] == [("image", (1, 3, 16, 16), "int8")]
    assert [s.name for s in model.outputs] == ["scores", "boxes"]
    assert all(s.dtype == "int8" for s in model.outputs)
    ref = edgeship.load(src)
    x = image_batch(4, seed=12, shape=SHAPE)
    for i in range(len(x)):
        got, want = model.predict(x[i:i + 1]), ref.predict(x[i:i + 1])
        for name in ("scores", "boxes"):
            g, w = got[name].ravel().astype(np.float64), want[name].ravel().astype(np.float64)
            cos = g @ w / (np.linalg.norm(g) * np.linalg.norm(w))
            assert g.shape == w.shape and cos > 0.98 and np.max(np.abs(g - w)) < 0.1 * max(1, np.abs(w).max()), name

    from edgeship.targets import check

    verdict = check(out, "edgetpu")
    assert verdict.compatible, verdict.to_dict()
