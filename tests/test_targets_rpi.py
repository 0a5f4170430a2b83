"""Raspberry Pi profiles and the calibrated latency model (anchors: XNNPACK on a Pi 4)."""
from __future__ import annotations

import pytest

from edgeship.errors import TargetError
from edgeship.targets import check, get_target
from edgeship.facts import read_facts
from edgeship.targets.costmodel import PI4_ANCHORS, op_costs, summarize
from edgeship.targets.rpi import ANCHOR_COSTS, calibration, estimate

from tests._targets_helpers import session_anchor_models, session_small_models

GOAL = 0.25


@pytest.fixture(scope="module")
def small():
    return session_small_models()


def test_calibration_fit_and_leave_one_out_errors_are_reported():
    cal = calibration("rpi4")
    assert len(cal.rows) == 4
    assert {(r["model"], r["dtype"]) for r in cal.rows} == {(a.name, a.dtype) for a in PI4_ANCHORS}
    assert cal.max_abs_fit_error <= 0.10
    assert cal.max_abs_loo_error <= GOAL           # the goal, on anchors left out of the fit
    p = cal.params
    assert 1e9 < p.rate_fp32 < 5e10 and 1.0 < p.int8_speedup < 6.0


@pytest.mark.slow
def test_anchor_summaries_match_rebuilt_mobilenets():
    models = session_anchor_models()
    for (name, dtype), stored in ANCHOR_COSTS.items():
        facts = read_facts(models[name][dtype])
        got = [(c.cls, c.dtype, c.macs, c.bytes, c.count) for c in summarize(op_costs(facts)) if c.cls != "free"]
        assert got == stored, (name, dtype)
    macs = {n: sum(c.macs for c in op_costs(read_facts(models[n]["fp32"]))) for n in models}
    # published multiply-adds of MobileNetV1 1.0 224 (569 M) and MobileNetV2 1.0 224 (300 M)
    assert abs(macs["mobilenet_v1"] / 569e6 - 1) < 0.01 and abs(macs["mobilenet_v2"] / 300e6 - 1) < 0.01


@pytest.mark.slow
def test_estimates_of_the_anchor_models_within_goal():
    models = session_anchor_models()
    for a in PI4_ANCHORS:
        e = estimate(models[a.name][a.dtype], "rpi4", threads=4)
        assert abs(e["latency_ms"] / a.ms - 1) <= GOAL, (a, e["latency_ms"])
        assert e["low_ms"] <= a.ms <= e["high_ms"]


def test_estimate_scales_with_threads_and_board(small):
    e4, e1 = estimate(small["int8"], "rpi4", threads=4), estimate(small["int8"], "rpi4", threads=1)
    assert e1["breakdown_ms"]["compute_ms"] > e4["breakdown_ms"]["compute_ms"]
    assert e1["latency_ms"] > e4["latency_ms"]
    p5 = estimate(small["int8"], "rpi5")
    assert p5["latency_ms"] < e4["latency_ms"] and p5["uncertainty"] > e4["uncertainty"]
    assert e4["low_ms"] < e4["latency_ms"] < e4["high_ms"]
    assert e4["uncertainty"] >= GOAL and e4["uncertainty_why"]


def test_int8_estimated_faster_than_fp32(small):
    assert estimate(small["int8"], "rpi4")["breakdown_ms"]["compute_ms"] < \
        estimate(small["fp32"], "rpi4")["breakdown_ms"]["compute_ms"]


def test_bad_thread_count(small):
    with pytest.raises(TargetError, match="threads"):
        estimate(small["int8"], "rpi4", threads=0)
    with pytest.raises(TargetError, match="threads"):
        estimate(small["int8"], "rpi4", threads=8)


@pytest.mark.parametrize("name,cpu", [("rpi4", "Cortex-A72"), ("rpi5", "Cortex-A76")])
def test_check_on_pi_includes_estimate_and_runtime(small, name, cpu):
    p = get_target(name)
    assert p.device.cpu == cpu and p.device.cores == 4
    assert any("ai-edge-litert==" in line for line in p.install)
    assert any("onnxruntime==" in line for line in p.install)
    r = check(small["fp32"], name)
    assert r.compatible and all(o.placement == "cpu" for o in r.ops)
    assert r.estimate["target"] == name and r.estimate["latency_ms"] > 0
    assert any(n.startswith("runtime: LiteRT") for n in r.notes)


@pytest.mark.shared
def test_onnx_estimate_has_a_wider_band(shared_dir, small):
    onnx_model = shared_dir / "models" / "yunet" / "yunet_n_320_320.onnx"
    e = estimate(onnx_model, "rpi4")
    assert e["runtime"] == "onnxruntime" and e["macs"] > 10_000_000
    base = max(0.25, calibration("rpi4").max_abs_loo_error)
    assert e["uncertainty"] >= 1.5 * base - 1e-9 and any("onnxruntime" in w for w in e["uncertainty_why"])
