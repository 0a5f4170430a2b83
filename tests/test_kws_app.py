"""The keyword-spotting app's commands: evaluate, false-alarms, train delegation, errors and exit codes."""
from __future__ import annotations

import json
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from examples.keyword_spotting.__main__ import main


@pytest.fixture(scope="module")
def ref_model(shared_dir):
    from edgeship import models

    return str(models.fetch("mlperf_kws_int8", mirror=str(shared_dir / "models")))


def _out(capsys):
    return capsys.readouterr().out


def _speech_folder(shared_dir, root, labels, marvins: int):
    """4 dev clips per label, and ``marvins`` clips of 'marvin' (not a model label: counts as _unknown_)."""
    dev = shared_dir / "data" / "speech_commands_dev"
    for label in labels:
        (root / label).mkdir(parents=True)
        for f in sorted((dev / label).glob("*.flac"))[:4]:
            shutil.copy(f, root / label / f.name)
    (root / "marvin").mkdir()
    for f in sorted((dev / "_unknown_").glob("marvin_*.flac"))[:marvins]:
        shutil.copy(f, root / "marvin" / f.name)
    return root


@pytest.mark.shared
def test_evaluate_json_plot_and_unknown_folders(shared_dir, ref_model, tmp_path, capsys):
    data = _speech_folder(shared_dir, tmp_path / "data", ("yes", "no", "_silence_"), marvins=3)
    png = tmp_path / "cm.png"
    rc = main(["evaluate", "--data", str(data), "--model", ref_model, "--json", "--plot", str(png)])
    r = json.loads(_out(capsys))
    assert rc == 0 and r["ok"] and r["n"] == 15
    assert r["per_class"]["_unknown_"]["n"] == 3 and r["per_class"]["yes"]["n"] == 4
    assert r["per_class"]["up"]["recall"] is None
    conf = np.array(r["confusion"])
    assert conf.shape == (12, 12) and conf.sum() == 15
    assert r["accuracy"] == pytest.approx(np.trace(conf) / 15)
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    # a failed check exits 1
    assert main(["evaluate", "--data", str(data), "--model", ref_model, "--json", "--min-accuracy", "1.01"]) == 1
    assert json.loads(_out(capsys))["passed"] is False
    # text mode, not a terminal (pytest's capture): the whole matrix, no label cut short
    assert main(["evaluate", "--data", str(data), "--model", ref_model]) == 0
    text = _out(capsys).splitlines()
    head = next(line for line in text if "true \\ pred" in line).split()
    assert head[3:] == r["labels"], head
    row = next(line for line in text if line.split()[:1] == ["_unknown_"]).split()[1:]
    assert [0 if v == "." else int(v) for v in row] == r["confusion"][r["labels"].index("_unknown_")]


@pytest.mark.shared
def test_false_alarms_on_noise(shared_dir, ref_model, capsys):
    noise = shared_dir / "data" / "noise" / "mycroft"
    rc = main(["false-alarms", "--audio", str(noise), "--model", ref_model, "--json"])
    r = json.loads(_out(capsys))
    assert rc == 0 and r["files"] == 9
    assert 0.03 < r["hours"] < 0.05   # the 9 Mycroft recordings: 134 s
    assert r["per_hour"] == pytest.approx(r["false_accepts"] / r["hours"])
    assert r["config"]["threshold"] > 0


@pytest.mark.shared
def test_listen_and_evaluate_user_errors_exit_2(ref_model, tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00")
    assert main(["listen", "--wav", str(bad), "--model", ref_model, "--json"]) == 2
    err = json.loads(_out(capsys))
    assert err["ok"] is False and err["error"]["type"] == "InputSpecError"
    cd = tmp_path / "cd.wav"
    with wave.open(str(cd), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(44100)
        f.writeframes(np.zeros(44100, "<i2").tobytes())
    assert main(["listen", "--wav", str(cd), "--model", ref_model]) == 2
    assert "--resample" in capsys.readouterr().err
    assert main(["listen", "--wav", str(cd), "--model", ref_model, "--resample", "--json"]) == 0
    assert json.loads(_out(capsys).splitlines()[-1])["audio_s"] == 1.0
    assert main(["evaluate", "--data", str(tmp_path / "nowhere"), "--model", ref_model]) == 2
    assert main(["listen", "--wav", str(cd), "--model", str(tmp_path / "none.tflite")]) == 2
    assert "not a zoo model name" in capsys.readouterr().err
    assert main(["listen", "--wav", str(cd), "--model", ref_model, "--threshold", "2"]) == 2
    assert main(["listen", "--wav", str(cd), "--model", ref_model, "--hop-ms", "30"]) == 2


@pytest.mark.shared
def test_short_clip_is_zero_padded_to_one_window(shared_dir, ref_model, tmp_path, capsys):
    from edgeship import audio

    x = audio.read_audio(sorted((shared_dir / "data" / "speech_commands_dev" / "yes").glob("*.flac"))[0])
    short = tmp_path / "short.wav"
    with wave.open(str(short), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(16000)
        f.writeframes((x[4000:12000] * 32767).astype("<i2").tobytes())   # 0.5 s
    assert main(["listen", "--wav", str(short), "--model", ref_model, "--json"]) == 0
    lines = [json.loads(l) for l in _out(capsys).splitlines()]
    assert lines[-1]["windows"] == 1 and lines[-1]["audio_s"] == 0.5


def test_train_delegates_or_says_the_recipe_is_missing(monkeypatch, capsys):
    import importlib.util
    import sys
    import types

    if importlib.util.find_spec("examples.keyword_spotting.train") is None:
        assert main(["train", "--help"]) == 2
        assert "training recipe" in capsys.readouterr().err
    fake = types.ModuleType("examples.keyword_spotting.train")
    seen = []
    fake.main = lambda argv: seen.append(argv) or 0
    monkeypatch.setitem(sys.modules, "examples.keyword_spotting.train", fake)
    assert main(["train", "--keywords", "a,b"]) == 0 and seen == [["--keywords", "a,b"]]


def test_default_model_missing_from_the_zoo_is_a_clear_error(tmp_path, capsys):
    from edgeship import models

    if "kws_dscnn_int8" in models.REGISTRY:
        pytest.skip("the zoo model is registered")
    w = tmp_path / "s.wav"
    with wave.open(str(w), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(16000)
        f.writeframes(np.zeros(16000, "<i2").tobytes())
    assert main(["listen", "--wav", str(w)]) == 2
    assert "--model" in capsys.readouterr().err


def test_listen_defaults_to_the_zoo_model(tmp_path, capsys):
    from edgeship import models

    if "kws_dscnn_int8" not in models.REGISTRY:
        pytest.skip("the zoo model kws_dscnn_int8 is not registered in this checkout")
    w = tmp_path / "s.wav"
    with wave.open(str(w), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(16000)
        f.writeframes((np.sin(np.arange(24000) / 7.0) * 3000).astype("<i2").tobytes())
    assert main(["listen", "--wav", str(w), "--json"]) == 0
    lines = [json.loads(l) for l in _out(capsys).splitlines()]
    assert lines[0]["zoo_name"] == "kws_dscnn_int8" and lines[0]["labels_from"] == "zoo entry kws_dscnn_int8"
    assert lines[-1]["windows"] == 6


@pytest.mark.shared
def test_false_alarms_sweep_keyword_recall_and_plot(shared_dir, ref_model, tmp_path, capsys):
    from edgeship import audio
    from edgeship.kws import DetectorConfig, KeywordDetector

    kw = _speech_folder(shared_dir, tmp_path / "kw", ("yes", "no", "up"), marvins=2)  # marvin: not in the recall
    noise = shared_dir / "data" / "noise" / "mycroft"
    png = tmp_path / "fa.png"
    rc = main(["false-alarms", "--audio", str(noise), "--model", ref_model, "--keywords", str(kw),
               "--plot", str(png), "--json"])
    r = json.loads(_out(capsys))
    assert rc == 0 and r["keyword_clips"] == 12 and png.read_bytes()[:4] == b"\x89PNG"
    assert [row["threshold"] for row in r["sweep"]] == [0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.98]
    at_setting = next(row for row in r["sweep"] if row["threshold"] == r["config"]["threshold"])
    assert (at_setting["false_accepts"], at_setting["recall"]) == (r["false_accepts"], r["recall"])
    # recall and false accepts replayed from posteriors = what the streaming detector finds, clip by clip
    det = KeywordDetector(ref_model)
    pad = np.zeros(8000, np.float32)
    for t in (0.5, 0.9, 0.98):
        d = KeywordDetector(det.model, config=DetectorConfig(threshold=t))
        hits = [any(e.label == f.parent.name for e in d.detect(np.concatenate([pad, audio.read_audio(f), pad])))
                for f in sorted(kw.glob("[ynu]*/*.flac"))]
        fa = sum(len(d.detect(audio.read_audio(f))) for f in sorted(noise.glob("*.wav")))
        row = next(row for row in r["sweep"] if row["threshold"] == t)
        assert row["recall"] == pytest.approx(np.mean(hits)) and row["false_accepts"] == fa
    empty = tmp_path / "empty"
    (empty / "marvin").mkdir(parents=True)
    shutil.copy(next((kw / "marvin").iterdir()), empty / "marvin")
    assert main(["false-alarms", "--audio", str(noise), "--model", ref_model, "--keywords", str(empty)]) == 2
    assert "no folder named like one of the model's keywords" in capsys.readouterr().err


def test_best_in_sweep_rule():
    from examples.keyword_spotting.evaluate import best_in_sweep

    rows = [{"threshold": 0.5, "per_hour": 40.0, "recall": 0.95}, {"threshold": 0.8, "per_hour": 3.0, "recall": 0.9},
            {"threshold": 0.9, "per_hour": 1.0, "recall": 0.9}, {"threshold": 0.95, "per_hour": 0.0, "recall": 0.7}]
    r = {"sweep": rows, "recall": 0.7}
    assert best_in_sweep(r, 5)["threshold"] == 0.9      # same recall, fewer false accepts
    assert best_in_sweep(r, 0)["threshold"] == 0.95
    assert best_in_sweep(r, 100)["threshold"] == 0.5
    no_kw = {"sweep": [{k: v for k, v in row.items() if k != "recall"} for row in rows]}
    assert best_in_sweep(no_kw, 5)["threshold"] == 0.8   # without keywords: the lowest threshold within
    assert best_in_sweep({"sweep": rows[:1], "recall": 1}, 1) is None


@pytest.mark.shared
def test_false_alarms_sweep_names_the_threshold_within_the_limit(shared_dir, capsys):
    noise = shared_dir / "data" / "noise" / "mycroft"
    kw = Path(__file__).resolve().parent.parent / "examples" / "keyword_spotting" / "sample_data"
    rc = main(["false-alarms", "--audio", str(noise), "--keywords", str(kw), "--sweep", "--max-per-hour", "30",
               "--json"])
    r = json.loads(_out(capsys))
    assert r["max_per_hour"] == 30
    fit = [row for row in r["sweep"] if row["per_hour"] <= 30]
    assert r["best_in_sweep"]["recall"] == max(row["recall"] for row in fit)
    assert rc == (1 if r["per_hour"] > 30 else 0)
    assert main(["false-alarms", "--audio", str(noise), "--keywords", str(kw), "--sweep", "--max-per-hour", "30"]) \
        == rc
    text = capsys.readouterr().out
    assert f"within 30 per hour: threshold {r['best_in_sweep']['threshold']:g}" in text
    assert f"deploy --threshold {r['best_in_sweep']['threshold']:g}" in text
    for bad in ("-1", "nan"):
        assert main(["false-alarms", "--audio", str(noise), "--max-per-hour", bad]) == 2
        assert "--max-per-hour: expected a rate >= 0" in capsys.readouterr().err
