"""Synthetic speech from the Festival Speech Synthesis System: one more speaker and two more voices.

Festival's English voices from the OS packages are ``ked_diphone`` (a US male speaker heard in
no other engine here; package ``festvox-kdlpc16k``), ``kal_diphone`` (``festvox-kallpc16k``)
and ``cmu_us_slt_arctic_hts`` (a female HMM voice; ``festvox-us-slt-hts``): ``apt-get install
festival festvox-kdlpc16k festvox-kallpc16k festvox-us-slt-hts``. ``$EDGESHIP_FESTIVAL``
names another ``festival`` binary. Without the program or one of the voices,
:class:`~edgeship.errors.MissingDependencyError` says what to install.

Variation per utterance (:class:`FestivalParams`): the voice, its duration stretch (rate), its
pitch target (mean and spread; the diphone voices follow it, the HMM voice keeps its own), a
warp (resampling by 0.85-1.2: pitch and formants together) and the punctuation. Festival draws
nothing at random, so ``(word, seed)`` fixes the audio. A list of utterances is rendered by one
``festival -b`` run (a few milliseconds per word).

Example:
    >>> from edgeship.models import speech_festival as sfe
    >>> sfe.utterance_params("yes", 0).voice in sfe.VOICES
    True
    >>> clips = sfe.generate([("yes", 0), ("no", 1)])   # doctest: +SKIP
    >>> clips.shape                                    # doctest: +SKIP
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

#: Festival voices used for synthetic speech, with the Debian package that ships each.
PACKAGES = {"ked_diphone": "festvox-kdlpc16k", "kal_diphone": "festvox-kallpc16k",
            "cmu_us_slt_arctic_hts": "festvox-us-slt-hts"}
VOICES = tuple(PACKAGES)
#: Punctuation styles (intonation).
STYLES = ("{w}", "{w}.", "{w}!", "{w}?", "{w},")
_INSTALL = "apt-get install festival " + " ".join(PACKAGES.values())
_TIMEOUT_PER_WORD, _TIMEOUT_BASE = 2.0, 60.0


@dataclass(frozen=True)
class FestivalParams:
    """How one utterance is spoken by Festival (recorded with generated data)."""

    voice: str = "ked_diphone"
    duration_stretch: float = 1.0   # > 1 speaks slower
    f0_mean: float = 110.0          # pitch target, Hz (diphone voices)
    f0_stddev: float = 15.0         # pitch movement, Hz (diphone voices)
    warp: float = 1.0               # resampling factor: > 1 higher and faster, < 1 lower and slower
    style: str = "{w}"

    def to_dict(self) -> dict:
        return asdict(self)


def random_params(rng: np.random.Generator, voices: Sequence[str] = VOICES) -> FestivalParams:
    """Draw voice (one of ``voices``), rate, pitch, warp and punctuation from ``rng``."""
    return FestivalParams(voice=str(voices[int(rng.integers(len(voices)))]),
                          duration_stretch=round(float(rng.uniform(0.8, 1.45)), 4),
                          f0_mean=round(float(rng.uniform(80.0, 170.0)), 2),
                          f0_stddev=round(float(rng.uniform(5.0, 35.0)), 2),
                          warp=round(float(rng.uniform(0.85, 1.2)), 4),
                          style=str(STYLES[int(rng.integers(len(STYLES)))]))


def utterance_params(word: str, seed: int) -> FestivalParams:
    """The :class:`FestivalParams` that :func:`generate` uses for ``(word, seed)``."""
    return random_params(np.random.default_rng([seed, *word.encode("utf-8"), 4]))


def binary() -> str:
    """Path of the ``festival`` program (``$EDGESHIP_FESTIVAL`` or ``festival`` on ``PATH``).

    Raises:
        MissingDependencyError: no such program.
    """
    return ss.find_program("festival", "EDGESHIP_FESTIVAL", "Festival", _INSTALL)


def available(packages: Optional[dict] = None) -> bool:
    """True when Festival and every voice in ``packages`` (default :data:`PACKAGES`) are installed
    (runs ``festival`` once)."""
    try:
        _facts(binary(), packages)
    except MissingDependencyError:
        return False
    return True


_FACTS: dict = {}  # binary path -> (version line, the voices Festival lists)


def _facts(path: str, packages: Optional[dict] = None) -> str:
    """Festival's version line, after checking that it runs and has every voice of ``packages``
    (voice -> Debian package; default :data:`PACKAGES`)."""
    packages = PACKAGES if packages is None else packages
    if path not in _FACTS:
        with tempfile.TemporaryDirectory(prefix="edgeship-festival-") as d:
            script = Path(d) / "voices.scm"
            script.write_text("(print (voice.list))\n")
            try:
                ver = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=_TIMEOUT_BASE)
                lv = subprocess.run([path, "-b", str(script)], capture_output=True, text=True, timeout=_TIMEOUT_BASE)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise MissingDependencyError(f"{path} did not run as Festival ({exc}); reinstall it "
                                             f"({_INSTALL})") from None
        version = ver.stdout.strip().splitlines()[0] if ver.stdout.strip() else ""
        version = version[len(path) + 2:] if version.startswith(path + ": ") else version  # no install path
        if "festival" not in version.lower():
            raise MissingDependencyError(f"{path} did not answer as Festival (--version: {version[:80]!r}); "
                                         f"install it ({_INSTALL})")
        _FACTS[path] = (version, set(lv.stdout.strip().strip("()").split()))
    version, have = _FACTS[path]
    missing = [v for v in packages if v not in have]
    if missing:
        raise MissingDependencyError(f"Festival at {path} lacks the voices {', '.join(missing)}; install them "
                                     f"with apt-get install {' '.join(packages[v] for v in missing)}")
    return version


def data_facts() -> dict:
    """What synthetic data made by this engine depends on (part of its cache key): the program's
    version, the voices and the styles."""
    return {"version": version(), "voices": list(VOICES), "styles": list(STYLES)}


def version() -> str:
    """Festival's version line (what generated data records)."""
    return _facts(binary())


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _render(items, path: str, encodings: Optional[dict] = None,
            alternatives: Optional[Callable[[int], list]] = None) -> List[np.ndarray]:
    """Raw clips (at 16 kHz, warped) for ``(text, params)`` items, in one ``festival -b`` run.

    Each text is written in its voice's character set (``encodings``: voice -> codec; UTF-8 when
    not listed), which is what Festival's non-English voices read. Some voices crash Festival on
    a few inputs (e.g. the Italian voice on "ed"): the rest of the list is then rendered in a new
    run, and the item that crashed is tried alone, then as each of ``alternatives(index)`` (other
    ``(text, params)`` for the same word) in turn; only when all of those fail is it an error.
    """
    encodings = encodings or {}
    out: List[Optional[np.ndarray]] = [None] * len(items)
    with tempfile.TemporaryDirectory(prefix="edgeship-festival-") as d:
        def run(todo) -> subprocess.CompletedProcess:
            """One festival run over ``todo``, a list of (index, text, params); wav i goes to i.wav."""
            lines = []
            for i, text, p in todo:
                said = _scheme_string(p.style.replace("{w}", text)).encode(encodings.get(p.voice, "utf-8"))
                lines += [f"(voice_{p.voice})".encode(), f"(Parameter.set 'Duration_Stretch {p.duration_stretch})".encode(),
                          f"(set! int_lr_params '((target_f0_mean {p.f0_mean}) (target_f0_std {p.f0_stddev}) "
                          "(model_f0_mean 170) (model_f0_std 34)))".encode(),
                          b"(utt.save.wave (utt.synth (Utterance Text " + said + b")) "
                          + f"{_scheme_string(str(Path(d) / f'{i}.wav'))} 'riff)".encode()]
            script = Path(d) / "say.scm"
            script.write_bytes(b"\n".join(lines) + b"\n")
            limit = _TIMEOUT_BASE + _TIMEOUT_PER_WORD * len(todo)
            try:
                return subprocess.run([path, "-b", str(script)], capture_output=True, text=True, timeout=limit)
            except subprocess.TimeoutExpired:
                raise InputSpecError(f"generate: Festival took over {limit:.0f} s for {len(todo)} words; give words "
                                     "or short phrases") from None

        def take(i: int, warp: float) -> bool:
            wav = Path(d) / f"{i}.wav"
            if not wav.is_file() or wav.stat().st_size <= 44:
                return False
            x, rate = read_audio_rate(wav)
            out[i] = ss.resample(x, int(round(rate * warp)), ss.SAMPLE_RATE)
            wav.unlink()
            return True

        start = 0
        while start < len(items):
            result = run([(i, *items[i]) for i in range(start, len(items))])
            j = start
            while j < len(items) and take(j, items[j][1].warp):
                j += 1
            if j == len(items):
                break
            text, p = items[j]  # crashed on item j (or failed): alone, then its alternatives
            for alt_text, alt in [(text, p), *(alternatives(j) if alternatives else [])]:
                alone = run([(j, alt_text, alt)])
                if take(j, alt.warp):
                    break
            else:
                raise InputSpecError(f"generate: Festival could not synthesise {text!r} with {p.voice} (exit "
                                     f"{alone.returncode}: {(alone.stderr or alone.stdout).strip()[-200:]}; in the "
                                     f"list run: exit {result.returncode})")
            start = j + 1
    return out


def speak(text: str, params: FestivalParams = FestivalParams()) -> np.ndarray:
    """``text`` (in ``params.style``) as float32 samples at 16 kHz, warped by ``params.warp``.

    Raises:
        InputSpecError: empty text, a voice not in :data:`VOICES`, or a warp outside [0.5, 2].
        MissingDependencyError: Festival or one of its voices is not installed.
    """
    if not isinstance(text, str) or not text.strip():
        raise InputSpecError(f"speak: expected a non-empty word or phrase, given {text!r}")
    if params.voice not in VOICES:
        raise InputSpecError(f"speak: expected a Festival voice of {', '.join(VOICES)}, given {params.voice!r}")
    if not 0.5 <= params.warp <= 2.0:
        raise InputSpecError(f"speak: warp must be within [0.5, 2.0], given {params.warp}")
    path = binary()
    _facts(path)
    return _render([(text.strip(), params)], path)[0]


def render_word_lists(lists: Sequence[Sequence], done: Optional[Callable[[int], None]], *, packages: dict,
                      choose: Callable[[str, np.random.Generator], tuple], tag: int,
                      encodings: Optional[dict] = None, alternatives=None) -> List[np.ndarray]:
    """Placed 1 s clips for lists of ``(word, seed)``, one ``festival`` run per list: what
    :func:`generate_lists` does with :data:`PACKAGES`, for any table of Festival voices.

    ``choose(word, rng)`` gives ``(text, FestivalParams)`` for an utterance, with ``rng`` seeded
    by ``(seed, word, tag)`` (``tag`` keeps one voice table's draws apart from another's); the
    same generator then places the speech in the clip. ``alternatives(word, params)`` lists
    other ``(text, params)`` for an utterance that crashes Festival (see :func:`_render`).
    """
    lists = ss.word_lists(lists)
    path = binary() if any(lists) else None
    if path:
        _facts(path, packages)

    def one(items) -> np.ndarray:
        rngs = [np.random.default_rng([s, *w.encode("utf-8"), tag]) for w, s in items]
        chosen = [choose(w.strip(), r) for (w, _), r in zip(items, rngs)]
        raw = _render(chosen, path, encodings,
                      alternatives and (lambda j: alternatives(items[j][0].strip(), chosen[j][1])))
        return np.stack([ss.place(x, r) for x, r in zip(raw, rngs)])

    return ss.render_lists(lists, one, done)


def generate_lists(lists: Sequence[Sequence], done: Optional[Callable[[int], None]] = None) -> List[np.ndarray]:
    """:func:`generate` for each list (one ``festival`` run per list); ``done(n)`` is called as
    each list is finished, with its number of clips (for a progress bar)."""
    return render_word_lists(lists, done, packages=PACKAGES, choose=lambda w, r: (w, random_params(r)), tag=4)


def generate(items: Sequence) -> np.ndarray:
    """Clips ``[N, 16000]`` float32 for ``items``, a list of ``(word, seed)`` pairs, in order.

    The voice parameters and the placement come from ``(word, seed)``; Festival itself is
    deterministic, so the same list gives the same clips.
    """
    return generate_lists([items])[0]
