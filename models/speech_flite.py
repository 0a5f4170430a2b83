"""Synthetic speech from Flite (CMU's Festival-lite): four more real speakers' voices.

espeak-ng's formant voices (:mod:`edgeship.models.speech_synth`) are varied but far from real
speech, and the Piper voice (:mod:`edgeship.models.speech_piper`) is one speaker. Flite's
built-in voices are diphone and clustergen voices recorded from four US/Scottish speakers
(``kal16``, ``kal``: male US; ``awb``: male Scottish; ``rms``: male US; ``slt``: female US).
A keyword model trained on real clips only recognises 67-99 % of their keywords
(``bench/train_kws.py voices``).

Flite is a system program, not a pip package: ``apt-get install flite`` (Debian, Ubuntu,
Raspberry Pi OS), ``brew install flite`` (macOS); ``$EDGESHIP_FLITE`` names another binary.
Without it, :func:`binary` raises :class:`~edgeship.errors.MissingDependencyError` saying so.

Variation per utterance (:class:`FliteParams`): the voice, its duration stretch (speaking
rate), its pitch target (mean and spread), a warp (resampling by 0.85-1.2, which moves pitch
and formants together, like a shorter or longer vocal tract) and the punctuation. Flite draws
nothing at random, so ``(word, seed)`` fixes the audio.

Example:
    >>> from edgeship.models import speech_flite as sf
    >>> sf.utterance_params("yes", 0).voice in sf.VOICES
    True
    >>> clips = sf.generate([("yes", 0), ("no", 1)])   # doctest: +SKIP
    >>> clips.shape                                   # doctest: +SKIP
    (2, 16000)
"""
from __future__ import annotations

import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np

from edgeship.audio import read_audio_rate
from edgeship.errors import InputSpecError, MissingDependencyError

from . import speech_synth as ss

#: Flite's built-in English voices used for synthetic speech (``flite -lv`` lists them).
VOICES = ("kal16", "kal", "awb", "rms", "slt")
#: Punctuation styles (intonation).
STYLES = ("{w}", "{w}.", "{w}!", "{w}?", "{w},")
_F0 = {"slt": (150.0, 260.0)}  # pitch target range (Hz) per voice; the male voices use _F0_MALE
_F0_MALE = (80.0, 170.0)
_TIMEOUT = 60.0


@dataclass(frozen=True)
class FliteParams:
    """How one utterance is spoken by Flite (recorded with generated data)."""

    voice: str = "kal16"
    duration_stretch: float = 1.0   # > 1 speaks slower
    f0_mean: float = 110.0          # pitch target, Hz
    f0_stddev: float = 15.0         # pitch movement, Hz
    warp: float = 1.0               # resampling factor: > 1 higher and faster, < 1 lower and slower
    style: str = "{w}"

    def to_dict(self) -> dict:
        return asdict(self)


def random_params(rng: np.random.Generator) -> FliteParams:
    """Draw voice, rate, pitch, warp and punctuation from ``rng``."""
    voice = str(VOICES[int(rng.integers(len(VOICES)))])
    lo, hi = _F0.get(voice, _F0_MALE)
    return FliteParams(voice=voice, duration_stretch=round(float(rng.uniform(0.8, 1.45)), 4),
                       f0_mean=round(float(rng.uniform(lo, hi)), 2), f0_stddev=round(float(rng.uniform(5, 35)), 2),
                       warp=round(float(rng.uniform(0.85, 1.2)), 4), style=str(STYLES[int(rng.integers(len(STYLES)))]))


def utterance_params(word: str, seed: int) -> FliteParams:
    """The :class:`FliteParams` that :func:`generate` uses for ``(word, seed)``."""
    return random_params(np.random.default_rng([seed, *word.encode("utf-8"), 3]))


_FACTS: dict = {}  # binary path -> (version line, voices)


def binary() -> str:
    """Path of the ``flite`` program (``$EDGESHIP_FLITE`` or ``flite`` on ``PATH``).

    Raises:
        MissingDependencyError: no such program.
    """
    return ss.find_program("flite", "EDGESHIP_FLITE", "Flite", "apt-get install flite; brew install flite")


def available() -> bool:
    """True when :func:`binary` finds a Flite program (nothing is run)."""
    try:
        binary()
    except MissingDependencyError:
        return False
    return True


def _facts(path: str) -> tuple:
    if path not in _FACTS:
        try:
            ver = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=_TIMEOUT)
            lv = subprocess.run([path, "-lv"], capture_output=True, text=True, timeout=_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise MissingDependencyError(f"{path} did not run as Flite ({exc}); reinstall it "
                                         "(apt-get install --reinstall flite)") from None
        version = next((ln.strip() for ln in ver.stdout.splitlines() if "version" in ln), "")
        voices = tuple(lv.stdout.split(":", 1)[-1].split())
        if not version or not voices:
            raise MissingDependencyError(f"{path} did not answer as Flite (--version: {ver.stdout.strip()[:80]!r}, "
                                         f"-lv: {lv.stdout.strip()[:80]!r}); install Flite (apt-get install flite)")
        _FACTS[path] = (version, voices)
    return _FACTS[path]


def data_facts() -> dict:
    """What synthetic data made by this engine depends on (part of its cache key): the program's
    version, the voices and the styles."""
    return {"version": version(), "voices": list(VOICES), "styles": list(STYLES)}


def version() -> str:
    """Flite's version line (what generated data records), e.g. ``version: flite-2.2-current ...``."""
    return _facts(binary())[0]


def speak(text: str, params: FliteParams = FliteParams(), sample_rate: int = ss.SAMPLE_RATE) -> np.ndarray:
    """``text`` (in ``params.style``) as float32 samples at ``sample_rate``, warped by ``params.warp``.

    Raises:
        InputSpecError: empty text, a voice this Flite does not have, or a warp outside [0.5, 2].
        MissingDependencyError: Flite is not installed.
    """
    if not isinstance(text, str) or not text.strip():
        raise InputSpecError(f"speak: expected a non-empty word or phrase, given {text!r}")
    if not 0.5 <= params.warp <= 2.0:
        raise InputSpecError(f"speak: warp must be within [0.5, 2.0], given {params.warp}")
    path = binary()
    voices = _facts(path)[1]
    if params.voice not in voices:  # flite itself falls back to its default voice without a word
        raise InputSpecError(f"speak: Flite at {path} has no voice {params.voice!r}; it has {', '.join(voices)}")
    with tempfile.TemporaryDirectory(prefix="edgeship-flite-") as d:
        out = Path(d) / "say.wav"
        cmd = [path, "-voice", params.voice, "--setf", f"duration_stretch={params.duration_stretch}",
               "--setf", f"int_f0_target_mean={params.f0_mean}", "--setf", f"int_f0_target_stddev={params.f0_stddev}",
               "-t", params.style.replace("{w}", text.strip()), "-o", str(out)]
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise InputSpecError(f"speak: Flite took over {_TIMEOUT:.0f} s for {text!r}; give a word or a short "
                                 "phrase") from None
        if run.returncode != 0 or not out.is_file() or out.stat().st_size <= 44:
            raise InputSpecError(f"speak: Flite could not synthesise {text!r} (exit {run.returncode}: "
                                 f"{run.stderr.strip()[:200]})")
        x, rate = read_audio_rate(out)
    return ss.resample(x, int(round(rate * params.warp)), sample_rate)


def _generate_one(items) -> np.ndarray:
    clips = []
    for w, s in items:
        rng = np.random.default_rng([s, *w.encode("utf-8"), 3])
        clips.append(ss.place(speak(w, random_params(rng)), rng))
    return np.stack(clips)


def generate_lists(lists: Sequence[Sequence], done: Optional[Callable[[int], None]] = None) -> List[np.ndarray]:
    """:func:`generate` for each list; ``done(n)`` is called as each list is finished, with its
    number of clips (for a progress bar)."""
    lists = ss.word_lists(lists)
    if any(lists):
        binary()
    return ss.render_lists(lists, _generate_one, done)


def generate(items: Sequence) -> np.ndarray:
    """Clips ``[N, 16000]`` float32 for ``items``, a list of ``(word, seed)`` pairs, in order.

    The voice parameters and the placement come from ``(word, seed)``; Flite itself is
    deterministic, so the same list gives the same clips.
    """
    return generate_lists([items])[0]
