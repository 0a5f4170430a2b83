"""Android: TFLite metadata written/read without tflite-support, fp16 variant, GPU delegate check."""
from __future__ import annotations

import numpy as np
import pytest

from edgeship.errors import InputSpecError, ModelFormatError
from edgeship.targets import android
from edgeship.targets import tflite_metadata as tm
from edgeship.tflite_schema import read_tflite
from tests._mcu_helpers import tiny_models


@pytest.fixture(scope="module")
def models():
    return tiny_models()


def _litert(data: bytes, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=data)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


def _info(**kw):
    return tm.ModelInfo("kws", "keyword spotter", version="2", author="a", license="Apache-2.0",
                        inputs=[tm.TensorInfo("features", "mfcc", mean=[0.5], std=[2.0], stats_min=[-1.0],
                                              stats_max=[1.0], **kw)],
                        outputs=[tm.TensorInfo("scores", "probabilities", labels_file="labels.txt")])


def test_metadata_flatbuffer_round_trip():
    info = tm.ModelInfo("img", "an image model", inputs=[tm.TensorInfo(
        "image", content="image", color_space="RGB", mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5])],
        outputs=[tm.TensorInfo("logits")])
    raw = tm.build_metadata(info)
    assert raw[4:8] == b"M001"
    meta = tm.parse_metadata(raw)
    assert meta["name"] == "img" and meta["min_parser_version"] == "1.0.0"
    inp = meta["inputs"][0]
    assert inp["content"] == "image" and inp["color_space"] == "RGB"
    assert inp["normalization"] == {"mean": [127.5] * 3, "std": [127.5] * 3}
    assert meta["outputs"][0]["name"] == "logits" and meta["outputs"][0]["normalization"] is None


def test_populate_embeds_metadata_and_labels(models):
    data = models["float"].read_bytes()
    labels = tm.labels_bytes(["down", "go", "left", "no"])
    out = tm.populate(data, _info(), {"labels.txt": labels})
    parsed = read_tflite(out)
    assert tm.METADATA_NAME in parsed.metadata
    meta = tm.read_model_metadata(out)
    assert (meta["name"], meta["version"], meta["author"]) == ("kws", "2", "a")
    assert meta["inputs"][0]["stats"] == {"max": [1.0], "min": [-1.0]}
    assert meta["outputs"][0]["associated_files"] == [{"name": "labels.txt", "type": "TENSOR_AXIS_LABELS",
                                                       "description": "Labels for the classes of this output.",
                                                       "locale": None}]
    assert meta["files"] == {"labels.txt": labels}
    # the model computes exactly what it did before
    x = np.random.default_rng(0).standard_normal((1, 12, 8, 1)).astype(np.float32)
    np.testing.assert_array_equal(_litert(data, x), _litert(out, x))
    # re-populating replaces (not stacks) metadata and files, and is deterministic
    again = tm.populate(out, _info(), {"labels.txt": b"x\n"})
    assert tm.read_model_metadata(again)["files"] == {"labels.txt": b"x\n"}
    assert tm.populate(out, _info(), {"labels.txt": b"x\n"}) == again
    assert list(read_tflite(again).metadata).count(tm.METADATA_NAME) == 1


def test_metadata_input_errors(models):
    data = models["float"].read_bytes()
    with pytest.raises(InputSpecError, match="both mean and std"):
        tm.build_metadata(tm.ModelInfo("m", inputs=[tm.TensorInfo("x", mean=[0.0])]))
    with pytest.raises(InputSpecError, match="std non-zero"):
        tm.build_metadata(tm.ModelInfo("m", inputs=[tm.TensorInfo("x", mean=[0.0], std=[0.0])]))
    with pytest.raises(InputSpecError, match="must match the files"):
        tm.populate(data, _info(), {})
    with pytest.raises(InputSpecError, match=r"describes 0 input\(s\).*the model has 1/1"):
        tm.populate(data, tm.ModelInfo("m", inputs=[], outputs=[tm.TensorInfo("y")]))
    with pytest.raises(ModelFormatError, match="M001"):
        tm.parse_metadata(b"\x00" * 16)
    assert tm.read_model_metadata(data) is None
    with pytest.raises(InputSpecError, match="line breaks"):
        tm.labels_bytes(["a\nb"])


def test_fp16_variant_stores_half_weights_and_matches(models):
    half = android.make_fp16(models["float"])
    m = read_tflite(half)
    sg = m.main
    assert any(t.dtype == "float16" and t.has_data for t in sg.tensors)
    assert not any(t.dtype == "float32" and t.has_data for t in sg.tensors)
    assert sum(o.op == "DEQUANTIZE" for o in sg.operators) >= 4
    assert [sg.tensors[i].dtype for i in sg.inputs] == ["float32"]
    rep = android.fp16_parity(models["float"], half)
    assert rep["ok"] and 0 < rep["max_abs_diff"] < 1e-3
    with pytest.raises(InputSpecError, match="no float32 weights"):
        android.make_fp16(models["int8"])


def _topk_model(tmp_path):
    tf = pytest.importorskip("tensorflow")

    @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32)])
    def f(x):
        return tf.math.top_k(tf.nn.relu(x), k=2).values

    p = tmp_path / "topk.tflite"
    p.write_bytes(tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f).convert())
    return p


def test_gpu_compatibility(models, tmp_path):
    ok = android.gpu_compatibility(models["float"])
    assert ok.compatible and ok.cpu_fallback_ops == 0 and ok.gpu_ops == len(ok.ops) > 0
    assert ok.analyzer.get("available") is True
    bad = android.gpu_compatibility(_topk_model(tmp_path))
    assert not bad.compatible
    assert [o.op for o in bad.ops if not o.gpu] == ["TOPK_V2"]
    assert "no kernel for TOPK_V2" in [o.reason for o in bad.ops if not o.gpu][0]
    if bad.analyzer.get("says_compatible"):  # LiteRT's analyzer misses it: we say so
        assert any("analyzer" in n for n in bad.notes)
    assert android.gpu_op_problem("ADD_N", n_inputs=3).startswith("ADD_N runs on the GPU with exactly 2")
    assert android.gpu_op_problem("STRIDED_SLICE", n_inputs=4, input_rank=2) is not None


def test_check_android_lists_cpu_fallback(models, tmp_path):
    from edgeship.targets import check

    r = check(_topk_model(tmp_path), "android")
    assert r.compatible  # CPU fallback is not blocking
    assert r.cpu_fallback == ["TOPK_V2"]
    assert r.placement_counts().get("cpu") == 1
    r = check(models["int8"], "android")
    assert r.compatible and r.cpu_fallback == []
    assert any("NNAPI" in n for n in r.notes)
