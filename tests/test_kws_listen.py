"""The streaming keyword detector and ``listen``: events on a generated stream of real clips in real noise.

The stream: real Speech Commands dev clips (the MLPerf reference model never saw these
speakers: they are the Speech Commands test split) added at known times onto real background
noise (Mycroft room noise, then the Speech Commands dishes recording), 3 s apart. A clip's true
time is the centre of its speech (first to last 10 ms frame within 20 dB of the loudest).
The detector runs at the app's default settings.
Clips are chosen by a fixed rule: per keyword, the first clips (by file name) that the model
recognises (posterior >= 0.95) in every 1 s window within +-200 ms of the clip, with its noise
(tests/_kws_helpers.py), so the test measures the streaming detector (window timing,
smoothing, refractory period), not the model's accuracy (``evaluate`` measures that).
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from edgeship import InputSpecError, audio, kws
from tests._kws_helpers import place_recognisable

SR = 16000
GAP_S = 3


@pytest.fixture(scope="module")
def ref_model(shared_dir):
    from edgeship import models

    p = models.fetch("mlperf_kws_int8", mirror=str(shared_dir / "models"))
    return p


@pytest.fixture(scope="module")
def detector(ref_model):
    return kws.KeywordDetector(str(ref_model), threads=1)


@pytest.fixture(scope="module")
def stream(shared_dir, detector, tmp_path_factory):
    """(wav path, [(label, true time s)], [(start s, end s) of each keyword clip])."""
    root = shared_dir / "data" / "speech_commands_dev"
    noise = np.concatenate([audio.read_audio(shared_dir / "data" / "noise" / "mycroft" / "bg_noise9.wav"),
                            audio.read_audio(shared_dir / "data" / "noise" / "speech_commands_background"
                                             / "doing_the_dishes.wav")])
    keywords = [l for l in detector.labels if not l.startswith("_")]
    n = 2 * len(keywords)
    sig = noise[: (n * GAP_S + 2) * SR].copy()
    truth, spans, used = [], [], set()
    for i in range(n):
        label = keywords[i % len(keywords)]
        s = (2 + i * GAP_S) * SR
        f, t = place_recognisable(detector, sig, s, label, sorted((root / label).glob("*.flac")), used)
        used.add(f)
        truth.append((label, t))
        spans.append((s / SR, s / SR + 1))
    path = tmp_path_factory.mktemp("kws_stream") / "stream.wav"
    import soundfile as sf

    sf.write(path, np.clip(sig, -1, 1), SR, subtype="PCM_16")
    return path, truth, spans


@pytest.mark.shared
def test_listen_wav_finds_every_keyword_on_time_and_nothing_in_the_noise(stream, ref_model, capsys):
    from examples.keyword_spotting.__main__ import main

    path, truth, spans = stream
    assert main(["listen", "--wav", str(path), "--model", str(ref_model), "--json"]) == 0
    lines = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert lines[0]["event"] == "start" and lines[0]["labels_from"] == "zoo entry mlperf_kws_int8"
    assert lines[-1]["event"] == "end" and lines[-1]["windows"] > 0
    events = [l for l in lines if l["event"] == "keyword"]
    errors = []
    for label, t in truth:
        hits = [e for e in events if e["label"] == label and abs(e["time_s"] - t) <= 0.25]
        if len(hits) != 1:
            errors.append(f"{label} at {t:.2f} s: {len(hits)} matching events")
    for e in events:   # every event belongs to a keyword: nothing fires in the noise-only parts
        if not any(e["label"] == l and abs(e["time_s"] - t) <= 0.25 for l, t in truth):
            errors.append(f"spurious {e}")
    offsets = [min(abs(e["time_s"] - t) for e in events if e["label"] == l) for l, t in truth]
    print(f"\n{len(truth)} keywords in {lines[-1]['audio_s']:.0f} s: timing error mean {np.mean(offsets) * 1000:.0f} ms,"
          f" max {np.max(offsets) * 1000:.0f} ms; real-time factor {lines[-1]['real_time_factor']}")
    assert not errors, errors
    assert len(events) == len(truth) == 20


@pytest.mark.shared
def test_chunk_size_does_not_change_events(stream, detector):
    x = audio.read_audio(stream[0])
    a = detector.detect(x, chunk_samples=1600)
    b = detector.detect(x, chunk_samples=977)
    assert [(e.label, e.time_s) for e in a] == [(e.label, e.time_s) for e in b]


@pytest.mark.shared
def test_replayed_posteriors_give_the_events_of_detect(stream, detector, shared_dir):
    x = audio.read_audio(stream[0])
    short = audio.read_audio(sorted((shared_dir / "data" / "speech_commands_dev" / "yes").glob("*.flac"))[0])[:6400]
    for sig in (x, short):  # a 0.4 s signal is zero-padded to one window by both
        ends, post = detector.window_posteriors(sig)
        assert len(ends) >= 1
        for cfg in (detector.config, kws.DetectorConfig(threshold=0.5, smoothing=1)):
            want = kws.KeywordDetector(detector.model, config=cfg).detect(sig)
            assert detector.events(ends, post, config=cfg) == want


@pytest.mark.shared
def test_labels_and_front_end_come_from_a_bundle_manifest(ref_model, tmp_path):
    from edgeship.bundle import write_bundle

    spec = audio.MLPERF_KWS
    labels = list(kws.KeywordDetector(str(ref_model)).labels)
    b = write_bundle(tmp_path / "b", {"tflite-int8": ref_model}, labels=labels, preprocessing=spec.to_dict())["_dir"]
    det = kws.KeywordDetector(str(b))
    assert det.info.labels_from == "bundle manifest" and det.info.spec_from == "bundle manifest"
    assert det.spec == spec and det.labels == labels
    bad = write_bundle(tmp_path / "bad", {"tflite-int8": ref_model}, labels=labels[:3])["_dir"]
    with pytest.raises(InputSpecError, match="12 outputs but 3 labels"):
        kws.KeywordDetector(str(bad))
    img = write_bundle(tmp_path / "img", {"tflite-int8": ref_model}, labels=labels,
                       preprocessing={"type": "image", "size": [96, 96]})["_dir"]
    with pytest.raises(InputSpecError, match="not an audio front end"):
        kws.KeywordDetector(str(img))


def test_posterior_filter_smoothing_threshold_and_refractory():
    labels = ["yes", "no", "_unknown_"]
    f = kws.PosteriorFilter(labels, kws.DetectorConfig(threshold=0.6, smoothing=2, refractory_s=1.0))
    seq = np.zeros((40, 3))
    seq[:, 2] = 1.0
    seq[10:16] = [0.95, 0, 0.05]      # one "yes", windows 10..15
    seq[17] = [0.9, 0, 0.1]           # a blip 0.2 s later: inside the refractory period
    seq[30] = [0, 0.99, 0.01]         # a single-window "no": smoothed 0.5 < threshold, ignored
    seq[33:35] = [0, 0.9, 0.1]        # two windows: fires
    ends = 1.0 + np.arange(40) / 10
    ev = f.run(ends, seq)
    assert [e.label for e in ev] == ["yes", "no"]
    assert ev[0].time_s == pytest.approx((ends[10] + ends[15]) / 2 - 0.5)
    assert ev[0].confidence == pytest.approx(0.95)
    assert ev[1].time_s == pytest.approx((ends[33] + ends[34]) / 2 - 0.5)
    assert all(e.emitted_s >= e.time_s for e in ev)
    # without the refractory period the blip is a second event
    f2 = kws.PosteriorFilter(labels, kws.DetectorConfig(threshold=0.6, smoothing=1, refractory_s=0.0))
    assert [e.label for e in f2.run(ends, seq)] == ["yes", "yes", "no", "no"]


def test_an_episode_is_labelled_by_its_strongest_keyword():
    """A window with only the start of a word may favour another keyword; the windows holding the
    whole word decide the label, and the time comes from that keyword's own windows."""
    labels = ["down", "go", "_unknown_"]
    seq = np.zeros((30, 3))
    seq[:, 2] = 1.0
    seq[10:12] = [0.1, 0.8, 0.1]      # "do-": looks like "go" first
    seq[12:16] = [0.97, 0.02, 0.01]   # the whole word: "down"
    seq[16] = [0.1, 0.1, 0.8]
    seq[20:22] = [0.0, 0.9, 0.1]      # a real "go" later: its own episode
    ends = 1.0 + np.arange(30) / 10
    for sm in (1, 2):
        ev = kws.PosteriorFilter(labels, kws.DetectorConfig(threshold=0.6, smoothing=sm, refractory_s=0.5)).run(ends, seq)
        assert [e.label for e in ev] == ["down", "go"]
        assert ev[0].time_s == pytest.approx((ends[12] + ends[15]) / 2 - 0.5)
        assert ev[0].confidence == pytest.approx(0.97)
        assert ev[0].emitted_s == pytest.approx(ends[16])   # the first window after the word
    # a stronger "go" in the same episode wins instead: the label is the highest smoothed score
    seq[10:12] = [0.0, 0.99, 0.01]
    ev = kws.PosteriorFilter(labels, kws.DetectorConfig(threshold=0.6, smoothing=1, refractory_s=0.5)).run(ends, seq)
    assert [(e.label, e.time_s) for e in ev] == [("go", pytest.approx((ends[10] + ends[11]) / 2 - 0.5)), ("go", pytest.approx(ends[20] + 0.05 - 0.5))]


@pytest.mark.parametrize("kwargs, words", [
    ({"threshold": 0.0}, "threshold"), ({"threshold": 1.5}, "threshold"), ({"smoothing": 0}, "smoothing"),
    ({"refractory_s": -1}, "refractory"), ({"max_episode": 0}, "max_episode"),
])
def test_bad_detector_config_is_a_clear_error(kwargs, words):
    with pytest.raises(InputSpecError, match=words):
        kws.DetectorConfig(**kwargs)


def test_filter_needs_keywords_and_matching_posteriors():
    with pytest.raises(InputSpecError, match="at least one keyword"):
        kws.PosteriorFilter(["_silence_", "_unknown_"])
    with pytest.raises(InputSpecError, match="expected 2 values"):
        kws.PosteriorFilter(["a", "b"]).push(1.0, [0.1, 0.2, 0.7])
