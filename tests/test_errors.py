"""Every error type, with messages that say what was expected and what was given."""
from __future__ import annotations

import numpy as np
import pytest

import edgeship
from edgeship._deps import require
from edgeship.errors import (ConversionError, EdgeshipError, InputSpecError, IntegrityError, MissingDependencyError,
                             ModelFormatError, ParityError, TargetError)


def test_hierarchy():
    for cls in (ModelFormatError, InputSpecError, MissingDependencyError, IntegrityError, TargetError,
                ConversionError, ParityError):
        assert issubclass(cls, EdgeshipError)
    assert issubclass(MissingDependencyError, ImportError)
    assert issubclass(InputSpecError, ValueError)
    assert edgeship.EdgeshipError is EdgeshipError


@pytest.fixture(scope="module")
def int8_model(weights):
    return edgeship.load(weights / "shapes_cnn_int8.tflite")


@pytest.fixture(scope="module")
def fp32_model(weights):
    return edgeship.load(weights / "shapes_cnn_fp32.tflite")


@pytest.mark.parametrize("x, match", [
    (np.zeros((1, 32, 31, 1), np.float32), r"expects shape \[-1, 32, 32, 1\].*given \[1, 32, 31, 1\]"),
    (np.zeros((32, 32, 1), np.float32), r"rank 4.*x\[None\]"),
    (np.zeros((0, 32, 32, 1), np.float32), "empty"),
    (np.array([["a"]]), "expects numbers"),
    ([np.zeros((1, 32, 32, 1)), np.zeros((1, 32, 32, 1))], "1 inputs"),
    ({"wrong": np.zeros((1, 32, 32, 1))}, "missing"),
])
def test_input_spec_errors(int8_model, x, match):
    with pytest.raises(InputSpecError, match=match):
        int8_model.predict(x)


def test_nan_rejected_for_integer_model(int8_model):
    x = np.zeros((1, 32, 32, 1), np.float32)
    x[0, 3, 3, 0] = np.nan
    with pytest.raises(InputSpecError, match="integer-quantized"):
        int8_model.predict(x)


def test_inf_rejected_for_float_model(fp32_model):
    x = np.zeros((1, 32, 32, 1), np.float32)
    x[0, 0, 0, 0] = np.inf
    with pytest.raises(InputSpecError, match="NaN or inf"):
        fp32_model.predict(x)


def test_float64_and_int_inputs_are_accepted_as_real_values(fp32_model):
    a = fp32_model.predict(np.full((1, 32, 32, 1), 0.5, np.float64))
    b = fp32_model.predict(np.full((1, 32, 32, 1), 0.5, np.float32))
    np.testing.assert_array_equal(a, b)
    fp32_model.predict(np.zeros((1, 32, 32, 1), np.uint8))


@pytest.mark.parametrize("content, match", [
    (b"", "too short"),
    (b"hello world, this is not a model at all....", "file identifier"),
    (b"\x00" * 4 + b"TFL3" + b"\xff" * 40, "corrupt"),
])
def test_bad_tflite_files(tmp_path, content, match):
    p = tmp_path / "bad.tflite"
    p.write_bytes(content)
    with pytest.raises(ModelFormatError, match=match):
        edgeship.load(p)


def test_truncated_model(weights, tmp_path):
    data = (weights / "shapes_cnn_int8.tflite").read_bytes()
    p = tmp_path / "t.tflite"
    for cut in (20, 100, len(data) // 2, len(data) - 7):
        p.write_bytes(data[:cut])
        with pytest.raises(ModelFormatError):
            edgeship.load(p)


def test_bad_onnx_and_unknown_format(tmp_path):
    p = tmp_path / "m.onnx"
    p.write_bytes(b"\x08\x07\x12\xff\xff\xff\x0f")
    with pytest.raises(ModelFormatError, match="ONNX"):
        edgeship.load(p)
    q = tmp_path / "m.bin"
    q.write_bytes(b"GIF89a" + b"\0" * 100)
    with pytest.raises(ModelFormatError, match="unknown model format"):
        edgeship.load(q)
    with pytest.raises(ModelFormatError, match="no such file"):
        edgeship.load(tmp_path / "missing.tflite")


def test_missing_dependency_names_extra():
    with pytest.raises(MissingDependencyError, match=r"pip install 'edgeship\[convert\]'"):
        require("edgeship_no_such_module", "convert", "conversion")


def test_target_error_for_target_on_plain_file(weights):
    with pytest.raises(TargetError, match="inside a bundle"):
        edgeship.load(weights / "shapes_cnn_int8.tflite", target="rpi4")
