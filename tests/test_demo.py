"""The main job end to end: `edgeship demo --json` on the shipped model (no ../shared needed)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgeship.bundle import read_bundle


@pytest.mark.slow
def test_demo_json_end_to_end(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "edgeship", "demo", "--out", str(out), "--runs", "5", "--json"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stdout[:2000]  # converter chatter never reaches stdout
    report = json.loads(lines[0])
    assert report["ok"] is True
    formats = {(o["format"], o["quantization"]) for o in report["outputs"]}
    assert {("tflite", "fp32"), ("tflite", "fp16"), ("tflite", "dynamic"), ("tflite", "int8"),
            ("tflite", "int16x8"), ("onnx", "fp32"), ("onnx", "int8")} <= formats
    for o in report["outputs"]:
        p = o["parity"]
        assert p["passed"] and p["top1_agreement"] >= 0.95 and p["accuracy_output"] >= 0.9, o["exporter"]
        assert o["bench"]["latency_ms"]["p50"] > 0
    targets = {t["target"]: t for t in report["targets"]}
    assert targets["rpi4"]["compatible"] and targets["rpi4"]["estimate"]["latency_ms"] > 0
    assert targets["edgetpu"]["compatible"], targets["edgetpu"]["problems"]  # static batch 1, full int8
    assert all(t["compatible"] for t in targets.values()), {k: t["problems"] for k, t in targets.items()}
    manifest = read_bundle(report["bundle"])
    assert manifest["default"].startswith("tflite-int8") and manifest["labels"] == ["circle", "square", "triangle"]
    assert (out / "latency.png").stat().st_size > 1000 and (out / "convert.log").is_file()
    assert json.loads((out / "report.json").read_text())["ok"] is True
