"""The tflite-runtime backend, run for real from the side venv `make test` builds (it needs numpy<2)."""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

import edgeship

SCRIPT = r"""
import json, sys, numpy as np, edgeship
x = np.load(sys.argv[2])
m = edgeship.load(sys.argv[1], backend="auto", threads=1)
auto = m.backend
m = edgeship.load(sys.argv[1], backend="tflite-runtime", threads=1)
y = m.predict(x)
heavy = [k for k in ("tensorflow", "ai_edge_litert", "onnx", "torch") if k in sys.modules]
print(json.dumps({"auto": auto, "backend": m.backend, "numpy": np.__version__, "y": y.tolist(), "heavy": heavy}))
"""


@pytest.mark.parametrize("name", ["shapes_cnn_int8.tflite", "shapes_cnn_fp32.tflite"])
def test_tflite_runtime_matches_litert(repo, weights, tmp_path, name):
    py = repo / ".venv-tflrt" / "bin" / "python"
    if not py.exists():
        pytest.skip("side venv .venv-tflrt is missing (`make test` builds it: numpy<2 + tflite-runtime 2.14)")
    x = np.random.default_rng(3).uniform(0, 1, (4, 32, 32, 1)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = subprocess.run([str(py), "-c", SCRIPT, str(weights / name), str(tmp_path / "x.npy")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["backend"] == "tflite-runtime" and res["auto"] == "tflite-runtime"  # the only one installed there
    assert res["numpy"].startswith("1.") and res["heavy"] == []
    ref = edgeship.load(weights / name, backend="litert", threads=1).predict(x)
    np.testing.assert_allclose(np.asarray(res["y"], np.float32), ref, atol=1e-5)
