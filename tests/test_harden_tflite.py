"""Found by fuzzing at scale (issue 11): an operator whose required input is -1 passed the structure
check and made LiteRT segfault (verify="structure" crashed the process; "full" was saved by the probe)."""
from __future__ import annotations

import os
import struct
import subprocess
import sys

import pytest

from edgeship.errors import ModelFormatError
from edgeship.tflite_schema import read_tflite
from tests._fuzz_tflite import operator_input_sites


def _conv_weights_removed(weights) -> bytes:
    data = bytearray((weights / "shapes_cnn_int8.tflite").read_bytes())
    model = read_tflite(bytes(data))
    k = next(i for i, op in enumerate(model.subgraphs[0].operators) if op.op == "CONV_2D")
    struct.pack_into("<i", data, operator_input_sites(bytes(data))[k][1], -1)  # the filter: required
    return bytes(data)


def test_required_input_left_empty_is_refused(weights, tmp_path, repo):
    data = _conv_weights_removed(weights)
    with pytest.raises(ModelFormatError, match="required input 1"):
        read_tflite(data)
    p = tmp_path / "no_filter.tflite"
    p.write_bytes(data)
    code = ("import edgeship, sys\n"
            "try:\n    edgeship.load(sys.argv[1], verify='structure').predict\n"
            "except edgeship.ModelFormatError: print('refused')\n")
    proc = subprocess.run([sys.executable, "-c", code, str(p)], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(repo)))
    assert proc.returncode == 0 and "refused" in proc.stdout, (proc.returncode, proc.stderr[-500:])


def test_optional_bias_may_be_empty(weights):
    data = bytearray((weights / "shapes_cnn_fp32.tflite").read_bytes())
    model = read_tflite(bytes(data))
    k = next(i for i, op in enumerate(model.subgraphs[0].operators) if op.op == "CONV_2D")
    struct.pack_into("<i", data, operator_input_sites(bytes(data))[k][2], -1)
    read_tflite(bytes(data))  # the bias of a convolution is optional
