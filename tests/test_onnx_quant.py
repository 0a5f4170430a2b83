"""ONNX -> ONNX dynamic and static int8 (QDQ): calibration methods, per-channel, selective
float ops, opset lifting, bad inputs, and two real detectors from ../shared with parity figures."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="onnx (extra [convert]) is not installed")
from onnx import numpy_helper  # noqa: E402

import edgeship  # noqa: E402
from edgeship.converters.onnx_fp32 import export_onnx_fp32  # noqa: E402
from edgeship.converters.onnx_quant import (ENTROPY_BINS, calibration_feeds, export_onnx_dynamic,  # noqa: E402
                                            export_onnx_int8)
from edgeship.converters.parity import check_parity  # noqa: E402
from edgeship.converters.sources import Source, load_source  # noqa: E402
from edgeship.errors import ConversionError, EdgeshipError, ModelFormatError  # noqa: E402

from tests._onnx_helpers import face_images, image_batch, onnx_cnn, samples, write  # noqa: E402


@pytest.fixture(scope="module")
def src():
    return load_source(onnx_cnn())


@pytest.fixture(scope="module")
def calib():
    return samples("image", image_batch(12, seed=1, shape=(3, 16, 16)))


@pytest.fixture(scope="module")
def valid():
    return samples("image", image_batch(6, seed=2, shape=(3, 16, 16)))


def _graph(data: bytes):
    return onnx.load_from_string(data).graph


def _inits(g):
    return {i.name: numpy_helper.to_array(i) for i in g.initializer}


def _activation_scales(data: bytes) -> dict:
    """Scale of every QuantizeLinear on an activation (weights are stored pre-quantized in QDQ)."""
    g = _graph(data)
    inits = _inits(g)
    return {n.input[0]: float(inits[n.input[1]]) for n in g.node if n.op_type == "QuantizeLinear"}


def _weight_scale_sizes(data: bytes) -> dict:
    g = _graph(data)
    inits = _inits(g)
    dq = {n.output[0]: n for n in g.node if n.op_type == "DequantizeLinear"}
    return {n.name: inits[dq[n.input[1]].input[1]].size for n in g.node
            if n.op_type in ("Conv", "Gemm") and n.input[1] in dq}


# -- the three calibration methods ------------------------------------------------------------

@pytest.fixture(scope="module")
def by_method(src, calib):
    return {m: export_onnx_int8(src, {"calibration": calib, "calibration_method": m})
            for m in ("minmax", "percentile", "entropy")}


@pytest.mark.parametrize("method", ["minmax", "percentile", "entropy"])
def test_each_calibration_method_gives_a_model_within_tolerance(by_method, method, src, valid, tmp_path):
    data = by_method[method]
    ops = {n.op_type for n in _graph(data).node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert "BatchNormalization" not in ops  # folded into conv1 by quant_pre_process
    rep = check_parity(src, write(tmp_path, f"{method}.onnx", data), valid, fmt_key="onnx/int8")
    print(f"\n{method}: {rep.summary()}")
    assert rep.passed, rep.failures


def test_calibration_methods_differ_and_entropy_clips(by_method):
    assert len({by_method[m] for m in by_method}) == 3
    mm, ent = _activation_scales(by_method["minmax"]), _activation_scales(by_method["entropy"])
    assert mm.keys() == ent.keys()
    # KL-optimal thresholds never exceed the observed range and clip at least one tensor
    # (ORT's own 128-bin default would give exactly the minmax ranges).
    assert all(ent[k] <= mm[k] * (1 + 1e-6) for k in mm)
    assert any(ent[k] < mm[k] * 0.99 for k in mm), f"entropy with {ENTROPY_BINS} bins clipped nothing"


def test_static_int8_is_deterministic(src, calib, by_method):
    assert export_onnx_int8(src, {"calibration": calib, "calibration_method": "minmax"}) == by_method["minmax"]


def test_per_channel_flag_changes_the_file(src, calib, by_method):
    per_channel = by_method["minmax"]  # per_channel defaults to True for static int8
    per_tensor = export_onnx_int8(src, {"calibration": calib, "per_channel": False})
    assert per_channel != per_tensor
    assert set(_weight_scale_sizes(per_tensor).values()) == {1}
    sizes = _weight_scale_sizes(per_channel)
    assert sizes["conv1"] == 8 and sizes["conv2"] == 8


def test_keep_float_ops_by_op_type_and_node_name(src, calib):
    data = export_onnx_int8(src, {"calibration": calib, "keep_float_ops": ["Gemm", "conv2"]})
    sizes = _weight_scale_sizes(data)
    assert "conv1" in sizes and "conv2" not in sizes and "fc" not in sizes
    with pytest.raises(ConversionError, match="match no node name, op type or tensor"):
        export_onnx_int8(src, {"calibration": calib, "keep_float_ops": ["LSTM"]})


def test_dynamic_quantization(src, valid, tmp_path):
    data = export_onnx_dynamic(src, {})
    ops = {n.op_type for n in _graph(data).node}
    assert "DynamicQuantizeLinear" in ops
    rep = check_parity(src, write(tmp_path, "dyn.onnx", data), valid, fmt_key="onnx/dynamic")
    print(f"\ndynamic: {rep.summary()}")
    assert rep.passed, rep.failures


def test_opset_11_graph_is_lifted_to_13_for_qdq_unless_pinned(calib, valid, tmp_path):
    old = load_source(onnx_cnn(opset=11))
    data = export_onnx_int8(old, {"calibration": calib, "per_channel": True})
    assert {o.domain: o.version for o in onnx.load_from_string(data).opset_import}[""] == 13
    assert check_parity(old, write(tmp_path, "lifted.onnx", data), valid, fmt_key="onnx/int8").passed
    with pytest.raises(ConversionError, match="opset 11 was asked for.*>= 13"):
        export_onnx_int8(old, {"calibration": calib, "opset": 11})


def test_fp32_passthrough_keeps_names_and_can_change_opset(src, valid, tmp_path):
    data = export_onnx_fp32(src, {"opset": 17})
    model = onnx.load_from_string(data)
    assert {o.domain: o.version for o in model.opset_import}[""] == 17
    assert [i.name for i in model.graph.input] == ["image"]
    rep = check_parity(src, write(tmp_path, "fp32.onnx", data), valid, fmt_key="onnx/fp32")
    assert rep.passed and rep.max_abs < 1e-5


# -- bad inputs --------------------------------------------------------------------------------

def test_corrupt_onnx_files_are_model_format_errors(tmp_path):
    garbage = write(tmp_path, "garbage.onnx", b"\x08\x07\x12\xff\xff not protobuf" * 10)
    with pytest.raises(ModelFormatError):
        load_source(garbage)
    good = onnx_cnn().SerializeToString()
    truncated = write(tmp_path, "truncated.onnx", good[: len(good) // 2])
    with pytest.raises(EdgeshipError):
        load_source(truncated)
    with pytest.raises(ModelFormatError):
        edgeship.load(truncated)


def test_invalid_graph_in_memory_is_a_conversion_error(src):
    broken = onnx.ModelProto()
    broken.CopyFrom(src.obj)
    broken.graph.node[3].input[0] = "no_such_tensor"
    bad = Source("onnx", broken, None, "0" * 64, src.inputs, src.outputs)
    with pytest.raises(ConversionError, match="no_such_tensor|invalid|does not load"):
        export_onnx_fp32(bad, {})


def test_wrong_calibration_shape_names_expected_and_given(src):
    with pytest.raises(ConversionError, match=r"expected shape \(1, 3, 16, 16\), got \(1, 3, 32, 32\)"):
        export_onnx_int8(src, {"calibration": [{"image": np.zeros((1, 3, 32, 32), np.float32)}]})
    with pytest.raises(ConversionError, match=r"expected shape .*got \(3, 16, 16\)"):
        export_onnx_int8(src, {"calibration": [np.zeros((3, 16, 16), np.float32)]})
    with pytest.raises(ConversionError, match=r"has inputs \['pixels'\]; expected \['image'\]"):
        export_onnx_int8(src, {"calibration": [{"pixels": np.zeros((1, 3, 16, 16), np.float32)}]})


def test_bad_calibration_data_and_options_are_refused(src, calib):
    nan = np.full((1, 3, 16, 16), np.nan, np.float32)
    cases = [
        ({}, "needs calibration data"),
        ({"calibration": []}, "empty"),
        ({"calibration": [{"image": nan}]}, "NaN"),
        ({"calibration": calib, "calibration_method": "kl"}, "minmax, percentile, entropy"),
        ({"calibration": calib, "io_dtype": "int8"}, "float32 inputs and outputs"),
        ({"calibration": calib, "per_channel": "yes"}, "true or false"),
    ]
    for options, message in cases:
        with pytest.raises(ConversionError, match=message):
            export_onnx_int8(src, options)


def test_already_quantized_source_is_refused(src, calib):
    q = load_source(export_onnx_int8(src, {"calibration": calib}))
    with pytest.raises(ConversionError, match="already quantized"):
        export_onnx_dynamic(q, {})


def test_calibration_feeds_accept_a_calibration_set_like_object(src, calib):
    class Holder:  # anything with .samples, like converters.calibration.CalibrationSet
        samples = calib

    feeds = calibration_feeds(Holder(), src.obj)
    assert len(feeds) == len(calib) and feeds[0]["image"].dtype == np.float32


# -- real detectors from ../shared -------------------------------------------------------------

DETECTORS = {
    # file, input size (w, h), preprocessing of 0..255 pixels, tolerances used (see the measured figures)
    "ultraface": ("ultraface/version-RFB-320_without_postprocessing.onnx", (320, 240), lambda x: (x - 127.0) / 128.0),
    "yunet": ("yunet/yunet_n_320_320.onnx", (320, 320), lambda x: x),
}
# Measured on 6 held-out LFW faces, 8 calibration faces (2026-11-22, ORT 1.31.1, u8/u8, int8 per-channel):
#   UltraFace dynamic: cos 0.990 (min 0.989), rel max-abs 0.28 | int8 minmax: cos 0.992 (min 0.988), rel 0.21;
#     the class scores alone stay at cos >= 0.9998; the error sits in the raw box regressions of
#     all 4420 anchors, most of them background.
#   YuNet-n dynamic: cos 0.998, rel 0.14 | int8 minmax: cos 0.997 (min 0.997), rel 0.11.
# The generic onnx/dynamic and onnx/int8 defaults bound rel max-abs at 0.15-0.25, which raw detector
# regressions exceed, so detectors are judged on cosine with a looser rel max-abs.
DETECTOR_TOLERANCE = {"dynamic": {"cosine_min": 0.985, "rel_max_abs": 0.35},
                      "int8": {"cosine_min": 0.985, "rel_max_abs": 0.3}}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_detector_dynamic_and_static_int8_parity(name, shared_dir, tmp_path):
    pytest.importorskip("cv2", reason="opencv (extra [face]) is needed to read the LFW faces")
    rel, size, prep = DETECTORS[name]
    path = shared_dir / "models" / rel
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    src = load_source(path)
    name_in = src.inputs[0].name
    cal = samples(name_in, prep(face_images(shared_dir, 8, size, offset=0)).astype(np.float32))
    val = samples(name_in, prep(face_images(shared_dir, 6, size, offset=50)).astype(np.float32))
    for quant, fn, opts in (("dynamic", export_onnx_dynamic, {}),
                            ("int8", export_onnx_int8, {"calibration": cal})):
        out = write(tmp_path, f"{name}_{quant}.onnx", fn(src, opts))
        rep = check_parity(src, out, val, fmt_key=f"onnx/{quant}", tolerance=DETECTOR_TOLERANCE[quant])
        print(f"\n{name} onnx/{quant}: {rep.summary()} cos_min={rep.cosine_min:.4f} "
              f"rel_max_abs={rep.rel_max_abs:.3f} size={out.stat().st_size} (fp32 {path.stat().st_size})")
        assert rep.passed, rep.failures
        assert out.stat().st_size < 0.75 * path.stat().st_size  # int8 weights actually shrink the file
    if name == "ultraface":  # the class scores, which decide detections, stay almost exact
        model = edgeship.load(out)
        for s in val[:3]:
            ref = src.run(s)[0]
            got = model.predict(s)["scores"]
            cos = float(ref.ravel() @ got.ravel() / np.linalg.norm(ref) / np.linalg.norm(got))
            assert cos > 0.999, cos
