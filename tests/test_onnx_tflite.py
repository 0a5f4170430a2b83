"""ONNX -> float TFLite through onnx2tf: parity, ONNX layout and names kept, never online."""
from __future__ import annotations

import socket
import sys

import numpy as np
import pytest

pytest.importorskip("onnx", reason="onnx (extra [convert]) is not installed")

import edgeship  # noqa: E402
from edgeship.converters.onnx_tflite import align_io, export_tflite_from_onnx  # noqa: E402
from edgeship.converters.parity import check_parity  # noqa: E402
from edgeship.converters.sources import load_source  # noqa: E402
from edgeship.errors import ConversionError, MissingDependencyError  # noqa: E402

from tests._onnx_helpers import image_batch, onnx_cnn, samples, write  # noqa: E402


def _needs_onnx2tf():
    pytest.importorskip("onnx2tf", reason="onnx2tf is not importable in this process (see converters/"
                                          "onnx_tflite.py); tests/test_overlay_exporters.py runs it from "
                                          ".overlay-onnx2tf/")


@pytest.fixture
def no_network(monkeypatch):
    """Any socket connection during the test fails: onnx2tf must not download its sample images."""
    def refuse(*args, **kwargs):
        raise OSError("network access during a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.mark.slow
def test_onnx_cnn_to_tflite_offline_with_onnx_layout_and_names(no_network, tmp_path):
    _needs_onnx2tf()
    src = load_source(onnx_cnn())  # 1x3x16x16: the 3-channel case where onnx2tf would download
    path = write(tmp_path, "cnn.tflite", export_tflite_from_onnx(src, {}))
    model = edgeship.load(path)
    assert [(s.name, tuple(s.shape)) for s in model.inputs] == [("image", (1, 3, 16, 16))]
    assert [s.name for s in model.outputs] == ["logits"]
    rep = check_parity(src, path, samples("image", image_batch(6, seed=2, shape=(3, 16, 16))), fmt_key="tflite/fp32")
    print(f"\nonnx -> tflite: {rep.summary()}")
    assert rep.passed, rep.failures


@pytest.mark.slow
def test_yunet_to_tflite_keeps_twelve_outputs_in_order(shared_dir, no_network, tmp_path):
    _needs_onnx2tf()
    p = shared_dir / "models" / "yunet" / "yunet_n_320_320.onnx"
    if not p.is_file():
        pytest.skip(f"{p} is absent")
    src = load_source(p)
    path = write(tmp_path, "yunet.tflite", export_tflite_from_onnx(src, {}))
    assert [s.name for s in edgeship.load(path).outputs] == [s.name for s in src.outputs]
    val = samples("input", image_batch(2, seed=3, shape=(3, 320, 320)) * 127.0 + 127.0)
    rep = check_parity(src, path, val, fmt_key="tflite/fp32")
    print(f"\nyunet onnx -> tflite: {rep.summary()}")
    assert rep.passed, rep.failures


def test_missing_onnx2tf_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx2tf", None)
    with pytest.raises(MissingDependencyError, match="onnx2tf.*--no-deps"):
        export_tflite_from_onnx(load_source(onnx_cnn()), {})


def test_align_io_reorders_and_renames_from_the_signature():
    """align_io on a two-output TFLite file written by TensorFlow (no onnx2tf needed)."""
    tf = pytest.importorskip("tensorflow", reason="tensorflow (extra [convert]) is not installed")
    from ai_edge_litert.interpreter import Interpreter

    class TwoHeads(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32, name="x")])
        def __call__(self, x):
            return {"first": x * 2.0, "second": tf.reduce_sum(x, axis=1, keepdims=True)}

    m = TwoHeads()
    data = tf.lite.TFLiteConverter.from_concrete_functions([m.__call__.get_concrete_function()], m).convert()
    fixed = align_io(data, ["x"], ["second", "first"])
    it = Interpreter(model_content=fixed)
    it.allocate_tensors()
    outs = it.get_output_details()
    assert [d["name"] for d in outs] == ["second", "first"]
    assert [tuple(d["shape"]) for d in outs] == [(1, 1), (1, 4)]
    it.set_tensor(it.get_input_details()[0]["index"], np.array([[1, 2, 3, 4]], np.float32))
    it.invoke()
    assert float(it.get_tensor(outs[0]["index"])[0, 0]) == 10.0
    with pytest.raises(ConversionError, match="lacks the ONNX outputs"):
        align_io(data, ["x"], ["third"])


def test_onnx2tf_leaves_the_process_environment_alone(monkeypatch, no_network):
    """Importing onnx2tf sets TF_USE_LEGACY_KERAS=1, which would switch later tf.keras to tf_keras."""
    import os

    _needs_onnx2tf()
    monkeypatch.delenv("TF_USE_LEGACY_KERAS", raising=False)
    monkeypatch.delitem(sys.modules, "onnx2tf", raising=False)  # re-run its module-level code if cached
    monkeypatch.delitem(sys.modules, "onnx2tf.onnx2tf", raising=False)
    export_tflite_from_onnx(load_source(onnx_cnn()), {})
    assert "TF_USE_LEGACY_KERAS" not in os.environ
