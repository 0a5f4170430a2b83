"""edgeship.load / Model.predict across backends, quantized I/O, batching."""
from __future__ import annotations

import numpy as np
import pytest

import edgeship
from edgeship.models.shapes import make_dataset
from tests._onnx_models import dense_relu, two_inputs


@pytest.fixture(scope="module")
def data():
    return make_dataset(60, seed=123)


def _raw_interpreter(path):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    return it


def test_fp32_tflite_matches_raw_interpreter(weights, data):
    x, _ = data
    m = edgeship.load(weights / "shapes_cnn_fp32.tflite", threads=1)
    assert m.format == "tflite" and m.backend == "litert"
    assert m.inputs[0].dtype == "float32" and m.inputs[0].quantization is None
    it = _raw_interpreter(weights / "shapes_cnn_fp32.tflite")
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    it.set_tensor(inp["index"], x[:1])
    it.invoke()
    np.testing.assert_array_equal(m.predict(x[:1]), it.get_tensor(out["index"]))


def test_int8_io_round_trip_is_explicit_affine(weights, data):
    x, y = data
    m = edgeship.load(weights / "shapes_cnn_int8.tflite")
    qi, qo = m.inputs[0].quantization, m.outputs[0].quantization
    assert m.inputs[0].dtype == "int8" and qi is not None and qo is not None
    # the same computation by hand: quantize, invoke, dequantize
    it = _raw_interpreter(weights / "shapes_cnn_int8.tflite")
    q = np.clip(np.rint(x[:1] / qi.scale[0] + qi.zero_point[0]), -128, 127).astype(np.int8)
    it.set_tensor(it.get_input_details()[0]["index"], q)
    it.invoke()
    raw = it.get_tensor(it.get_output_details()[0]["index"])
    expected = (raw.astype(np.float32) - qo.zero_point[0]) * np.float32(qo.scale[0])
    got = m.predict(x[:1])
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-7)
    # and the quantized model still classifies like the float one
    f = edgeship.load(weights / "shapes_cnn_fp32.tflite").predict(x)
    agree = (m.predict(x).argmax(1) == f.argmax(1)).mean()
    assert agree >= 0.95, agree
    assert (f.argmax(1) == y).mean() >= 0.9


def test_run_raw_takes_model_dtypes(weights):
    m = edgeship.load(weights / "shapes_cnn_int8.tflite")
    out = m.run_raw([np.zeros((1, 32, 32, 1), np.int8)])
    assert out[0].dtype == np.int8
    with pytest.raises(edgeship.InputSpecError, match="int8"):
        m.run_raw([np.zeros((1, 32, 32, 1), np.float32)])


def test_batch_resizes_dynamic_tflite(weights, data):
    x, _ = data
    m = edgeship.load(weights / "shapes_cnn_int8.tflite")
    assert m.inputs[0].shape[0] == -1
    batched = m.predict(x[:7])
    single = np.concatenate([m.predict(x[i:i + 1]) for i in range(7)])
    assert batched.shape == (7, 3)
    np.testing.assert_allclose(batched, single, atol=1e-6)


def test_onnx_backend_fixed_batch_loops_and_dynamic_passes(tmp_path):
    p_fixed, w, b = dense_relu(tmp_path / "fixed.onnx", batch=1)
    p_dyn, _, _ = dense_relu(tmp_path / "dyn.onnx", batch="N")
    x = np.random.default_rng(1).normal(size=(5, 8)).astype(np.float32)
    expect = np.maximum(x @ w + b, 0)
    for p in (p_fixed, p_dyn):
        m = edgeship.load(p, threads=1)
        assert m.backend == "onnxruntime" and m.format == "onnx"
        np.testing.assert_allclose(m.predict(x), expect, rtol=1e-5, atol=1e-5)
    assert edgeship.load(p_fixed).inputs[0].shape == (1, 8)
    assert edgeship.load(p_dyn).inputs[0].shape == (-1, 8)


def test_multi_input_list_and_dict(tmp_path):
    m = edgeship.load(two_inputs(tmp_path / "add.onnx"))
    a, b = np.ones((2, 3), np.float32), np.full((2, 3), 2, np.float32)
    np.testing.assert_array_equal(m.predict([a, b]), a + b)
    np.testing.assert_array_equal(m.predict({"b": b, "a": a}), a + b)
    assert set(m.predict([a, b], as_dict=True)) == {"out"}


def test_multi_input_multi_output_tflite_fixed_batch(shared_dir):
    m = edgeship.load(shared_dir / "models/edgetpu/split_concat.tflite")
    assert len(m.inputs) == 3 and len(m.outputs) > 1
    feeds = {s.name: np.random.default_rng(0).uniform(-1, 0.99, size=(2,) + tuple(s.shape[1:])) for s in m.inputs}
    out = m.predict(feeds)  # batch 2 on a fixed-batch-1 model: run per sample and stack
    assert isinstance(out, dict) and all(v.shape[0] == 2 for v in out.values())


def test_explicit_backends_and_errors(weights, tmp_path):
    assert edgeship.load(weights / "shapes_cnn_fp32.tflite", backend="litert").backend == "litert"
    p, _, _ = dense_relu(tmp_path / "d.onnx")
    assert edgeship.load(p, backend="onnxruntime").backend == "onnxruntime"
    with pytest.raises(edgeship.TargetError, match="cannot run onnx"):
        edgeship.load(p, backend="litert")
    with pytest.raises(edgeship.TargetError, match="unknown backend"):
        edgeship.load(p, backend="tensorrt")


def test_tflite_runtime_backend_missing_names_package(weights):
    from edgeship.backends import available_backends

    if "tflite-runtime" in available_backends("tflite"):
        m = edgeship.load(weights / "shapes_cnn_int8.tflite", backend="tflite-runtime")
        ref = edgeship.load(weights / "shapes_cnn_int8.tflite", backend="litert")
        x = np.random.default_rng(0).uniform(0, 1, (1, 32, 32, 1)).astype(np.float32)
        np.testing.assert_allclose(m.predict(x), ref.predict(x), atol=1e-6)
    else:
        with pytest.raises(edgeship.MissingDependencyError, match="pip install tflite-runtime"):
            edgeship.load(weights / "shapes_cnn_int8.tflite", backend="tflite-runtime")


def test_auto_backend_measures_and_caches(weights):
    from edgeship.runtime import _fastest

    content = (weights / "shapes_cnn_int8.tflite").read_bytes()
    assert _fastest("tflite", ["litert"], content, 1, "sha-test") == "litert"
    from edgeship._io import cache_dir
    import json

    rec = json.loads((cache_dir() / "backend" / "sha-test-1.json").read_text())
    assert rec["backend"] == "litert" and rec["seconds_per_run"]["litert"] > 0


def test_edgetpu_compiled_model_without_runtime_is_target_error(shared_dir):
    with pytest.raises(edgeship.TargetError, match="Edge TPU"):
        edgeship.load(shared_dir / "models/edgetpu/mobilenet_v1_0.25_128_quant_edgetpu.tflite")
