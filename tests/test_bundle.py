"""Bundles: manifest contents, target selection, tamper detection, zip, safe replacement."""
from __future__ import annotations

import json
from pathlib import Path
import zipfile

import numpy as np
import pytest

import edgeship
from edgeship.preprocessing import ImagePreprocessing
from edgeship.bundle import read_bundle, write_bundle
from edgeship.errors import IntegrityError, ModelFormatError, TargetError

PRE = {"type": "image", "size": [32, 32], "color": "GRAY", "scale": 1 / 255}


@pytest.fixture()
def bundle(weights, tmp_path):
    return Path(write_bundle(tmp_path / "b", {"tflite-int8": weights / "shapes_cnn_int8.tflite",
                                         "tflite-fp32": weights / "shapes_cnn_fp32.tflite"},
                        labels=["circle", "square", "triangle"], preprocessing=PRE,
                        source=weights / "shapes_cnn.keras", targets={"tflite-int8": ["rpi4", "edgetpu"]},
                        extra_files={"README.md": b"# device readme\n"})["_dir"])


def test_manifest_contents(bundle, weights):
    m = json.loads((bundle / "manifest.json").read_text())
    assert m["schema_version"] == 1 and m["default"] == "tflite-int8"
    e = m["files"]["tflite-int8"]
    assert e["format"] == "tflite" and e["quantization"] == "int8" and e["bytes"] > 0
    assert e["inputs"][0]["quantization"]["scale"][0] > 0
    assert m["io"]["inputs"][0]["shape"] == [-1, 32, 32, 1]
    assert m["labels"] == ["circle", "square", "triangle"]
    assert m["preprocessing"] == ImagePreprocessing.from_dict(PRE).to_dict()  # validated, written in full
    assert len(m["source"]["sha256"]) == 64
    assert "numpy" in m["versions"] and "edgeship" in m["versions"]
    assert set(m["extra_files"]) == {"labels.txt", "README.md"}


def test_load_picks_default_and_target(bundle):
    assert edgeship.load(bundle).path.name == "shapes_cnn_int8.tflite"
    assert edgeship.load(bundle, target="tflite-fp32").path.name == "shapes_cnn_fp32.tflite"
    m = edgeship.load(bundle, target="edgetpu")
    assert m.path.name == "shapes_cnn_int8.tflite" and m.manifest["labels"][0] == "circle"
    assert m.predict(np.zeros((1, 32, 32, 1), np.float32)).shape == (1, 3)
    with pytest.raises(TargetError, match="no file that serves target .ios.; its files serve"):
        edgeship.load(bundle, target="ios")


@pytest.mark.parametrize("victim", ["shapes_cnn_int8.tflite", "labels.txt", "README.md"])
def test_tampered_file_is_detected(bundle, victim):
    p = bundle / victim
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01  # a single flipped bit
    p.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=f"{victim} does not match its manifest checksum"):
        edgeship.load(bundle)


def test_missing_unlisted_and_bad_manifest(bundle):
    (bundle / "evil.sh").write_text("rm -rf /")
    with pytest.raises(IntegrityError, match="not covered"):
        read_bundle(bundle)
    (bundle / "evil.sh").unlink()
    (bundle / "shapes_cnn_fp32.tflite").unlink()
    with pytest.raises(IntegrityError, match="missing"):
        read_bundle(bundle)
    (bundle / "manifest.json").write_text("{not json")
    with pytest.raises(IntegrityError, match="not valid JSON"):
        read_bundle(bundle)


def test_manifest_path_traversal_rejected(bundle):
    m = json.loads((bundle / "manifest.json").read_text())
    m["files"]["tflite-int8"]["path"] = "../../etc/passwd"
    (bundle / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IntegrityError, match="plain file name"):
        read_bundle(bundle)


def test_zip_round_trip_and_hostile_zip(bundle, tmp_path):
    from edgeship.bundle import write_zip

    z = write_zip(bundle, tmp_path / "b.zip")
    assert edgeship.load(z, target="tflite-fp32").path.name == "shapes_cnn_fp32.tflite"
    assert write_zip(bundle, tmp_path / "b2.zip").read_bytes() == z.read_bytes()  # deterministic
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("../escape.txt", "x")
        zf.writestr("manifest.json", "{}")
    with pytest.raises(IntegrityError, match="not a plain file name"):
        edgeship.load(bad)


def test_a_zip_that_is_no_bundle_says_what_it_is(weights, tmp_path):
    with pytest.raises(ModelFormatError, match=r"kws_dscnn\.keras: a Keras model file .*convert it first"):
        edgeship.load(weights / "kws_dscnn.keras")   # a .keras file is a zip too
    other = tmp_path / "photos.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("a.jpg", b"x")
    with pytest.raises(ModelFormatError, match=r"photos\.zip: a zip archive without manifest\.json"):
        edgeship.load(other)


def test_never_replaces_user_data(weights, tmp_path):
    user = tmp_path / "mydir"
    user.mkdir()
    (user / "thesis.tex").write_text("precious")
    with pytest.raises(ModelFormatError, match="not an edgeship bundle"):
        write_bundle(user, {"m": weights / "shapes_cnn_int8.tflite"}, overwrite=True)
    assert (user / "thesis.tex").read_text() == "precious"
    b = Path(write_bundle(tmp_path / "b", {"m": weights / "shapes_cnn_int8.tflite"})["_dir"])
    with pytest.raises(ModelFormatError, match="overwrite"):
        write_bundle(b, {"m": weights / "shapes_cnn_fp32.tflite"})
    write_bundle(b, {"m": weights / "shapes_cnn_fp32.tflite"}, overwrite=True)
    assert read_bundle(b)["files"]["m"]["path"] == "shapes_cnn_fp32.tflite"
    assert not list(tmp_path.glob(".b.*"))  # no temporary folders left behind


def test_bad_bundle_arguments(weights, tmp_path):
    with pytest.raises(ModelFormatError, match="at least one"):
        write_bundle(tmp_path / "x", {})
    with pytest.raises(ModelFormatError, match="letters"):
        write_bundle(tmp_path / "x", {"../k": weights / "shapes_cnn_int8.tflite"})
    with pytest.raises(ModelFormatError, match="does not exist"):
        write_bundle(tmp_path / "x", {"k": tmp_path / "nope.tflite"})


def test_extra_dir_is_checksummed_and_zipped(weights, tmp_path):
    from edgeship.bundle import write_zip

    assets = tmp_path / "assets_src"
    (assets / "sub").mkdir(parents=True)
    (assets / "model.tflite").write_bytes((weights / "shapes_cnn_int8.tflite").read_bytes())
    (assets / "sub" / "labels.txt").write_text("a\nb\n")
    b = Path(write_bundle(tmp_path / "b", {"m": weights / "shapes_cnn_int8.tflite"}, extra_dirs={"assets": assets})["_dir"])
    assert {"assets/model.tflite", "assets/sub/labels.txt"} <= set(read_bundle(b)["extra_files"])
    z = write_zip(b, tmp_path / "b.zip")
    with zipfile.ZipFile(z) as zf:
        assert "assets/sub/labels.txt" in zf.namelist()
    assert edgeship.load(z).predict(np.zeros((1, 32, 32, 1), np.float32)).shape == (1, 3)
    (b / "assets" / "sub" / "labels.txt").write_text("tampered\n")
    with pytest.raises(IntegrityError, match="assets/sub/labels.txt"):
        read_bundle(b)
    (b / "remote").mkdir()
    (b / "remote" / "bench.json").write_text("{}")  # device results may be added after sealing
    (b / "assets" / "sub" / "labels.txt").write_text("a\nb\n")
    read_bundle(b)
