"""Honest default checks: in-range random inputs, constant source outputs, calibration = validation,
and what a rejected int8 conversion tells the user (unique --keep-float names, plot order, next step)."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

keras = pytest.importorskip("keras", reason="Keras (extra [convert]) is not installed")

from edgeship.converters import convert  # noqa: E402
from edgeship.converters.input_range import input_range  # noqa: E402
from edgeship.converters.sources import load_source  # noqa: E402
from edgeship.errors import ParityError  # noqa: E402
from edgeship.spec import TensorSpec  # noqa: E402


def _rescaling_model():
    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 6, 3), name="pixels")
    x = keras.layers.Rescaling(1 / 255.0, name="to_unit")(inp)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(3)(x))


def test_input_range_from_keras_layers_preprocessing_and_dtype():
    src = load_source(_rescaling_model())
    r = input_range(src, src.inputs[0])
    assert r.bounds == pytest.approx((0.0, 255.0))
    assert "to_unit" in r.text and r.text.startswith("random inputs in [0, 255]")
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((4,)), keras.layers.Rescaling(1 / 127.5, offset=-1.0), keras.layers.Dense(2)])
    assert input_range(load_source(m), load_source(m).inputs[0]).bounds == pytest.approx((0.0, 255.0))
    norm = keras.layers.Normalization(mean=[10.0, 20.0], variance=[4.0, 9.0])
    m = keras.Sequential([keras.Input((2,)), norm, keras.layers.Dense(2)])
    r = input_range(load_source(m), load_source(m).inputs[0])
    assert r.kind == "normal" and r.bounds == pytest.approx((6.0, 26.0))
    spec = TensorSpec("x", (-1, 4), "float32")
    assert input_range(None, spec, preprocessing="image_0_1").bounds == (0.0, 1.0)
    assert input_range(None, spec, preprocessing={"name": "x", "range": [-3, 3]}).bounds == (-3.0, 3.0)
    assert input_range(None, spec).text.startswith("random N(0,1)")


@pytest.mark.slow
def test_without_data_parity_runs_in_the_models_input_range_and_says_so(tmp_path):
    """Was: 32 N(0,1) inputs (negative pixels for a Rescaling(1/255) model), reported as 'synthetic N(0,1)'."""
    from edgeship.converters import _resolve_data

    src = load_source(_rescaling_model())
    data = _resolve_data(src, None, None, None, None, None, None, 0, [])
    x = np.concatenate([s["pixels"] for s in data.val_samples])
    assert x.min() >= 0.0 and x.max() <= 255.0 and x.max() > 200.0
    res = convert(_rescaling_model(), to="tflite", out=str(tmp_path / "m.tflite"))
    d = res.to_dict()
    assert d["validation"]["random"] is True
    assert d["validation"]["inputs"].startswith("random inputs in [0, 255]")
    assert any("worth less than real data" in n for n in d["outputs"][0]["notes"])


def test_cli_summary_says_which_inputs_were_used(tmp_path):
    from typer.testing import CliRunner

    from edgeship.cli import app

    _rescaling_model().save(tmp_path / "m.keras")
    r = CliRunner().invoke(app, ["convert", str(tmp_path / "m.keras"), "-o", str(tmp_path / "o.tflite")])
    assert r.exit_code == 0, r.output
    assert "parity inputs: random inputs in [0, 255]" in " ".join(r.output.split())
    assert "worth less than real data" in r.output


def _constant_softmax(classes=1000):
    keras.utils.set_random_seed(0)
    inp = keras.Input((8,), name="x")
    dense = keras.layers.Dense(classes, kernel_initializer="zeros", bias_initializer="zeros")
    return keras.Model(inp, keras.layers.Softmax()(dense(inp)))   # 0.001 for every class, whatever the input


@pytest.mark.slow
def test_constant_source_output_is_reported_and_explains_the_int8_rejection(tmp_path):
    cal = np.random.default_rng(0).standard_normal((60, 8)).astype(np.float32)
    with pytest.warns(UserWarning, match="same for every validation input"):
        with pytest.raises(ParityError) as info:
            convert(_constant_softmax(), to="tflite", quantize="int8", calibration=cal,
                    out=str(tmp_path / "c.tflite"))
    msg = str(info.value)
    assert "constant" in msg and "trained" in msg          # not just "cosine 0.000000"
    rep = info.value.report
    assert any("same for every validation input (value 0.001" in w for w in rep["warnings"])
    rec = rep["outputs"][0]
    assert rec["next_step"]["kind"] == "check-source"
    assert any("does not change across the validation inputs" in n for n in rec["notes"])


@pytest.mark.slow
def test_calibration_equal_to_validation_warns(tmp_path):
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((8,), name="x"), keras.layers.Dense(6, activation="relu"), keras.layers.Dense(3)])
    x = np.random.default_rng(0).standard_normal((40, 8)).astype(np.float32)
    with pytest.warns(UserWarning, match="calibration = validation"):
        res = convert(m, to="tflite", quantize="int8", calibration=x, validation=x[:10],
                      out=str(tmp_path / "m.tflite"))
    d = res.to_dict()
    assert d["validation"]["shared_with_calibration"] == 10
    assert any(w.startswith("calibration = validation: 10 of the 10") for w in d["warnings"])
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="calibration = validation")   # separate data: no such warning
        other = np.random.default_rng(1).standard_normal((10, 8)).astype(np.float32)
        res = convert(m, to="tflite", quantize="int8", calibration=x, validation=other,
                      out=str(tmp_path / "m2.tflite"))
    assert res.to_dict()["warnings"] == [] and res.validation["shared_with_calibration"] == 0


def _bn_model():
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3), name="img")
    x = keras.layers.Conv2D(8, 3, activation="relu", name="c1")(inp)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.Conv2D(8, 3, activation="relu", name="c2")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(16, activation="relu", name="d1")(x)
    x = keras.layers.BatchNormalization(name="bn3")(x)
    m = keras.Model(inp, keras.layers.Dense(4, name="head")(x))
    rng = np.random.default_rng(0)
    for layer in m.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape
            layer.set_weights([rng.uniform(0.5, 2, n), rng.standard_normal(n), rng.standard_normal(n),
                               rng.uniform(0.5, 3, n)])
    return m


TIGHT = {"cosine_min": 0.999999, "rel_max_abs": 1e-4}   # int8 cannot meet this: forces a rejection


@pytest.mark.slow
def test_rejection_ranks_unique_keep_float_names_and_names_a_next_step(tmp_path):
    from PIL import Image

    cal = np.random.default_rng(0).random((300, 8, 8, 3)).astype(np.float32)
    model = _bn_model()
    with pytest.raises(ParityError) as info:
        convert(model, to="tflite", quantize="int8", calibration=cal, out=str(tmp_path / "m.tflite"),
                tolerance=TIGHT, debug_layers=True)
    rec = info.value.report["outputs"][0]
    names = [r["layer"] for r in rec["fix"]["layers"]]
    assert len(names) == len(set(names)), names                # was: three rows all named "batchnorm"
    assert "batchnorm" not in names and {"bn1", "bn2", "bn3"} <= set(names)
    errs = [r["rel_error"] for r in rec["fix"]["layers"]]
    assert errs == sorted(errs, reverse=True)
    with Image.open(rec["fix"]["plot"]) as im:                 # the bars, top to bottom, in JSON order
        assert json.loads(im.text["Description"]) == names[:30]
    step = rec["next_step"]
    assert step["kind"] == "keep-float" and step["keep_float"] == names[:len(step["keep_float"])]
    assert "--keep-float " + step["keep_float"][0] in step["text"] and "%" in step["evidence"]
    assert "Next step: keep layer(s)" in str(info.value)
    assert any("int16x8" in a and "measured cosine" in a for a in step["alternatives"])
    # every ranked name goes back into --keep-float as it is
    try:
        res = convert(model, to="tflite", quantize="int8", calibration=cal, out=str(tmp_path / "k.tflite"),
                      keep_float_ops=[names[0], names[1]], tolerance=TIGHT)
        out = res.outputs[0]
    except ParityError as exc:
        out = exc.report["outputs"][0]
        out = type("R", (), {"quantization": out["quantization"]})
    assert str(out.quantization) == "mixed"


@pytest.mark.slow
def test_few_calibration_samples_are_the_next_step(tmp_path):
    cal = np.random.default_rng(0).random((12, 8, 8, 3)).astype(np.float32)
    with pytest.raises(ParityError) as info:
        convert(_bn_model(), to="tflite", quantize="int8", calibration=cal, out=str(tmp_path / "m.tflite"),
                tolerance=TIGHT)
    step = info.value.report["outputs"][0]["next_step"]
    assert step["kind"] == "more-calibration" and "only 10 calibration samples" in step["text"]


@pytest.mark.slow
def test_savedmodel_style_names_are_made_unique_and_resolve():
    """Without Keras layer names, 'model/bn1/batchnorm/mul' and 'model/bn2/batchnorm/mul' are qualified."""
    from edgeship.converters.calibration import resolve_calibration
    from edgeship.converters.tflite_common import (calibrate, op_layer_names, resolve_keep_float,
                                                   unique_layer_names)

    src = load_source(_bn_model())
    cal = resolve_calibration(np.random.default_rng(0).random((8, 8, 8, 3)).astype(np.float32), src.inputs)
    calibrated = calibrate(src, {"calibration": cal})
    plain = op_layer_names(calibrated, None)
    assert list(plain.values()).count("batchnorm") > 1
    names = unique_layer_names(calibrated, None)
    bn = sorted({n for n in names.values() if n.endswith("batchnorm")})
    assert len(bn) == 3 and all("/" in n for n in bn)
    for n in bn:
        tensors = resolve_keep_float(calibrated, [n], None)
        assert tensors and all(names[t] == n for t in tensors)


@pytest.mark.slow
def test_edgetpu_check_advises_static_batch_for_shape_ops(tmp_path):
    """Was: 'replace op SHAPE with ops the Edge TPU supports' for a dynamic-batch Flatten."""
    from edgeship import targets

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inp)
    m = keras.Model(inp, keras.layers.Dense(3)(keras.layers.Flatten()(x)))
    cal = np.random.default_rng(0).random((40, 8, 8, 3)).astype(np.float32)
    res = convert(m, to="tflite", quantize="int8", calibration=cal, out=str(tmp_path / "dyn.tflite"))
    report = targets.check(res.outputs[0].path, "edgetpu")
    shape = [p for p in report.problems if p.subject.startswith("SHAPE#")]
    assert shape and all("--static-batch" in p.fix for p in shape)
    assert not any("replace op SHAPE" in p.fix for p in report.problems)
    assert not any(p.kind == "dtype" and p.subject.startswith(("STRIDED_SLICE#", "PACK#")) for p in report.problems)
