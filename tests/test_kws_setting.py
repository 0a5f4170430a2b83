"""The detector setting travels with the model: zoo entry, bundle manifest (``postprocessing``), arguments.

Uses the shipped zoo int8 model only (no ../shared): its recorded setting (threshold 0.95, smoothing 5)
differs from the :class:`DetectorConfig` defaults (0.9, 4), so each source is visible.
"""
from __future__ import annotations

import json
import wave

import numpy as np
import pytest

from edgeship import InputSpecError, kws, models
from edgeship.bundle import read_bundle, write_bundle
from edgeship.errors import ModelFormatError

ZOO = "kws_dscnn_int8"


@pytest.fixture(scope="module")
def zoo_model():
    if ZOO not in models.REGISTRY:
        pytest.skip(f"the zoo model {ZOO} is not registered in this checkout")
    import edgeship

    return edgeship.load(models.path(ZOO), threads=1)


@pytest.fixture(scope="module")
def zoo_setting():
    return kws.DetectorConfig.from_dict(models.entry(ZOO).detector, "zoo entry")


def test_the_zoo_setting_differs_from_the_defaults(zoo_setting):
    # the rest of this file tells the sources apart by this difference
    assert zoo_setting != kws.DetectorConfig()


def test_to_manifest_round_trips_and_from_dict_refuses_what_it_cannot_run():
    c = kws.DetectorConfig(threshold=0.8, smoothing=3, refractory_s=0.5, max_episode=9)
    m = c.to_manifest(source="tuned on my data")
    assert m["type"] == "keyword_detector" and m["source"] == "tuned on my data"
    assert kws.DetectorConfig.from_dict(m) == c
    assert kws.DetectorConfig.from_dict(c.to_dict()) == c
    for bad, msg in [({"type": "image", "threshold": 0.5}, "keyword_detector"),
                     ({"threshold": 0.5, "hop": 3}, r"unknown detector settings \['hop'\]"),
                     ({"threshold": 2.0}, "threshold"), ({"smoothing": 0}, "smoothing"),
                     ([0.9, 4], "expected a dict")]:
        with pytest.raises(InputSpecError, match=msg):
            kws.DetectorConfig.from_dict(bad, "test")


def test_setting_sources_in_order(zoo_model, zoo_setting):
    info = kws.model_info(zoo_model)
    assert (info.config, info.config_from) == (zoo_setting, f"zoo entry {ZOO}")
    assert "bench/results/kws_false_alarms_kws_dscnn_int8.json" in info.config_source
    whole = kws.DetectorConfig(threshold=0.7)
    info = kws.model_info(zoo_model, config=whole)
    assert (info.config, info.config_from, info.config_source) == (whole, "argument", None)
    info = kws.model_info(zoo_model, config={"threshold": 0.8})   # only that field changes
    assert info.config == kws.DetectorConfig(threshold=0.8, smoothing=zoo_setting.smoothing,
                                             refractory_s=zoo_setting.refractory_s)
    assert info.config_from == f"zoo entry {ZOO}; threshold from argument"
    assert kws.model_info(zoo_model, config={}).config == zoo_setting
    with pytest.raises(InputSpecError, match="unknown detector settings"):
        kws.model_info(zoo_model, config={"thresold": 0.8})
    with pytest.raises(InputSpecError, match="threshold"):
        kws.model_info(zoo_model, config={"threshold": 0})
    with pytest.raises(InputSpecError, match="expected a DetectorConfig or a dict"):
        kws.model_info(zoo_model, config=0.8)


def test_a_bundle_records_the_setting_and_the_detector_uses_it(zoo_model, zoo_setting, tmp_path):
    labels = list(models.entry(ZOO).labels)
    mine = kws.DetectorConfig(threshold=0.85, smoothing=2)
    b = write_bundle(tmp_path / "b", {"tflite-int8": zoo_model.path}, labels=labels,
                     postprocessing=mine.to_manifest(source="my tuning run"))["_dir"]
    assert read_bundle(b)["postprocessing"]["source"] == "my tuning run"
    det = kws.KeywordDetector(str(b))
    assert (det.config, det.info.config_from, det.info.config_source) == (mine, "bundle manifest", "my tuning run")
    assert det._filter.config == mine   # what actually filters the posteriors
    assert det.describe()["config"] == mine.to_dict() and det.describe()["config_from"] == "bundle manifest"
    # a bundle without a setting: the zoo entry (same sha256) still gives the model's own
    plain = write_bundle(tmp_path / "plain", {"tflite-int8": zoo_model.path}, labels=labels)["_dir"]
    assert read_bundle(plain)["postprocessing"] is None
    assert kws.KeywordDetector(str(plain)).info.config_from == f"zoo entry {ZOO}"


def test_write_bundle_refuses_a_bad_detector_setting_before_writing(zoo_model, tmp_path):
    for bad, err in [({"type": "keyword_detector", "threshold": 1.5}, InputSpecError),
                     ({"type": "keyword_detector", "smoothing": 4, "thresh": 0.9}, InputSpecError),
                     ("0.9", ModelFormatError)]:
        with pytest.raises(err):
            write_bundle(tmp_path / "b", {"tflite-int8": zoo_model.path}, postprocessing=bad)
        assert not (tmp_path / "b").exists()
    # other kinds of postprocessing are the bundle author's business and kept as given
    m = write_bundle(tmp_path / "other", {"tflite-int8": zoo_model.path}, postprocessing={"type": "nms", "iou": 0.5})
    assert m["postprocessing"] == {"type": "nms", "iou": 0.5}
    with pytest.raises(InputSpecError, match="not for the keyword detector"):
        kws.KeywordDetector(m["_dir"], labels=list(models.entry(ZOO).labels))


def _tone_wav(path):
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(16000)
        f.writeframes((np.sin(np.arange(24000) / 7.0) * 3000).astype("<i2").tobytes())
    return path


def test_listen_reports_the_setting_it_runs_and_what_the_user_changed(zoo_model, zoo_setting, tmp_path, capsys):
    from examples.keyword_spotting.__main__ import main

    w = _tone_wav(tmp_path / "s.wav")
    assert main(["listen", "--wav", str(w), "--json"]) == 0
    start = json.loads(capsys.readouterr().out.splitlines()[0])
    assert start["config"] == zoo_setting.to_dict() and start["config_from"] == f"zoo entry {ZOO}"
    assert main(["listen", "--wav", str(w), "--json", "--smoothing", "2", "--refractory", "0.5"]) == 0
    start = json.loads(capsys.readouterr().out.splitlines()[0])
    assert start["config"] == {**zoo_setting.to_dict(), "smoothing": 2, "refractory_s": 0.5}
    assert start["config_from"] == f"zoo entry {ZOO}; refractory_s, smoothing from argument"
    assert main(["listen", "--wav", str(w)]) == 0   # the text mode says it on stderr
    err = capsys.readouterr().err
    assert f"threshold {zoo_setting.threshold:g}, smoothing {zoo_setting.smoothing}" in err and ZOO in err
    assert main(["listen", "--wav", str(w), "--threshold", "1.5"]) == 2
    assert "threshold" in capsys.readouterr().err


def test_app_deploy_records_the_setting_and_the_users_change(zoo_model, zoo_setting, tmp_path, capsys):
    from examples.keyword_spotting.__main__ import main

    assert main(["deploy", "-o", str(tmp_path / "a"), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    post = read_bundle(tmp_path / "a")["postprocessing"]
    assert kws.DetectorConfig.from_dict(post) == zoo_setting and r["detector"] == zoo_setting.to_dict()
    assert post["source"].startswith(f"zoo entry {ZOO}: bench/kws_false_alarms.py")
    assert f"threshold\n{zoo_setting.threshold:g}" in (tmp_path / "a" / "README.md").read_text().replace(" ", "\n")
    assert main(["deploy", "-o", str(tmp_path / "b"), "--threshold", "0.8", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    post = read_bundle(tmp_path / "b")["postprocessing"]
    assert kws.DetectorConfig.from_dict(post) == kws.DetectorConfig(
        threshold=0.8, smoothing=zoo_setting.smoothing, refractory_s=zoo_setting.refractory_s)
    assert r["detector_from"] == post["source"] == f"zoo entry {ZOO}; threshold from argument"
    det = kws.KeywordDetector(str(tmp_path / "b"))   # what listen.py in that folder runs
    assert det.config.threshold == 0.8 and det.info.config_from == "bundle manifest"
    from edgeship.targets.deploy import deploy   # deploying the bundle again carries its setting over

    again = deploy(tmp_path / "b", "rpi5", tmp_path / "c")
    assert read_bundle(again.bundle_dir)["postprocessing"] == post


def test_edgeship_bundle_records_a_users_setting(zoo_model, tmp_path):
    from typer.testing import CliRunner

    from edgeship.cli import app

    mine = kws.DetectorConfig(threshold=0.8, smoothing=3).to_manifest(source="false-alarms --sweep on my audio")
    (tmp_path / "post.json").write_text(json.dumps(mine))
    args = ["bundle", f"tflite-int8={zoo_model.path}", "-o", str(tmp_path / "b"), "--labels",
            ",".join(models.entry(ZOO).labels), "--json"]
    res = CliRunner().invoke(app, args + ["--postprocessing", str(tmp_path / "post.json")])
    assert res.exit_code == 0, res.output
    det = kws.KeywordDetector(str(tmp_path / "b"))
    assert det.config == kws.DetectorConfig(threshold=0.8, smoothing=3)
    assert det.info.config_source == "false-alarms --sweep on my audio"
    res = CliRunner().invoke(app, args[:3] + [str(tmp_path / "c"), "--json", "--postprocessing",
                                              '{"type": "keyword_detector", "threshold": 9}'])
    assert res.exit_code == 2 and "threshold" in res.output and not (tmp_path / "c").exists()
