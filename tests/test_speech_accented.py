"""Festival's Czech, Finnish, Italian and Russian speakers saying English words (respelled from espeak-ng's IPA)."""
from __future__ import annotations

import numpy as np
import pytest

from edgeship.errors import InputSpecError, MissingDependencyError
from tests._kws_helpers import fake_program, forget_festival, zoo_accuracy_on

sa = pytest.importorskip("edgeship.models.speech_accented")
from edgeship.models import speech_festival as sfe  # noqa: E402
from edgeship.models import speech_synth as ss  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_facts(monkeypatch):
    forget_festival(monkeypatch)


@pytest.fixture
def espeak():
    if not ss.available():
        pytest.skip("espeak-ng (the [speech] extra) is not installed")


@pytest.fixture
def accented(espeak):
    try:
        sa.version()
    except MissingDependencyError as exc:
        pytest.skip(f"Festival or its Czech/Finnish/Italian voices are not installed ({exc}); .ci/run installs them")


def _fake(tmp_path, body: str):
    return fake_program(tmp_path / "festival", "#!/bin/sh\n" + body + "\n")


def test_respelling_says_english_sounds_with_each_language_s_letters():
    cases = {  # espeak-ng en-us IPA -> (Czech, Finnish, Italian, Russian)
        "jˈɛs": ("jes", "jes", "ies", "йес"), "ɹˈaɪt": ("rajt", "rait", "rait", "райт"),
        "stˈɑːp": ("stáp", "staap", "stap", "стап"), "ʃˈiːlə": ("šíle", "siile", "scile", "шиле"),
        "ɡˈoʊ": ("gou", "gou", "gou", "гоу"), "hˈaʊs": ("haus", "haus", "aus", "хаус"),
        "kˈæt": ("ket", "kät", "chet", "кет"), "kˈɑː": ("ká", "kaa", "ca", "ка"),
        "dʒˈʌdʒ": ("džadž", "dsads", "giagi", "джадж"), "ˈeɪt": ("ejt", "eit", "eit", "эйт"),
        "lˈaɪts ˈɔn": ("lajts on", "laits on", "laits on", "лайтс он"),
    }
    for ipa, want in cases.items():
        assert tuple(sa.respell_phonemes(ipa, lang) for lang in ("cs", "fi", "it", "ru")) == want, ipa
    with pytest.raises(InputSpecError, match="expected a language of cs, fi, it, ru"):
        sa.respell_phonemes("jˈɛs", "de")
    with pytest.raises(InputSpecError, match="no cs spelling for the sound 'ʕ'"):
        sa.respell_phonemes("ʕa", "cs")
    # every spelling can be written in the character set its voices read
    for v, (lang, _) in sa.SPEAKERS.items():
        for ipa in cases:
            sa.respell_phonemes(ipa, lang).encode(sa.ENCODINGS[lang])


def test_every_sound_espeak_gives_for_english_words_has_a_spelling(espeak):
    words = [*ss.UNKNOWN_WORDS, "marvin", "sheila", "wow", "visual", "button", "church", "pleasure", "singer",
             "hey siri", "okay google", "computer", "jarvis", "naïve", "café", "rhythm"]
    for w in words:
        for lang in ("cs", "fi", "it", "ru"):
            text = sa.respell(w, lang)
            assert text and text == text.strip(), (w, lang)
            text.encode(sa.ENCODINGS[lang])


def test_missing_voices_are_named_with_their_packages(monkeypatch, tmp_path, espeak):
    monkeypatch.setenv("EDGESHIP_FESTIVAL", _fake(tmp_path, 'case "$1" in --version) echo "festival: Festival '
                                                            'Speech Synthesis System: 2.5.0";; *) echo "(kal_diphone '
                                                            'czech_dita)";; esac'))
    assert not sa.available()
    with pytest.raises(MissingDependencyError, match=r"lacks the voices czech_machac, hy_fi_mv_diphone, "
                                                     r"suo_fi_lj_diphone, pc_diphone, msu_ru_nsh_clunits.*apt-get "
                                                     r"install festvox-czech-machac festvox-suopuhe-mv"):
        sa.generate([("yes", 0)])
    monkeypatch.setenv("EDGESHIP_FESTIVAL", str(tmp_path / "none"))
    monkeypatch.setattr(sfe, "_FACTS", {})
    with pytest.raises(MissingDependencyError, match="apt-get install festival"):
        sa.version()


def test_each_text_reaches_festival_in_its_voice_s_character_set(monkeypatch, tmp_path, espeak):
    """Czech voices read ISO-8859-2 (UTF-8 'š' is spoken as two letters), Finnish ones Latin-1, the Russian UTF-8."""
    kept = tmp_path / "kept.scm"
    every = " ".join(sa.VOICES)
    monkeypatch.setenv("EDGESHIP_FESTIVAL", _fake(tmp_path, f'case "$1" in --version) echo "festival: Festival '
                                                            f'Speech Synthesis System: 2.5.0";; -b) case "$2" in '
                                                            f'*voices.scm) echo "({every})";; *) cat "$2" >> {kept}; '
                                                            f'exit 1;; esac;; esac'))
    seeds = [s for s in range(200) if sa.utterance_params("sheila", s).voice == "czech_dita"][:1]
    seeds += [s for s in range(200) if sa.utterance_params("sheila", s).voice == "suo_fi_lj_diphone"][:1]
    seeds += [s for s in range(200) if sa.utterance_params("sheila", s).voice == "msu_ru_nsh_clunits"][:1]
    for s, raw in zip(seeds, ("šíle".encode("iso-8859-2"), "siile".encode("latin-1"), "шиле".encode("utf-8"))):
        kept.unlink(missing_ok=True)
        with pytest.raises(InputSpecError, match="could not synthesise"):
            sa.generate([("sheila", s)])
        assert raw in kept.read_bytes()
    assert "šíle".encode("iso-8859-2") != "šíle".encode("utf-8")


def test_generate_is_repeatable_and_every_speaker_takes_turns(accented):
    items = [("yes", 0), ("yes", 1), ("right", 2), ("sheila", 3)]
    a = sa.generate(items)
    assert a.shape == (4, 16000) and a.dtype == np.float32 and np.all(np.isfinite(a))
    assert np.allclose(np.abs(a).max(axis=1), 0.5, atol=1e-4)
    assert not np.allclose(a[0], a[1])
    np.testing.assert_array_equal(sa.generate_lists([[], items])[1], a)
    assert {sa.utterance_params("yes", s).voice for s in range(40)} == set(sa.VOICES)
    # the draws are not Festival's English ones for the same (word, seed)
    assert [sa.utterance_params("yes", s).warp for s in range(5)] != [sfe.utterance_params("yes", s).warp
                                                                       for s in range(5)]


def test_a_model_trained_on_real_speech_hears_the_accented_keywords(accented):
    acc = zoo_accuracy_on(sa.generate, 6)
    assert acc >= 0.6, f"the real-speech zoo model recognises {acc:.0%} of the accented keywords"


def _fake_festival(tmp_path, crash_on):
    """A Festival that writes a short tone per utterance and crashes like a segfault when asked to
    say ``crash_on`` (None: anything)."""
    import sys

    return fake_program(tmp_path / "festival", f"""#!{sys.executable}
import re, sys, wave
import numpy as np
if sys.argv[1] == "--version":
    print("festival: Festival Speech Synthesis System: 2.5.0")
elif sys.argv[2].endswith("voices.scm"):
    print("({' '.join(sa.VOICES)})")
else:
    voice = None
    for line in open(sys.argv[2], "rb").read().decode("latin-1").splitlines():
        m = re.match(r"\\(voice_(\\w+)\\)", line)
        if m:
            voice = m.group(1)
        m = re.search(r'Utterance Text "(.*)"\\)\\) "(.*)" ', line)
        if m:
            if {crash_on!r} in (None, m.group(1).rstrip(".!?,")):
                sys.exit(139)
            amp = 0.1 + 0.1 * {list(sa.VOICES)!r}.index(voice)  # a known voice, or this fails
            t = np.arange(4000) / 16000
            with wave.open(m.group(2), "wb") as w:
                w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000)
                w.writeframes((amp * 32767 * np.sin(2 * np.pi * 200 * t)).astype("<i2").tobytes())
""")


def test_an_utterance_that_crashes_festival_is_said_by_another_voice(monkeypatch, tmp_path, espeak):
    """Festival's diphone voices segfault on a few inputs (the Italian one on "ed", i.e. "head"):
    the rest of the list still renders, and that utterance falls back to the next voices."""
    monkeypatch.setenv("EDGESHIP_FESTIVAL", _fake_festival(tmp_path, "ed"))
    seed = next(s for s in range(500) if sa.utterance_params("head", s).voice == "pc_diphone")
    items = [("yes", 1), ("head", seed), ("no", 2), ("up", 3)]
    clips = sa.generate(items)
    assert clips.shape == (4, 16000) and np.all(np.abs(clips).max(axis=1) > 0.49)
    alone = sa.generate([it for it in items if it[0] != "head"])
    np.testing.assert_array_equal(clips[[0, 2, 3]], alone)  # the others are as without the crash
    monkeypatch.setattr(sfe, "_FACTS", {})
    monkeypatch.setenv("EDGESHIP_FESTIVAL", _fake_festival(tmp_path, None))  # crashes on everything
    voice = sa.utterance_params("yes", 1).voice
    said = sa.respell("yes", sa.SPEAKERS[voice][0])
    with pytest.raises(InputSpecError, match=rf"could not synthesise '{said}' with {voice} .*exit 139"):
        sa.generate([("yes", 1)])
