"""A tiny Keras classifier, its data, and one ``edgeship report --json`` run of it, built once per
test process (tests/test_report.py and tests/test_report_html.py share it)."""
from __future__ import annotations

import atexit
import functools
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

RUNS = ["--runs", "5", "--warmup", "1"]
# A deterministic stand-in task metric for --evaluate: the file's size / 1e5 (tests the plumbing:
# substitution of {model}, the JSON line, one call per format and for the source).
EVAL_SCRIPT = "import json, os, sys; print('chatter'); print(json.dumps({'accuracy': os.path.getsize(sys.argv[1]) / 1e5}))"


def size_metric(path) -> dict:
    return {"accuracy": Path(path).stat().st_size / 1e5}


@functools.lru_cache(maxsize=None)
def workdir() -> Path:
    d = Path(tempfile.mkdtemp(prefix="edgeship-report-test-"))
    atexit.register(shutil.rmtree, d, True)
    return d


@functools.lru_cache(maxsize=None)
def tiny_inputs() -> dict:
    """tiny.keras (8x8x1 -> 3 classes, trained a few epochs on a learnable pattern) + .npy data."""
    import keras

    d = workdir() / "inputs"
    d.mkdir()
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1), name="x")
    h = keras.layers.Conv2D(4, 3, activation="relu")(inp)
    h = keras.layers.Flatten()(h)
    model = keras.Model(inp, keras.layers.Dense(3)(h))
    rng = np.random.default_rng(0)
    patterns = rng.standard_normal((3, 8, 8, 1)).astype("float32") * 2
    y = rng.integers(0, 3, 160)
    x = (patterns[y] + rng.standard_normal((160, 8, 8, 1))).astype("float32")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=5, verbose=0)
    model.save(d / "tiny.keras")
    np.save(d / "cal.npy", x[:96])
    np.save(d / "val.npy", x[96:])
    np.save(d / "labels.npy", y[96:])
    (d / "eval.py").write_text(EVAL_SCRIPT + "\n")
    return {"src": d / "tiny.keras", "cal": d / "cal.npy", "val": d / "val.npy", "labels": d / "labels.npy",
            "eval": d / "eval.py"}


def cli_args(out: Path) -> list:
    i = tiny_inputs()
    return ["report", str(i["src"]), "--calibration", str(i["cal"]), "--validation", str(i["val"]),
            "--labels", str(i["labels"]), "--evaluate", f"{sys.executable} {i['eval']} {{model}}",
            *RUNS, "-o", str(out)]


@functools.lru_cache(maxsize=None)
def cli_report():
    """(out dir, completed process, parsed JSON) of ``python -m edgeship report ... --json``."""
    out = workdir() / "report_cli"
    proc = subprocess.run([sys.executable, "-m", "edgeship", *cli_args(out), "--json"],
                          capture_output=True, text=True, timeout=600)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    data = json.loads(lines[-1]) if lines else None
    return out, proc, data
