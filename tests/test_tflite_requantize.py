"""A float TFLite file as a conversion source (replayed with TF ops), and ``ranges_from``: the
activation ranges of an existing int8 model reused by a new conversion."""
from __future__ import annotations

import numpy as np
import pytest

import edgeship
from edgeship.converters import convert
from edgeship.errors import ConversionError
from edgeship.tflite_schema import read_tflite

pytestmark = pytest.mark.slow


def _net():
    import keras
    from keras import layers

    keras.utils.set_random_seed(3)
    inp = keras.Input((12, 10, 2), name="x")
    a = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
    b = layers.DepthwiseConv2D(3, padding="same", activation="relu6", dilation_rate=1)(a)
    c = layers.Add()([a, b])
    d = layers.Conv2D(8, 1, padding="valid", activation="tanh")(c)
    e = layers.MaxPooling2D(2)(d)
    f = layers.Concatenate()([layers.GlobalAveragePooling2D()(d), layers.Flatten()(layers.AveragePooling2D(2, padding="same")(e))])
    g = layers.Dense(16, activation="sigmoid")(f)
    out = layers.Dense(5, activation="softmax", name="p")(layers.Multiply()([g, g]))
    return keras.Model(inp, out)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("requant")
    model = _net()
    rng = np.random.default_rng(0)
    cal = rng.standard_normal((64, 12, 10, 2)).astype(np.float32)
    val = rng.standard_normal((32, 12, 10, 2)).astype(np.float32)
    f32 = convert(model, to="tflite", out=d / "f32.tflite", validation=val).outputs[0].path
    dyn = convert(model, to="tflite", quantize="dynamic", out=d / "dyn.tflite", validation=val).outputs[0].path
    i8 = convert(model, to="tflite", quantize="int8", calibration=cal, validation=val,
                 out=d / "i8.tflite").outputs[0].path
    return model, cal, val, f32, dyn, i8, d


def test_replay_computes_what_the_file_computes(files):
    from edgeship.converters.tflite_graph import concrete_function

    _, _, val, f32, dyn, _, _ = files
    ops = {o.op for o in read_tflite(open(f32, "rb").read()).main.operators}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN", "CONCATENATION",
            "FULLY_CONNECTED", "MUL", "SOFTMAX"} <= ops, ops
    want = edgeship.load(f32).predict(val)
    fn = concrete_function(open(f32, "rb").read(), "f32.tflite", ["x"])
    got = fn(val)[0].numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    # a dynamic-range file: int8 weights are dequantized; LiteRT's hybrid kernels also quantize the
    # activations on the fly, so the two agree closely but not to the last bit
    fn = concrete_function(open(dyn, "rb").read(), "dyn.tflite", ["x"])
    got = fn(val)[0].numpy()
    ref = edgeship.load(dyn).predict(val)
    assert np.abs(got - ref).max() < 0.02
    assert np.abs(got - want).max() < 0.02


def test_float_tflite_to_int8_is_checked_against_the_file(files, tmp_path):
    _, cal, val, f32, _, _, _ = files
    res = convert(f32, to="tflite", quantize="int8", calibration=cal, validation=val, out=tmp_path / "r.tflite")
    rec = res.outputs[0]
    assert rec.shipped and rec.parity["passed"]
    assert any("replayed with TensorFlow ops" in n for n in rec.notes)
    m = edgeship.load(rec.path)
    assert m.inputs[0].dtype == "int8"
    assert [m.inputs[0].name, m.outputs[0].name] == ["x", "p"]  # the source's names, not the quantizer's
    assert res.source["kind"] == "tflite"
    want = edgeship.load(f32).predict(val)
    assert np.mean(m.predict(val).argmax(1) == want.argmax(1)) >= 0.9


def test_quantized_or_unsupported_files_are_refused_before_converting(files, tmp_path):
    import keras
    from keras import layers

    _, cal, val, _, _, i8, d = files
    with pytest.raises(ConversionError, match="already quantized.*float model it was made from"):
        convert(i8, to="tflite", quantize="int8", calibration=cal, validation=val, out=tmp_path / "q.tflite")
    inp = keras.Input((6,), name="x")
    ln = keras.Model(inp, layers.LayerNormalization()(layers.Dense(4)(inp)))
    path = convert(ln, to="tflite", out=d / "ln.tflite").outputs[0].path
    with pytest.raises(ConversionError, match=r"uses op\(s\) .*cannot rebuild from a TFLite file.*original"):
        convert(path, to="tflite", quantize="int8", calibration=np.ones((8, 6), np.float32), out=tmp_path / "l.tflite")
    assert not list(tmp_path.glob("*.tflite*"))


def _activation_ranges(path):
    m = read_tflite(open(path, "rb").read()).main
    idx = list(m.inputs) + [o for op in m.operators if op.op not in ("QUANTIZE", "DEQUANTIZE") for o in op.outputs
                            if m.tensors[o].dtype == "int8"]
    return [(m.tensors[i].quantization.scale, m.tensors[i].quantization.zero_point) for i in idx]


def test_ranges_from_reproduces_the_reference_quantization(files, tmp_path):
    model, cal, val, f32, _, i8, _ = files
    other = (cal * 3.0 + 1.0).astype(np.float32)  # other data: other calibrated ranges
    plain = convert(model, to="tflite", quantize="int8", calibration=other, validation=val,
                    out=tmp_path / "plain.tflite", tolerance={"rel_max_abs": 10.0, "cosine_min": 0.0,
                                                               "top1_min": 0.0})
    assert _activation_ranges(plain.outputs[0].path) != _activation_ranges(i8)
    res = convert(model, to="tflite", quantize="int8", calibration=other, validation=val,
                  out=tmp_path / "same.tflite", ranges_from=i8)
    rec = res.outputs[0]
    assert rec.shipped and any("activation ranges from" in n and "sha256" in n for n in rec.notes)
    got, want = _activation_ranges(rec.path), _activation_ranges(i8)
    assert len(got) == len(want)
    for (s1, z1), (s2, z2) in zip(got, want):
        np.testing.assert_allclose(s1, s2, rtol=1e-5)
        assert z1 == z2
    # the same network from its float TFLite file takes them too
    rec2 = convert(f32, to="tflite", quantize="int8", calibration=other, validation=val,
                   out=tmp_path / "from_f32.tflite", ranges_from=i8).outputs[0]
    assert [z for _, z in _activation_ranges(rec2.path)] == [z for _, z in want]


def test_ranges_from_errors(files, tmp_path):
    import keras
    from keras import layers

    model, cal, val, f32, _, i8, d = files
    kw = dict(calibration=cal, validation=val)
    with pytest.raises(ConversionError, match="no int8/uint8 activations"):
        convert(model, to="tflite", quantize="int8", out=tmp_path / "a.tflite", ranges_from=f32, **kw)
    with pytest.raises(ConversionError, match="is not a file"):
        convert(model, to="tflite", quantize="int8", out=tmp_path / "a.tflite", ranges_from=d / "nope.tflite", **kw)
    with pytest.raises(ConversionError, match="does not apply to tflite-fp16"):
        convert(model, to="tflite", quantize="fp16", out=tmp_path / "a.tflite", ranges_from=i8, **kw)
    with pytest.raises(ConversionError, match="calibration_method 'percentile' would have no effect"):
        convert(model, to="tflite", quantize="int8", out=tmp_path / "a.tflite", ranges_from=i8,
                calibration_method="percentile", **kw)
    inp = keras.Input((12, 10, 2), name="x")
    other = keras.Model(inp, layers.Dense(5, activation="softmax")(layers.Flatten()(
        layers.Conv2D(4, 3, activation="relu")(inp))))
    with pytest.raises(ConversionError, match="graphs differ at op 0"):
        convert(other, to="tflite", quantize="int8", out=tmp_path / "a.tflite", ranges_from=i8, **kw)
    assert not list(tmp_path.glob("*.tflite*"))


def test_cli_requantizes_a_float_tflite_with_ranges_from(files, tmp_path):
    import hashlib
    import json
    import os
    import subprocess
    import sys

    _, cal, val, f32, _, i8, _ = files
    np.save(tmp_path / "cal.npy", cal)
    np.save(tmp_path / "val.npy", val)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    run = lambda *a: subprocess.run([sys.executable, "-m", "edgeship", "convert", str(f32), "--quantize", "int8",
                                     "--calibration", str(tmp_path / "cal.npy"), "--validation",
                                     str(tmp_path / "val.npy"), "--json", *a], capture_output=True, text=True,
                                    env=env, timeout=300)
    r = run("-o", str(tmp_path / "o.tflite"), "--ranges-from", str(i8))
    assert r.returncode == 0, r.stderr[-2000:]
    rec = json.loads(r.stdout)["outputs"][0]
    assert rec["shipped"] and any(str(i8) in n for n in rec["notes"])
    assert rec["ranges_from"] == {"path": str(i8), "sha256": hashlib.sha256(open(i8, "rb").read()).hexdigest(),
                                  "kept_calibrated": []}
    assert _activation_ranges(rec["path"])[0] == _activation_ranges(i8)[0]  # the input's scale and zero point
    r = run("-o", str(tmp_path / "p.tflite"), "--ranges-from", str(f32))
    assert r.returncode == 2 and "no int8/uint8 activations" in json.loads(r.stdout)["error"]["message"]


def test_shared_validation_rows_fit_nothing_when_the_ranges_are_given(files, tmp_path):
    import warnings

    model, cal, _, _, _, i8, _ = files
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = convert(model, to="tflite", quantize="int8", calibration=cal, validation=cal[:16],
                      out=tmp_path / "a.tflite", ranges_from=i8)
    assert res.validation["shared_with_calibration"] == 16
    assert not res.warnings and not [w for w in caught if "calibration = validation" in str(w.message)]
    with pytest.warns(UserWarning, match="calibration = validation: 16 of the 16"):
        convert(model, to="tflite", quantize="int8", calibration=cal, validation=cal[:16], out=tmp_path / "b.tflite")


def test_replay_note_only_on_the_files_made_by_replaying(files, tmp_path):
    _, _, val, f32, _, _, _ = files
    res = convert(f32, to="onnx", validation=val, out=tmp_path / "o.onnx")
    assert not any("replayed" in n for n in res.outputs[0].notes)  # tf2onnx reads the file itself
    res = convert(f32, to="tflite", quantize="fp16", validation=val, out=tmp_path / "h.tflite")
    assert any("replayed with TensorFlow ops" in n for n in res.outputs[0].notes)
