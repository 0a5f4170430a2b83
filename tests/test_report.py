"""`edgeship report` on a tiny Keras classifier: every file, every format x runtime row, targets,
Markdown == JSON, reproducibility (two runs: same files and figures), user errors exit 2."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgeship.backends import available_backends
from edgeship.cli import app
from tests._report_helpers import cli_report, size_metric, tiny_inputs

pytestmark = pytest.mark.slow

EXPORTERS = {"tflite-fp32": "tflite", "tflite-fp16": "tflite", "tflite-dynamic": "tflite", "tflite-int8": "tflite",
             "tflite-int16x8": "tflite", "onnx-fp32": "onnx", "onnx-dynamic": "onnx", "onnx-qdq-int8": "onnx"}


@pytest.fixture(scope="module")
def report():
    out, proc, data = cli_report()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len([ln for ln in proc.stdout.splitlines() if ln.strip()]) == 1, proc.stdout[:2000]
    return out, data


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def test_every_file_is_written(report):
    out, data = report
    for name in ("report.md", "report.json", "report.html", "report.log"):
        assert (out / name).stat().st_size > 100, name
    assert json.loads((out / "report.json").read_text()) == {k: v for k, v in data.items() if k != "paths"}
    for name, rel in data["plots"].items():
        png = (out / rel).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000, name
    assert set(data["plots"]) == {"accuracy_latency_size", "targets_grid"}
    assert "fully_quantize" in (out / "report.log").read_text()  # the MLIR quantizer's chatter went to the log
    for f in data["formats"]:
        assert (out / f["file"]).is_file() and len(f["sha256"]) == 64


def test_every_format_runtime_row_with_finite_numbers(report):
    _, data = report
    expected = {(e, b) for e, fmt in EXPORTERS.items() for b in available_backends(fmt)}
    assert {(r["format"], r["runtime"]) for r in data["rows"]} == expected
    assert len(data["rows"]) == len(expected)
    assert data["threads"][0] == 1 and data["ok"] is True
    for r in data["rows"]:
        assert r["status"] == "ok" and r["parity_passed"] is True, r
        assert _finite(r["top1"]) and r["top1"] >= 0.8, r
        assert r["accuracy"] == pytest.approx(r["bytes"] / 1e5)  # the --evaluate metric
        assert _finite(r["cosine"]) and r["cosine"] > 0.99
        assert [b["threads"] for b in r["latency"]] == data["threads"]
        for b in r["latency"]:
            assert _finite(b["p50_ms"]) and _finite(b["p99_ms"]) and 0 < b["p50_ms"] <= b["p99_ms"], b
        assert r["peak_rss_bytes"] is None or r["peak_rss_bytes"] >= 0
        assert set(r["targets"]) == set(data["targets"])
        for t, cell in r["targets"].items():
            assert cell["verdict"] in ("ok", "no"), (r["format"], t, cell)
            assert cell["verdict"] == "ok" or cell["reason"], (r["format"], t)
    assert {"rpi4", "rpi5", "mcu", "edgetpu", "android"} <= set(data["targets"]) and "null" not in data["targets"]
    by = {r["format"]: r for r in data["rows"]}
    assert by["tflite-int8"]["targets"]["edgetpu"]["verdict"] == "ok"
    assert by["tflite-fp32"]["targets"]["edgetpu"]["verdict"] == "no"
    assert by["onnx-fp32"]["targets"]["mcu"]["verdict"] == "no"
    for t in ("rpi4", "rpi5", "mcu"):
        assert _finite(by["tflite-int8"]["targets"][t]["estimate_ms"]), t
    assert data["source"]["accuracy"] == pytest.approx(data["source"]["bytes"] / 1e5)
    assert data["source"]["top1"] >= 0.8 and len(data["source"]["file_sha256"]) == 64


def test_json_records_versions_hashes_command_and_seed(report):
    _, data = report
    assert data["versions"]["tensorflow-cpu"] and data["versions"]["runtimes"]["onnxruntime"]
    assert data["command"][:3] == ["edgeship", "report", str(tiny_inputs()["src"])]
    assert data["seed"] == 0 and data["runs"] == 5
    for key in ("calibration", "validation", "labels"):
        assert len(data[key]["sha256"]) == 64, key
    assert data["accuracy_metric"] == "evaluate"


def _md_rows(md: str):
    lines = [ln for ln in md.splitlines() if ln.startswith("|")]
    split = [[c.strip() for c in re.split(r"(?<!\\)\|", ln)[1:-1]] for ln in lines]
    return split[0], split[2:]


def _num(s):
    return None if s == "-" else float(s)


def _shows(cell, value, decimals):
    """``cell`` is ``value`` printed with ``decimals`` places: at most half a unit off (a tie such
    as 0.0205 printed as "0.021" is exactly half a unit off, give or take float error)."""
    return abs(_num(cell) - value) <= 0.5 * 10 ** -decimals + 1e-12


def test_markdown_agrees_with_json(report):
    out, data = report
    header, rows = _md_rows((out / "report.md").read_text())
    assert len(rows) == len(data["rows"])
    col = {h: i for i, h in enumerate(header)}
    for cells, r in zip(rows, data["rows"]):
        assert (cells[col["format"]], cells[col["runtime"]]) == (r["format"], r["runtime"])
        assert _shows(cells[col["KiB"]], r["bytes"] / 1024, 1)
        assert _shows(cells[col["accuracy"]], r["accuracy"], 4)
        assert _shows(cells[col["cosine"]], r["cosine"], 6)
        assert cells[col["parity"]] == ("pass" if r["parity_passed"] else "FAIL")
        for b in r["latency"]:
            assert _shows(cells[col[f"p50 ms {b['threads']}t"]], b["p50_ms"], 3), (cells, b)
            assert _shows(cells[col[f"p99 ms {b['threads']}t"]], b["p99_ms"], 3), (cells, b)
        for t in data["targets"]:
            cell, want = cells[col[t]], r["targets"][t]
            assert cell.split(":")[0].split(" ")[0] == want["verdict"], (r["format"], t, cell)
            if want["estimate_ms"] is not None and want["verdict"] == "ok":
                est = cell.split()[1]
                assert est.startswith("≥") == bool(want.get("estimate_lower_bound")), (r["format"], t, cell)
                assert float(est.lstrip("≥")) == pytest.approx(want["estimate_ms"], rel=1e-2)
        assert cells[col["status"]] == r["status"]


def _stable(data: dict) -> dict:
    """The report minus what may differ between two runs: timings, memory, the run, the command."""
    d = {k: v for k, v in data.items() if k not in ("run", "command", "paths", "notes")}
    d["rows"] = [{k: v for k, v in r.items() if k not in ("latency", "peak_rss_bytes")} for r in d["rows"]]
    return d


def test_second_run_is_identical_except_timings(report, tmp_path):
    """Reproducible: the library API (what `make demo` calls), run again in a fresh process on the
    same inputs, gives the same files (sha256), parity and accuracy figures; only timings differ.

    A fresh process, as a user's second run is: Keras names traced ops after the models that exist
    in the process, so a model rebuilt inside this long test process gets other op names."""
    import subprocess
    import sys

    out, data = report
    i = tiny_inputs()
    again_dir = tmp_path / "again"
    code = f"""
import json, sys
import numpy as np
sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
from tests._report_helpers import size_metric
from edgeship.converters.report import build_report
seen = []
res = build_report({str(i["src"])!r}, {str(again_dir)!r}, calibration={str(i["cal"])!r},
                   validation={str(i["val"])!r}, labels=np.load({str(i["labels"])!r}), evaluate=size_metric,
                   runs=5, warmup=1, progress=lambda what, done, total: seen.append(what))
again = res.to_dict()
assert res.rows == again["rows"] and res.paths["html"].is_file()
assert json.loads(res.paths["json"].read_text()) == again
print("SEEN=" + json.dumps(sorted(set(seen))))
print("PLOTS=" + json.dumps(sorted(res.paths["plots"])))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = dict(ln.split("=", 1) for ln in r.stdout.splitlines() if ln.startswith(("SEEN=", "PLOTS=")))
    seen, plots = json.loads(lines["SEEN"]), json.loads(lines["PLOTS"])
    again = json.loads((again_dir / "report.json").read_text())
    assert set(plots) == set(data["plots"])
    assert _stable(again) == _stable(data)
    for f in data["formats"]:
        assert (again_dir / f["file"]).read_bytes() == (out / f["file"]).read_bytes(), f["format"]
    assert {"report: convert", "check targets", "benchmark", "report: write"} <= set(seen)


def test_rerun_into_an_earlier_report_folder_removes_only_its_files(tmp_path):
    from edgeship.converters.report import GENERATOR, _prepare_out

    out = tmp_path / "r"
    (out / "models").mkdir(parents=True)
    (out / "models" / "m_int8.tflite").write_bytes(b"old")
    (out / "models" / "notes.txt").write_text("kept")
    (out / "report.json").write_text(json.dumps({"generator": GENERATOR, "files": ["models/m_int8.tflite",
                                                                                    "../outside.txt"]}))
    (tmp_path / "outside.txt").write_text("never touched")
    _prepare_out(out)
    assert not (out / "models" / "m_int8.tflite").exists()
    assert (out / "models" / "notes.txt").read_text() == "kept" and (tmp_path / "outside.txt").exists()


def test_table_printed_in_full_when_not_a_terminal(report, capsys):
    from edgeship.cli.report import print_table

    out, data = report
    print_table(data, {"md": out / "report.md", "html": out / "report.html", "json": out / "report.json",
                       "log": out / "report.log"})
    err = capsys.readouterr().err
    for r in data["rows"]:
        assert r["format"] in err and r["runtime"] in err
    for h in ("p99 ms 1t", "peak +MiB", "rpi4", "rpi5", "status"):
        assert h in err, h
    assert "…" not in err  # nothing cut


runner = CliRunner()


def _user_error(args, kind: str):
    res = runner.invoke(app, args + ["--json"])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stdout
    obj = json.loads(lines[0])
    assert obj["ok"] is False and obj["error"]["type"] == kind, obj
    return obj["error"]["message"]


def test_user_errors_exit_2_with_one_json_object(tmp_path):
    i = tiny_inputs()
    src = str(i["src"])
    assert "does not exist" in _user_error(["report", str(tmp_path / "nope.keras"), "-o", str(tmp_path / "a")],
                                           "ConversionError")
    assert "known targets" in _user_error(["report", src, "--targets", "rpi9", "-o", str(tmp_path / "b")],
                                          "TargetError")
    assert "{model}" in _user_error(["report", src, "--evaluate", "python eval.py", "-o", str(tmp_path / "c")],
                                    "InputSpecError")
    assert "--threads" in _user_error(["report", src, "--threads", "0", "-o", str(tmp_path / "d")], "InputSpecError")
    assert "--validation" in _user_error(["report", src, "--labels", str(i["labels"]), "-o", str(tmp_path / "e")],
                                         "InputSpecError")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "thesis.txt").write_text("mine")
    assert "not empty" in _user_error(["report", src, "-o", str(busy)], "EdgeshipError")
    assert (busy / "thesis.txt").read_text() == "mine"
    assert list((tmp_path).glob("[abcde]/*")) == []  # nothing written before the arguments were checked


def test_failed_formats_are_rows_and_exit_1_when_none_passes(tmp_path, monkeypatch):
    """One exporter raising (ConversionError) and every format out of tolerance: the report is
    still complete, failures are rows, and the CLI exits 1 (no format passed)."""
    import dataclasses

    from edgeship.converters.registry import EXPORTERS, load_exporters
    from edgeship.errors import ConversionError

    load_exporters()

    def broken(source, options):
        raise ConversionError("simulated exporter failure")

    monkeypatch.setitem(EXPORTERS, "onnx-fp32", dataclasses.replace(EXPORTERS["onnx-fp32"], fn=broken))
    for name in [n for n in EXPORTERS if n not in ("tflite-fp32", "tflite-int8", "onnx-fp32")]:
        monkeypatch.delitem(EXPORTERS, name)  # three formats are enough here (and faster)
    i = tiny_inputs()
    out = tmp_path / "r"
    res = runner.invoke(app, ["report", str(i["src"]), "--calibration", str(i["cal"]), "--targets", "rpi4",
                              "--threads", "1", "--runs", "2", "--warmup", "0", "--tolerance", "cosine_min=1.01",
                              "-o", str(out), "--json"])
    assert res.exit_code == 1, res.output[-3000:]
    data = json.loads([ln for ln in res.stdout.splitlines() if ln.strip()][-1])
    assert data["ok"] is False
    rows = {r["format"]: r for r in data["rows"]}
    assert rows["onnx-fp32"]["status"] == "conversion failed" and "simulated" in rows["onnx-fp32"]["error"]
    assert rows["onnx-fp32"]["runtime"] is None and rows["onnx-fp32"]["targets"]["rpi4"]["verdict"] == "error"
    for name in ("tflite-fp32", "tflite-int8"):
        assert rows[name]["status"] == "parity failed" and "cosine" in rows[name]["error"], rows[name]
        assert rows[name]["file"].endswith(".rejected")
    md = (out / "report.md").read_text()
    assert "## Failures" in md and "simulated exporter failure" in md
    assert (out / "report.html").is_file()
