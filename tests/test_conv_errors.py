"""Bad sources and bad data give clear EdgeshipErrors, never tracebacks from deep inside TF."""
from __future__ import annotations

import numpy as np
import pytest

from edgeship.converters import convert
from edgeship.converters.calibration import resolve_calibration
from edgeship.converters.sources import load_source
from edgeship.errors import ConversionError, EdgeshipError, ModelFormatError
from edgeship.spec import TensorSpec


def test_corrupt_keras_file(tmp_path):
    p = tmp_path / "broken.keras"
    p.write_bytes(b"PK\x03\x04 this is not a keras archive")
    with pytest.raises(ModelFormatError, match="not a readable Keras model"):
        load_source(p)


def test_corrupt_onnx_and_tflite_and_unknown(tmp_path):
    bad = tmp_path / "m.onnx"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelFormatError):
        load_source(bad)
    t = tmp_path / "m.tflite"
    t.write_bytes(b"\x00\x00\x00\x00TFL3" + b"\x00" * 8)
    with pytest.raises(ModelFormatError):
        load_source(t)
    (tmp_path / "m.txt").write_text("not a model")
    with pytest.raises(ModelFormatError, match="cannot tell what"):
        load_source(tmp_path / "m.txt")
    with pytest.raises(ModelFormatError, match="does not exist"):
        load_source(tmp_path / "nope.keras")
    d = tmp_path / "emptydir"
    d.mkdir()
    with pytest.raises(ModelFormatError, match="not a TF SavedModel"):
        load_source(d)


def test_wrong_object_type():
    with pytest.raises(ConversionError, match="cannot convert a builtins.dict"):
        load_source({"not": "a model"})


@pytest.mark.slow
def test_unsupported_layer_needs_select_ops(tmp_path):
    import keras

    i = keras.Input((4, 4), name="m")
    o = keras.layers.Lambda(lambda t: keras.ops.linalg.inv(t), name="inverse")(i)
    with pytest.raises(ConversionError, match="MatrixInverse"):
        convert(keras.Model(i, o), to="tflite", out=tmp_path / "x.tflite")
    assert not (tmp_path / "x.tflite").exists()


def test_wrong_calibration_shape_names_expected_and_given():
    spec = [TensorSpec("mfcc", (-1, 49, 10, 1), "float32")]
    with pytest.raises(ConversionError, match=r"expected shape \('N', 49, 10, 1\), got \(5, 10, 49, 1\)"):
        resolve_calibration(np.zeros((5, 10, 49, 1), np.float32), spec)
    with pytest.raises(ConversionError, match="NaN"):
        resolve_calibration(np.full((2, 49, 10, 1), np.nan, np.float32), spec)
    with pytest.raises(ConversionError, match="no samples"):
        resolve_calibration([], spec)
    with pytest.raises(ConversionError, match="unknown input"):
        resolve_calibration([{"mfcc": np.zeros((49, 10, 1)), "extra": np.zeros(3)}], spec)


@pytest.mark.slow
def test_wrong_calibration_shape_through_convert(tmp_path):
    import keras

    m = keras.Sequential([keras.Input((8,), name="x"), keras.layers.Dense(3)])
    with pytest.raises(ConversionError, match=r"expected shape \('N', 8\), got \(10, 7\)"):
        convert(m, to="tflite", quantize="int8", calibration=np.zeros((10, 7), np.float32), out=tmp_path)
    with pytest.raises(ConversionError, match="needs --calibration"):
        convert(m, to="tflite", quantize="int8", out=tmp_path)
    with pytest.raises(ConversionError, match="no exporter for --to tflite --quantize int4"):
        convert(m, to="tflite", quantize="int4", out=tmp_path)
    with pytest.raises(ConversionError, match="unknown tolerance key"):
        convert(m, to="tflite", out=tmp_path, tolerance={"cosine": 0.5})


def test_calibration_from_files_and_preprocessing(tmp_path):
    spec = [TensorSpec("img", (-1, 8, 8, 3), "float32")]
    np.save(tmp_path / "c.npy", np.ones((6, 8, 8, 3), np.float32))
    cal = resolve_calibration(tmp_path / "c.npy", spec, max_samples=4, seed=3)
    assert cal.count == 4 and cal.describe()["seed"] == 3
    np.savez(tmp_path / "c.npz", img=np.ones((3, 8, 8, 3), np.float32))
    assert resolve_calibration(tmp_path / "c.npz", spec).count == 3
    from PIL import Image

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(3):
        Image.fromarray(np.full((20, 30, 3), 60 * i, np.uint8)).save(imgs / f"{i}.png")
    cal = resolve_calibration(imgs, spec, preprocessing="image_0_1")
    assert cal.count == 3 and cal.samples[0]["img"].shape == (1, 8, 8, 3)
    assert np.isclose(cal.samples[2]["img"].max(), 120 / 255)
    with pytest.raises(ConversionError, match="unknown preprocessing"):
        resolve_calibration(imgs, spec, preprocessing="nope")
    with pytest.raises(ConversionError, match="needs a preprocessing"):
        resolve_calibration(imgs, spec)
    assert issubclass(ConversionError, EdgeshipError)


def test_calibration_from_iterables_of_dicts_arrays_and_tuples():
    specs = [TensorSpec("a", (-1, 3), "float32"), TensorSpec("b", (-1, 2), "float32")]
    gen = ({"a": np.full(3, i, np.float32), "b": np.zeros((1, 2))} for i in range(5))
    cal = resolve_calibration(gen, specs, seed=2)
    assert cal.count == 5 and cal.samples[4]["a"].shape == (1, 3) and cal.samples[4]["a"][0, 0] == 4
    cal2 = resolve_calibration([(np.ones((2, 3)), np.ones((2, 2)))], specs)  # a batch of 2 in one item
    assert cal2.count == 2
    with pytest.raises(ConversionError, match="has 2 inputs"):
        resolve_calibration([np.ones(3)], specs)
    endless = ({"a": np.ones(3), "b": np.ones(2)} for _ in iter(int, 1))
    assert resolve_calibration(endless, specs, max_samples=7).count == 7  # stops reading an endless source
    same = resolve_calibration(({"a": np.full(3, i, np.float32), "b": np.zeros((1, 2))} for i in range(5)), specs)
    assert same.sha256 == cal.sha256  # the hash depends on the data only
