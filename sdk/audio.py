"""Audio front ends in numpy: the MLPerf Tiny MFCC, log-mel variants, and a streaming form.

Everything here needs numpy only, so it runs on the device next to the interpreter.
The default spec, :data:`MLPERF_KWS`, reproduces the MLPerf Tiny keyword-spotting
reference front end: 1 s at 16 kHz, the clip divided by its own maximum sample
value, a 480-sample periodic-Hann STFT with a 320-sample step and a 512-point FFT
(49 frames, no centre padding), magnitude, 40 HTK-mel bins between 20 and 4,000 Hz
(TensorFlow's ``linear_to_mel_weight_matrix``), ``log(mel + 1e-6)``, a DCT-II scaled
as TensorFlow's ``mfccs_from_log_mel_spectrograms`` and the first 10 coefficients.

Peak normalisation divides by the clip's maximum sample value (not its absolute
maximum). A clip whose maximum is not positive (digital silence, or all samples
negative) is left unscaled, since the reference would divide by zero or flip its
sign; that is the one place this front end deliberately differs.

Example:
    >>> import numpy as np
    >>> from edgeship import audio
    >>> t = np.arange(16000) / 16000.0
    >>> feats = audio.features(0.5 * np.sin(2 * np.pi * 440 * t))
    >>> feats.shape, feats.dtype.name
    ((49, 10), 'float32')
    >>> stream = audio.StreamingFeatures(hop_samples=1600)
    >>> windows = stream.push(np.zeros(24000, np.float32))
    >>> [w.end_sample for w in windows]
    [16000, 17600, 19200, 20800, 22400, 24000]
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Iterator, List, NamedTuple, Optional

import numpy as np

from .errors import InputSpecError

__all__ = ["FrontEndSpec", "MLPERF_KWS", "features", "mel_matrix", "StreamingFeatures", "Window",
           "quantize_truncate", "read_audio", "read_audio_blocks", "read_audio_rate", "resample"]

_NORMALIZE = ("peak", "none")


@dataclass(frozen=True)
class FrontEndSpec:
    """Parameters of an MFCC or log-mel front end (the ``preprocessing`` of a KWS manifest).

    ``num_coefficients=None`` gives the log-mel spectrogram (``frames × num_mel_bins``)
    instead of MFCCs. ``normalize`` is ``"peak"`` (divide the clip by its maximum
    sample value, as the MLPerf reference does) or ``"none"``.
    """

    sample_rate: int = 16000
    clip_samples: int = 16000
    frame_length: int = 480
    frame_step: int = 320
    fft_length: int = 512
    num_mel_bins: int = 40
    lower_hz: float = 20.0
    upper_hz: float = 4000.0
    log_offset: float = 1e-6
    num_coefficients: Optional[int] = 10
    normalize: str = "peak"
    window: str = "hann_periodic"
    mel_scale: str = "htk"

    def __post_init__(self):
        def bad(what, given, fix):
            raise InputSpecError(f"front-end spec: expected {what}, given {given!r}; {fix}")

        for name in ("sample_rate", "clip_samples", "frame_length", "frame_step", "fft_length", "num_mel_bins"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v <= 0:
                bad(f"{name} as a positive integer", v, "fix the spec")
        if self.fft_length < self.frame_length:
            bad(f"fft_length >= frame_length ({self.frame_length})", self.fft_length, "raise fft_length")
        if self.clip_samples < self.frame_length:
            bad(f"clip_samples >= frame_length ({self.frame_length})", self.clip_samples, "lengthen the clip")
        if not 0 <= self.lower_hz < self.upper_hz <= self.sample_rate / 2:
            bad(f"0 <= lower_hz < upper_hz <= {self.sample_rate / 2}", (self.lower_hz, self.upper_hz),
                "fix the mel band edges")
        if self.num_coefficients is not None and not 0 < self.num_coefficients <= self.num_mel_bins:
            bad(f"num_coefficients in 1..{self.num_mel_bins} or None (log-mel)", self.num_coefficients,
                "fix the spec")
        if self.normalize not in _NORMALIZE:
            bad(f"normalize in {_NORMALIZE}", self.normalize, "fix the spec")
        if self.window != "hann_periodic" or self.mel_scale != "htk":
            bad("window 'hann_periodic' and mel_scale 'htk' (the only ones implemented)",
                (self.window, self.mel_scale), "fix the spec")

    @property
    def type(self) -> str:
        """``"mfcc"`` or ``"log_mel"`` (derived from ``num_coefficients``)."""
        return "mfcc" if self.num_coefficients is not None else "log_mel"

    @property
    def num_frames(self) -> int:
        """Frames per clip (49 for the MLPerf spec)."""
        return 1 + (self.clip_samples - self.frame_length) // self.frame_step

    @property
    def feature_shape(self) -> tuple:
        """``(frames, coefficients)`` of one clip's features."""
        return (self.num_frames, self.num_coefficients or self.num_mel_bins)

    def to_dict(self) -> dict:
        """A JSON-ready dict (what a bundle manifest records as ``preprocessing``)."""
        d = {"type": self.type, **asdict(self)}
        d["layout"] = [1, *self.feature_shape, 1]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FrontEndSpec":
        """Rebuild a spec from :meth:`to_dict` output (unknown keys are an error; ``layout`` is derived).

        Example:
            >>> FrontEndSpec.from_dict(MLPERF_KWS.to_dict()) == MLPERF_KWS
            True
        """
        if not isinstance(d, dict):
            raise InputSpecError(f"front-end spec: expected a dict, given {type(d).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names - {"layout", "type"})
        if unknown:
            raise InputSpecError(f"front-end spec: unknown keys {unknown}; expected a subset of {sorted(names)}")
        kind = d.get("type", "mfcc")
        if kind not in ("mfcc", "log_mel"):
            raise InputSpecError(f"front-end spec: expected type 'mfcc' or 'log_mel', given {kind!r}")
        kwargs = {k: v for k, v in d.items() if k in names}
        if kind == "log_mel":
            kwargs.setdefault("num_coefficients", None)
        spec = cls(**kwargs)
        if spec.type != kind:
            raise InputSpecError(f"front-end spec: type {kind!r} contradicts num_coefficients="
                                 f"{spec.num_coefficients!r}; use None for log_mel")
        return spec


#: The MLPerf Tiny keyword-spotting front end (49×10 MFCC from 1 s at 16 kHz).
MLPERF_KWS = FrontEndSpec()

_CACHE: dict = {}


def _hz_to_mel(hz):
    return 1127.0 * np.log1p(np.asarray(hz, np.float64) / 700.0)


def mel_matrix(spec: FrontEndSpec = MLPERF_KWS) -> np.ndarray:
    """TensorFlow's ``linear_to_mel_weight_matrix`` for ``spec``: ``(fft_length//2+1, num_mel_bins)``.

    Example:
        >>> mel_matrix().shape
        (257, 40)
    """
    key = ("mel", spec.sample_rate, spec.fft_length, spec.num_mel_bins, spec.lower_hz, spec.upper_hz)
    if key not in _CACHE:
        bins = spec.fft_length // 2 + 1
        linear_hz = np.linspace(0.0, spec.sample_rate / 2.0, bins)[1:]   # the DC bin is zeroed
        spec_mel = _hz_to_mel(linear_hz)[:, None]
        edges = np.linspace(_hz_to_mel(spec.lower_hz), _hz_to_mel(spec.upper_hz), spec.num_mel_bins + 2)
        lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
        w = np.maximum(0.0, np.minimum((spec_mel - lower) / (center - lower), (upper - spec_mel) / (upper - center)))
        _CACHE[key] = np.vstack([np.zeros((1, spec.num_mel_bins)), w]).astype(np.float32)
    return _CACHE[key]


def _window(spec: FrontEndSpec) -> np.ndarray:
    key = ("hann", spec.frame_length)
    if key not in _CACHE:
        n = np.arange(spec.frame_length)
        _CACHE[key] = (0.5 - 0.5 * np.cos(2.0 * np.pi * n / spec.frame_length)).astype(np.float32)
    return _CACHE[key]


def _dct(spec: FrontEndSpec) -> np.ndarray:
    """DCT-II as TF's ``mfccs_from_log_mel_spectrograms``: ``2·Σ x cos(...) / sqrt(2N)``, first K."""
    key = ("dct", spec.num_mel_bins, spec.num_coefficients)
    if key not in _CACHE:
        n_mel = spec.num_mel_bins
        k = np.arange(spec.num_coefficients)[None, :]
        n = np.arange(n_mel)[:, None]
        _CACHE[key] = (2.0 * np.cos(np.pi * k * (2 * n + 1) / (2.0 * n_mel)) / np.sqrt(2.0 * n_mel)).astype(np.float32)
    return _CACHE[key]


def _check_audio(audio, what: str) -> np.ndarray:
    try:
        x = np.asarray(audio)
    except Exception as exc:  # ragged lists and the like
        raise InputSpecError(f"{what}: expected a 1-D array of samples, given {type(audio).__name__} ({exc})") from exc
    if x.ndim == 2 and 1 in x.shape:
        x = x.reshape(-1)
    if x.ndim != 1:
        raise InputSpecError(f"{what}: expected mono samples as a 1-D array, given shape {x.shape}; "
                             "mix channels down (e.g. x.mean(axis=1)) first")
    if x.dtype.kind not in "fiu":
        raise InputSpecError(f"{what}: expected numeric samples, given dtype {x.dtype}")
    if x.dtype.kind in "iu":  # integer PCM -> [-1, 1)
        x = x.astype(np.float32) / float(np.iinfo(x.dtype).max + 1)
    x = x.astype(np.float32, copy=False)
    if not np.all(np.isfinite(x)):
        raise InputSpecError(f"{what}: samples contain NaN or inf ({int(np.sum(~np.isfinite(x)))} of {x.size}); "
                             "clean the signal before feature extraction")
    return x


def _mag_mel(frames_audio: np.ndarray, spec: FrontEndSpec) -> np.ndarray:
    """Unnormalised mel energies of consecutive frames (linear in the samples)."""
    n = 1 + (frames_audio.size - spec.frame_length) // spec.frame_step
    if n <= 0:
        return np.zeros((0, spec.num_mel_bins), np.float32)
    key = ("idx", n, spec.frame_length, spec.frame_step)
    idx = _CACHE.get(key)
    if idx is None:   # a stream asks for the same few frame counts over and over
        idx = np.arange(spec.frame_length)[None, :] + spec.frame_step * np.arange(n)[:, None]
        if len(_CACHE) < 256:
            _CACHE[key] = idx
    spectrum = np.abs(np.fft.rfft(frames_audio[idx] * _window(spec), n=spec.fft_length)).astype(np.float32)
    return spectrum @ mel_matrix(spec)


def _finish(mel: np.ndarray, peak: float, spec: FrontEndSpec) -> np.ndarray:
    if spec.normalize == "peak" and peak > 0:
        mel = mel / np.float32(peak)
    logmel = np.log(mel + np.float32(spec.log_offset))
    if spec.num_coefficients is None:
        return logmel.astype(np.float32)
    return (logmel @ _dct(spec)).astype(np.float32)


def features(audio, spec: FrontEndSpec = MLPERF_KWS) -> np.ndarray:
    """Features of one clip: ``spec.feature_shape`` float32 (49×10 MFCC by default).

    Args:
        audio: mono samples, float in [-1, 1] or integer PCM, at ``spec.sample_rate``. A clip
            shorter than ``spec.clip_samples`` is zero-padded at the end (as the reference does).
        spec: the front end; :data:`MLPERF_KWS` by default.

    Raises:
        InputSpecError: not 1-D, empty, NaN/inf, or longer than one clip (use
            :class:`StreamingFeatures` for long audio).
    """
    x = _check_audio(audio, "features")
    if x.size == 0:
        raise InputSpecError("features: expected at least one sample, given an empty clip")
    if x.size > spec.clip_samples:
        raise InputSpecError(f"features: expected at most {spec.clip_samples} samples (one clip), given {x.size}; "
                             "slice the clip or use StreamingFeatures for longer audio")
    if x.size < spec.clip_samples:
        x = np.concatenate([x, np.zeros(spec.clip_samples - x.size, np.float32)])
    return _finish(_mag_mel(x, spec), float(x.max()), spec)


def quantize_truncate(feats: np.ndarray, scale: float = 0.5847, zero_point: int = 83) -> np.ndarray:
    """Quantize features to int8 the way the MLPerf golden files were made (truncation toward zero).

    Models take float features (edgeship quantizes with rounding at the boundary); this
    exists to compare against the golden ``kws01_parity/mfcc/*.bin`` files.

    Example:
        >>> quantize_truncate(np.array([0.0, 1.0, -50.0], np.float32)).tolist()
        [83, 84, -2]
    """
    q = np.trunc(np.asarray(feats, np.float32) / np.float32(scale) + np.float32(zero_point))
    return np.clip(q, -128, 127).astype(np.int8)


class Window(NamedTuple):
    """One analysis window of a stream: its features and the sample index just past its end."""

    end_sample: int
    features: np.ndarray


class StreamingFeatures:
    """Features of a sliding 1-clip window over a stream of chunks of any size.

    Every ``hop_samples`` a window ends, and its features equal :func:`features` on that
    window's samples. Each STFT frame is computed once and kept (mel energies are linear in
    the samples, so peak normalisation is applied per window at the end, which is cheap).

    Args:
        spec: the front end.
        hop_samples: window hop; a positive multiple of ``spec.frame_step`` (e.g. 1600 = 100 ms).

    Example:
        >>> s = StreamingFeatures(hop_samples=3200)
        >>> len(s.push(np.zeros(15999, np.float32))), len(s.push(np.zeros(1, np.float32)))
        (0, 1)
    """

    def __init__(self, spec: FrontEndSpec = MLPERF_KWS, hop_samples: int = 1600):
        if not isinstance(hop_samples, (int, np.integer)) or hop_samples <= 0 or hop_samples % spec.frame_step:
            raise InputSpecError(f"StreamingFeatures: expected hop_samples as a positive multiple of the frame step "
                                 f"({spec.frame_step} samples), given {hop_samples!r}; e.g. 1600 for 100 ms")
        self.spec = spec
        self.hop_samples = int(hop_samples)
        self._frames_per_hop = self.hop_samples // spec.frame_step
        self.reset()

    def reset(self) -> None:
        """Forget all audio (start a new stream)."""
        spec = self.spec
        self._buf = np.zeros(0, np.float32)      # samples not yet consumed by a frame + history for peaks
        self._buf_start = 0                      # stream index of self._buf[0]
        self._mel: List[np.ndarray] = []         # per-frame mel energies, oldest first
        self._mel_start = 0                      # frame index of self._mel[0]
        self._next_frame = 0                     # next frame index to compute
        self._next_end = spec.clip_samples       # stream index where the next window ends
        self.samples_seen = 0

    def push(self, chunk) -> List[Window]:
        """Add samples; return the windows that ended inside them (possibly none)."""
        x = _check_audio(chunk, "StreamingFeatures.push")
        spec = self.spec
        self._buf = np.concatenate([self._buf, x])
        self.samples_seen += x.size
        # frames whose samples are all present
        avail_end = self._buf_start + self._buf.size
        n_new = 0 if avail_end < self._next_frame * spec.frame_step + spec.frame_length else \
            1 + (avail_end - spec.frame_length - self._next_frame * spec.frame_step) // spec.frame_step
        if n_new > 0:
            start = self._next_frame * spec.frame_step - self._buf_start
            seg = self._buf[start:start + (n_new - 1) * spec.frame_step + spec.frame_length]
            self._mel.extend(_mag_mel(seg, spec))
            self._next_frame += n_new
        out = []
        while self._next_end <= avail_end:
            first_frame = (self._next_end - spec.clip_samples) // spec.frame_step
            a = first_frame - self._mel_start
            mel = np.asarray(self._mel[a:a + spec.num_frames])
            w0 = self._next_end - spec.clip_samples - self._buf_start
            peak = float(self._buf[w0:w0 + spec.clip_samples].max())
            out.append(Window(self._next_end, _finish(mel, peak, spec)))
            self._next_end += self.hop_samples
        # drop what no future window needs
        keep_from = self._next_end - spec.clip_samples
        drop = max(0, min(keep_from, self._next_frame * spec.frame_step) - self._buf_start)
        if drop:
            self._buf = self._buf[drop:]
            self._buf_start += drop
        drop_frames = max(0, keep_from // spec.frame_step - self._mel_start)
        if drop_frames:
            del self._mel[:drop_frames]
            self._mel_start += drop_frames
        return out

    def iter_windows(self, chunks) -> Iterator[Window]:
        """Feed an iterable of chunks and yield every window as it completes."""
        for chunk in chunks:
            yield from self.push(chunk)


# --- reading audio files -----------------------------------------------------------------------
def _have_soundfile() -> bool:
    from ._deps import available

    return available("soundfile")


_NOT_AUDIO = "expected a WAV or FLAC file (16-bit PCM, 16 kHz mono for keyword spotting)"


def _open_soundfile(path, block: Optional[int]):
    import soundfile as sf

    try:
        f = sf.SoundFile(str(path))
    except (RuntimeError, TypeError, ValueError) as exc:   # soundfile.LibsndfileError is a RuntimeError
        raise InputSpecError(f"{path}: not a readable audio file ({exc}); {_NOT_AUDIO}") from exc

    def frames():
        with f:
            while True:
                try:
                    d = f.read(-1 if block is None else block, dtype="float32", always_2d=True)
                except (RuntimeError, TypeError, ValueError) as exc:
                    raise InputSpecError(f"{path}: not a readable audio file ({exc}); {_NOT_AUDIO}") from exc
                if not len(d):
                    return
                yield d

    return int(f.samplerate), frames(), f.close


def _decode_pcm(raw: bytes, width: int, ch: int) -> np.ndarray:
    """Little-endian integer PCM frames (8-bit unsigned, 16/24/32-bit signed) as float32 [frames, ch]."""
    raw = raw[:len(raw) - len(raw) % (width * ch)]
    if width == 1:   # unsigned 8-bit
        x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3)
        v = (b[:, 0].astype(np.int32) | (b[:, 1].astype(np.int32) << 8) | (b[:, 2].astype(np.int32) << 16))
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        x = v.astype(np.float32) / float(1 << 23)
    else:
        dt = np.int16 if width == 2 else np.int32
        x = np.frombuffer(raw, f"<i{width}").astype(np.float32) / float(np.iinfo(dt).max + 1)
    return x.reshape(-1, ch)


def _open_wave(path, block: Optional[int]):
    """Stdlib reader for PCM WAV (8/16/24/32-bit integer), used when soundfile is not installed."""
    import wave

    def bad(exc):
        return InputSpecError(
            f"{path}: not a readable PCM WAV file ({exc}). Without soundfile only integer PCM WAV can be "
            "read; for FLAC or float WAV install it: pip install 'edgeship[audio]'")

    try:
        f = wave.open(str(path), "rb")
        ch, width, sr = f.getnchannels(), f.getsampwidth(), f.getframerate()
    except (wave.Error, EOFError, OSError) as exc:
        raise bad(exc) from exc
    if width not in (1, 2, 3, 4) or ch < 1:
        f.close()
        raise InputSpecError(f"{path}: unsupported WAV sample width {width} bytes / {ch} channels")

    def frames():
        with f:
            while True:
                try:
                    raw = f.readframes(max(f.getnframes(), 1) if block is None else block)
                except (wave.Error, EOFError, OSError) as exc:
                    raise bad(exc) from exc
                d = _decode_pcm(raw, width, ch)
                if not len(d):
                    return
                yield d

    return int(sr), frames(), f.close


def _open_frames(path, block: Optional[int]):
    """``(sample rate, iterator of float32 [frames, channels] blocks, close)`` of an audio file,
    blocks of ``block`` frames (None: the whole file in one). The iterator closes the file when it
    ends; ``close`` does when it is not run. A missing file and a bad header raise here; damage
    further in raises while iterating."""
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise InputSpecError(f"{path}: no such audio file (expected a .wav or .flac file)")
    return (_open_soundfile if _have_soundfile() else _open_wave)(p, block)


def _mono(frames: np.ndarray) -> np.ndarray:
    """float32 [frames, channels] -> mono float32 (channels averaged)."""
    x = frames.mean(axis=1, dtype=np.float32) if frames.shape[1] > 1 else frames[:, 0]
    return np.ascontiguousarray(x, np.float32)


def _no_samples(path) -> InputSpecError:
    return InputSpecError(f"{path}: the file holds no audio samples (empty); expected at least one sample")


def read_audio_blocks(path, block_samples: int, sample_rate: Optional[int] = 16000,
                      resample: bool = False) -> Iterator[np.ndarray]:
    """A WAV or FLAC file as consecutive mono float32 blocks of ``block_samples`` (the last may be
    shorter): :func:`read_audio` in constant memory, for recordings of any length.

    The same readers, mix-down and checks as :func:`read_audio`. A missing file, a bad header or a
    sample rate other than ``sample_rate`` (None: any) raise at the call, before any block;
    damage further in, NaN or inf samples (with their time) and a file without samples raise
    while iterating. With ``resample=True`` a file at another rate is read whole and resampled
    by :func:`read_audio` (memory then grows with the file), then handed out in blocks.

    Example:
        >>> import numpy as np, wave, tempfile, os
        >>> from edgeship import audio
        >>> path = os.path.join(tempfile.mkdtemp(), "tone.wav")
        >>> with wave.open(path, "wb") as w:
        ...     w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000)
        ...     w.writeframes(np.zeros(40000, "<i2").tobytes())
        >>> [b.size for b in audio.read_audio_blocks(path, 16000)]
        [16000, 16000, 8000]
    """
    block = int(block_samples)
    if block < 1:
        raise InputSpecError(f"read_audio_blocks: block_samples must be at least 1, given {block_samples}")
    sr, frames, close = _open_frames(path, block)
    if sample_rate is not None and sr != sample_rate and resample:
        close()
        x = read_audio(path, sample_rate=sample_rate, resample=True)
        return (x[i:i + block] for i in range(0, x.size, block))
    if sample_rate is not None and sr != sample_rate:
        close()
        raise InputSpecError(f"{path}: sample rate {sr} Hz, expected {sample_rate} Hz; resample it "
                             f"(read_audio(..., resample=True), or --resample on the command line) or convert "
                             "the file")

    def blocks():
        seen = 0
        for d in frames:
            bad = ~np.isfinite(d)
            if bad.any():
                at = (seen + int(np.flatnonzero(bad.any(axis=1))[0])) / sr
                raise InputSpecError(f"{path}: NaN or inf samples from {at:.3f} s on; the file is damaged or "
                                     "was written from a broken signal")
            seen += len(d)
            yield _mono(d)
        if not seen:
            raise _no_samples(path)

    return blocks()


def resample(x, from_rate: int, to_rate: int, *, half_width: int = 16) -> np.ndarray:
    """Band-limited resampling in numpy (windowed sinc, Hann window, anti-aliased when downsampling).

    Args:
        x: mono float samples.
        from_rate: their sample rate in Hz.
        to_rate: the wanted rate in Hz.
        half_width: filter half-width in zero crossings (16 is transparent for speech).

    Returns:
        float32 samples at ``to_rate`` (``round(len(x) * to_rate / from_rate)`` of them).

    Example:
        >>> t = np.arange(44100) / 44100.0
        >>> y = resample(np.sin(2 * np.pi * 440 * t), 44100, 16000)
        >>> y.shape, bool(abs(y[8000] - np.sin(2 * np.pi * 440 * 0.5)) < 1e-3)
        ((16000,), True)
    """
    x = np.asarray(x, np.float64).reshape(-1)
    for name, r in (("from_rate", from_rate), ("to_rate", to_rate)):
        if not isinstance(r, (int, np.integer)) or r <= 0:
            raise InputSpecError(f"resample: expected {name} as a positive integer (Hz), given {r!r}")
    if from_rate == to_rate or x.size == 0:
        return x.astype(np.float32)
    ratio = to_rate / from_rate
    cutoff = min(1.0, ratio)                       # in units of the input Nyquist
    reach = int(np.ceil(half_width / cutoff))      # input samples on each side of an output sample
    n_out = int(round(x.size * ratio))
    xp = np.concatenate([np.zeros(reach), x, np.zeros(reach + 1)])
    out = np.empty(n_out, np.float64)
    offsets = np.arange(-reach, reach + 1)
    block = max(1, (1 << 20) // offsets.size)
    for s in range(0, n_out, block):
        t = np.arange(s, min(n_out, s + block)) / ratio     # output sample times in input samples
        base = np.floor(t).astype(np.int64)
        k = base[:, None] + offsets[None, :]                 # input indices
        d = t[:, None] - k                                    # distance in input samples
        w = cutoff * np.sinc(cutoff * d) * (0.5 + 0.5 * np.cos(np.pi * np.clip(d / (reach + 1), -1, 1)))
        out[s:s + t.size] = np.sum(xp[k + reach] * w, axis=1)
    return out.astype(np.float32)


_resample = resample   # read_audio's ``resample`` flag shadows the function's name


def read_audio_rate(path) -> "tuple[np.ndarray, int]":
    """``(mono float32 samples, the file's sample rate)``: :func:`read_audio` without a rate
    check, for callers that handle the rate themselves (same readers, same errors).

    Raises:
        InputSpecError: a missing, empty, unreadable or non-finite file (see :func:`read_audio`).
    """
    sr, frames, _ = _open_frames(path, None)
    parts = list(frames)
    if not parts:
        raise _no_samples(path)
    data = parts[0] if len(parts) == 1 else np.concatenate(parts)
    bad = ~np.isfinite(data)
    if bad.any():
        raise InputSpecError(f"{path}: {int(bad.sum())} of {data.size} samples are NaN or inf; "
                             "the file is damaged or was written from a broken signal")
    return _mono(data), int(sr)


def read_audio(path, sample_rate: Optional[int] = 16000, resample: bool = False) -> np.ndarray:
    """Read a WAV or FLAC file as mono float32 samples in [-1, 1] at ``sample_rate``.

    soundfile (``edgeship[audio]``) reads WAV (integer or float) and FLAC; without it the
    standard library's ``wave`` reads integer PCM WAV. Documented behaviour for odd files:

    - **wrong sample rate**: :class:`~edgeship.InputSpecError` naming the rates and the fix
      (``resample=True``, ``--resample`` in the apps); with ``resample=True`` the samples are
      resampled in numpy (:func:`resample`). ``sample_rate=None`` keeps the file's rate.
    - **stereo / multi-channel**: mixed down to mono by averaging the channels.
    - **empty** (no samples), **truncated header**, **non-audio bytes**, missing file:
      :class:`~edgeship.InputSpecError` saying what was expected.
    - **data cut short** (a valid header, fewer samples than it announces): the samples that are
      there are returned (both readers agree).
    - **NaN or inf** in a float WAV: :class:`~edgeship.InputSpecError` with the count.
    - **short clips** (e.g. 0.1 s) are returned as they are; :func:`features` zero-pads them to
      one clip, as the reference front end does.

    The whole file is held in memory; :func:`read_audio_blocks` reads a long recording in blocks.

    Args:
        path: the audio file.
        sample_rate: the rate the caller needs, in Hz (None: accept any and keep it).
        resample: resample a file at another rate instead of raising.

    Returns:
        1-D float32 array.

    Raises:
        InputSpecError: see above.
    """
    x, sr = read_audio_rate(path)
    if sample_rate is not None and sr != sample_rate:
        if not resample:
            raise InputSpecError(f"{path}: sample rate {sr} Hz, expected {sample_rate} Hz; resample it "
                                 f"(resample=True, or --resample on the command line) or convert the file")
        x = _resample(x, sr, int(sample_rate))
    return np.ascontiguousarray(x, np.float32)
