"""MCU target: TFLM runs, exact arena, C array export, resolver code, latency estimate."""
from __future__ import annotations

import re

import numpy as np
import pytest

from tests._mcu_helpers import shared_kws_model, tiny_models

pytest.importorskip("tflite_micro", reason="tflite-micro (edgeship[mcu]) not installed")

from edgeship.errors import InputSpecError, ModelFormatError, TargetError  # noqa: E402
from edgeship.targets import mcu  # noqa: E402


@pytest.fixture(scope="module")
def tiny_int8():
    return tiny_models()["int8"]


@pytest.fixture(scope="module")
def kws():
    p = shared_kws_model()
    if p is None:
        pytest.skip("../shared/models/mlperf_tiny_kws/kws_ref_model.tflite absent (set EDGESHIP_SHARED)")
    return p


def _assert_exact_arena(path):
    arena = mcu.find_arena_size(path)
    run = mcu.run_tflm(path, arena_size=arena.min_bytes)
    assert run.ok and run.max_abs_diff <= 1.0
    assert run.outputs[0].dtype == np.int8
    # one byte less must fail: the reported size is the exact minimum
    with pytest.raises(TargetError, match="could not allocate"):
        mcu.run_tflm(path, arena_size=arena.min_bytes - 1)
    assert arena.recommended_bytes > arena.min_bytes
    assert arena.recorded_bytes is not None and 0 < arena.recorded_bytes <= arena.min_bytes
    return arena


def test_tiny_int8_runs_under_tflm_with_reported_arena(tiny_int8):
    arena = _assert_exact_arena(tiny_int8)
    assert arena.min_bytes < 64 * 1024


@pytest.mark.shared
def test_dscnn_runs_under_tflm_with_reported_arena(kws):
    arena = _assert_exact_arena(kws)
    # the DS-CNN's largest activations are 25x5x64 int8 = 8000 B, two live at once
    assert 16000 <= arena.min_bytes < 40000


@pytest.mark.shared
def test_dscnn_matches_litert_on_real_inputs(kws):
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, size=(1, 49, 10, 1), dtype=np.int8)
    run = mcu.run_tflm(kws, [x], arena_size=30000)
    assert run.ok, run.max_abs_diff
    assert run.outputs[0].shape == (1, 12)


def test_c_array_matches_model_bytes(tiny_int8, tmp_path):
    data = tiny_int8.read_bytes()
    paths = mcu.export_firmware_files(tiny_int8, tmp_path, arena_bytes=4096)
    src = paths["model_data.cc"].read_text()
    assert mcu.parse_c_array(src) == data
    assert f"g_model_len = {len(data)};" in src
    assert "alignas(16)" in src
    assert "extern const unsigned char g_model[];" in paths["model_data.h"].read_text()
    res = paths["op_resolver.h"].read_text()
    calls = re.findall(r"r\.(Add\w+)\(\)", res)
    ops = mcu.check_tflm_ops(tiny_int8)
    assert sorted(calls) == sorted(o.resolver_call for o in ops)
    assert f"constexpr int kNumOps = {len(ops)};" in res
    assert "kTensorArenaSize = 4096;" in res


@pytest.mark.shared
def test_dscnn_c_array_and_resolver(kws, tmp_path):
    paths = mcu.export_firmware_files(kws, tmp_path)
    assert mcu.parse_c_array(paths["model_data.cc"].read_text()) == kws.read_bytes()
    res = paths["op_resolver.h"].read_text()
    for call in ("AddConv2D", "AddDepthwiseConv2D", "AddAveragePool2D", "AddReshape",
                 "AddFullyConnected", "AddSoftmax"):
        assert f"r.{call}()" in res
    assert "kNumOps = 6;" in res


def test_op_outside_tflm_is_reported(tmp_path):
    tf = pytest.importorskip("tensorflow")

    @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32)])
    def topk(x):
        return tf.math.top_k(x, k=2).values

    conv = tf.lite.TFLiteConverter.from_concrete_functions([topk.get_concrete_function()], topk)
    p = tmp_path / "topk.tflite"
    p.write_bytes(conv.convert())
    ops = {o.op: o for o in mcu.check_tflm_ops(p)}
    assert ops["TOPK_V2"].supported is False and ops["TOPK_V2"].resolver_call is None
    with pytest.raises(TargetError, match="TOPK_V2"):
        mcu.resolver_source(p)
    from edgeship.targets import check

    report = check(p, "mcu")
    assert not report.compatible
    assert any(pr.kind == "unsupported_op" and "TOPK_V2" in pr.message for pr in report.problems)


def test_check_target_mcu_measures_arena(tiny_int8):
    from edgeship.targets import check

    report = check(tiny_int8, "mcu")
    assert report.compatible, report.problems
    arena = report.details["tflm"]["arena"]["min_bytes"]
    assert report.memory["tflm_arena_bytes"] == arena > 0
    assert report.details["tflm"]["parity_ok"] is True


def test_latency_estimate_is_calibrated_and_linear():
    est = mcu.estimate_latency(mcu.DSCNN_MACS)
    assert [round(e.ms, 3) for e in est] == [182.0, 16.8]
    half = mcu.estimate_latency(mcu.DSCNN_MACS // 2)
    assert half[0].ms == pytest.approx(91.0, rel=1e-5)
    assert all(e.low_ms < e.ms < e.high_ms for e in est)
    with pytest.raises(InputSpecError):
        mcu.estimate_latency(-1)


@pytest.mark.shared
def test_calibration_macs_are_inspects_count(kws):
    assert mcu.count_macs(kws) == mcu.DSCNN_MACS


def test_bad_inputs_and_files(tiny_int8, tmp_path):
    with pytest.raises(InputSpecError, match="expected raw int8"):
        mcu.run_tflm(tiny_int8, [np.zeros((1, 12, 8, 1), np.float32)], arena_size=1 << 16)
    with pytest.raises(InputSpecError, match="input"):
        mcu.run_tflm(tiny_int8, [], arena_size=1 << 16)
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(tiny_int8.read_bytes()[:100])
    with pytest.raises(ModelFormatError):
        mcu.find_arena_size(bad)
    with pytest.raises(ModelFormatError):
        mcu.export_firmware_files(bad, tmp_path / "fw")
    assert not (tmp_path / "fw" / "model_data.cc").exists()
    with pytest.raises(InputSpecError, match="C identifier"):
        mcu.c_array_source(b"x", "9bad name")


def test_float_model_runs_under_tflm_with_tight_parity():
    p = tiny_models()["float"]
    arena = mcu.find_arena_size(p)
    run = mcu.run_tflm(p, arena_size=arena.min_bytes)
    assert run.outputs[0].dtype == np.float32
    assert run.ok and run.max_abs_diff < 1e-4
    # a tolerance the outputs cannot meet is reported as a failed parity, not hidden
    assert mcu.run_tflm(p, arena_size=arena.min_bytes, tolerance=-1.0).ok is False


def test_mcu_estimate_of_a_float_model_is_a_lower_bound():
    """The Cortex-M latency calibration is int8 (CMSIS-NN): a float model's figure is only a floor."""
    from pathlib import Path

    from edgeship import targets
    from edgeship.converters.report_render import estimate_text

    weights = Path(__file__).resolve().parents[1] / "models" / "weights"
    fp32 = targets.check(weights / "shapes_cnn_fp32.tflite", "mcu")
    int8 = targets.check(weights / "shapes_cnn_int8.tflite", "mcu")
    assert fp32.estimate["lower_bound"] is True
    assert any("lower bound" in n for n in fp32.notes)
    assert "lower_bound" not in int8.estimate
    ms = fp32.estimate["latency_ms"][0]["ms"]
    assert estimate_text({"estimate_ms": ms, "estimate_lower_bound": True}).startswith("≥")
