"""Issue 12, "Progress and quiet" and "Output that fits": converter chatter goes to a log file,
tables are not cut at 80 columns when the output is piped, ``bench`` shows an int8 input as int8."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
INT8_MODEL = REPO / "models" / "weights" / "shapes_cnn_int8.tflite"
# What TensorFlow, absl, Keras' exporter and the MLIR converter print during a conversion
CHATTER = ("tensorflow/", "W0000", "I0000", "absl", "I tensorflow", "Saved artifact at", "TensorSpec(",
           "WARNING: All log messages")


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "COLUMNS")}
    env.update(extra)
    return env


def test_tables_are_not_cut_when_stderr_is_piped():
    code = ("from rich.table import Table\n"
            "from edgeship.cli.console import console\n"
            "t = Table('metric', 'value')\n"
            "t.add_row('inputs', 'x' * 150 + '_END')\n"
            "console().print(t)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    assert "x" * 150 + "_END" in r.stderr, f"the row was cut or wrapped:\n{r.stderr}"


def test_bench_shows_an_int8_input_as_int8():
    from edgeship.benchmark import benchmark

    r = benchmark(INT8_MODEL, runs=3, warmup=0, threads=1)
    assert r.inputs[0]["dtype"] == "int8" and r.inputs[0]["fed_dtype"] == "float32"
    cli = subprocess.run([sys.executable, "-m", "edgeship", "bench", str(INT8_MODEL), "--runs", "3", "--warmup", "0",
                          "--threads", "1"], capture_output=True, text=True, env=_env(), timeout=300)
    assert cli.returncode == 0, cli.stderr[-2000:]
    row = next(ln for ln in cli.stderr.splitlines() if "inputs" in ln)
    assert "int8" in row and "fed float32" in row, row
    js = subprocess.run([sys.executable, "-m", "edgeship", "bench", str(INT8_MODEL), "--runs", "3", "--warmup", "0",
                         "--json"], capture_output=True, text=True, env=_env(), timeout=300)
    assert json.loads(js.stdout)["inputs"][0]["dtype"] == "int8"


@pytest.mark.slow
def test_convert_chatter_goes_to_the_log_not_the_terminal(tmp_path):
    pytest.importorskip("tensorflow", reason="needs edgeship[convert]")
    import keras

    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((12,), name="x"), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
    m.save(tmp_path / "m.keras")
    np.save(tmp_path / "cal.npy", np.random.default_rng(0).standard_normal((30, 12)).astype(np.float32))
    out = tmp_path / "out"
    # TF_CPP_MIN_LOG_LEVEL is unset: TensorFlow logs at its default level, as for a user
    r = subprocess.run([sys.executable, "-m", "edgeship", "convert", str(tmp_path / "m.keras"), "--quantize", "int8",
                        "--calibration", str(tmp_path / "cal.npy"), "-o", str(out / "m.tflite")],
                       capture_output=True, text=True, env=_env(), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    terminal = r.stdout + r.stderr
    leaked = [ln for ln in terminal.splitlines() if any(c in ln for c in CHATTER)]
    assert not leaked, f"{len(leaked)} library lines reached the terminal, e.g. {leaked[:3]}"
    log = out / "edgeship-convert.log"
    assert str(log) in terminal  # the summary names the log
    held = [ln for ln in log.read_text(errors="replace").splitlines() if any(c in ln for c in CHATTER)]
    assert held, "the converter log holds none of the library output"
