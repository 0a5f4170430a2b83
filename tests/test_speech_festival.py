"""Festival's voices as a fourth source of synthetic speech (a system program, detected and named when absent)."""
from __future__ import annotations

import numpy as np
import pytest

from edgeship.errors import InputSpecError, MissingDependencyError
from tests._kws_helpers import fake_program, forget_festival, zoo_accuracy_on

sfe = pytest.importorskip("edgeship.models.speech_festival")



@pytest.fixture(autouse=True)
def _fresh_facts(monkeypatch):
    forget_festival(monkeypatch)


@pytest.fixture
def festival():
    try:
        sfe.version()
    except MissingDependencyError as exc:
        pytest.skip(f"Festival or its voices are not installed ({exc}); .ci/run installs them")


def _fake(tmp_path, body: str):
    return fake_program(tmp_path / "festival", "#!/bin/sh\n" + body + "\n")


def test_a_missing_festival_or_voice_is_named_with_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGESHIP_FESTIVAL", str(tmp_path / "none"))
    with pytest.raises(MissingDependencyError, match=r"apt-get install festival festvox-kdlpc16k.*--voices"):
        sfe.generate([("yes", 0)])
    assert not sfe.available()
    # a Festival with only one of the voices: the missing ones and their packages are named
    monkeypatch.setenv("EDGESHIP_FESTIVAL", _fake(tmp_path, 'case "$1" in --version) echo "festival: Festival '
                                                            'Speech Synthesis System: 2.5.0";; *) echo "(kal_diphone)";; esac'))
    with pytest.raises(MissingDependencyError, match=r"lacks the voices ked_diphone, cmu_us_slt_arctic_hts.*"
                                                     r"apt-get install festvox-kdlpc16k festvox-us-slt-hts"):
        sfe.speak("yes")
    monkeypatch.setattr(sfe, "_FACTS", {})
    monkeypatch.setenv("EDGESHIP_FESTIVAL", _fake(tmp_path, "echo hello"))
    with pytest.raises(MissingDependencyError, match="did not answer as Festival"):
        sfe.version()


def test_generate_is_repeatable_placed_and_varied(festival):
    items = [("yes", 0), ("yes", 1), ("no", 0), ('say "stop"', 2)]  # quotes reach Festival as text
    a = sfe.generate(items)
    assert a.shape == (4, 16000) and a.dtype == np.float32 and np.all(np.isfinite(a))
    assert np.allclose(np.abs(a).max(axis=1), 0.5, atol=1e-4)
    assert not np.allclose(a[0], a[1]) and not np.allclose(a[0], a[2])
    done = []
    many = sfe.generate_lists([items[2:], [], items], done=done.append)
    np.testing.assert_array_equal(many[2], a)
    assert [m.shape for m in many] == [(2, 16000), (0, 16000), (4, 16000)] and done == [2, 0, 4]
    params = [sfe.utterance_params("yes", s) for s in range(30)]
    assert {p.voice for p in params} == set(sfe.VOICES)
    assert "Festival" in sfe.version() and "/" not in sfe.version().split(":")[0]


def test_pitch_rate_and_warp_take_effect(festival):
    base = sfe.speak("yes", sfe.FestivalParams(voice="ked_diphone", f0_mean=90.0))
    high = sfe.speak("yes", sfe.FestivalParams(voice="ked_diphone", f0_mean=160.0))
    slow = sfe.speak("yes", sfe.FestivalParams(voice="ked_diphone", f0_mean=90.0, duration_stretch=1.4))
    warped = sfe.speak("yes", sfe.FestivalParams(voice="ked_diphone", f0_mean=90.0, warp=1.2))

    def f0(x):  # autocorrelation pitch of the loudest 40 ms
        e = [np.sum(x[j:j + 640] ** 2) for j in range(0, x.size - 640, 160)]
        seg = x[int(np.argmax(e)) * 160:][:640]
        ac = np.correlate(seg, seg, "full")[639:]
        return 16000 / (np.argmax(ac[50:250]) + 50)

    assert f0(high) > 1.3 * f0(base)
    assert slow.size > 1.2 * base.size and warped.size < 0.9 * base.size


def test_bad_requests_are_clear_errors(festival):
    with pytest.raises(InputSpecError, match="expected a Festival voice"):
        sfe.speak("yes", sfe.FestivalParams(voice="nobody"))
    with pytest.raises(InputSpecError, match="non-empty"):
        sfe.speak(" ")
    with pytest.raises(InputSpecError, match="warp"):
        sfe.speak("yes", sfe.FestivalParams(warp=0.1))
    with pytest.raises(InputSpecError, match="non-empty words"):
        sfe.generate([("yes", 0), ("", 1)])


def test_a_model_trained_on_real_speech_hears_festival_s_keywords(festival):
    acc = zoo_accuracy_on(sfe.generate, 4)
    assert acc >= 0.5, f"the real-speech zoo model recognises {acc:.0%} of Festival's keywords"
