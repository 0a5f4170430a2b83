"""inspect: operators, MACs checked by hand, quantization, memory, runtime versions, Edge TPU twins."""
from __future__ import annotations

import pytest

from edgeship.inspect import inspect_model
from tests._onnx_models import dense_relu


def test_shapes_cnn_macs_by_hand(weights):
    info = inspect_model(weights / "shapes_cnn_int8.tflite")
    convs = [o for o in info["ops"] if o["op"] == "CONV_2D"]
    # 32x32x16 outputs x 3x3x1, 16x16x32 x 3x3x16, 8x8x48 x 3x3x32
    assert [c["macs"] for c in convs] == [32 * 32 * 16 * 9, 16 * 16 * 32 * 9 * 16, 8 * 8 * 48 * 9 * 32]
    fc = [o for o in info["ops"] if o["op"] == "FULLY_CONNECTED"][0]
    assert fc["macs"] == 48 * 3
    assert info["params"] == (9 * 16 + 16) + (9 * 16 * 32 + 32) + (9 * 32 * 48 + 48) + (48 * 3 + 3) + 2  # + MEAN's axes
    assert info["quantization"] == "int8"
    assert info["inputs"][0]["quantization"]["zero_point"] == [-128]
    assert info["min_runtime_version"] and info["memory"]["peak_activation_bytes"] > 0
    assert {o["op"] for o in info["operators"]} >= {"CONV_2D", "MAX_POOL_2D", "FULLY_CONNECTED"}


def test_float_model_classification(weights):
    info = inspect_model(weights / "shapes_cnn_fp32.tflite")
    assert info["quantization"] == "fp32" and info["weight_dtypes"].get("float32")


def test_onnx_inspection(tmp_path):
    p, _, _ = dense_relu(tmp_path / "d.onnx", batch=1, n_in=8, n_out=4)
    info = inspect_model(p)
    assert info["format"] == "onnx" and info["op_count"] == 3
    assert info["params"] == 8 * 4 + 4
    assert [o["macs"] for o in info["ops"]] == [32, 4, 4]
    assert info["min_runtime_version"] == "1.6.0"  # opset 13


def test_shared_models(shared_dir):
    kws = inspect_model(shared_dir / "models/mlperf_tiny_kws/kws_ref_model.tflite")
    assert kws["quantization"] == "int8" and kws["min_runtime_version_source"].startswith("recorded")
    assert 2_000_000 < kws["macs_total"] < 3_500_000
    twin = inspect_model(shared_dir / "models/edgetpu/mobilenet_v1_0.25_128_quant_edgetpu.tflite")
    assert twin["edgetpu_compiled"] and "edgetpu-custom-op" in twin["custom_ops"]
    cpu = inspect_model(shared_dir / "models/edgetpu/mobilenet_v1_0.25_128_quant.tflite")
    assert not cpu["edgetpu_compiled"] and cpu["quantization"] == "int8" and cpu["inputs"][0]["dtype"] == "uint8"
    yunet = inspect_model(shared_dir / "models/yunet/yunet_n_320_320.onnx")
    assert yunet["macs_total"] > 10_000_000 and yunet["opsets"]["ai.onnx"] == 11


def test_inspect_rejects_non_model(tmp_path):
    from edgeship.errors import ModelFormatError

    p = tmp_path / "x.tflite"
    p.write_bytes(b"nope" * 10)
    with pytest.raises(ModelFormatError):
        inspect_model(p)
