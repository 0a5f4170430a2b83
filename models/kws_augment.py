"""Audio augmentation for keyword spotting, in numpy: noise at a chosen SNR, gain, time shift,
speed perturbation, a simple room reverberation and a random microphone/channel colouring.

Every function takes mono float32 samples at 16 kHz and returns a new array (inputs are never
modified). Randomness comes only from the ``numpy.random.Generator`` passed in, so a seeded
generator gives the same output everywhere.

Example:
    >>> import numpy as np
    >>> from edgeship.models import kws_augment as aug
    >>> rng = np.random.default_rng(0)
    >>> t = np.arange(16000) / 16000.0
    >>> clip = (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    >>> noisy = aug.add_noise(clip, rng.normal(0, 0.1, 48000).astype(np.float32), snr_db=10.0, rng=rng)
    >>> round(aug.snr_db(clip, noisy - clip), 3)
    10.0
    >>> aug.time_shift(np.arange(5, dtype=np.float32), 2).tolist()
    [0.0, 0.0, 0.0, 1.0, 2.0]
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from edgeship.errors import InputSpecError

SAMPLE_RATE = 16000
CLIP = 16000

__all__ = ["AugmentConfig", "Augmenter", "add_noise", "gain", "time_shift", "speed", "reverb", "colour",
           "fit_length", "snr_db", "load_noise", "load_audio", "noise_clip"]


def _mono(x, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float32)
    if a.ndim != 1:
        raise InputSpecError(f"{what}: expected mono samples as a 1-D array, given shape {a.shape}")
    if a.size == 0:
        raise InputSpecError(f"{what}: expected at least one sample, given an empty array")
    if not np.all(np.isfinite(a)):
        raise InputSpecError(f"{what}: samples contain NaN or inf; clean the signal first")
    return a


def _power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64)))


def snr_db(signal, noise) -> float:
    """Signal-to-noise ratio in dB of two equal-length arrays (mean power over the whole array)."""
    ps, pn = _power(np.asarray(signal, np.float32)), _power(np.asarray(noise, np.float32))
    if pn == 0.0:
        return float("inf")
    if ps == 0.0:
        return float("-inf")
    return float(10.0 * np.log10(ps / pn))


def fit_length(x, n: int = CLIP, *, offset: Optional[int] = None) -> np.ndarray:
    """Crop or zero-pad ``x`` to ``n`` samples. ``offset`` places the clip's start (negative crops
    its head); by default a longer clip keeps its centre and a shorter one is padded at the end.
    """
    x = _mono(x, "fit_length")
    if offset is None:
        offset = 0 if x.size <= n else -((x.size - n) // 2)
    out = np.zeros(n, np.float32)
    src0, dst0 = max(0, -offset), max(0, offset)
    m = min(x.size - src0, n - dst0)
    if m > 0:
        out[dst0:dst0 + m] = x[src0:src0 + m]
    return out


def gain(x, db: float) -> np.ndarray:
    """Scale by ``db`` decibels (amplitude x 10^(db/20))."""
    return (_mono(x, "gain") * np.float32(10.0 ** (db / 20.0))).astype(np.float32)


def time_shift(x, shift: int) -> np.ndarray:
    """Shift right by ``shift`` samples (left when negative), zero-filled, same length."""
    x = _mono(x, "time_shift")
    out = np.zeros_like(x)
    if shift >= 0:
        out[shift:] = x[:x.size - shift] if shift < x.size else []
    else:
        out[:shift] = x[-shift:]
    return out


def speed(x, factor: float) -> np.ndarray:
    """Play ``factor`` times faster (tempo and pitch together, like tape), by linear interpolation.

    The result has ``round(len(x) / factor)`` samples; factors in [0.5, 2] are accepted.
    """
    x = _mono(x, "speed")
    if not 0.5 <= factor <= 2.0:
        raise InputSpecError(f"speed: expected a factor in [0.5, 2], given {factor}")
    n = max(1, int(round(x.size / factor)))
    pos = np.arange(n, dtype=np.float64) * factor
    return np.interp(pos, np.arange(x.size), x).astype(np.float32)


def reverb(x, rng: np.random.Generator, *, rt60: float = 0.3, wet: float = 0.5,
           sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Simple room reverberation: convolution with an exponentially decaying noise tail.

    The impulse response is a unit direct path followed (after 2-10 ms) by Gaussian noise whose
    energy falls by 60 dB in ``rt60`` seconds; ``wet`` scales the tail against the direct path.
    The output keeps the input's length and its peak level.
    """
    x = _mono(x, "reverb")
    if not 0.01 <= rt60 <= 3.0:
        raise InputSpecError(f"reverb: expected rt60 in [0.01, 3] s, given {rt60}")
    n_tail = int(rt60 * sample_rate)
    t = np.arange(n_tail) / sample_rate
    tail = rng.standard_normal(n_tail) * np.exp(-6.908 * t / rt60)
    tail /= np.sqrt(np.sum(tail ** 2)) + 1e-12
    delay = int(rng.uniform(0.002, 0.010) * sample_rate)
    h = np.zeros(delay + n_tail)
    h[0] = 1.0
    h[delay:] += wet * tail
    m = x.size + h.size - 1
    nfft = 1 << (m - 1).bit_length()
    y = np.fft.irfft(np.fft.rfft(x, nfft) * np.fft.rfft(h, nfft), nfft)[:x.size]
    peak_in, peak_out = float(np.max(np.abs(x))), float(np.max(np.abs(y)))
    if peak_out > 0:
        y *= peak_in / peak_out
    return y.astype(np.float32)


def colour(x, rng: np.random.Generator, *, tilt_db: float = 4.0, peak_db: float = 9.0, p_lowpass: float = 0.5,
           sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A random microphone and channel response: what recordings on phones and laptops do to speech.

    The gain curve (in dB, over log frequency) is a tilt of up to ``tilt_db`` per octave around
    1 kHz, one to three resonances or notches (centre 150 Hz-6 kHz, width 0.3-1.5 octaves, up
    to ``peak_db``), a high-pass (cut-off 40-400 Hz) and, with probability ``p_lowpass``, a
    low-pass (3-7.5 kHz, as in narrow-band codecs). Applied by FFT; the output keeps the input's
    length and its peak level. Synthetic voices are clean studio speech: on the 12-class
    synthetic-only recipe this step added 3.4 points on real clips (``models/cards/kws_dscnn.md``).

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
        >>> y = colour(x, np.random.default_rng(1))
        >>> y.shape, bool(np.isclose(np.abs(y).max(), np.abs(x).max())), bool(np.allclose(x, y))
        ((16000,), True, False)
    """
    x = _mono(x, "colour")
    n = x.size
    f = np.maximum(np.fft.rfftfreq(n, 1.0 / sample_rate), 1.0)
    g = rng.uniform(-tilt_db, tilt_db) * np.log2(np.maximum(f, 60.0) / 1000.0)
    for _ in range(int(rng.integers(1, 4))):
        centre, width = np.exp(rng.uniform(np.log(150.0), np.log(6000.0))), rng.uniform(0.3, 1.5)
        g += rng.uniform(-peak_db, peak_db) * np.exp(-0.5 * (np.log2(f / centre) / width) ** 2)
    if rng.random() < p_lowpass:
        g -= 40.0 / (1.0 + np.exp(-(f - rng.uniform(3000.0, 7500.0)) / 150.0))
    g -= 30.0 / (1.0 + np.exp(-(rng.uniform(40.0, 400.0) - f) / 40.0))
    y = np.fft.irfft(np.fft.rfft(x.astype(np.float64)) * 10.0 ** (g / 20.0), n)
    peak_in, peak_out = float(np.max(np.abs(x))), float(np.max(np.abs(y)))
    if peak_out > 0:
        y *= peak_in / peak_out
    return y.astype(np.float32)


def noise_clip(noise, n: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``n``-sample segment of ``noise`` (tiled when the recording is shorter)."""
    noise = _mono(noise, "noise")
    if noise.size < n:
        noise = np.tile(noise, n // noise.size + 1)
    start = int(rng.integers(0, noise.size - n + 1))
    return noise[start:start + n].copy()


def add_noise(x, noise, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add a random segment of ``noise`` scaled so that power(x) / power(segment) is ``snr_db``.

    A silent ``x`` (zero power) is returned unchanged; a silent noise segment adds nothing.
    """
    x = _mono(x, "add_noise")
    seg = noise_clip(noise, x.size, rng)
    ps, pn = _power(x), _power(seg)
    if ps == 0.0 or pn == 0.0:
        return x.copy()
    k = np.sqrt(ps / (pn * 10.0 ** (snr_db / 10.0)))
    return (x + k * seg).astype(np.float32)


def load_audio(path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read a mono float32 file at ``sample_rate`` with :func:`edgeship.audio.read_audio` (channels mixed down).

    Raises:
        InputSpecError: unreadable file, other sample rate, empty or non-finite audio.
    """
    from edgeship.audio import read_audio

    return read_audio(path, sample_rate)


def load_noise(dirs: Sequence) -> List[np.ndarray]:
    """All ``*.wav``/``*.flac`` recordings under the given folders, sorted by path, as float32 arrays."""
    files = sorted(p for d in dirs for p in Path(d).rglob("*") if p.suffix.lower() in (".wav", ".flac"))
    if not files:
        raise InputSpecError(f"load_noise: expected .wav/.flac files under {[str(d) for d in dirs]}, found none")
    return [load_audio(p) for p in files]


@dataclass
class AugmentConfig:
    """Probabilities and ranges of :class:`Augmenter` (all recorded with a trained model)."""

    p_speed: float = 0.5
    speed_range: tuple = (0.85, 1.15)
    p_reverb: float = 0.25
    rt60_range: tuple = (0.15, 0.6)
    shift_ms: float = 100.0
    gain_db: tuple = (-10.0, 6.0)
    p_noise: float = 0.8
    snr_db: tuple = (0.0, 25.0)
    p_colour: float = 0.0   # random microphone/channel response (:func:`colour`), applied last

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


class Augmenter:
    """Random composition: speed -> fit to 1 s -> time shift -> reverb -> gain -> noise -> colour.

    Example:
        >>> import numpy as np
        >>> a = Augmenter([np.ones(100, np.float32)], AugmentConfig(p_noise=0.0, p_reverb=0.0))
        >>> a(np.ones(16000, np.float32), np.random.default_rng(1)).shape
        (16000,)
    """

    def __init__(self, noises: Sequence[np.ndarray] = (), config: Optional[AugmentConfig] = None):
        self.noises = [_mono(n, "noise") for n in noises]
        self.config = config or AugmentConfig()

    def __call__(self, clip, rng: np.random.Generator) -> np.ndarray:
        c = self.config
        x = _mono(clip, "augment")
        if rng.random() < c.p_speed:
            x = speed(x, float(rng.uniform(*c.speed_range)))
        x = fit_length(x)
        max_shift = int(c.shift_ms * SAMPLE_RATE / 1000)
        if max_shift:
            x = time_shift(x, int(rng.integers(-max_shift, max_shift + 1)))
        if rng.random() < c.p_reverb:
            x = reverb(x, rng, rt60=float(rng.uniform(*c.rt60_range)))
        x = gain(x, float(rng.uniform(*c.gain_db)))
        if self.noises and rng.random() < c.p_noise:
            noise = self.noises[int(rng.integers(len(self.noises)))]
            x = add_noise(x, noise, float(rng.uniform(*c.snr_db)), rng)
        if c.p_colour and rng.random() < c.p_colour:  # no draw when off: earlier recipes stay as they were
            x = colour(np.clip(x, -1.0, 1.0), rng)
        return np.clip(x, -1.0, 1.0).astype(np.float32)

    def silence(self, rng: np.random.Generator, n: int = CLIP) -> np.ndarray:
        """A ``_silence_`` example: a noise segment at a random level (or near-digital silence)."""
        if not self.noises or rng.random() < 0.1:
            return (rng.standard_normal(n) * 10 ** rng.uniform(-5, -3)).astype(np.float32)
        seg = noise_clip(self.noises[int(rng.integers(len(self.noises)))], n, rng)
        peak = float(np.max(np.abs(seg))) or 1.0
        return (seg / peak * 10 ** rng.uniform(-2.5, -0.1)).astype(np.float32)


def synthetic_noises(seed: int = 0, seconds: float = 10.0) -> List[np.ndarray]:
    """White, pink and brown noise (``seconds`` each, peak 0.5): noise when no recordings are given.

    Example:
        >>> [n.shape for n in synthetic_noises(seconds=1.0)]
        [(16000,), (16000,), (16000,)]
    """
    rng = np.random.default_rng([seed, 4242])
    n = int(seconds * SAMPLE_RATE)
    out = []
    for slope in (0.0, -0.5, -1.0):  # amplitude ~ f^slope: white, pink, brown
        spec = np.fft.rfft(rng.standard_normal(n))
        f = np.maximum(np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE), 20.0)
        x = np.fft.irfft(spec * f ** slope, n)
        out.append((0.5 * x / np.max(np.abs(x))).astype(np.float32))
    return out
