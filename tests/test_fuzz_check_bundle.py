"""`edgeship check` and `edgeship bundle` on fuzz mutants (issue 11): the two untyped errors the
fuzz harness found once it also ran targets.check and write_bundle on every model mutant,
regenerated here from their seeds (bench/fuzz.py --formats tflite,onnx --n 2000, seed 1)."""
from __future__ import annotations

import struct

import pytest

from edgeship.bundle import write_bundle
from edgeship.errors import ModelFormatError
from edgeship.targets import check
from tests import _fuzz_harness as h
from tests import _fuzz_tflite as ft


def test_operator_code_version_out_of_range(weights, tmp_path):
    """tflite #1040: an OperatorCode version <= 0 indexed the runtime-version table from its end (IndexError)."""
    src = weights / "shapes_cnn_int8.tflite"
    data = bytearray(src.read_bytes())
    for pos, _ in ft.sites(bytes(data))["op_version"]:
        struct.pack_into("<i", data, pos, -7)
    p = tmp_path / "m.tflite"
    p.write_bytes(bytes(data))
    report = check(p, "rpi4")  # the op versions are unknown to edgeship's table: reported, not a crash
    assert report.to_dict()
    write_bundle(tmp_path / "b", {"m": p})


def test_onnx_initializer_with_an_astronomic_declared_size(tmp_path, repo):
    """onnx #1864: an initializer declaring ~2**3176 bytes overflowed float() in check's memory rule."""
    pytest.importorskip("onnx")
    srcs = h.prepare(tmp_path / "src", repo)["onnx"]
    job = {"fmt": "onnx", "seed": 1, "sources": srcs["sources"], "template": None, "work": str(tmp_path)}
    p, _ = h.CaseMaker(job).make(1864)
    with pytest.raises(ModelFormatError, match=r"declares shape .*beyond any real model"):
        check(p, "rpi4")
    with pytest.raises(ModelFormatError, match=r"beyond any real model"):
        write_bundle(tmp_path / "b", {"m": p})
