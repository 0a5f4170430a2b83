"""The runtime path must never import TensorFlow, onnx, torch, keras or cv2 (checked in a clean process)."""
from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("tensorflow", "torch", "onnx", "keras", "cv2", "tf2onnx", "jax")

SCRIPT = r"""
import json, sys
import numpy as np
import edgeship
after_import = [m for m in %(heavy)r if m in sys.modules]
m = edgeship.load(%(model)r)
m.predict(np.zeros((1, 32, 32, 1), np.float32))
b = edgeship.load(%(onnx)r)
b.predict(np.zeros((2, 8), np.float32))
from edgeship.inspect import inspect_model
inspect_model(%(model)r)
print(json.dumps({"after_import": after_import, "after_predict": [m for m in %(heavy)r if m in sys.modules]}))
"""


def test_runtime_path_stays_light(weights, tmp_path):
    from tests._onnx_models import dense_relu

    onnx_path, _, _ = dense_relu(tmp_path / "d.onnx")
    code = SCRIPT % {"heavy": HEAVY, "model": str(weights / "shapes_cnn_int8.tflite"), "onnx": str(onnx_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res == {"after_import": [], "after_predict": []}


def test_cli_help_stays_light():
    code = "import sys; from edgeship.cli import app; print([m for m in %r if m in sys.modules])" % (HEAVY,)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
