"""The main job end to end: `edgeship demo --json` on the data the repository ships (no ../shared).

One real run of the whole demo (KWS report + listen + deploy, face enrol + unlock) asserts every
outcome; the listen scoring and the stream builder are also tested on their own (fast).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from edgeship.bundle import read_bundle
from edgeship.cli import demo_kws

REPO = Path(__file__).resolve().parent.parent
FORMATS = {"tflite-fp32", "tflite-fp16", "tflite-dynamic", "tflite-int8", "tflite-int16x8", "onnx-fp32",
           "onnx-qdq-int8"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    pytest.importorskip("tensorflow", reason="the demo converts the zoo model: edgeship[convert]")
    pytest.importorskip("cv2", reason="the face app needs edgeship[face]")
    pytest.importorskip("soundfile", reason="the shipped clips are FLAC: edgeship[audio]")
    out = tmp_path_factory.mktemp("demo") / "demo_out"
    proc = subprocess.run([sys.executable, "-m", "edgeship", "demo", "--out", str(out), "--runs", "3", "--json"],
                          capture_output=True, text=True, timeout=1500, cwd=REPO)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, (proc.returncode, proc.stdout[:2000], proc.stderr[-3000:])  # chatter never on stdout
    return out, proc.returncode, json.loads(lines[0])


@pytest.mark.slow
def test_demo_runs_and_writes_its_summary(demo):
    out, rc, s = demo
    assert rc == 0 and s["ok"] is True, json.dumps(s)[:3000]
    assert json.loads((out / "summary.json").read_text()) == s
    assert s["cpu_seconds"] > 0 and set(s["step_seconds"]) == {"kws_report", "kws_listen", "kws_deploy",
                                                               "face_models", "face_unlock"}


@pytest.mark.slow
def test_demo_kws_report_has_a_row_per_format_with_real_accuracy(demo):
    out, _, s = demo
    k = s["keyword_spotting"]
    assert k["clips"] == 72 and len(k["speakers"]) == 6
    rep = k["report"]
    rows = {r["format"]: r for r in rep["rows"]}
    assert FORMATS <= set(rows), sorted(rows)
    assert 0.8 <= rep["source_accuracy"] <= 1.0  # top-1 on the 72 clips (the card: 89.4 % on 890)
    for name in ("tflite-fp32", "tflite-int8", "onnx-fp32"):
        r = rows[name]
        assert r["parity_passed"] and r["status"] == "ok", r
        assert abs(r["accuracy"] - rep["source_accuracy"]) <= 0.05, r
        assert r["p50_ms_1_thread"] > 0
    for r in rep["rows"]:   # a verdict for every device target in every row
        assert set(r["targets"]) == set(rep["targets"]) and {"rpi4", "edgetpu", "android", "mcu"} <= set(r["targets"])
        assert all(v in ("ok", "no", "error") for v in r["targets"].values()), r
    assert rows["tflite-int8"]["targets"]["edgetpu"] == "ok" and rows["tflite-fp32"]["targets"]["edgetpu"] == "no"
    paths = rep["paths"]
    for key in ("md", "json", "html"):
        assert Path(paths[key]).is_file(), key
    for p in paths["plots"].values():
        assert Path(p).stat().st_size > 5000
    report = json.loads(Path(paths["json"]).read_text())
    assert report["validation"]["count"] == 72 and report["labels"]["count"] == 72


@pytest.mark.slow
def test_demo_listen_finds_keywords_at_the_right_times(demo):
    _, _, s = demo
    li = s["keyword_spotting"]["listen"]
    assert li["keywords"] == 30 and li["unknown_words"] == 3
    assert li["found"] + len(li["missed"]) == li["keywords"]
    assert li["settings_from"] == "zoo entry kws_dscnn_int8"   # the zoo model at its own setting (0.95, 5)
    assert li["found"] >= 15, li["missed"]       # 17 when the setting was recorded
    assert len(li["false_alarms"]) <= 3, li["false_alarms"]
    assert li["timing_error_s"]["max"] <= demo_kws.MATCH_TOLERANCE_S
    assert li["end"]["audio_s"] == pytest.approx(li["stream"]["seconds"], abs=0.2)
    assert Path(li["plot"]).stat().st_size > 5000


@pytest.mark.slow
def test_demo_deploys_for_every_device_target(demo):
    _, _, s = demo
    deploys = {d["target"]: d for d in s["keyword_spotting"]["deploy"]}
    assert set(deploys) == {"rpi4", "edgetpu", "android", "mcu"}
    for t, d in deploys.items():
        assert d["deployed"], d
        m = read_bundle(d["bundle"])   # verifies every checksum
        assert m["labels"][:3] == ["down", "go", "left"] and m["preprocessing"]["type"] == "mfcc", t
        assert (Path(d["bundle"]) / "README.md").is_file()
        assert sorted(d["files"]) == sorted(str(p.relative_to(d["bundle"])) for p in Path(d["bundle"]).rglob("*")
                                            if p.is_file())
    assert {"model_data.cc", "model_data.h", "op_resolver.h"} <= set(deploys["mcu"]["files"])
    assert deploys["mcu"]["memory"]["tflm_arena_bytes"] > 0 or not _has("tflite_micro")
    assert deploys["edgetpu"]["placement"] == {"tpu": 12}     # every op of the DS-CNN maps to the TPU
    if shutil.which("edgetpu_compiler") is None:   # no compiler, no TPU here: the bundle says so
        assert any("edgetpu_compiler" in n for n in deploys["edgetpu"]["notes"]), deploys["edgetpu"]["notes"]
    assert any(f.startswith("assets/") for f in deploys["android"]["files"])
    assert "ms estimated" in deploys["rpi4"]["estimate"]


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@pytest.mark.slow
def test_demo_face_unlock_accepts_enrolled_people_and_rejects_others(demo):
    _, _, s = demo
    f = s["face_unlock"]
    assert f["model"] == "int8" and [e["user"] for e in f["enrolled"]] == ["s1", "s2"]
    assert f["genuine"] == 4 and f["accepted"] == 4
    assert f["impostor"] == 3 and f["rejected"] == 3
    for t in f["tries"]:
        assert t["correct"], t
        assert (t["score"] <= t["threshold"]) == (t["outcome"] == "accepted"), t
        assert t["exit_code"] == (0 if t["outcome"] == "accepted" else 1)
    assert (Path(f["store"]) / "key").is_file()


# ---------------------------------------------------------------------------- fast, no conversion

def test_score_listen_counts_found_missed_and_false_alarms():
    truth = [{"label": "yes", "time_s": 2.0, "keyword": True, "speaker": "a"},
             {"label": "no", "time_s": 5.0, "keyword": True, "speaker": "a"},
             {"label": "_unknown_", "word": "bed", "time_s": 8.0, "keyword": False, "speaker": "a"}]
    events = [{"label": "yes", "time_s": 2.3}, {"label": "up", "time_s": 5.1}, {"label": "go", "time_s": 8.0}]
    r = demo_kws.score_listen(truth, events)
    assert r["keywords"] == 2 and r["found"] == 1 and r["unknown_words"] == 1
    assert r["missed"] == ["no (a, 5.0 s)"]
    assert r["false_alarms"] == ["up at 5.1 s", "go at 8.0 s"]
    assert r["timing_error_s"] == {"mean": 0.3, "max": 0.3}
    late = demo_kws.score_listen(truth[:1], [{"label": "yes", "time_s": 2.0 + demo_kws.MATCH_TOLERANCE_S + 0.01}])
    assert late["found"] == 0 and len(late["false_alarms"]) == 1


def test_build_stream_places_every_word_at_its_time(tmp_path):
    pytest.importorskip("soundfile", reason="the shipped clips are FLAC: edgeship[audio]")
    clips, wavs, y, labels = demo_kws.load_clips(REPO)
    assert len(clips) == 72 and sorted(set(y.tolist())) == list(range(12))
    truth = demo_kws.build_stream(clips, wavs, labels, tmp_path / "s.wav")
    words = truth["words"]
    assert len(words) == 33 and sum(w["keyword"] for w in words) == 30
    with wave.open(str(tmp_path / "s.wav")) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1
        x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32767
    assert x.size / 16000 == pytest.approx(truth["seconds"], abs=0.01)
    env = lambda t: np.sqrt(np.mean(x[int((t - 0.25) * 16000):int((t + 0.25) * 16000)] ** 2))  # noqa: E731
    for wd in words:   # each word stands out of the background where the truth puts it
        assert env(wd["time_s"]) > 2 * env(wd["time_s"] + 1.2), wd
    again = demo_kws.build_stream(clips, wavs, labels, tmp_path / "t.wav")
    assert (tmp_path / "s.wav").read_bytes() == (tmp_path / "t.wav").read_bytes() and again["words"] == words


def test_demo_refuses_bad_runs(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "edgeship", "demo", "--out", str(tmp_path / "d"), "--runs", "0",
                           "--json"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 2 and json.loads(proc.stdout)["error"]["type"] == "InputSpecError"
