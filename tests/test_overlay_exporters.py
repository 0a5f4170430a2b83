"""onnx2tf and litert-torch run for real, each from its side overlay, in a child process.

Neither package can live in the main venv (the Makefile's overlay targets say why), so
``make venv-test`` installs each into its own ``pip --target`` folder. Here the child
(tests/_overlay_convert.py) gets that folder on PYTHONPATH and runs the public
``convert(..., to="tflite")``, whose parity check must pass; then THIS process, which never
imports onnx2tf / tf-keras / litert-torch, loads the .tflite with ``edgeship.load`` and checks
its predictions on fresh inputs against the source (ONNX Runtime or torch).
Without the overlay the tests skip and say how to build it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edgeship
from tests._onnx_helpers import image_batch
from tests._overlay_convert import MARK, WATCHED_ENV

REPO = Path(__file__).resolve().parent.parent
CHILD_TIMEOUT_S = 300


def _overlay(name: str) -> Path:
    root = REPO / f".overlay-{name}"
    if not (root / ".stamp").is_file():
        pytest.skip(f"{root.name}/ is not built (run `make venv-test`, or `make overlays`; "
                    f"a failed pip install leaves no .stamp)")
    return root


def _convert_in_child(overlay: Path, tmp: Path, source_args: list, validation: np.ndarray, out_name: str,
                      expect_ok: bool = True):
    """Run the driver with the overlay on PYTHONPATH; return (report dict, .tflite path)."""
    val = tmp / f"{out_name}.validation.npy"
    np.save(val, validation)
    out = tmp / f"{out_name}.tflite"
    env = {k: v for k, v in os.environ.items() if k not in WATCHED_ENV}
    env["PYTHONPATH"] = str(overlay)  # only the overlay: the repo comes first through -m and cwd
    cmd = [sys.executable, "-m", "tests._overlay_convert", *source_args, "--validation", str(val),
           "--out", str(out), "--offline"]
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the {overlay.name} conversion ran over {CHILD_TIMEOUT_S} s: {exc}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    assert lines, (f"the child wrote no result (exit {proc.returncode}); stderr tail:\n"
                   f"{proc.stderr[-3000:]}")
    report = json.loads(lines[-1][len(MARK):])
    if not expect_ok:
        return dict(report, exit=proc.returncode), out
    assert proc.returncode == 0 and report["ok"], (
        f"conversion failed (exit {proc.returncode}): {report.get('error')}\nstderr tail:\n{proc.stderr[-3000:]}")
    return report, out


def _agreement(got: np.ndarray, want: np.ndarray) -> tuple:
    """(max abs difference, cosine similarity) over the flattened outputs."""
    got, want = np.asarray(got, np.float64).ravel(), np.asarray(want, np.float64).ravel()
    cos = float(got @ want / (np.linalg.norm(got) * np.linalg.norm(want) + 1e-30))
    return float(np.max(np.abs(got - want))), cos


def _check_parity_record(report: dict, exporter: str, out: Path) -> dict:
    (rec,) = report["outputs"]
    assert rec["exporter"] == exporter and rec["shipped"] and Path(rec["path"]) == out
    par = rec["parity"]
    assert par["passed"] and not par["failures"], par
    print(f"\n{exporter} in the child ({report['seconds']} s): max_abs={par['max_abs']:.3g} "
          f"rel_max_abs={par['rel_max_abs']:.3g} 1-cosine_min={1 - par['cosine_min']:.3g} n={par['n_samples']}")
    return par


def _compare(tflite: Path, reference_fn, batches: np.ndarray, label: str, rel_tol: float = 1e-4):
    """Predict each sample with the .tflite in this process and compare with ``reference_fn``."""
    model = edgeship.load(tflite)
    assert model.format == "tflite"
    worst_abs, worst_cos, scale = 0.0, 1.0, 0.0
    for i in range(len(batches)):
        x = batches[i:i + 1]
        got, want = model.predict(x), reference_fn(x)
        if not isinstance(got, dict):
            got, want = {"out": got}, {"out": want}
        assert list(got) == list(want)
        for name in want:
            assert got[name].shape == want[name].shape, (name, got[name].shape, want[name].shape)
            mx, cos = _agreement(got[name], want[name])
            worst_abs, worst_cos = max(worst_abs, mx), min(worst_cos, cos)
            scale = max(scale, float(np.max(np.abs(want[name]))))
    print(f"{label} in pytest: max_abs={worst_abs:.3g} (output scale {scale:.3g}) 1-cosine_min={1 - worst_cos:.3g}")
    assert worst_abs <= rel_tol * max(scale, 1.0), (worst_abs, scale)
    assert worst_cos >= 0.99999, worst_cos
    return worst_abs, worst_cos


@pytest.mark.slow
def test_torch_cnn_to_tflite_through_litert_torch_overlay(tmp_path):
    torch = pytest.importorskip("torch", reason="PyTorch (extra [torch]) is not installed")
    from tests._onnx_helpers import small_cnn

    overlay = _overlay("litert-torch")
    report, out = _convert_in_child(overlay, tmp_path, ["--torch-cnn", "0"], image_batch(8, seed=2), "cnn_torch")
    _check_parity_record(report, "tflite-fp32-torch", out)
    assert "litert_torch" in report["overlay_modules"], report["overlay_modules"]
    assert "litert_torch" not in sys.modules  # the pytest process stays clean
    net = small_cnn(0)  # the same seeded module the child converted

    def reference(x):
        with torch.no_grad():
            return net(torch.from_numpy(x)).numpy()

    _compare(out, reference, image_batch(4, seed=11), "tflite-fp32-torch")


@pytest.mark.slow
def test_torch_dynamic_batch_through_litert_torch_overlay_says_what_works(tmp_path):
    """--dynamic-batch on the litert-torch route: litert-torch 0.10 cannot lower a symbolic batch
    (even through a Linear layer), so the conversion stops with an error that names the dynamic batch
    as the cause and the route that gives one (ONNX), and writes no file."""
    pytest.importorskip("torch", reason="PyTorch (extra [torch]) is not installed")
    overlay = _overlay("litert-torch")
    report, out = _convert_in_child(overlay, tmp_path, ["--torch-cnn", "0", "--dynamic-batch"], image_batch(8, seed=2),
                                    "cnn_torch_dyn", expect_ok=False)
    if report["exit"] == 0:  # a litert-torch that can: then the file must really take any batch
        m = edgeship.load(out)
        assert m.inputs[0].shape[0] == -1 and m.predict(image_batch(3, seed=5)).shape[0] == 3
        return
    assert report["exit"] == 2 and "dynamic batch" in report["error"] and "--to onnx" in report["error"], report
    assert not out.exists()


def _onnx_reference(path: Path):
    src = edgeship.load(path)
    assert src.backend == "onnxruntime"
    return src.predict


@pytest.mark.slow
def test_onnx_cnn_to_tflite_through_onnx2tf_overlay_offline(tmp_path):
    """The 3-channel case where onnx2tf would download sample images: the child refuses all sockets."""
    onnx = pytest.importorskip("onnx", reason="onnx (extra [convert]) is not installed")
    from tests._onnx_helpers import onnx_cnn

    overlay = _overlay("onnx2tf")
    src = tmp_path / "cnn.onnx"
    onnx.save(onnx_cnn(), str(src))
    report, out = _convert_in_child(overlay, tmp_path, ["--onnx", str(src)],
                                    image_batch(6, seed=2, shape=(3, 16, 16)), "cnn_onnx")
    _check_parity_record(report, "tflite-fp32-onnx", out)
    assert {"onnx2tf", "tf_keras"} <= set(report["overlay_modules"]), report["overlay_modules"]
    assert report["env_after"] == {"TF_USE_LEGACY_KERAS": None}  # onnx2tf's import-time setting undone
    assert "onnx2tf" not in sys.modules and "tf_keras" not in sys.modules
    model = edgeship.load(out)
    assert [(s.name, tuple(s.shape)) for s in model.inputs] == [("image", (1, 3, 16, 16))]  # ONNX layout kept
    assert [s.name for s in model.outputs] == ["logits"]
    _compare(out, _onnx_reference(src), image_batch(4, seed=12, shape=(3, 16, 16)), "tflite-fp32-onnx")


@pytest.mark.slow
def test_yunet_to_tflite_through_onnx2tf_overlay(shared_dir, tmp_path):
    """The shared YuNet face detector: 12 outputs, kept in the ONNX order and names."""
    onnx = pytest.importorskip("onnx", reason="onnx (extra [convert]) is not installed")
    src = shared_dir / "models" / "yunet" / "yunet_n_320_320.onnx"
    if not src.is_file():
        pytest.skip(f"{src} is absent")
    overlay = _overlay("onnx2tf")
    report, out = _convert_in_child(overlay, tmp_path, ["--onnx", str(src)],
                                    image_batch(2, seed=3, shape=(3, 320, 320)) * 127.0 + 127.0, "yunet")
    _check_parity_record(report, "tflite-fp32-onnx", out)
    graph = onnx.load(str(src), load_external_data=False).graph
    model = edgeship.load(out)
    assert [s.name for s in model.outputs] == [o.name for o in graph.output] and len(model.outputs) == 12
    assert [tuple(s.shape) for s in model.inputs] == [(1, 3, 320, 320)]
    _compare(out, _onnx_reference(src), image_batch(2, seed=13, shape=(3, 320, 320)) * 127.0 + 127.0,
             "yunet tflite-fp32-onnx")


def _makefile_pins(var: str) -> list:
    text = (REPO / "Makefile").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if line.startswith(f"{var} :="):
            return line.split(":=", 1)[1].split()
    pytest.fail(f"the Makefile defines no {var}")


def test_overlay_pins_are_the_install_lines_the_exporters_print():
    """The Makefile builds what the MissingDependencyError messages tell users to install."""
    from edgeship.converters import onnx_tflite, torch_tflite

    for var, line in (("ONNX2TF_PINS", onnx_tflite.PIP_LINE), ("LITERT_TORCH_PINS", torch_tflite.PIP_LINE)):
        assert line.startswith("pip install --no-deps ")
        assert _makefile_pins(var) == line.split()[3:], var
    assert not any(p.split("==")[0] in ("torch", "tensorflow", "tensorflow-cpu", "numpy", "typing-extensions")
                   for p in _makefile_pins("LITERT_TORCH_PINS") + _makefile_pins("ONNX2TF_PINS"))
