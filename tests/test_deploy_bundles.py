"""`edgeship deploy MODEL --target T -o DIR`: the right files, manifest and README per target."""
from __future__ import annotations

import hashlib
import json

import pytest
from typer.testing import CliRunner

from edgeship.bundle import read_bundle
from edgeship.cli import app
from tests._mcu_helpers import tiny_models


@pytest.fixture(scope="module")
def models():
    return tiny_models()


def _run(*args):
    return CliRunner().invoke(app, ["deploy", *map(str, args)])


def test_mcu_bundle_has_firmware_files(models, tmp_path):
    pytest.importorskip("tflite_micro")
    from edgeship.targets.mcu import parse_c_array

    out = tmp_path / "mcu"
    res = _run(models["int8"], "--target", "mcu", "-o", out, "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["files"] == {"mcu": "tiny_int8.tflite"}
    manifest = read_bundle(out)
    assert {"model_data.cc", "model_data.h", "op_resolver.h", "mcu_report.json", "README.md"} <= set(
        manifest["extra_files"])
    assert parse_c_array((out / "model_data.cc").read_text()) == models["int8"].read_bytes()
    report = json.loads((out / "mcu_report.json").read_text())
    arena = report["arena"]["min_bytes"]
    readme = (out / "README.md").read_text()
    assert f"**{arena} bytes**" in readme and "RegisterOps(resolver)" in readme
    assert f"kTensorArenaSize = {report['arena']['recommended_bytes']};" in (out / "op_resolver.h").read_text()
    assert manifest["extra"]["target"] == "mcu"


def test_android_bundle_assets_drop_in(models, tmp_path):
    from edgeship.targets.tflite_metadata import read_model_metadata

    labels = tmp_path / "labels.txt"
    labels.write_text("down\ngo\nleft\nno\n")
    out = tmp_path / "android"
    res = _run(models["float"], "--target", "android", "-o", out, "--labels", labels, "--mean", "0.5",
               "--std", "2", "--json")
    assert res.exit_code == 0, res.output
    assets = out / "assets"
    names = sorted(p.name for p in assets.iterdir())
    assert names == ["SHA256SUMS.json", "gpu_compatibility.json", "labels.txt", "tiny_float.tflite",
                     "tiny_float_fp16.tflite"]
    meta = read_model_metadata((assets / "tiny_float.tflite").read_bytes())
    assert meta["inputs"][0]["normalization"] == {"mean": [0.5], "std": [2.0]}
    assert meta["files"]["labels.txt"] == b"down\ngo\nleft\nno\n"
    assert meta["outputs"][0]["associated_files"][0]["type"] == "TENSOR_AXIS_LABELS"
    sums = json.loads((assets / "SHA256SUMS.json").read_text())
    for rel, sha in sums.items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == sha
    manifest = read_bundle(out)
    assert set(manifest["files"]) == {"android", "android-fp16"}
    assert "assets/tiny_float.tflite" in manifest["extra_files"]  # the drop-in folder is checksummed too
    with open(assets / "labels.txt", "ab") as f:
        f.write(b"tampered\n")
    from edgeship.errors import IntegrityError
    with pytest.raises(IntegrityError, match="assets/labels.txt"):
        read_bundle(out)
    assert "CompiledModel.create" in (out / "README.md").read_text()


def test_generic_and_ios_bundles_have_run_command(models, tmp_path):
    res = _run(models["float"], "--target", "host", "-o", tmp_path / "h", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["run_command"] == "python3 -m edgeship bench tiny_float.tflite --json"
    assert "python3 -m edgeship bench tiny_float.tflite --json" in (tmp_path / "h" / "README.md").read_text()
    res = _run(models["float"], "--target", "ios", "-o", tmp_path / "i", "--json")
    assert res.exit_code == 0, res.output
    assert "Interpreter(modelPath" in (tmp_path / "i" / "README.md").read_text()


def test_incompatible_and_bad_requests(models, tmp_path):
    res = _run(models["float"], "--target", "nope", "-o", tmp_path / "x", "--json")
    assert res.exit_code == 2 and "unknown target" in res.stdout
    res = _run(models["float"], "--target", "host", "-o", tmp_path / "y", "--json")
    assert res.exit_code == 0
    res = _run(models["float"], "--target", "host", "-o", tmp_path / "y", "--json")
    assert res.exit_code == 2 and "already holds a bundle" in res.stdout
    res = _run(models["float"], "--target", "android", "-o", tmp_path / "z", "--mean", "a,b", "--json")
    assert res.exit_code == 2 and "--mean" in res.stdout
    res = _run(tmp_path / "missing.tflite", "--target", "host", "-o", tmp_path / "w", "--json")
    assert res.exit_code == 2


def test_incompatible_model_exits_1(tmp_path):
    tf = pytest.importorskip("tensorflow")

    @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32)])
    def topk(x):
        return tf.math.top_k(x, k=2).values

    p = tmp_path / "topk.tflite"
    p.write_bytes(tf.lite.TFLiteConverter.from_concrete_functions([topk.get_concrete_function()], topk).convert())
    res = _run(p, "--target", "mcu", "-o", tmp_path / "m", "--json")
    assert res.exit_code == 1, res.output
    assert "TOPK_V2" in json.loads(res.stdout)["error"]["message"]
    assert not (tmp_path / "m").exists()
