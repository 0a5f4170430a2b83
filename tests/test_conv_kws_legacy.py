"""The MLPerf Tiny KWS SavedModel (written by an older Keras; TF2 loaders fail on it) -> every TFLite format."""
from __future__ import annotations

import numpy as np
import pytest

import edgeship
from edgeship.converters import convert
from edgeship.converters.sources import load_source

SCALE, ZERO_POINT = 0.5847, 83  # the reference model's input quantization


def _kws01(shared):
    d = shared / "data" / "kws01_parity"
    rows = [ln.split(",") for ln in (d / "y_labels.csv").read_text().splitlines() if ln.strip()]
    x = np.stack([(np.fromfile(d / "mfcc" / r[0].strip(), np.int8).astype(np.float32) - ZERO_POINT) * SCALE
                  for r in rows]).reshape(-1, 49, 10, 1)
    y = np.array([int(r[2]) for r in rows])
    return x, y


@pytest.fixture(scope="module")
def kws(shared_dir):
    sm = shared_dir / "models" / "mlperf_tiny_kws" / "saved_model"
    if not sm.is_dir():
        pytest.skip(f"MLPerf Tiny KWS SavedModel not found at {sm}")
    x, y = _kws01(shared_dir)
    assert len(x) == 50
    return sm, x, y


@pytest.mark.slow
@pytest.mark.shared
def test_legacy_saved_model_is_read_through_tf1(kws):
    sm, x, _ = kws
    src = load_source(sm)
    assert src.kind == "saved_model" and src.legacy
    assert src.inputs[0].shape == (-1, 49, 10, 1) and src.outputs[0].shape == (-1, 12)
    probs = src.run({src.inputs[0].name: x[:2]})[0]
    assert probs.shape == (2, 12) and np.allclose(probs.sum(axis=1), 1, atol=1e-4)


@pytest.mark.slow
@pytest.mark.shared
def test_kws_saved_model_to_every_tflite_format(kws, tmp_path):
    sm, x, y = kws
    cal, val, labels = x[:25], x[25:], y[25:]
    lines = []
    for q in (None, "fp16", "dynamic", "int8", "int16x8"):
        res = convert(sm, to="tflite", quantize=q, calibration=cal, validation=val, labels=labels,
                      out=tmp_path / f"kws_{q or 'fp32'}.tflite")
        rec = res.outputs[0]
        p = rec.parity
        assert rec.shipped and p["passed"], p["failures"]
        assert res.calibration["count"] == 25 and p["n_samples"] == 25
        m = edgeship.load(rec.path)
        assert m.predict(val[:1]).shape == (1, 12)
        lines.append(f"{rec.exporter:15s} {rec.bytes:7d} B  top1 agree {p['top1_agreement']:.0%}  "
                     f"acc float {p['accuracy_source']:.0%} / output {p['accuracy_output']:.0%}  "
                     f"cos {p['cosine']:.5f} max_abs {p['max_abs']:.4f}")
        if q == "int8":
            assert m.inputs[0].dtype == "int8"
            assert p["top1_agreement"] >= 0.9
            assert p["accuracy_output"] >= p["accuracy_source"] - 0.05
    print("\nMLPerf Tiny KWS (legacy SavedModel), calibrated on 25 kws01 clips, validated on the other 25:")
    print("\n".join(lines))


@pytest.mark.slow
@pytest.mark.shared
def test_kws_int8_zero_budget_is_met_by_alternative_calibration(kws, tmp_path):
    """Plain min/max int8 flips one of the 25 held-out clips; percentile calibration does not."""
    sm, x, y = kws
    res = convert(sm, to="tflite", quantize="int8", calibration=x[:25], validation=x[25:], labels=y[25:],
                  accuracy_budget=0.0, out=tmp_path / "kws_fixed.tflite")
    rec = res.outputs[0]
    fix = rec.fix
    print("\nplain int8:", fix["baseline"]["parity"])
    for a in fix["attempts"]:
        print(f"{a['change']}: passed={a['passed']} {a['bytes']} B {a['latency_ms']:.3f} ms  {a['parity']}")
    assert not fix["baseline"]["passed"] and fix["met_budget"]
    assert fix["attempts"][0]["change"].startswith("percentile calibration")
    assert rec.parity["passed"] and rec.parity["accuracy_output"] >= rec.parity["accuracy_source"]
