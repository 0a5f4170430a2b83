"""Calibration and validation data: any iterable of input dicts or arrays, a .npy/.npz file,
or a directory of images / audio files turned into inputs by a named preprocessing function.

Every sample is checked against the model's input specs (shape, finiteness) and stored as
``{input name: float32 array with batch dim 1}``. The set records how many samples it has,
the seed used to pick them, and a sha256 of their bytes, so a manifest can say exactly
which data calibrated a model.

Example:
    >>> import numpy as np
    >>> from edgeship.spec import TensorSpec
    >>> spec = [TensorSpec("x", (-1, 4), "float32")]
    >>> cal = resolve_calibration(np.zeros((10, 4), np.float32), spec, seed=1)
    >>> cal.count, cal.samples[0]["x"].shape
    (10, (1, 4))
    >>> a, b = cal.split(3, seed=0)
    >>> a.count, b.count
    (7, 3)
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from edgeship.errors import ConversionError, EdgeshipError
from edgeship.progress import track
from edgeship.spec import TensorSpec

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".gif", ".webp")
AUDIO_SUFFIXES = (".wav", ".flac")

Sample = Dict[str, np.ndarray]


@dataclass
class CalibrationSet:
    """Checked samples plus what is needed to reproduce them (count, seed, sha256, source)."""

    samples: List[Sample]
    seed: int = 0
    source: str = "in-memory"
    sha256: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.sha256:
            self.sha256 = hash_samples(self.samples)

    @property
    def count(self) -> int:
        return len(self.samples)

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self):
        return iter(self.samples)

    def split(self, n_holdout: int, seed: Optional[int] = None) -> Tuple["CalibrationSet", "CalibrationSet"]:
        """Split into (calibration, held-out) sets; the held-out samples are never used to calibrate.

        The split is a seeded permutation, so the same seed gives the same split.
        """
        seed = self.seed if seed is None else seed
        if not 0 < n_holdout < self.count:
            raise ConversionError(f"cannot hold out {n_holdout} of {self.count} samples: need at least "
                                  f"one sample on each side (give more data or separate --validation data)")
        order = np.random.default_rng(seed).permutation(self.count)
        keep, hold = sorted(order[:-n_holdout]), sorted(order[-n_holdout:])
        mk = lambda idx, part: CalibrationSet([self.samples[i] for i in idx], seed, f"{self.source} [{part}]",
                                              extra={**self.extra, "indices": [int(i) for i in idx]})
        return mk(keep, "calibration split"), mk(hold, "held-out split")

    def describe(self) -> dict:
        """JSON-able record for manifests: count, seed, sha256, source."""
        d = {"count": self.count, "seed": self.seed, "sha256": self.sha256, "source": self.source}
        d.update({k: v for k, v in self.extra.items() if k != "indices"})
        return d


def hash_samples(samples: Sequence[Sample]) -> str:
    h = hashlib.sha256()
    for s in samples:
        for name in sorted(s):
            a = np.ascontiguousarray(s[name])
            h.update(f"{name}|{a.dtype.str}|{a.shape}".encode())
            h.update(a.tobytes())
    return h.hexdigest()


# -- named preprocessing functions ------------------------------------------------------------
# Each takes (path, input_spec, **params) and returns one float32 array shaped like the input
# without the batch dim. Models name theirs in their preprocessing spec {"name": ..., params}.

PREPROCESSORS: Dict[str, Callable[..., np.ndarray]] = {}


def preprocessor(name: str):
    """Decorator registering a preprocessing function under ``name``."""

    def deco(fn):
        PREPROCESSORS[name] = fn
        return fn

    return deco


def _hwc(spec: TensorSpec) -> Tuple[int, int, int, bool]:
    """(height, width, channels, channels_first) of an image input spec."""
    dims = [d for d in spec.shape[1:]]
    if len(dims) != 3:
        raise ConversionError(f"input '{spec.name}' has shape {spec.shape}; image preprocessing needs "
                              f"a 4-D input (NHWC or NCHW)")
    if dims[0] in (1, 3) and dims[2] not in (1, 3):
        return dims[1], dims[2], dims[0], True
    return dims[0], dims[1], dims[2], False


def _read_image(path: Path, spec: TensorSpec) -> np.ndarray:
    from PIL import Image  # pillow ships with matplotlib (convert extra)

    h, w, c, chw = _hwc(spec)
    if h < 0 or w < 0:
        raise ConversionError(f"input '{spec.name}' has a dynamic size {spec.shape}; image preprocessing "
                              f"needs a fixed height and width")
    with Image.open(path) as im:
        im = im.convert("L" if c == 1 else "RGB").resize((w, h), Image.BILINEAR)
        a = np.asarray(im, dtype=np.float32)
    if a.ndim == 2:
        a = a[..., None]
    return np.transpose(a, (2, 0, 1)) if chw else a


@preprocessor("image_0_1")
def image_0_1(path, spec, **_):
    """Resize to the input size, RGB (or grey for 1 channel), scale pixels to [0, 1]."""
    return _read_image(Path(path), spec) / 255.0


@preprocessor("image_-1_1")
def image_m1_1(path, spec, **_):
    """Resize to the input size, scale pixels to [-1, 1] (MobileNet convention)."""
    return _read_image(Path(path), spec) / 127.5 - 1.0


@preprocessor("image_0_255")
def image_0_255(path, spec, **_):
    """Resize to the input size, keep raw pixel values 0..255 as float."""
    return _read_image(Path(path), spec)


@preprocessor("kws_mfcc")
def kws_mfcc(path, spec, *, frame_length=480, frame_step=320, fft_length=512, num_mel_bins=40,
             lower_hz=20.0, upper_hz=4000.0, num_mfcc=10, sample_rate=16000, **_):
    """KWS MFCC: 1 s of 16 kHz audio -> 49x10 MFCC through :mod:`edgeship.audio` (the one front end).

    The defaults are the MLPerf Tiny reference front end (peak normalisation, HTK mel 20-4000 Hz,
    log(mel + 1e-6), DCT-II); on the kws01 clips it reproduces the golden int8 features (99.5 %
    of values equal, all within one step). Files are read with :func:`edgeship.audio.read_audio`
    (a clip longer than 1 s is cut to its first second).
    """
    from edgeship import audio

    fe = audio.FrontEndSpec(sample_rate=sample_rate, clip_samples=sample_rate, frame_length=frame_length,
                            frame_step=frame_step, fft_length=fft_length, num_mel_bins=num_mel_bins,
                            lower_hz=lower_hz, upper_hz=upper_hz, num_coefficients=num_mfcc)
    try:
        clip = audio.read_audio(Path(path), sample_rate)[:fe.clip_samples]
        mfcc = audio.features(clip, fe)
    except EdgeshipError as exc:
        raise ConversionError(f"calibration audio '{path}': {exc}") from exc
    return mfcc.reshape([d for d in spec.shape[1:]]).astype(np.float32) if all(
        d > 0 for d in spec.shape[1:]) else mfcc[..., None]


def image_spec(preprocessing):
    """The :class:`~edgeship.preprocessing.ImagePreprocessing` that ``preprocessing`` names, or None:
    a spec, its JSON dict (``"type": "image"``) or a path to its ``.json`` file."""
    from edgeship.preprocessing import ImagePreprocessing

    if isinstance(preprocessing, ImagePreprocessing):
        return preprocessing
    if isinstance(preprocessing, dict) and preprocessing.get("type") == "image":
        return ImagePreprocessing.from_dict(preprocessing)
    if isinstance(preprocessing, (str, os.PathLike)) and str(preprocessing).lower().endswith(".json"):
        return ImagePreprocessing.load(preprocessing)
    return None


def _spec_function(spec) -> Callable:
    """calibration function(path, input spec) of an image spec: the same arrays as ``spec.apply`` at run time."""

    def apply_spec(path, input_spec, **_):
        from edgeship.preprocessing import read_image

        spec.check_input(input_spec.shape, input_spec.name)
        return spec.apply(read_image(path))

    return apply_spec


def _resolve_preprocessing(preprocessing) -> Tuple[Callable, dict, str]:
    spec = image_spec(preprocessing)
    if spec is not None:
        return _spec_function(spec), {}, f"image spec {spec.size[0]}x{spec.size[1]} {spec.color} {spec.layout}"
    if preprocessing is None:
        raise ConversionError("a directory of images/audio needs a preprocessing function; pass "
                              f"preprocessing=<name> (one of {sorted(PREPROCESSORS)}) or a callable(path, spec)")
    if callable(preprocessing):
        return preprocessing, {}, getattr(preprocessing, "__name__", "callable")
    if isinstance(preprocessing, dict):
        params = {k: v for k, v in preprocessing.items() if k not in ("name", "function")}
        name = preprocessing.get("function") or preprocessing.get("name")
    else:
        name, params = str(preprocessing), {}
    if name not in PREPROCESSORS:
        raise ConversionError(f"unknown preprocessing function {name!r}; known: {sorted(PREPROCESSORS)}")
    return PREPROCESSORS[name], params, name


# -- resolution --------------------------------------------------------------------------------

def resolve_calibration(data: Any, inputs: List[TensorSpec], *, preprocessing=None,
                        max_samples: Optional[int] = None, seed: int = 0) -> CalibrationSet:
    """Turn ``data`` into a checked :class:`CalibrationSet` for a model with ``inputs``.

    Args:
        data: a CalibrationSet; an ndarray (N samples along axis 0); an iterable of dicts
            ``{input name: array}``, of arrays (single-input models) or of tuples of arrays
            (in input order); a ``.npy`` file; a ``.npz`` file (one array per input name, or a
            single array); or a directory of images/audio (needs ``preprocessing``).
        inputs: the model's float input specs (a ``-1`` dim matches any size).
        preprocessing: for directories: an :class:`~edgeship.preprocessing.ImagePreprocessing`,
            its JSON dict or ``.json`` file (images read with :func:`edgeship.face.read_image`, then
            the spec's ``apply``: the arrays the model gets at run time), a registered name (see
            :data:`PREPROCESSORS`), a dict ``{"name": ..., **params}``, or a callable(path, spec).
        max_samples: keep at most this many (a seeded random subset for arrays/files/dirs; the
            first ones for a generic iterable, which may be endless).
        seed: seed for the subset choice; recorded in the set.

    Raises:
        ConversionError: empty data, wrong shapes (names expected vs given), NaN/inf, unknown format.
    """
    if not inputs:
        raise ConversionError("the model has no inputs to calibrate")
    if isinstance(data, CalibrationSet):
        samples, source = data.samples, data.source
    elif isinstance(data, (str, os.PathLike)):
        samples, source = _from_path(Path(data), inputs, preprocessing, max_samples, seed)
    elif isinstance(data, np.ndarray):
        samples, source = _from_arrays({inputs[0].name: data} if len(inputs) == 1 else None, inputs,
                                       "ndarray"), f"ndarray{tuple(data.shape)}"
    elif isinstance(data, dict):  # one dict of arrays: a single sample or a batch of them
        samples, source = _check(data, inputs, "calibration dict"), "dict of arrays"
    elif isinstance(data, Iterable):
        samples, source = _from_iterable(data, inputs, max_samples), f"iterable ({type(data).__name__})"
    else:
        raise ConversionError(f"calibration data must be an iterable of input dicts or arrays, a .npy/.npz "
                              f"file or a directory of images/audio; got {type(data).__name__}")
    if not samples:
        raise ConversionError(f"calibration data from {source} holds no samples")
    if max_samples is not None and len(samples) > max_samples:
        pick = sorted(np.random.default_rng(seed).choice(len(samples), max_samples, replace=False))
        samples = [samples[i] for i in pick]
    return CalibrationSet(samples, seed, source)


def _check(name_to_arr: Dict[str, Any], inputs: List[TensorSpec], where: str) -> List[Sample]:
    """Validate one item (may carry a batch of several samples) and split it into batch-1 samples."""
    out: Dict[str, np.ndarray] = {}
    for spec in inputs:
        if spec.name not in name_to_arr:
            raise ConversionError(f"{where}: missing input '{spec.name}'; given {sorted(name_to_arr)}")
        a = np.asarray(name_to_arr[spec.name])
        if a.dtype.kind not in "fiub":
            raise ConversionError(f"{where}: input '{spec.name}' must be numeric, got dtype {a.dtype}")
        a = a.astype(np.float32)
        if a.ndim == len(spec.shape) - 1:
            a = a[None]
        exp = tuple(spec.shape)
        if a.ndim != len(exp) or any(e >= 0 and e != g for e, g in zip(exp[1:], a.shape[1:])):
            raise ConversionError(f"{where}: input '{spec.name}' expected shape "
                                  f"{tuple('N' if e < 0 else e for e in exp)}, got {tuple(a.shape)}")
        if not np.all(np.isfinite(a)):
            raise ConversionError(f"{where}: input '{spec.name}' contains NaN or inf")
        out[spec.name] = a
    extra = sorted(set(name_to_arr) - {s.name for s in inputs})
    if extra:
        raise ConversionError(f"{where}: unknown input(s) {extra}; the model's inputs are "
                              f"{[s.name for s in inputs]}")
    n = {a.shape[0] for a in out.values()}
    if len(n) != 1:
        raise ConversionError(f"{where}: inputs carry different batch sizes {sorted(n)}")
    return [{k: v[i:i + 1] for k, v in out.items()} for i in range(n.pop())]


def _from_arrays(arrays: Optional[Dict[str, np.ndarray]], inputs, where) -> List[Sample]:
    if arrays is None:
        raise ConversionError(f"a single array cannot feed a model with {len(inputs)} inputs "
                              f"({[s.name for s in inputs]}); give a dict or .npz keyed by input name")
    return _check(arrays, inputs, where)


def _item_to_dict(item, inputs, where) -> Dict[str, Any]:
    if isinstance(item, dict):
        return item
    if isinstance(item, (tuple, list)) and len(inputs) > 1:
        if len(item) != len(inputs):
            raise ConversionError(f"{where}: expected {len(inputs)} arrays in input order "
                                  f"{[s.name for s in inputs]}, got {len(item)}")
        return {s.name: a for s, a in zip(inputs, item)}
    if len(inputs) == 1:
        return {inputs[0].name: item}
    raise ConversionError(f"{where}: the model has {len(inputs)} inputs; give dicts keyed by input name, "
                          f"got {type(item).__name__}")


def _from_iterable(data, inputs, max_samples) -> List[Sample]:
    samples: List[Sample] = []
    for i, item in enumerate(data):
        samples.extend(_check(_item_to_dict(item, inputs, f"calibration item {i}"), inputs,
                              f"calibration item {i}"))
        if max_samples is not None and len(samples) >= max_samples:
            break
    return samples


def _from_path(p: Path, inputs, preprocessing, max_samples, seed) -> Tuple[List[Sample], str]:
    if not p.exists():
        raise ConversionError(f"calibration data '{p}' does not exist")
    if p.is_dir():
        return _from_dir(p, inputs, preprocessing, max_samples, seed), f"directory {p}"
    suffix = p.suffix.lower()
    if suffix == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except Exception as exc:
            raise ConversionError(f"'{p}' is not a readable .npy file: {exc}") from exc
        return _from_arrays({inputs[0].name: arr} if len(inputs) == 1 else None, inputs, str(p)), f"npy {p}"
    if suffix == ".npz":
        try:
            with np.load(p, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception as exc:
            raise ConversionError(f"'{p}' is not a readable .npz file: {exc}") from exc
        if len(inputs) == 1 and len(arrays) == 1:
            arrays = {inputs[0].name: next(iter(arrays.values()))}
        return _check(arrays, inputs, str(p)), f"npz {p}"
    raise ConversionError(f"calibration file '{p}' has an unknown type; expected .npy, .npz or a directory")


def _from_dir(p: Path, inputs, preprocessing, max_samples, seed) -> List[Sample]:
    if len(inputs) != 1:
        raise ConversionError(f"a directory of files can only feed a single-input model; this one has "
                              f"{len(inputs)} inputs")
    files = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES + AUDIO_SUFFIXES)
    if not files:
        raise ConversionError(f"directory '{p}' holds no image ({', '.join(IMAGE_SUFFIXES)}) or audio "
                              f"({', '.join(AUDIO_SUFFIXES)}) files")
    if max_samples is not None and len(files) > max_samples:  # pick before the (slow) preprocessing
        files = [files[i] for i in sorted(np.random.default_rng(seed).choice(len(files), max_samples,
                                                                             replace=False))]
    fn, params, name = _resolve_preprocessing(preprocessing)
    spec = inputs[0]
    samples: List[Sample] = []
    for f in track(files, f"preprocessing ({name})"):
        try:
            arr = fn(f, spec, **params)
        except ConversionError:
            raise
        except Exception as exc:
            raise ConversionError(f"preprocessing {name!r} failed on '{f}': {exc}") from exc
        samples.extend(_check({spec.name: arr}, inputs, f"'{f}' after {name!r}"))
    return samples


__all__ = ["CalibrationSet", "resolve_calibration", "hash_samples", "PREPROCESSORS", "preprocessor", "image_spec"]
