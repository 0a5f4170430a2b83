"""Image preprocessing as data: one spec, one function, used by calibration, validation, bundles and apps.

An :class:`ImagePreprocessing` says how an HxWx3 uint8 RGB image becomes a model input:
size, resize mode, channel order, normalisation, layout and dtype. :meth:`ImagePreprocessing.apply`
is the one function that does it: ``edgeship convert --calibration FOLDER --preprocessing
spec.json`` calibrates and validates with it, ``edgeship bundle --preprocessing spec.json``
writes it into ``manifest.json`` (``Model.preprocessing`` reads it back after
:func:`edgeship.load`), and the face app's ONNX detectors (YuNet, UltraFace, BlazeFace) prepare
their inputs with it, so the arrays are the same at calibration time and at run time.

JSON form (``type`` "image"; ``scale``/``offset`` may replace ``mean``/``std``: ``x = pixel * scale +
offset`` is ``mean = -offset / scale``, ``std = 1 / scale``)::

    {"type": "image", "size": [320, 320], "resize": "letterbox", "color": "BGR",
     "mean": [0, 0, 0], "std": [1, 1, 1], "layout": "NCHW", "dtype": "float32"}

* ``size``: [height, width] of the model input.
* ``resize``: ``stretch`` (to the size, aspect ratio not kept), ``letterbox`` (aspect kept, image
  at the top-left, the rest black: what the detectors do) or ``crop`` (aspect kept, centre crop).
* ``color``: ``RGB`` | ``BGR`` | ``GRAY`` (one channel, ITU-R 601 luma).
* ``mean``/``std``: per channel (or one value for all), in the 0..255 pixel scale:
  ``x = (pixel - mean) / std``.
* ``layout``: ``NHWC`` | ``NCHW``; ``dtype``: ``float32`` | ``uint8`` | ``int8`` (integer inputs take
  the normalised values rounded and clipped to the dtype's range).

Example:
    >>> import numpy as np
    >>> spec = ImagePreprocessing.from_dict({"size": [2, 3], "color": "BGR", "scale": 1 / 255, "offset": 0,
    ...                                      "layout": "NCHW"})
    >>> spec.mean, spec.std
    ((0.0,), (255.0,))
    >>> img = np.zeros((4, 6, 3), np.uint8); img[..., 0] = 255       # pure red
    >>> x = spec.apply(img)
    >>> x.shape, x.dtype, float(x[0, 2].max()), float(x[0, 0].max())  # red is the last channel in BGR
    ((1, 3, 2, 3), dtype('float32'), 1.0, 0.0)
    >>> ImagePreprocessing.from_dict(spec.to_dict()) == spec
    True
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .errors import InputSpecError

RESIZE_MODES = ("stretch", "letterbox", "crop")
COLORS = ("RGB", "BGR", "GRAY")
LAYOUTS = ("NHWC", "NCHW")
DTYPES = ("float32", "uint8", "int8")
IMAGE_FORMATS = "JPEG, PNG, BMP, PGM/PPM, TIFF, WebP"
_KEYS = {"type", "size", "resize", "color", "mean", "std", "scale", "offset", "layout", "dtype"}


@dataclass(frozen=True)
class ImagePreprocessing:
    """How an HxWx3 uint8 RGB image becomes a model input (see the module docstring)."""

    size: Tuple[int, int]                 # (height, width)
    resize: str = "stretch"
    color: str = "RGB"
    mean: Tuple[float, ...] = (0.0,)
    std: Tuple[float, ...] = (1.0,)
    layout: str = "NHWC"
    dtype: str = "float32"

    def __post_init__(self):
        _validate(self)

    @property
    def channels(self) -> int:
        return 1 if self.color == "GRAY" else 3

    @property
    def input_shape(self) -> Tuple[int, int, int, int]:
        """The model input shape this spec produces, batch 1."""
        h, w = self.size
        return (1, self.channels, h, w) if self.layout == "NCHW" else (1, h, w, self.channels)

    # -- JSON ----------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"type": "image", "size": list(self.size), "resize": self.resize, "color": self.color,
                "mean": list(self.mean), "std": list(self.std), "layout": self.layout, "dtype": self.dtype}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "preprocessing spec") -> "ImagePreprocessing":
        """Build and validate a spec from its JSON dict.

        Raises:
            InputSpecError: not a dict, unknown keys, missing size, bad values; the message says
                which key, what was given and what is allowed.
        """
        if not isinstance(d, Mapping):
            raise InputSpecError(f"{where}: expected a JSON object, got {type(d).__name__}")
        if d.get("type", "image") != "image":
            raise InputSpecError(f"{where}: type {d.get('type')!r} is not an image spec (expected \"image\")")
        unknown = sorted(set(d) - _KEYS)
        if unknown:
            raise InputSpecError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(_KEYS)}")
        if "size" not in d:
            raise InputSpecError(f"{where}: 'size' [height, width] is required")
        if ("scale" in d or "offset" in d) and ("mean" in d or "std" in d):
            raise InputSpecError(f"{where}: give either mean/std or scale/offset, not both")
        kw = {k: d[k] for k in ("resize", "color", "layout", "dtype") if k in d}
        size = _numbers(d["size"], "size", where, integer=True)
        if len(size) != 2:
            raise InputSpecError(f"{where}: size must be [height, width], got {d['size']!r}")
        if "scale" in d or "offset" in d:
            scale = _numbers(d.get("scale", 1.0), "scale", where)
            offset = _numbers(d.get("offset", 0.0), "offset", where)
            if any(s == 0 for s in scale):
                raise InputSpecError(f"{where}: scale must not be 0")
            n = max(len(scale), len(offset))
            scale, offset = _broadcast(scale, n, "scale", where), _broadcast(offset, n, "offset", where)
            kw["mean"] = tuple(-o / s + 0.0 for o, s in zip(offset, scale))  # + 0.0: no -0.0
            kw["std"] = tuple(1.0 / s for s in scale)
        else:
            for k in ("mean", "std"):
                if k in d:
                    kw[k] = _numbers(d[k], k, where)
        try:
            return cls(size=tuple(size), **kw)
        except InputSpecError as exc:
            raise InputSpecError(f"{where}: {exc}") from None

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "ImagePreprocessing":
        """Read a spec from a JSON file (errors name the file)."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputSpecError(f"cannot read preprocessing spec {p}: {exc}") from None
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputSpecError(f"preprocessing spec {p} is not valid JSON: {exc}") from None
        return cls.from_dict(d, where=f"preprocessing spec {p}")

    def save(self, path: Union[str, os.PathLike]) -> Path:
        """Write the spec as JSON (atomically)."""
        from ._io import atomic_write_json

        atomic_write_json(Path(path), self.to_dict())
        return Path(path)

    # -- the one function ----------------------------------------------------------------------
    def check_input(self, shape: Sequence[int], name: str = "input") -> None:
        """Raise InputSpecError if this spec cannot feed a model input of ``shape``."""
        want = self.input_shape
        if len(shape) != 4 or any(s >= 0 and s != w for s, w in zip(list(shape)[1:], want[1:])):
            raise InputSpecError(f"preprocessing spec makes inputs of shape {list(want)} ({self.layout}, "
                                 f"{self.channels} channel(s)) but input '{name}' has shape {list(shape)}; "
                                 f"fix size/layout/color in the spec")

    def apply(self, image: np.ndarray) -> np.ndarray:
        """An HxWx3 uint8 RGB image -> the model input, batch 1 (shape :attr:`input_shape`)."""
        return self.apply_with_scale(image)[0]

    def apply_with_scale(self, image: np.ndarray) -> Tuple[np.ndarray, float]:
        """:meth:`apply`, and the factor input pixels = image pixels * factor (letterbox/crop; the
        width factor for ``stretch``), so detections can be mapped back to the image."""
        img = _check_rgb(image)
        h, w = self.size
        ih, iw = img.shape[:2]
        if self.resize == "stretch":
            canvas, factor = resize(img, w, h), w / iw
        elif self.resize == "letterbox":
            factor = min(w / iw, h / ih)
            nw, nh = max(1, min(w, int(round(iw * factor)))), max(1, min(h, int(round(ih * factor))))
            canvas = np.zeros((h, w, 3), np.uint8)
            canvas[:nh, :nw] = resize(img, nw, nh)
        else:  # crop: scale so the image covers the input, then take the centre
            factor = max(w / iw, h / ih)
            nw, nh = max(w, int(math.ceil(iw * factor))), max(h, int(math.ceil(ih * factor)))
            big = resize(img, nw, nh)
            y0, x0 = (nh - h) // 2, (nw - w) // 2
            canvas = big[y0:y0 + h, x0:x0 + w]
        return self._normalise(canvas), factor

    def _normalise(self, canvas: np.ndarray) -> np.ndarray:
        if self.color == "BGR":
            px = canvas[:, :, ::-1].astype(np.float32)
        elif self.color == "GRAY":
            px = (canvas.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
        else:
            px = canvas.astype(np.float32)
        x = (px - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        if self.layout == "NCHW":
            x = x.transpose(2, 0, 1)
        if self.dtype != "float32":
            info = np.iinfo(self.dtype)
            x = np.clip(np.round(x), info.min, info.max)
        return np.ascontiguousarray(x[None], dtype=np.dtype(self.dtype))


def from_manifest(value: Any) -> Optional[ImagePreprocessing]:
    """The image spec of a bundle manifest's ``preprocessing`` (None when absent or not an image spec)."""
    if isinstance(value, Mapping) and value.get("type") == "image":
        return ImagePreprocessing.from_dict(value, where="bundle manifest preprocessing")
    return None


def read_image(path: Union[str, os.PathLike]) -> np.ndarray:
    """Read an image file as HxWx3 uint8 RGB.

    Grayscale is replicated to three channels, 16-bit images are scaled to 8 bits
    (``round(v / 257)``), an alpha channel is dropped, and the EXIF orientation of photos is
    applied.

    Raises:
        InputSpecError: the file is missing, unreadable, empty, or not an image OpenCV can decode
            (JPEG, PNG, BMP, PGM/PPM, TIFF, WebP).
        MissingDependencyError: OpenCV (the ``[face]`` extra) is not installed.
    """
    from ._deps import require

    p = Path(path)
    if p.is_dir():
        raise InputSpecError(f"{p} is a folder, not an image file")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputSpecError(f"cannot read image {p}: {exc.strerror or exc}") from exc
    if not data:
        raise InputSpecError(f"{p} is empty (0 bytes); expected an image ({IMAGE_FORMATS})")
    cv2 = require("cv2", "face", "reading images")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    if img is None or img.size == 0:
        raise InputSpecError(f"{p} is not an image OpenCV can decode ({IMAGE_FORMATS}); it starts with {data[:8]!r}")
    if img.dtype == np.uint16:
        img = ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif img.dtype in (np.float32, np.float64):
        img = np.clip(np.nan_to_num(img) * (255.0 if float(np.nanmax(img)) <= 1.0 else 1.0), 0, 255).round().astype(np.uint8)
    elif img.dtype != np.uint8:
        raise InputSpecError(f"{p}: unsupported pixel type {img.dtype}; expected 8- or 16-bit images")
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[:, :, None], 3, 2))
    if img.shape[2] == 4:
        img = img[:, :, :3]
    return np.ascontiguousarray(img[:, :, ::-1])  # OpenCV decodes to BGR


def resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize (OpenCV ``INTER_LINEAR``; ``INTER_AREA`` when shrinking by 2x or more)."""
    if img.shape[1] == width and img.shape[0] == height:
        return img
    from ._deps import require

    cv2 = require("cv2", "face", "resizing images")
    shrink = width * 2 <= img.shape[1] and height * 2 <= img.shape[0]
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _check_rgb(image) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 \
            or image.size == 0:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise InputSpecError(f"preprocessing takes an HxWx3 uint8 RGB image, got {got}; "
                             f"edgeship.face.read_image reads files that way")
    return image


def _validate(s: ImagePreprocessing) -> None:
    if len(s.size) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in s.size):
        raise InputSpecError(f"size must be two positive integers [height, width], got {list(s.size)}")
    for key, value, allowed in (("resize", s.resize, RESIZE_MODES), ("color", s.color, COLORS),
                                ("layout", s.layout, LAYOUTS), ("dtype", s.dtype, DTYPES)):
        if value not in allowed:
            raise InputSpecError(f"{key} must be one of {list(allowed)}, got {value!r}")
    for key, vals in (("mean", s.mean), ("std", s.std)):
        if len(vals) not in (1, s.channels):
            raise InputSpecError(f"{key} needs 1 or {s.channels} values for color {s.color}, got {list(vals)}")
        if not all(math.isfinite(v) for v in vals):
            raise InputSpecError(f"{key} values must be finite, got {list(vals)}")
    if any(v == 0 for v in s.std):
        raise InputSpecError(f"std must not be 0, got {list(s.std)}")


def _numbers(value, key: str, where: str, integer: bool = False) -> Tuple:
    vals = value if isinstance(value, (list, tuple)) else [value]
    ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals) and vals
    if not ok or (integer and not all(float(v).is_integer() for v in vals)):
        kind = "integers" if integer else "numbers"
        raise InputSpecError(f"{where}: {key} must be {kind} (one or a list), got {value!r}")
    return tuple(int(v) for v in vals) if integer else tuple(float(v) for v in vals)


def _broadcast(vals: Tuple[float, ...], n: int, key: str, where: str) -> Tuple[float, ...]:
    if len(vals) == n:
        return vals
    if len(vals) == 1:
        return vals * n
    raise InputSpecError(f"{where}: scale and offset need the same number of values (or one), {key} has {len(vals)}")


__all__ = ["ImagePreprocessing", "from_manifest", "read_image", "resize", "RESIZE_MODES", "COLORS", "LAYOUTS", "DTYPES"]
