"""One vocabulary: inspect, check, bundle and the convert report say the same words for the same
fact (quantization mode, I/O dtypes, memory), for a float, a dynamic-range, an int8 and an int16x8
model; and ``check model.onnx`` needs only the base install (no ``onnx`` package)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

MODES = ("fp32", "dynamic", "int8", "int16x8")


def _one_json(result) -> dict:
    lines = [ln for ln in result.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stdout[-2000:]
    return json.loads(lines[0])


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """The convert CLI's JSON report per mode, for a tiny Keras CNN (one output file each)."""
    keras = pytest.importorskip("keras", reason="converting needs edgeship[convert]")
    from edgeship.cli import app

    root = tmp_path_factory.mktemp("vocab")
    keras.utils.set_random_seed(0)
    # Dense 288x8: big enough (> 1024 weights) for dynamic-range quantization to quantize it
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(8)])
    model.save(root / "tiny.keras")
    np.save(root / "calib.npy", np.random.default_rng(0).random((24, 8, 8, 1), dtype=np.float32))
    reports = {}
    for mode in MODES:
        args = ["convert", str(root / "tiny.keras"), "--to", "tflite", "--quantize", mode,
                "--calibration", str(root / "calib.npy"), "-o", str(root / mode), "--json"]
        if mode == "int8":
            args += ["--io-dtype", "int8"]
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0, res.output[-3000:]
        reports[mode] = _one_json(res)
    return reports


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_every_command_uses_the_same_words(converted, mode, tmp_path):
    from edgeship.cli import app

    out = converted[mode]["outputs"][0]
    path = out["path"]
    assert out["quantization"] == mode
    inspected = _one_json(CliRunner().invoke(app, ["inspect", path, "--json"]))
    res = CliRunner().invoke(app, ["check", path, "--target", "host", "--json"])
    assert res.exit_code == 0, res.output[-2000:]
    checked = _one_json(res)
    bundled = _one_json(CliRunner().invoke(app, ["bundle", path, "-o", str(tmp_path / "b"), "--json"]))
    (key, entry), = bundled["manifest"]["files"].items()

    assert inspected["quantization"] == checked["quantization"] == entry["quantization"] == mode
    assert key == f"tflite-{mode}" and checked["format"] == inspected["format"] == entry["format"] == "tflite"
    for k in ("params_bytes", "peak_activation_bytes", "file_bytes"):
        assert inspected["memory"][k] == checked["memory"][k], k
    assert entry["inputs"] == inspected["inputs"] and entry["outputs"] == inspected["outputs"]
    assert entry["sha256"] == inspected["sha256"] and entry["bytes"] == inspected["bytes"] == out["bytes"]
    want_io = {"int8": "int8"}.get(mode, "float32")
    assert inspected["inputs"][0]["dtype"] == want_io


def test_quant_mode_is_the_one_enum():
    from edgeship import QuantMode
    from edgeship.converters.registry import load_exporters
    from edgeship.targets import get_target, list_targets

    values = {m.value for m in QuantMode}
    assert {str(e.quantization) for e in load_exporters().values()} <= values
    for name in list_targets():
        assert {str(q) for q in get_target(name).quantizations} <= values, name
    with pytest.raises(Exception, match="expected one of fp32, fp16, dynamic, int8, int16x8"):
        QuantMode.parse("none")


CHECK_WITHOUT_ONNX = r"""
import sys
sys.modules["onnx"] = None          # `import onnx` now fails, as on a base install
from edgeship.cli import main
sys.argv = ["edgeship", "check", %r, "--target", "host", "--json"]
main()
"""


def test_check_onnx_with_the_base_install(tmp_path):
    pytest.importorskip("onnx", reason="building the test model needs onnx")
    from tests._onnx_models import dense_relu

    path, _, _ = dense_relu(tmp_path / "d.onnx", batch=1)
    proc = subprocess.run([sys.executable, "-c", CHECK_WITHOUT_ONNX % str(path)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rep = json.loads(proc.stdout.strip().splitlines()[-1])
    assert rep["compatible"] and rep["format"] == "onnx" and rep["quantization"] == "fp32"
    assert [o["op"] for o in rep["ops"]] == ["MatMul", "Add", "Relu"]
    assert rep["memory"]["params_bytes"] == (8 * 4 + 4) * 4


def test_exporters_are_listed_in_registry_order_whatever_was_imported_first():
    """`--all` and `edgeship report` list formats the same on every run: EXPORTER_MODULES' order,
    even in a process that imported one exporter module early (a fresh child, so it is real)."""
    import subprocess
    import sys

    code = ("import edgeship.converters.onnx_quant\n"
            "from edgeship.converters import registry\n"
            "mods = [registry.EXPORTERS[n].fn.__module__.rsplit('.', 1)[1] for n in registry.load_exporters()]\n"
            "ranks = [registry.EXPORTER_MODULES.index(m) for m in mods]\n"
            "assert ranks == sorted(ranks), mods\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
