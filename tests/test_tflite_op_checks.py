"""Operator option and type checks (issue 11): the fuzz crashers that used to kill the process
under ``load(verify="structure")``, rebuilt here from the zoo's small valid models plus the one
mutation that crashed LiteRT (found by ``bench/fuzz.py --formats tflite``), must now raise a
typed ModelFormatError before any interpreter sees the file.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

import edgeship
from edgeship.errors import ModelFormatError
from edgeship.tflite_schema import read_tflite
from tests import _fuzz_tflite as ft


def _layout(data: bytes) -> list:
    """Per operator of the main subgraph: byte positions of its inputs, options type and option fields."""
    w = ft._Walk(data)
    model = w.table(ft._u32(data, 0))
    sg = w.tables(model, 2)[0]
    out = []
    for op in w.tables(sg, 3):
        opts = w.ref(op, 4)
        fields = {}
        if opts is not None:
            pos, vt, vt_len = w.table(opts)
            for slot in range(4, vt_len, 2):
                o = struct.unpack_from("<H", data, vt + slot)[0]
                if o:
                    fields[slot] = pos + o
        out.append({"inputs": w.vector(op, 1, 4), "options_type": w.field(op, 3), "fields": fields})
    return out


def _mutant(tmp_path: Path, src: Path, edits) -> Path:
    b = bytearray(src.read_bytes())
    for fmt, pos, value in edits:
        struct.pack_into("<" + fmt, b, pos, value)
    p = tmp_path / f"mutant_{src.name}"
    p.write_bytes(bytes(b))
    return p


def _refused(p: Path, match: str) -> None:
    with pytest.raises(ModelFormatError, match=match):
        edgeship.load(p, verify="structure")
    with pytest.raises(ModelFormatError, match=match):
        edgeship.load(p)  # the default path refuses it before the probe, too


def test_pool_filter_height_int_min(weights, tmp_path):
    """Fuzz crasher tflite #157 (seed 1): MAX_POOL_2D filter_height = INT32_MIN segfaulted in predict."""
    src = weights / "shapes_cnn_fp32.tflite"
    pool = _layout(src.read_bytes())[5]
    assert read_tflite(src.read_bytes()).main.operators[5].op == "MAX_POOL_2D"
    p = _mutant(tmp_path, src, [("i", pool["fields"][12], -(1 << 31))])
    _refused(p, r"operator 5 \(MAX_POOL_2D\) of main has filter_h = -2147483648; expected 1\.\.65536")


@pytest.mark.parametrize("op,slot,fmt,value,match", [
    (0, 6, "i", 0, "stride_w = 0"),                  # CONV_2D
    (0, 8, "i", 0x7FFFFFFF, "stride_h = 2147483647"),
    (0, 10, "b", 100, "fused_activation = 100"),
    (1, 10, "i", 0, "filter_w = 0"),                 # MAX_POOL_2D
    (1, 4, "b", 7, "padding = 7"),
    (1, 12, "i", -5, "filter_h = -5"),
    (8, 4, "f", float("nan"), "beta = nan"),          # SOFTMAX
])
def test_option_values_out_of_range(weights, tmp_path, op, slot, fmt, value, match):
    src = weights / "shapes_cnn_int8.tflite"
    p = _mutant(tmp_path, src, [(fmt, _layout(src.read_bytes())[op]["fields"][slot], value)])
    _refused(p, match)


def test_options_of_the_wrong_type(weights, tmp_path):
    src = weights / "shapes_cnn_int8.tflite"
    lay = _layout(src.read_bytes())
    p = _mutant(tmp_path, src, [("B", lay[6]["options_type"], 1)])  # MEAN with Conv2DOptions
    _refused(p, r"MEAN\) of main carries builtin options of union type 1; this op takes type 27")
    p = _mutant(tmp_path, src, [("B", lay[0]["options_type"], 0)])  # CONV_2D without options
    _refused(p, r"CONV_2D\) of main has no builtin options")


def test_reshape_of_an_int32_constant_into_int8(weights, tmp_path):
    """Fuzz crasher tflite #10736: RESHAPE's input swapped for an int32[64] constant, output int8[1,64]:
    the kernel copied 256 bytes into a 64-byte buffer (heap corruption, SIGSEGV/SIGABRT later)."""
    src = weights / "kws_dscnn_int8.tflite"
    m = read_tflite(src.read_bytes())
    k = next(o.index for o in m.main.operators if o.op == "RESHAPE")
    const = next(t.index for t in m.main.tensors if t.dtype == "int32" and t.shape == (64,))
    p = _mutant(tmp_path, src, [("i", _layout(src.read_bytes())[k]["inputs"][0], const)])
    _refused(p, r"RESHAPE\) of main turns int32 input .* into int8 output .*; this op keeps the element type")


def test_reshape_with_a_64_entry_shape_tensor(weights, tmp_path):
    """Fuzz crasher tflite #12185: RESHAPE's shape input swapped for an int32[64] constant (bias values)."""
    src = weights / "kws_dscnn_int8.tflite"
    m = read_tflite(src.read_bytes())
    k = next(o.index for o in m.main.operators if o.op == "RESHAPE")
    const = next(t.index for t in m.main.tensors if t.dtype == "int32" and t.shape == (64,))
    p = _mutant(tmp_path, src, [("i", _layout(src.read_bytes())[k]["inputs"][1], const)])
    _refused(p, r"RESHAPE\) of main takes a 64-dimensional new shape .*at most 8 dimensions")
    scalar = next(t.index for t in m.main.tensors if t.dtype == "int32" and t.shape == ())
    p = _mutant(tmp_path, src, [("i", _layout(src.read_bytes())[k]["inputs"][1], scalar)])
    edgeship.load(p, verify="structure")  # a 0-d int32 constant (one size) is a shape the kernel handles


def test_constant_model_input(weights, tmp_path):
    """Fuzz case tflite #10980: the model input swapped for a per-channel quantized constant escaped
    predict as an untyped numpy ValueError."""
    src = weights / "shapes_cnn_int8.tflite"
    data = src.read_bytes()
    w = ft._Walk(data)
    sg = w.tables(w.table(ft._u32(data, 0)), 2)[0]
    conv_in = _io_positions(data)[0][0][0]
    p = _mutant(tmp_path, src, [("i", w.vector(sg, 1, 4)[0], 3), ("i", conv_in, 3)])
    _refused(p, r"input 'shapes_cnn_1/probs_1/MatMul' of main is a constant tensor")


def test_per_channel_quantized_input_broadcasts_along_its_axis():
    """The input plan quantizes a per-channel input along its axis (as outputs are dequantized)."""
    from edgeship.runtime import _InputPlan
    from edgeship.spec import Quantization, TensorSpec

    spec = TensorSpec("x", (3, 4), "int8", Quantization((0.5, 1.0, 2.0), (0, 1, -1), 0))
    x = np.ones((3, 4), np.float32)
    q = _InputPlan(spec).prepare(x)
    np.testing.assert_array_equal(q, np.array([[2] * 4, [2] * 4, [0] * 4], np.int8))


def test_every_zoo_model_passes(weights):
    for f in sorted(weights.glob("*.tflite")):
        read_tflite(f.read_bytes())


def _io_positions(data: bytes):
    w = ft._Walk(data)
    sg = w.tables(w.table(ft._u32(data, 0)), 2)[0]
    return [(w.vector(op, 1, 4), w.vector(op, 2, 4)) for op in w.tables(sg, 3)]


def test_tensor_written_twice(weights, tmp_path):
    """Fuzz crasher bundle #26174: operator 5's table offset pointed at operator 4's, so tensor 14 was
    written twice and MEAN's input (tensor 15) by nobody: SIGSEGV in the interpreter."""
    src = weights / "shapes_cnn_int8.tflite"
    outs5 = _io_positions(src.read_bytes())[5][1]
    p = _mutant(tmp_path, src, [("i", outs5[0], 14)])
    _refused(p, r"operator 5 \(MAX_POOL_2D\) of main writes tensor 14 .*which operator 4 also writes")


def test_tensor_read_before_it_is_written(weights, tmp_path):
    src = weights / "shapes_cnn_int8.tflite"
    ins1 = _io_positions(src.read_bytes())[1][0]
    p = _mutant(tmp_path, src, [("i", ins1[0], 15)])  # MAX_POOL 1 reads MAX_POOL 5's output
    _refused(p, r"operator 1 \(MAX_POOL_2D\) of main reads tensor 15 .*which operator 5 writes only afterwards")


def test_op_with_too_few_inputs(weights, tmp_path):
    """Fuzz crasher bundle #46195: the SOFTMAX opcode became SPLIT (two inputs) with one input: SIGSEGV."""
    src = weights / "shapes_cnn_int8.tflite"
    data = src.read_bytes()
    w = ft._Walk(data)
    codes = w.tables(w.table(ft._u32(data, 0)), 1)
    softmax = next(k for k, c in enumerate(read_tflite(data).operator_codes) if c.name == "SOFTMAX")
    edits = [(fmt, q, 49) for slot, fmt in ((0, "B"), (3, "i")) for q in [w.field(codes[softmax], slot)] if q is not None]
    p = _mutant(tmp_path, src, edits)
    _refused(p, r"operator 8 \(SPLIT\) of main has 1 inputs; this op takes 2")


def test_shape_that_contradicts_its_signature(weights, tmp_path):
    """Fuzz case tflite #4504 (seed 1): an activation's channel count 16 -> 1048576 while its shape
    signature still said 16: LiteRT planned a 1 GB arena (7 s, 1.1 GB RSS; a hang under load)."""
    src = weights / "shapes_cnn_int8.tflite"
    data = src.read_bytes()
    shape_sites = [pos for pos, _ in ft.sites(data)["shape"]]
    t10 = read_tflite(data).main.tensors[10]
    assert t10.shape == (1, 32, 32, 16)
    # the fourth entry of tensor 10's shape vector (the first vector of each tensor's two is its shape)
    pos = next(p for p in shape_sites if struct.unpack_from("<i", data, p)[0] == 16
               and struct.unpack_from("<4i", data, p - 12) == (1, 32, 32, 16))
    p = _mutant(tmp_path, src, [("i", pos, 1 << 20)])
    _refused(p, r"shape signature \[-1, 32, 32, 16\] does not match shape \[1, 32, 32, 1048576\]")
