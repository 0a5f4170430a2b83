"""Synthetic speech from espeak-ng, loaded with ctypes from the ``espeakng-loader`` pip wheel.

The wheel ships ``libespeak-ng`` and its voice data (English accents and ~100 voice variants),
so spoken words can be generated with pip alone (the ``[speech]`` extra). espeak-ng renders at
22,050 Hz; :func:`speak` resamples to 16 kHz in numpy (FFT band-limited resampling).

Variation per utterance (:class:`VoiceParams`): accent (voice), voice variant (``+m3``, ``+f2``,
...), rate (words per minute), pitch and pitch range, and word-level variation (intonation from
the punctuation, emphasis). :func:`random_params` draws them from a seeded generator, so a seed
fixes the whole utterance: :func:`utterance` is deterministic given ``(word, seed)``.

espeak-ng is a process-wide singleton; calls are serialised with a lock.

Example:
    >>> from edgeship.models import speech_synth as ss
    >>> clip = ss.utterance("yes", seed=3)          # doctest: +SKIP
    >>> clip.shape, clip.dtype.name                 # doctest: +SKIP
    ((16000,), 'float32')
"""
from __future__ import annotations

import ctypes
import os
import shutil
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np

from edgeship._deps import require
from edgeship.errors import InputSpecError, MissingDependencyError

SAMPLE_RATE = 16000
CLIP = 16000

#: English accents in the wheel (espeak-ng voice identifiers).
ACCENTS = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029",
           "en-us-nyc")
#: Voice variants that sound like speech (robotic/whisper/novelty variants are left out).
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5", "Alex", "Andy", "Annie",
            "Denis", "Diogo", "Gene", "Henrique", "Hugo", "Lee", "Marco", "Mario", "Michael", "Mike", "Nguyen",
            "Reed", "Storm", "adam", "anika", "antonio", "aunty", "belinda", "benjamin", "boris", "caleb", "david",
            "ed", "edward", "grandma", "grandpa", "gustave", "ian", "iven", "iven2", "iven3", "john", "kaukovalta",
            "klatt", "klatt2", "klatt3", "linda", "marcelo", "max", "michel", "miguel", "norbert", "pablo", "paul",
            "pedro", "quincy", "rob", "robert", "sandro", "shelby", "steph", "steph2", "steph3", "travis", "victor",
            "zac", "whisper", "whisperf")
#: Word-level variants: intonation follows the punctuation; SSML emphasis stresses the word.
STYLES = ("{w}", "{w}.", "{w}!", "{w}?", "{w},", "<emphasis>{w}</emphasis>", "{w}...")

# espeak_PARAMETER
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8, _SSML = 1, 0x10
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

_LOCK = threading.Lock()
_STATE: dict = {}


@dataclass(frozen=True)
class VoiceParams:
    """How one utterance is spoken (all recorded with generated data)."""

    accent: str = "en-us"
    variant: str = "m3"
    rate: int = 160          # words per minute (espeak range 80-450)
    pitch: int = 50          # 0-99
    pitch_range: int = 50    # 0-99 (0 = monotone)
    style: str = "{w}"

    def to_dict(self) -> dict:
        return asdict(self)


def available() -> bool:
    """True when espeak-ng (the ``espeakng-loader`` wheel of the ``[speech]`` extra) can be imported."""
    from edgeship._deps import available as importable

    return importable("espeakng_loader")


def _engine():
    """Load and initialise libespeak-ng once; returns ``(lib, sample_rate)``."""
    if "lib" in _STATE:
        return _STATE["lib"], _STATE["rate"]
    loader = require("espeakng_loader", "speech", "synthetic speech")
    lib_path, data_path = Path(loader.get_library_path()), Path(loader.get_data_path())
    try:
        lib = ctypes.CDLL(str(lib_path))
    except OSError as exc:
        raise MissingDependencyError(f"could not load libespeak-ng from {lib_path} ({exc}); reinstall it with "
                                     "pip install --force-reinstall 'edgeship[speech]'") from exc
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                 ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
    lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
    libc = ctypes.CDLL(None)  # espeak-ng also draws from libc's rand(): seed both for repeatable audio
    libc.srand.argtypes = [ctypes.c_uint]
    rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data_path.parent).encode(), _INITIALIZE_DONT_EXIT)
    if rate <= 0:
        raise MissingDependencyError(f"espeak-ng failed to initialise with data at {data_path} (code {rate}); "
                                     "reinstall it with pip install --force-reinstall 'edgeship[speech]'")
    chunks: List[np.ndarray] = []

    def on_audio(wav, n, events):
        if n > 0 and wav:
            chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0

    cb = _CALLBACK(on_audio)
    lib.espeak_SetSynthCallback(cb)
    _STATE.update(lib=lib, rate=rate, cb=cb, chunks=chunks, libc=libc)
    return lib, rate


def resample(x: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Band-limited resampling by FFT (ideal low-pass at the lower Nyquist frequency).

    Example:
        >>> resample(np.ones(22050, np.float32), 22050, 16000).shape
        (16000,)
    """
    x = np.asarray(x, np.float64)
    if src_rate == dst_rate or x.size == 0:
        return x.astype(np.float32)
    pad = int(0.05 * src_rate)  # zeros either side keep the circular FFT from wrapping speech around
    xp = np.concatenate([np.zeros(pad), x, np.zeros(pad)])
    n = xp.size
    m = int(round(n * dst_rate / src_rate))
    spec = np.fft.rfft(xp)
    keep = min(spec.size, m // 2 + 1)
    out_spec = np.zeros(m // 2 + 1, complex)
    out_spec[:keep] = spec[:keep]
    y = np.fft.irfft(out_spec, n=m) * (m / n)
    p2 = int(round(pad * dst_rate / src_rate))
    return y[p2:p2 + int(round(x.size * dst_rate / src_rate))].astype(np.float32)


def speak(text: str, params: VoiceParams = VoiceParams(), sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Render ``text`` (a word or phrase; it replaces ``{w}`` in ``params.style``) as float32 samples.

    Raises:
        InputSpecError: empty text, or an unknown accent/variant.
        MissingDependencyError: espeak-ng (the ``[speech]`` extra) is not installed.
    """
    if not isinstance(text, str) or not text.strip():
        raise InputSpecError(f"speak: expected a non-empty word or phrase, given {text!r}")
    if any(ch in text for ch in "<>&"):
        raise InputSpecError(f"speak: expected plain text (no '<', '>' or '&'), given {text!r}")
    with _LOCK:
        lib, rate = _engine()
        voice = f"{params.accent}+{params.variant}" if params.variant else params.accent
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise InputSpecError(f"speak: unknown voice {voice!r}; accents: {', '.join(ACCENTS)}; variants: "
                                 f"{', '.join(VARIANTS[:8])}, ...")
        for p, v in ((_RATE, params.rate), (_PITCH, params.pitch), (_RANGE, params.pitch_range), (_VOLUME, 100)):
            lib.espeak_SetParameter(p, int(v), 0)
        body = params.style.replace("{w}", text.strip())
        data = f"<speak>{body}</speak>".encode("utf-8") + b"\0"
        chunks = _STATE["chunks"]
        chunks.clear()
        lib.espeak_ng_SetRandSeed(1)
        _STATE["libc"].srand(1)
        err = lib.espeak_Synth(data, len(data), 0, 0, 0, _CHARS_UTF8 | _SSML, None, None)
        if err != 0:
            raise InputSpecError(f"speak: espeak-ng could not synthesise {text!r} (error {err})")
        raw = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        chunks.clear()
    x = raw.astype(np.float32) / 32768.0
    return resample(x, rate, sample_rate)


_PHONEMES_IPA = 0x02


def phonemes(text: str, accent: str = "en-us") -> str:
    """espeak-ng's IPA phonemes for ``text`` (clauses joined by a space), with stress marks: what
    neural voices trained on espeak phonemes take (:mod:`edgeship.models.speech_piper`).

    Example:
        >>> phonemes("yes")   # doctest: +SKIP
        'jˈɛs'
    """
    if not isinstance(text, str) or not text.strip():
        raise InputSpecError(f"phonemes: expected a non-empty word or phrase, given {text!r}")
    with _LOCK:
        lib, _ = _engine()
        if lib.espeak_SetVoiceByName(accent.encode()) != 0:
            raise InputSpecError(f"phonemes: unknown accent {accent!r}; accents: {', '.join(ACCENTS)}")
        buf = ctypes.create_string_buffer(text.strip().encode("utf-8"))
        ptr = ctypes.c_void_p(ctypes.addressof(buf))
        out = []
        while ptr.value:  # one clause per call; espeak-ng moves ptr on, to NULL at the end
            clause = lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_UTF8, _PHONEMES_IPA)
            if clause:
                out.append(clause.decode("utf-8"))
    return " ".join(out)


def trim(x: np.ndarray, threshold_db: float = -40.0, frame: int = 160) -> np.ndarray:
    """Drop leading and trailing frames more than ``threshold_db`` below the loudest frame."""
    if x.size < frame:
        return x
    n = x.size // frame
    e = np.sqrt(np.mean(x[:n * frame].reshape(n, frame) ** 2, axis=1)) + 1e-12
    on = np.flatnonzero(20 * np.log10(e / e.max()) > threshold_db)
    if on.size == 0:
        return x[:0]
    return x[on[0] * frame:(on[-1] + 1) * frame]


def random_params(rng: np.random.Generator, accents: Sequence[str] = ACCENTS,
                  variants: Sequence[str] = VARIANTS) -> VoiceParams:
    """Draw voice, accent, rate, pitch, pitch range and word style from ``rng``."""
    return VoiceParams(accent=str(accents[int(rng.integers(len(accents)))]),
                       variant=str(variants[int(rng.integers(len(variants)))]),
                       rate=int(rng.integers(110, 260)), pitch=int(rng.integers(15, 90)),
                       pitch_range=int(rng.integers(10, 95)), style=str(STYLES[int(rng.integers(len(STYLES)))]))


def place(speech: np.ndarray, rng: Optional[np.random.Generator] = None, n: int = CLIP,
          peak: float = 0.5) -> np.ndarray:
    """Put trimmed speech into an ``n``-sample clip at a random offset (centred without ``rng``),
    scaled to ``peak``; speech longer than the clip keeps its middle."""
    x = trim(speech)
    if x.size == 0:
        raise InputSpecError("place: the synthesised audio is silent")
    if x.size >= n:
        start = (x.size - n) // 2
        x = x[start:start + n]
        off = 0
    else:
        off = (n - x.size) // 2 if rng is None else int(rng.integers(0, n - x.size + 1))
    out = np.zeros(n, np.float32)
    out[off:off + x.size] = x
    m = float(np.max(np.abs(out)))
    return out * np.float32(peak / m) if m > 0 else out


def utterance(word: str, seed: int, *, accents: Sequence[str] = ACCENTS,
              variants: Sequence[str] = VARIANTS) -> np.ndarray:
    """One 1 s, 16 kHz clip of ``word`` spoken with voice parameters drawn from ``seed``.

    The voice, accent, rate, pitch, style and placement are fixed by ``(word, seed)``. espeak-ng
    keeps a little state between calls (its glottal-pulse phase), so consecutive calls in one
    process can differ by a few samples; :func:`generate` runs a list in a fresh engine and is
    bit-for-bit repeatable.
    """
    rng = np.random.default_rng([seed, *word.encode("utf-8")])
    params = random_params(rng, accents, variants)
    return place(speak(word, params), rng)


def utterance_params(word: str, seed: int, *, accents: Sequence[str] = ACCENTS,
                     variants: Sequence[str] = VARIANTS) -> VoiceParams:
    """The :class:`VoiceParams` that :func:`utterance` uses for ``(word, seed)``."""
    return random_params(np.random.default_rng([seed, *word.encode("utf-8")]), accents, variants)


def word_lists(lists: Sequence[Sequence]) -> List[list]:
    """``lists`` of ``(word, seed)`` pairs as ``(str, int)`` pairs, every word checked non-empty
    (what each engine's ``generate_lists`` takes).

    Raises:
        InputSpecError: an empty word.
    """
    out = [[(str(w), int(s)) for w, s in items] for items in lists]
    for items in out:
        for w, _ in items:
            if not w.strip():
                raise InputSpecError(f"generate: expected non-empty words, given {w!r}")
    return out


def _generate_worker(items, accents, variants):
    return np.stack([utterance(w, s, accents=accents, variants=variants) for w, s in items])


def generate(items: Sequence, *, accents: Sequence[str] = ACCENTS, variants: Sequence[str] = VARIANTS,
             isolated: bool = True) -> np.ndarray:
    """Clips ``[N, 16000]`` float32 for ``items``, a list of ``(word, seed)`` pairs, in order.

    With ``isolated`` (the default) the list is rendered in a fresh child process, so the result
    depends only on ``items`` (espeak-ng starts from the same state): bit-for-bit repeatable.

    Example:
        >>> clips = generate([("yes", 0), ("no", 1)])   # doctest: +SKIP
        >>> clips.shape                                 # doctest: +SKIP
        (2, 16000)
    """
    items = word_lists([items])[0]
    if not items:
        return np.zeros((0, CLIP), np.float32)
    if not isolated:
        return _generate_worker(items, tuple(accents), tuple(variants))
    require("espeakng_loader", "speech", "synthetic speech")
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(_generate_worker, (items, tuple(accents), tuple(variants)))


def generate_lists(lists: Sequence[Sequence], done: Optional[Callable[[int], None]] = None) -> List[np.ndarray]:
    """:func:`generate` for each list (each in its own fresh engine, as :func:`generate` renders it);
    ``done(n)`` is called as each list is finished, with its number of clips."""
    return render_lists(lists, generate, done)


def find_program(name: str, env: str, what: str, install: str) -> str:
    """Path of the system program ``name`` (or of ``$env`` when set), for the voices ``what``.

    Raises:
        MissingDependencyError: no such program; the message says how to ``install`` it.
    """
    given = os.environ.get(env)
    path = shutil.which(given or name)
    if not path:
        where = f"${env}={given!r} is not a program" if given else f"{name!r} is not on PATH"
        raise MissingDependencyError(f"{what} is needed for the {name!r} synthetic voices but {where}. Install it "
                                     f"with your OS package manager ({install}), or choose other voices "
                                     "(--voices espeak,piper)")
    return path


def render_lists(lists: Sequence[Sequence], render: Callable[[list], np.ndarray],
                 done: Optional[Callable[[int], None]] = None) -> List[np.ndarray]:
    """``render(items)`` for each non-empty list, in order (an empty list gives ``[0, 16000]``);
    ``done(n)`` is called as each list is finished, with its number of clips (a progress bar's step)."""
    out = []
    for items in lists:
        out.append(render(items) if len(items) else np.zeros((0, CLIP), np.float32))
        if done is not None:
            done(len(out[-1]))
    return out


#: Other words for ``_unknown_`` (common short English words, plus the Speech Commands fillers).
UNKNOWN_WORDS = (
    "backward", "bed", "bird", "cat", "dog", "eight", "five", "follow", "forward", "four", "happy", "house", "learn",
    "marvin", "nine", "one", "seven", "sheila", "six", "three", "tree", "two", "visual", "wow", "zero",
    "apple", "about", "after", "again", "air", "all", "also", "and", "any", "away", "baby", "back", "ball", "bank",
    "bear", "best", "big", "black", "blue", "boat", "book", "box", "boy", "bread", "bring", "brown", "but", "by",
    "call", "car", "card", "chair", "city", "clean", "close", "cold", "come", "cook", "cool", "cup", "dance", "dark",
    "day", "deep", "desk", "did", "dinner", "door", "dove", "draw", "dream", "drink", "drive", "dust", "east", "egg",
    "end", "fall", "far", "farm", "fast", "fish", "floor", "fly", "food", "friend", "from", "fun", "game", "garden",
    "girl", "give", "glass", "gold", "good", "grass", "green", "hand", "hat", "head", "hello", "help", "here", "hill",
    "hold", "home", "hot", "hour", "ice", "idea", "in", "into", "it", "jump", "just", "keep", "key", "kind", "king",
    "know", "lake", "lamp", "last", "late", "leaf", "less", "let", "light", "like", "line", "lion", "little", "long",
    "look", "love", "low", "make", "man", "many", "map", "may", "milk", "money", "moon", "more", "morning", "most",
    "mother", "move", "much", "music", "name", "near", "never", "new", "next", "nice", "night", "noise", "north",
    "not", "now", "number", "ocean", "of", "old", "only", "open", "other", "out", "over", "page", "paper", "park",
    "party", "pen", "people", "phone", "picture", "place", "plan", "play", "please", "pretty", "pull", "push",
    "put", "queen", "quick", "rain", "read", "red", "rest", "rice", "ring", "river", "road", "rock", "room", "run",
    "salt", "same", "say", "school", "sea", "see", "shop", "show", "side", "sing", "sit", "sleep", "slow", "small",
    "snow", "so", "soft", "some", "song", "soon", "south", "star", "start", "step", "still", "store", "story",
    "street", "sun", "table", "take", "talk", "tea", "ten", "than", "that", "the", "then", "there", "they", "thing",
    "think", "this", "time", "today", "top", "town", "toy", "train", "true", "turn", "under", "us", "very", "wait",
    "walk", "wall", "want", "warm", "wash", "watch", "water", "way", "we", "west", "what", "when", "where", "white",
    "who", "why", "wind", "window", "with", "wood", "word", "work", "world", "write", "year", "yellow", "you",
    "young", "yet", "yeah", "yep", "nope", "know", "toe", "top", "dawn", "town", "lift", "light", "write", "ride",
    "of", "often", "an", "own", "stock", "stuff", "cup", "app", "going", "goal", "net", "bless", "guess", "sun",
)
