"""`edgeship convert` prints exactly one JSON object and exits non-zero when out of tolerance."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest


@pytest.fixture(scope="module")
def small_keras(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(0)
    d = tmp_path_factory.mktemp("cli")
    m = keras.Sequential([keras.Input((12,), name="x"), keras.layers.Dense(16, activation="relu"),
                          keras.layers.Dense(5)])
    m.save(d / "m.keras")
    x = np.random.default_rng(0).standard_normal((40, 12)).astype(np.float32)
    np.save(d / "cal.npy", x)
    return d


def _run(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "edgeship", "convert", *args], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.mark.slow
def test_convert_json_prints_one_object(small_keras):
    d = small_keras
    r = _run(str(d / "m.keras"), "--quantize", "int8", "--calibration", str(d / "cal.npy"),
             "-o", str(d / "out" / "m.tflite"), "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    obj = json.loads(r.stdout)  # exactly one JSON document, nothing else on stdout
    assert r.stdout.strip().count("\n") == 0
    assert obj["ok"] is True
    (o,) = obj["outputs"]
    assert o["format"] == "tflite" and o["quantization"] == "int8" and o["bytes"] > 0
    assert {"max_abs", "mean_abs", "cosine", "top1_agreement"} <= set(o["parity"])
    assert obj["calibration"]["sha256"] and obj["validation"]["count"] == 8  # 20 % held out


@pytest.mark.slow
def test_out_of_tolerance_exits_nonzero_and_names_the_output(small_keras):
    d = small_keras
    r = _run(str(d / "m.keras"), "--quantize", "fp16", "-o", str(d / "tight"), "--tolerance", "max_abs=1e-12",
             "--json")
    assert r.returncode == 1, (r.stdout, r.stderr[-2000:])
    obj = json.loads(r.stdout)
    assert obj["ok"] is False
    o = obj["outputs"][0]
    assert not o["parity"]["passed"] and any("max-abs error" in f for f in o["parity"]["failures"])
    assert o["path"].endswith(".rejected")
    r2 = _run(str(d / "m.keras"), "--quantize", "fp16", "-o", str(d / "tight2"), "--tolerance", "max_abs=1e-12")
    assert r2.returncode == 1 and "m_fp16.tflite" in r2.stderr and "max-abs error" in r2.stderr


@pytest.mark.slow
def test_bad_source_exits_2_with_json_error(tmp_path):
    p = tmp_path / "x.keras"
    p.write_bytes(b"junk")
    r = _run(str(p), "-o", str(tmp_path / "o"), "--json")
    assert r.returncode == 2
    err = json.loads(r.stdout)["error"]
    assert err["type"] == "ModelFormatError"
