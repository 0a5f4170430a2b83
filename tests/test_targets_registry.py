"""Target registry, profiles as data, and the `targets` / `check` CLI commands."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from edgeship.errors import TargetError
from edgeship.targets import check, get_target, list_targets
from edgeship.targets.profile import TargetProfile

from tests._targets_helpers import session_small_models

KNOWN_QUANT = {"fp32", "fp16", "dynamic", "int8", "int16x8", "mixed"}


@pytest.fixture(scope="module")
def small():
    return session_small_models()


@pytest.fixture(scope="module")
def app():
    from edgeship.cli import app

    return app


def _json(result):
    lines = [ln for ln in result.stdout.splitlines() if ln.strip().startswith("{")]
    assert len(lines) == 1, result.stdout
    return json.loads(lines[0])


def test_registry_lists_core_targets():
    names = list_targets()
    assert {"null", "host", "rpi4", "rpi5", "edgetpu"} <= set(names)
    assert names == sorted(names)


def test_unknown_target_names_the_known_ones():
    with pytest.raises(TargetError) as exc:
        get_target("rpi3")
    assert "rpi4" in str(exc.value) and "edgetpu" in str(exc.value)


@pytest.mark.parametrize("name", ["null", "host", "rpi4", "rpi5", "edgetpu"])
def test_profiles_are_plain_data(name):
    p = get_target(name)
    assert isinstance(p, TargetProfile) and p.name == name
    assert p.formats <= {"tflite", "onnx", "coreml"} and p.formats
    assert p.quantizations <= KNOWN_QUANT and p.quantizations
    assert all(isinstance(line, str) and line for line in p.install)


def test_check_accepts_profile_or_name(small):
    a = check(small["int8"], "null")
    b = check(small["int8"], get_target("null"))
    assert a.to_dict() == b.to_dict()
    assert a.compatible and {o.placement for o in a.ops} == {"cpu"}


def test_cli_targets_json(app):
    res = CliRunner().invoke(app, ["targets", "--json"])
    assert res.exit_code == 0, res.output
    data = _json(res)
    names = [t["name"] for t in data["targets"]]
    assert {"null", "rpi4", "edgetpu"} <= set(names)
    tpu = next(t for t in data["targets"] if t["name"] == "edgetpu")
    assert "CONV_2D" in tpu["supported_ops"] and tpu["static_shapes_required"] is True


def test_cli_targets_table(app):
    res = CliRunner().invoke(app, ["targets"])
    assert res.exit_code == 0
    assert "edgetpu" in res.output and "rpi4" in res.output


def test_cli_check_incompatible_exits_1_with_json(app, small):
    res = CliRunner().invoke(app, ["check", str(small["fp32"]), "--target", "edgetpu", "--json"])
    assert res.exit_code == 1, res.output
    data = _json(res)
    assert data["target"] == "edgetpu" and data["compatible"] is False
    assert isinstance(data["problems"], list) and data["problems"][0]["kind"] == "quantization"
    assert "--quantize int8" in data["problems"][0]["fix"]
    assert all({"index", "op", "placement"} <= set(op) for op in data["ops"])


def test_cli_check_compatible_exits_0(app, small):
    res = CliRunner().invoke(app, ["check", str(small["int8"]), "--target", "edgetpu", "--json"])
    assert res.exit_code == 0, res.output
    data = _json(res)
    assert data["compatible"] is True and data["placement_counts"] == {"tpu": len(data["ops"])}


def test_cli_check_human_output(app, small):
    res = CliRunner().invoke(app, ["check", str(small["hardswish_int8"]), "--target", "edgetpu"])
    assert res.exit_code == 1
    assert "HARD_SWISH" in res.output and "fix:" in res.output


def test_cli_check_user_errors_exit_2(app, small, tmp_path):
    res = CliRunner().invoke(app, ["check", str(small["int8"]), "--target", "nope", "--json"])
    assert res.exit_code == 2 and _json(res)["error"]["type"] == "TargetError"
    res = CliRunner().invoke(app, ["check", str(tmp_path / "missing.tflite"), "--target", "null", "--json"])
    assert res.exit_code == 2 and _json(res)["error"]["type"] == "ModelFormatError"


def test_cli_module_import_is_light():
    code = ("import sys, edgeship.cli.targets, edgeship.targets; "
            "print([m for m in ('tensorflow', 'onnx', 'torch', 'keras', 'cv2') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
