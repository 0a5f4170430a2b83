"""Issue 11 defect 9: every user-input failure of inspect / bench / bundle / check exits 2 with one JSON object."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from edgeship.cli import app


@pytest.fixture()
def bad_inputs(tmp_path):
    (tmp_path / "junk.tflite").write_bytes(bytes(range(256)) * 12)
    (tmp_path / "short.tflite").write_bytes(b"TFL3garbage")
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07\x12\xff\xff\xff\xff\x0f" + b"\0" * 64)
    b = tmp_path / "b"
    b.mkdir()
    (b / "manifest.json").write_text(json.dumps({"schema_version": 1, "files": {"m": {"path": 5}}}))
    nb = tmp_path / "nb"
    nb.mkdir()
    (nb / "manifest.json").write_text("{not json")
    return tmp_path


@pytest.mark.parametrize("argv", [
    ["inspect", "{d}/junk.tflite"], ["inspect", "{d}/short.tflite"], ["inspect", "{d}/junk.onnx"],
    ["bench", "{d}/short.tflite"], ["bench", "{d}/b"], ["bench", "{d}/nb"], ["bench", "{d}/junk.onnx"],
    ["bundle", "m={d}/short.tflite", "-o", "{d}/out"], ["check", "{d}/junk.tflite", "--target", "host"],
    ["check", "{d}/junk.onnx", "--target", "host"], ["inspect", "{d}/missing.tflite"],
])
def test_user_errors_exit_2_with_one_json_object(bad_inputs, argv):
    res = CliRunner().invoke(app, [a.format(d=bad_inputs) for a in argv] + ["--json"])
    assert res.exit_code == 2, res.output
    lines = [x for x in res.stdout.splitlines() if x.strip()]
    assert len(lines) == 1, res.stdout
    doc = json.loads(lines[0])
    assert doc["ok"] is False and doc["error"]["type"].endswith("Error") and doc["error"]["message"]
    assert "Traceback" not in res.output
