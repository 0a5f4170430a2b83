"""CLI: --help lists the commands; --json prints exactly one JSON object; user errors exit 2."""
from __future__ import annotations

import json
import subprocess
import sys


def run(*args):
    return subprocess.run([sys.executable, "-m", "edgeship", *args], capture_output=True, text=True, timeout=300)


def one_json(stdout: str) -> dict:
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, stdout[:2000]
    obj = json.loads(lines[0])
    assert isinstance(obj, dict)
    return obj


def test_help_lists_commands():
    out = run("--help")
    assert out.returncode == 0
    for cmd in ("inspect", "bench", "bundle", "convert", "check", "deploy", "targets", "demo"):
        assert cmd in out.stdout, cmd


def test_inspect_json(weights):
    out = run("inspect", str(weights / "shapes_cnn_int8.tflite"), "--json")
    assert out.returncode == 0, out.stderr
    info = one_json(out.stdout)
    assert info["format"] == "tflite" and info["macs_total"] > 0


def test_bundle_json_and_error_exit(weights, tmp_path):
    out = run("bundle", f"int8={weights / 'shapes_cnn_int8.tflite'}", "-o", str(tmp_path / "b"),
              "--labels", "circle,square,triangle", "--zip", "--json")
    assert out.returncode == 0, out.stderr
    res = one_json(out.stdout)
    assert res["ok"] and res["manifest"]["files"]["int8"]["sha256"]
    assert (tmp_path / "b.zip").is_file()
    bad = run("inspect", str(tmp_path / "missing.tflite"), "--json")
    assert bad.returncode == 2
    err = one_json(bad.stdout)
    assert err["ok"] is False and err["error"]["type"] == "ModelFormatError"
