"""Preprocessing as data (edgeship.preprocessing) and bundles that know which file serves which target.

One :class:`ImagePreprocessing` spec gives the same arrays when calibration reads an image
folder and when an app prepares an image at run time; the spec travels in JSON (typed errors
for bad files), in the bundle manifest (read back by ``edgeship.load``) and on the CLI
(``--preprocessing FILE.json``; a bad file exits 2).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edgeship
from edgeship import models
from edgeship.errors import InputSpecError, TargetError
from edgeship.preprocessing import ImagePreprocessing, read_image
from edgeship.spec import TensorSpec

REPO = Path(__file__).resolve().parent.parent
cv2 = pytest.importorskip("cv2", reason="reading/resizing images needs OpenCV (extra [face])")


def _images(folder: Path, n: int = 4, seed: int = 0) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        img = rng.integers(0, 256, (30 + 7 * i, 41 - 3 * i, 3), dtype=np.uint8)  # odd sizes, every aspect
        paths.append(folder / f"im{i}.png")
        cv2.imwrite(str(paths[-1]), img[:, :, ::-1])
    return paths


SPEC = {"type": "image", "size": [16, 20], "resize": "letterbox", "color": "BGR", "mean": [127.0], "std": [128.0],
        "layout": "NCHW", "dtype": "float32"}


def test_json_round_trip_and_scale_offset(tmp_path):
    spec = ImagePreprocessing.from_dict(SPEC)
    assert spec.to_dict() == SPEC and spec.input_shape == (1, 3, 16, 20)
    assert ImagePreprocessing.load(spec.save(tmp_path / "s.json")) == spec
    same = ImagePreprocessing.from_dict({**{k: v for k, v in SPEC.items() if k not in ("mean", "std")},
                                         "scale": 1 / 128, "offset": -127 / 128})
    img = np.random.default_rng(1).integers(0, 256, (20, 25, 3), dtype=np.uint8)
    np.testing.assert_allclose(same.apply(img), spec.apply(img), atol=1e-6)


@pytest.mark.parametrize("bad, message", [
    ({"size": [16]}, "size must be \\[height, width\\]"),
    ({"size": [16, 0]}, "size must be two positive integers"),
    ({"size": [16, 16], "color": "RGBA"}, "color must be one of"),
    ({"size": [16, 16], "layout": "CHW"}, "layout must be one of"),
    ({"size": [16, 16], "resize": "fit"}, "resize must be one of"),
    ({"size": [16, 16], "dtype": "float64"}, "dtype must be one of"),
    ({"size": [16, 16], "std": [0]}, "std must not be 0"),
    ({"size": [16, 16], "mean": [1, 2]}, "mean needs 1 or 3 values"),
    ({"size": [16, 16], "mean": "a"}, "mean must be numbers"),
    ({"size": [16, 16], "scale": 0.5, "std": [2]}, "either mean/std or scale/offset"),
    ({"size": [16, 16], "colour": "RGB"}, "unknown key"),
    ({"type": "mfcc", "size": [16, 16]}, "not an image spec"),
    ({}, "'size' \\[height, width\\] is required"),
    ([1, 2], "expected a JSON object"),
])
def test_bad_specs_are_typed_errors(bad, message):
    with pytest.raises(InputSpecError, match=message):
        ImagePreprocessing.from_dict(bad)


def test_bad_files_name_the_file(tmp_path):
    (tmp_path / "broken.json").write_text("{size: 3")
    with pytest.raises(InputSpecError, match="broken.json is not valid JSON"):
        ImagePreprocessing.load(tmp_path / "broken.json")
    with pytest.raises(InputSpecError, match="cannot read preprocessing spec"):
        ImagePreprocessing.load(tmp_path / "absent.json")
    with pytest.raises(InputSpecError, match="HxWx3 uint8 RGB"):
        ImagePreprocessing.from_dict(SPEC).apply(np.zeros((4, 4), np.float32))


@pytest.mark.parametrize("mode", ["stretch", "letterbox", "crop"])
def test_calibration_and_runtime_give_the_same_arrays(tmp_path, mode):
    """A folder calibrated with spec.json holds exactly spec.apply(read_image(f)) for every file."""
    from edgeship.converters.calibration import resolve_calibration

    spec = ImagePreprocessing.from_dict({**SPEC, "resize": mode})
    paths = _images(tmp_path / "imgs")
    cal = resolve_calibration(tmp_path / "imgs", [TensorSpec("image", (1, 3, 16, 20), "float32")],
                              preprocessing=str(spec.save(tmp_path / "spec.json")))
    assert cal.count == len(paths)
    for sample, p in zip(cal.samples, sorted(paths)):
        runtime = spec.apply(read_image(p))
        assert runtime.shape == (1, 3, 16, 20) and np.array_equal(sample["image"], runtime)


def test_spec_must_fit_the_model_input(tmp_path):
    from edgeship.converters.calibration import resolve_calibration
    from edgeship.errors import ConversionError

    _images(tmp_path / "imgs", n=1)
    with pytest.raises(ConversionError, match="preprocessing spec makes inputs of shape \\[1, 3, 16, 20\\]"):
        resolve_calibration(tmp_path / "imgs", [TensorSpec("image", (1, 16, 20, 3), "float32")],
                            preprocessing=SPEC)


def test_face_detectors_prepare_with_their_spec():
    """YuNet / UltraFace / BlazeFace inputs come from their spec and equal the formulas they replace."""
    from edgeship.face_detect import BlazeFaceDetector, UltraFaceDetector, YuNetDetector

    img = np.random.default_rng(3).integers(0, 256, (320, 320, 3), dtype=np.uint8)
    yunet = YuNetDetector.preprocessing.apply(img)
    assert np.array_equal(yunet, img[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32))
    ultra_img = img[:240]
    ultra = UltraFaceDetector.preprocessing.apply(ultra_img)
    np.testing.assert_allclose(ultra, ((ultra_img.astype(np.float32) - 127) / 128).transpose(2, 0, 1)[None],
                               rtol=0, atol=1e-6)
    blaze = BlazeFaceDetector.preprocessing.apply(img[:128, :128])
    np.testing.assert_allclose(blaze, (img[:128, :128].astype(np.float32) / 127.5 - 1)[None], rtol=0, atol=1e-6)


def test_zoo_entries_and_detectors_agree():
    """The zoo's preprocessing dicts are valid specs, the same the face detectors apply."""
    from edgeship.face_detect import BlazeFaceDetector, UltraFaceDetector, YuNetDetector
    from edgeship.models.registry import REGISTRY
    from edgeship.models.shapes import PREPROCESSING

    for name, det in (("yunet_n_320", YuNetDetector), ("ultraface_rfb_320", UltraFaceDetector),
                      ("blazeface_short", BlazeFaceDetector)):
        assert ImagePreprocessing.from_dict(REGISTRY[name].preprocessing) == det.preprocessing, name
    assert ImagePreprocessing.from_dict(PREPROCESSING).input_shape == (1, 32, 32, 1)


def test_bundle_records_the_spec_and_load_reads_it_back(tmp_path):
    from edgeship.bundle import write_bundle

    gray = ImagePreprocessing((32, 32), color="GRAY", mean=(0.0,), std=(255.0,))
    b = write_bundle(tmp_path / "b", {"tflite-int8": models.path("shapes_cnn_int8")}, preprocessing=gray)["_dir"]
    assert json.loads((Path(b) / "manifest.json").read_text())["preprocessing"] == gray.to_dict()
    m = edgeship.load(b)
    assert m.preprocessing == gray
    img = np.full((50, 40, 3), 255, np.uint8)
    x = m.preprocessing.apply(img)
    assert x.shape == (1, 32, 32, 1) and np.allclose(x, 1.0, atol=1e-5)
    assert m.predict(x).shape == (1, 3)
    with pytest.raises(InputSpecError, match="bundle preprocessing: color must be one of"):
        write_bundle(tmp_path / "c", {"m": models.path("shapes_cnn_int8")}, preprocessing={**SPEC, "color": "YUV"})
    assert edgeship.load(models.path("shapes_cnn_int8")).preprocessing is None


def _cli(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "edgeship", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def test_cli_bad_spec_file_exits_2(tmp_path):
    _images(tmp_path / "imgs", n=2)
    (tmp_path / "bad.json").write_text(json.dumps({**SPEC, "layout": "CHW"}))
    for cmd in (["convert", models.path("shapes_cnn_fp32"), "--validation", tmp_path / "imgs", "--preprocessing",
                 tmp_path / "bad.json", "-o", tmp_path / "out.onnx", "--to", "onnx"],
                ["bundle", models.path("shapes_cnn_int8"), "-o", tmp_path / "bnd", "--preprocessing",
                 tmp_path / "bad.json"]):
        proc = _cli(*cmd)
        assert proc.returncode == 2, (cmd[0], proc.returncode, proc.stderr[-2000:])
        text = " ".join((proc.stderr + proc.stdout).split())  # the console may wrap lines
        assert "layout must be one of ['NHWC', 'NCHW'], got 'CHW'" in text, (cmd[0], text)
    assert not (tmp_path / "out.onnx").exists() and not (tmp_path / "bnd").exists()


def test_cli_convert_validates_through_the_spec(tmp_path):
    """--validation FOLDER --preprocessing spec.json: the folder is read through the spec."""
    pytest.importorskip("tf2onnx", reason="TFLite -> ONNX needs tf2onnx (extra [convert])")
    _images(tmp_path / "imgs", n=3)
    spec = ImagePreprocessing((32, 32), color="GRAY", std=(255.0,)).save(tmp_path / "gray.json")
    proc = _cli("convert", models.path("shapes_cnn_fp32"), "--to", "onnx", "--validation", tmp_path / "imgs",
                "--preprocessing", spec, "-o", tmp_path / "m.onnx", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rep = json.loads(proc.stdout)
    assert rep["validation"]["count"] == 3 and rep["ok"]


def test_cli_bundle_records_targets_and_load_picks_by_target(tmp_path):
    proc = _cli("bundle", models.path("shapes_cnn_int8"), models.path("shapes_cnn_fp32"), "-o", tmp_path / "b",
                "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    files = json.loads(proc.stdout)["manifest"]["files"]
    assert {"rpi4", "host", "tflite-int8"} <= set(files["tflite-int8"]["targets"])
    assert "edgetpu" not in files["tflite-int8"]["targets"]  # dynamic batch: the Edge TPU check fails
    assert edgeship.load(tmp_path / "b", target="rpi4").path.name == "shapes_cnn_int8.tflite"  # the default
    with pytest.raises(TargetError, match=r"serves target 'edgetpu'; its files serve: tflite-int8 -> .*rpi4"):
        edgeship.load(tmp_path / "b", target="edgetpu")
