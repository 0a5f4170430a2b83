"""Hardening of Model.predict: failed resizes, huge batches, threads, out-of-range floats (issue 11)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import edgeship
from edgeship.errors import InputSpecError
from tests._onnx_models import dense_relu


def test_failed_resize_leaves_model_usable(weights, repo):
    """Defect 2: after a resize that cannot be allocated, the model must keep working (was:
    untyped ValueError 'Tensor is unallocated', then heap corruption / SIGABRT)."""
    env = dict(os.environ, PYTHONPATH=str(repo), TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, "-m", "tests._harden_resize_child", str(weights / "shapes_cnn_int8.tflite"),
         str(int(2.5 * 2 ** 30)), "200000"], capture_output=True, text=True, timeout=300, env=env, cwd=repo)
    assert proc.returncode == 0, f"child died rc={proc.returncode}: {proc.stderr[-1500:]}"
    calls = json.loads(proc.stdout.strip().splitlines()[-1])["calls"]
    small = [c for i, c in enumerate(calls) if i not in (0, 3, 4)]
    assert small == ["same"] * 5, calls
    assert all(c in ("TargetError", "huge ok") for c in (calls[0], calls[3], calls[4])), calls


def test_huge_dynamic_batch_runs_in_chunks(weights):
    m = edgeship.load(weights / "shapes_cnn_int8.tflite")
    x = np.random.default_rng(1).uniform(0, 1, (2600, 32, 32, 1)).astype(np.float32)
    whole = m.predict(x)
    assert whole.shape == (2600, 3)
    assert m._impl.current_shape(0)[0] <= m.max_batch  # never resized beyond a chunk
    m.max_batch = 1 << 20
    np.testing.assert_array_equal(m.predict(x), whole)
    m.max_batch = 7
    np.testing.assert_array_equal(m.predict(x[:30]), whole[:30])


def _hammer(model, inputs, refs, n_calls, errors, wrong):
    def work(t):
        rng = np.random.default_rng(t)
        for _ in range(n_calls):
            k = int(rng.integers(0, len(inputs)))
            try:
                got = model.predict(inputs[k])
            except Exception as exc:  # noqa: BLE001 - counted, the test asserts there are none
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            if not np.array_equal(got, refs[k]):
                wrong.append(k)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()


@pytest.mark.parametrize("which", ["tflite", "onnx"])
def test_one_model_shared_by_8_threads(weights, tmp_path, which):
    """Defect 5: 8 threads on one TFLite Model got untyped RuntimeErrors and other threads' results."""
    if which == "tflite":
        m = edgeship.load(weights / "shapes_cnn_int8.tflite", threads=1)
        shape = (32, 32, 1)
    else:
        src, _, _ = dense_relu(tmp_path / "d.onnx", batch="N", n_in=16, n_out=8)
        m = edgeship.load(src, threads=1)
        shape = (16,)
    rng = np.random.default_rng(3)
    # different batch sizes too, so threads also race on resizing
    inputs = [rng.uniform(0, 1, ((i % 3) + 1,) + shape).astype(np.float32) for i in range(16)]
    refs = [m.predict(x) for x in inputs]
    errors, wrong = [], []
    _hammer(m, inputs, refs, 150, errors, wrong)
    assert errors == [] and wrong == [], (errors[:3], len(wrong))


def test_float64_beyond_float32_range_is_rejected(weights, tmp_path):
    """Defect 11: finite float64 values beyond float32's range silently became inf."""
    m = edgeship.load(weights / "shapes_cnn_fp32.tflite")
    x = np.zeros((1, 32, 32, 1), np.float64)
    x[0, 0, 0, 0] = 1e300
    with pytest.raises(InputSpecError, match="range"):
        m.predict(x)
    q = edgeship.load(weights / "shapes_cnn_int8.tflite")
    with pytest.raises(InputSpecError, match="range"):
        q.predict(x)
    x[0, 0, 0, 0] = 1e30  # large but representable: quantization saturates, as for float32 input
    assert np.isfinite(q.predict(x)).all()
    src, _, _ = dense_relu(tmp_path / "d.onnx", batch="N", n_in=16, n_out=8)
    o = edgeship.load(src)
    with pytest.raises(InputSpecError, match="range"):
        o.predict(np.full((1, 16), -1e200))


_BANNER_CHILD = r"""
import logging, os, sys
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="LOG %(name)s %(message)s")
import edgeship
from edgeship._io import native_chatter_to_log
m = edgeship.load(sys.argv[1])
m2 = edgeship.load(sys.argv[1], threads=2)
with native_chatter_to_log("edgeship.test", (b"INFO: noise",)):
    os.write(2, b"INFO: noise from C\nERROR: a real message\n")
print("done", flush=True)
"""


def test_runtime_banner_goes_to_the_log_not_stderr(weights, repo):
    """LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on fd 2 at the
    first allocation in a process: edgeship sends it to the "edgeship.runtime" logger; any
    other native output written meanwhile still reaches stderr."""
    env = dict(os.environ, PYTHONPATH=str(repo))
    proc = subprocess.run([sys.executable, "-c", _BANNER_CHILD, str(weights / "kws_dscnn_int8.tflite")],
                          capture_output=True, text=True, timeout=120, env=env, cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "ERROR: a real message\n", proc.stderr
    out = proc.stdout.splitlines()
    assert out[-1] == "done"
    assert "LOG edgeship.runtime INFO: Created TensorFlow Lite XNNPACK delegate for CPU." in out, out
    assert "LOG edgeship.test INFO: noise from C" in out, out


def test_models_load_in_a_process_without_stderr(weights, repo):
    """A daemon started with fd 2 closed: the banner capture stands aside, loading still works."""
    code = ("import os, sys; os.close(2); sys.stderr = None\n"
            "import edgeship, numpy as np\n"
            "m = edgeship.load(sys.argv[1])\n"
            "print(m.predict(np.zeros((1, 49, 10, 1), np.float32)).shape)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(weights / "kws_dscnn_int8.tflite")],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(repo)),
                          cwd=repo)
    assert proc.returncode == 0 and proc.stdout.strip() == "(1, 12)", (proc.returncode, proc.stdout)
