"""Fuzz: hundreds of mutated model files end in zero crashes and only EdgeshipError subclasses."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests._onnx_models import dense_relu


@pytest.mark.slow
def test_mutated_models_never_crash(weights, tmp_path, repo):
    onnx_src, _, _ = dense_relu(tmp_path / "dense.onnx", batch="N", n_in=16, n_out=8)
    sources = [weights / "shapes_cnn_int8.tflite", weights / "shapes_cnn_fp32.tflite", onnx_src]
    work = tmp_path / "mutants"
    work.mkdir()
    env = dict(os.environ, PYTHONPATH=str(repo))
    proc = subprocess.run([sys.executable, "-m", "tests._fuzz_child", ",".join(map(str, sources)), "240",
                           str(work), "20261122"], capture_output=True, text=True, timeout=1200, env=env, cwd=repo)
    assert proc.returncode == 0, f"fuzz process died (rc={proc.returncode}): {proc.stderr[-2000:]}"
    tally = json.loads(proc.stdout.strip().splitlines()[-1])
    assert tally["n"] == 240
    assert tally["non_edgeship"] == [], tally["non_edgeship"][:5]
    assert sum(tally["errors"].values()) + tally["loaded_and_ran"] == 240
    # the mutations must really exercise the error paths, not only benign weight flips
    assert tally["errors"].get("ModelFormatError", 0) >= 60, tally
    print("fuzz tally:", tally)
