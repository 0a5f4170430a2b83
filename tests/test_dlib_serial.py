"""edgeship.dlib_serial: dlib's serialisation primitives, bounds-checked (pure Python, no dlib)."""
from __future__ import annotations

import doctest
import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import edgeship.dlib_serial as ds
from edgeship.dlib_serial import DlibReader, encode_float, encode_int, encode_string, encode_tensor
from edgeship.errors import ModelFormatError


def test_docstring_examples():
    res = doctest.testmod(ds, optionflags=doctest.ELLIPSIS | doctest.IGNORE_EXCEPTION_DETAIL)
    assert res.failed == 0 and res.attempted > 0


@given(st.integers(min_value=-(2 ** 63) + 1, max_value=2 ** 63 - 1))
@settings(max_examples=200, deadline=None)
def test_int_round_trip(v):
    r = DlibReader(encode_int(v) + b"x")
    assert r.read_int() == v
    assert r.pos == len(encode_int(v))


def test_int_encoding_matches_dlib_bytes():
    # dlib: control byte = number of value bytes | 0x80 if negative; little-endian magnitude.
    assert encode_int(0) == b"\x01\x00"
    assert encode_int(2) == b"\x01\x02"
    assert encode_int(-300) == b"\x82\x2c\x01"
    assert DlibReader(b"\x82\x2c\x01").read_int() == -300


@pytest.mark.parametrize("data, what", [
    (b"", "truncated"), (b"\x03\x01\x02", "truncated"), (b"\x00", "control byte"),
    (b"\x09" + bytes(9), "control byte"), (b"\x31\x00", "control byte")])
def test_bad_ints_raise(data, what):
    with pytest.raises(ModelFormatError, match=what):
        DlibReader(data).read_int()


def test_unsigned_rejects_sign_and_size_limits():
    with pytest.raises(ModelFormatError, match="no sign"):
        DlibReader(b"\x81\x05").read_uint()
    with pytest.raises(ModelFormatError):
        DlibReader(b"\x03\x01\x02\x03").read_int(nbytes=2)  # more bytes than an int16 holds


@given(st.floats(allow_nan=False, width=32))
@settings(max_examples=200, deadline=None)
def test_float_round_trip(v):
    assert DlibReader(encode_float(v)).read_float() == v


def test_float_special_values_and_known_bytes():
    r = DlibReader(encode_float(math.inf) + encode_float(-math.inf) + encode_float(math.nan))
    a, b, c = r.read_float(), r.read_float(), r.read_float()
    assert a == math.inf and b == -math.inf and math.isnan(c)
    # bytes of 0.04 as dlib wrote it in dlib_face_recognition_resnet_model_v1.dat's loss layer
    assert DlibReader(b"\x03\x0a\xd7\xa3\x81\x1c").read_float() == pytest.approx(0.04, rel=1e-6)
    fast = DlibReader(b"".join(encode_float(x) for x in (1.5, -2.25, 0.0, math.inf))).read_floats(4)
    assert fast.tolist() == [1.5, -2.25, 0.0, math.inf]


def test_float_rejects_old_ascii_format_and_bad_exponent():
    with pytest.raises(ModelFormatError, match="ASCII"):
        DlibReader(b"1.5 ").read_float()
    with pytest.raises(ModelFormatError, match="out of range"):
        DlibReader(encode_int(1) + encode_int(32100)).read_float()


def test_strings_bools_and_sizes():
    r = DlibReader(encode_string("con_4") + b"1" + b"0" + encode_int(10 ** 9, signed=False))
    assert r.read_string() == "con_4"
    assert r.read_bool() is True and r.read_bool() is False
    with pytest.raises(ModelFormatError, match="length of 1000000000"):
        r.read_size(what="a length")
    with pytest.raises(ModelFormatError, match="'0' or '1'"):
        DlibReader(b"\x02").read_bool()
    with pytest.raises(ModelFormatError, match="expected a record tag 'relu_'"):
        DlibReader(encode_string("relu_2")).expect_string("relu_", "a record tag")
    with pytest.raises(ModelFormatError, match="utf-8"):
        DlibReader(b"\x01\x02\xff\xfe").read_string()


def test_tensor_round_trip_and_truncation():
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2) - 5.5
    data = encode_tensor(a)
    out = DlibReader(data).read_tensor()
    assert out.dtype == np.float32 and out.shape == a.shape and np.array_equal(out, a)
    for cut in (1, 3, len(data) // 2, len(data) - 1):
        with pytest.raises(ModelFormatError):
            DlibReader(data[:cut]).read_tensor()
    # a dimension that claims far more data than there is fails before allocating
    huge = encode_int(2) + b"".join(encode_int(d) for d in (10 ** 6, 10 ** 6, 10, 10)) + bytes(16)
    with pytest.raises(ModelFormatError, match="needs"):
        DlibReader(huge).read_tensor()
    with pytest.raises(ModelFormatError, match="version 2"):
        DlibReader(encode_int(3) + data[2:]).read_tensor()


def test_matrix_both_sign_conventions():
    body = b"".join(encode_float(x) for x in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0))
    new = encode_int(-2) + encode_int(-3) + body
    old = encode_int(2) + encode_int(3) + body
    for data in (new, old):
        m = DlibReader(data).read_matrix()
        assert m.shape == (2, 3) and m.tolist() == [[1, 2, 3], [4, 5, 6]]
    with pytest.raises(ModelFormatError, match="expected shape"):
        DlibReader(new).read_matrix(shape=(3, None))
    ints = encode_int(-1) + encode_int(-2) + encode_int(7, signed=False) + encode_int(9, signed=False)
    assert DlibReader(ints).read_matrix(elem="uint").tolist() == [[7, 9]]
    with pytest.raises(ModelFormatError):
        DlibReader(new[:-3]).read_matrix()


def test_vectors():
    uv = encode_int(3, signed=False) + b"".join(encode_int(v, signed=False) for v in (1, 200, 70000))
    assert DlibReader(uv).read_uint_vector().tolist() == [1, 200, 70000]
    fv = encode_int(2, signed=False) + encode_float(0.5) + encode_float(-8.0)
    assert DlibReader(fv).read_float_vector().tolist() == [0.5, -8.0]


@given(st.binary(max_size=64))
@settings(max_examples=300, deadline=None)
def test_random_bytes_only_ever_raise_model_format_error(data):
    r = DlibReader(data)
    for fn in (r.read_int, r.read_float, r.read_string, r.read_tensor, r.read_matrix):
        r.pos = 0
        try:
            fn()
        except ModelFormatError:
            pass


def test_read_dlib_file_errors(tmp_path):
    with pytest.raises(ModelFormatError, match="not a file"):
        ds.read_dlib_file(tmp_path / "missing.dat")
    (tmp_path / "empty.dat").write_bytes(b"")
    with pytest.raises(ModelFormatError, match="empty"):
        ds.read_dlib_file(tmp_path / "empty.dat")
    (tmp_path / "ok.dat").write_bytes(struct.pack("<B", 1) + b"\x05")
    assert ds.read_dlib_file(tmp_path / "ok.dat").read_int() == 5
