"""Every command README.md's tour shows runs, in order, on the shipped shapes_cnn model.

The commands are read from README.md itself (so the README cannot drift from what works):
each ``edgeship ...`` line of the tour's bash block runs as ``python -m edgeship ...`` in a
temporary folder holding ``model.keras``, ``model.tflite``, ``calib.npz``, ``val.npz``,
``labels.npy`` and ``labels.txt``; then the README's Python example runs there.
"""
from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


def readme_blocks(lang: str) -> list:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    tour = text[text.index("## 60-second tour"):]
    return re.findall(rf"```{lang}\n(.*?)```", tour, re.S)


def readme_commands() -> list:
    """The tour's ``edgeship`` command lines (continuations joined, comments dropped)."""
    script = readme_blocks("bash")[0].replace("\\\n", " ")
    cmds = []
    for line in script.splitlines():
        line = line.split("  #")[0].strip()
        if line.startswith("edgeship "):
            cmds.append(shlex.split(line)[1:])
    return cmds


def test_the_tour_shows_every_command():
    assert {c[0] for c in readme_commands()} == {"inspect", "convert", "check", "bench", "bundle", "deploy"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    pytest.importorskip("tensorflow", reason="the tour converts a Keras model: edgeship[convert]")
    from edgeship import models
    from edgeship.models.shapes import LABELS, make_dataset

    d = tmp_path_factory.mktemp("readme")
    shutil.copy(models.path("shapes_cnn_keras"), d / "model.keras")
    shutil.copy(models.path("shapes_cnn_fp32"), d / "model.tflite")
    cal, _ = make_dataset(60, seed=1)
    val, val_y = make_dataset(40, seed=2)
    np.savez(d / "calib.npz", image=cal)
    np.savez(d / "val.npz", image=val)
    np.save(d / "labels.npy", val_y)
    (d / "labels.txt").write_text("\n".join(LABELS) + "\n")
    return d


@pytest.mark.slow
def test_readme_commands_run(workdir):
    for args in readme_commands():
        proc = subprocess.run([sys.executable, "-m", "edgeship", *args, "--json"], cwd=workdir,
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"edgeship {' '.join(args)}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
        lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
        assert len(lines) == 1, f"edgeship {' '.join(args)} printed {len(lines)} lines on stdout"
        json.loads(lines[0])
    for f in ("out/model_int8.tflite", "out/model_fp32.onnx", "coral/model_int8.tflite", "kws_bundle.zip",
              "deploy/rpi4/manifest.json"):
        assert (workdir / f).is_file(), f

    code = "import numpy as np\nfeatures = np.zeros((1, 32, 32, 1))\n" + readme_blocks("python")[0]
    code += "\nassert probs.shape == (1, 3) and np.isfinite(probs).all()\n"
    # the bundle the tour wrote knows which file serves which target
    code += ("assert m.path.name == 'model_int8.tflite', m.path\n"
             "import json; files = json.load(open('kws_bundle/manifest.json'))['files']\n"
             "assert 'rpi4' in files['tflite-int8']['targets'] and 'edgetpu' not in files['tflite-int8']['targets']\n"
             "try:\n    edgeship.load('kws_bundle', target='edgetpu')\nexcept edgeship.TargetError as e:\n"
             "    assert 'serves' in str(e) and 'tflite-int8 ->' in str(e), e\n"
             "else:\n    raise AssertionError('edgetpu: no file serves it, load must refuse')\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
