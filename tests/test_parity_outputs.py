"""Per-output parity: one row per model output, each with its own tolerance; any failing output fails.

A small two-output Keras model (``scores``: softmax, ``boxes``: linear) is converted to TFLite.
A file whose ``boxes`` head differs from the source's must fail on that row alone, while the
``scores`` row passes; per-output overrides reach the check from ``convert`` and the CLI.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="needs edgeship[convert]")

from edgeship.converters import convert  # noqa: E402
from edgeship.converters.parity import check_parity, output_kind, output_tolerance  # noqa: E402
from edgeship.errors import ConversionError, ParityError  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def two_head_model(seed: int, boxes_seed: int = None):
    import keras

    keras.utils.set_random_seed(seed)
    L = keras.layers
    inp = keras.Input((8,), name="x")
    h = L.Dense(16, activation="relu", name="trunk")(inp)
    scores = L.Dense(3, activation="softmax", name="scores")(h)
    boxes = L.Dense(4, name="boxes")(h)
    model = keras.Model(inp, [scores, boxes])
    if boxes_seed is not None:  # same trunk and scores head, another boxes head
        w, b = model.get_layer("boxes").get_weights()
        rng = np.random.default_rng(boxes_seed)
        model.get_layer("boxes").set_weights([w + rng.normal(0, 0.5, w.shape).astype(np.float32), b])
    return model


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(60, 8)).astype(np.float32), rng.normal(size=(12, 8)).astype(np.float32)


@pytest.fixture(scope="module")
def fp32_file(tmp_path_factory, data):
    out = tmp_path_factory.mktemp("two") / "two.tflite"
    res = convert(two_head_model(1), to="tflite", validation=data[1], out=out)
    return res, out


def test_each_output_gets_its_own_row(fp32_file):
    res, _ = fp32_file
    par = res.outputs[0].parity
    rows = {r["name"]: r for r in par["outputs"]}
    assert set(rows) == {"scores", "boxes"} and par["passed"]
    assert rows["scores"]["kind"] == "score" and rows["boxes"]["kind"] == "box"
    assert rows["scores"]["shape"] == [1, 3] and rows["boxes"]["shape"] == [1, 4]
    assert all(r["passed"] and r["cosine"] > 0.99999 for r in rows.values())


def test_a_broken_output_fails_alone(fp32_file, data):
    """The file's boxes head is not the source's: the boxes row fails, the scores row passes."""
    from edgeship.converters.sources import load_source

    _, path = fp32_file
    other = load_source(two_head_model(1, boxes_seed=7))
    rep = check_parity(other, path, [{"x": v[None]} for v in data[1]], fmt_key="tflite/fp32")
    rows = {r.name: r for r in rep.outputs}
    assert rows["scores"].passed and rows["scores"].max_abs < 1e-5
    assert not rows["boxes"].passed and rows["boxes"].max_abs > 0.1
    assert not rep.passed and rep.failures and all(f.startswith("output 'boxes'") for f in rep.failures)


def test_per_output_override_fails_the_conversion(tmp_path, data):
    """int8 with an impossible max-abs on ``boxes`` only: ParityError, file renamed, rows in the report."""
    with pytest.raises(ParityError) as err:
        convert(two_head_model(1), to="tflite", quantize="int8", calibration=data[0], validation=data[1],
                out=tmp_path / "m.tflite", output_tolerances={"boxes": {"max_abs": 1e-9}})
    assert "output 'boxes': max-abs error" in str(err.value) and "'scores'" not in str(err.value)
    rec = err.value.report["outputs"][0]
    rows = {r["name"]: r for r in rec["parity"]["outputs"]}
    assert rows["scores"]["passed"] and not rows["boxes"]["passed"]
    assert rows["boxes"]["tolerance"]["max_abs"] == 1e-9
    assert rows["scores"]["tolerance"]["max_abs"] == 0.3 and rows["scores"]["tolerance"]["cosine_min"] is None
    assert not rec["shipped"] and rec["path"].endswith(".rejected")
    saved = json.loads((tmp_path / "edgeship-convert.json").read_text())
    assert [r["name"] for r in saved["outputs"][0]["parity"]["outputs"]] == ["scores", "boxes"]


def test_unknown_output_name_is_an_error(tmp_path, data):
    with pytest.raises(ConversionError, match=r"not outputs of the source; its outputs are \['scores', 'boxes'\]"):
        convert(two_head_model(1), to="tflite", validation=data[1], out=tmp_path / "m.tflite",
                output_tolerances={"logits": {"max_abs": 1.0}})


def test_kind_defaults():
    assert output_kind("cls_8") == "score" and output_kind("bbox_16") == "box" and output_kind("kps_32") == "landmark"
    assert output_kind("cls", np.array([-2.0, 3.0])) == "value"  # logits are not probabilities
    assert output_tolerance("tflite/int8", "box")["rel_max_abs"] > output_tolerance("tflite/int8", "value")["rel_max_abs"]
    score = output_tolerance("tflite/int8", "score")  # probabilities: absolute error, cosine not judged
    assert score["max_abs"] == 0.3 and score["cosine_min"] is None and score["rel_max_abs"] is None
    assert output_tolerance("tflite/fp32", "box") == output_tolerance("tflite/fp32", "score")
    with pytest.raises(ConversionError, match="unknown tolerance key"):
        output_tolerance("tflite/int8", "box", {"cos": 1})


def test_cli_shows_each_row_and_takes_output_overrides(tmp_path, data):
    two_head_model(1).save(tmp_path / "two.keras")
    np.save(tmp_path / "val.npy", data[1])
    base = [sys.executable, "-m", "edgeship", "convert", str(tmp_path / "two.keras"), "--validation",
            str(tmp_path / "val.npy"), "-o", str(tmp_path / "out.tflite")]
    # fp16 weights: boxes are surely a little off (an fp32 file can match Keras exactly on some CPUs)
    proc = subprocess.run(base + ["--quantize", "fp16", "--tolerance", "boxes:max_abs=0", "--json"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    rep = json.loads(proc.stdout)
    rows = {r["name"]: r for r in rep["outputs"][0]["parity"]["outputs"]}
    assert rows["scores"]["passed"] and rows["boxes"]["tolerance"]["max_abs"] == 0.0
    proc = subprocess.run(base + ["--tolerance", ":max_abs=0"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2 and "OUTPUT:key=value" in proc.stderr + proc.stdout
    proc = subprocess.run(base, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "120"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = proc.stdout + proc.stderr  # the rich console may write to either
    assert "scores (score)" in text and "boxes (box)" in text


def test_accuracy_budget_fix_is_judged_with_the_per_output_tolerances(tmp_path, data):
    """The fix's attempts meet the same per-output tolerance as the plain file, or nothing ships."""
    with pytest.raises(ParityError) as err:
        convert(two_head_model(1), to="tflite", quantize="int8", calibration=data[0], validation=data[1],
                out=tmp_path / "m.tflite", accuracy_budget=0.5, output_tolerances={"boxes": {"max_abs": 1e-9}})
    rec = err.value.report["outputs"][0]
    assert not rec["shipped"]
    attempts = rec["fix"]["attempts"]
    built = [a for a in attempts if a["bytes"] is not None]
    assert built and all(any("'boxes'" in f for f in a["failures"]) for a in built)
    assert not any(a["passed"] for a in attempts)
    # a float first layer cannot take int8 I/O: that attempt is a failed row, not a crash
    assert all(a["failures"][0].startswith("could not be built") for a in attempts if a["bytes"] is None)
