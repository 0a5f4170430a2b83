"""The input range a model expects, and synthetic validation inputs drawn from it.

Without ``--validation`` or ``--calibration`` data, parity can only run on random inputs. N(0, 1)
noise is the wrong noise for most real models: an image model that starts with
``Rescaling(1/255)`` expects pixels in [0, 255], and on N(0, 1) its activations sit in a corner
of their range (EfficientNetB0's fp16 file was rejected at cosine 0.69 on N(0, 1) but matches at
cosine >= 0.9997 on in-range inputs). :func:`input_range` reads the range from, in order:

1. the preprocessing given to ``convert`` (a named one: ``image_0_1`` -> [0, 1], ``image_-1_1`` ->
   [-1, 1], ``image_0_255`` -> [0, 255]; or a dict/spec with ``"range": [lo, hi]``);
2. an integer input dtype (uint8 -> 0..255, int8 -> -128..127);
3. the Keras model's first layers: ``Rescaling(scale, offset)`` -> the inputs it maps onto [0, 1]
   (offset >= 0) or [-1, 1] (offset < 0), e.g. [0, 255] for 1/255 and for 1/127.5 - 1;
   ``Normalization(mean, variance)`` -> N(mean, variance) per channel;
4. nothing known: N(0, 1), said as such.

Every choice is described in words (:attr:`InputRange.text`) for the report, with what it is worth.

Example:
    >>> from edgeship.spec import TensorSpec
    >>> r = input_range(None, TensorSpec("x", (-1, 4), "uint8"))
    >>> r.text
    'random integers in [0, 255] (uint8 input)'
    >>> input_range(None, TensorSpec("x", (-1, 4), "float32"), preprocessing="image_-1_1").bounds
    (-1.0, 1.0)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

import numpy as np

from edgeship.errors import ConversionError

# named preprocessings of edgeship.converters.calibration and the range they produce
NAMED_RANGES = {"image_0_1": (0.0, 1.0), "image_-1_1": (-1.0, 1.0), "image_0_255": (0.0, 255.0)}
# Keras layers that only move values around: look through them for a Rescaling/Normalization
_PASS_THROUGH = ("InputLayer", "Resizing", "Reshape", "Permute", "CenterCrop", "Cropping2D", "ZeroPadding2D",
                 "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomCrop", "RandomContrast")
WORTH = "worth less than real data: give --validation or --calibration data for a real check"


@dataclass
class InputRange:
    """Where synthetic inputs for one model input come from."""

    kind: str                          # "uniform" | "integers" | "normal"
    low: Any = 0.0                     # uniform/integers: low; normal: mean (scalar or per channel)
    high: Any = 1.0                    # uniform/integers: high; normal: std
    why: str = "no declared input range"

    @property
    def bounds(self) -> Tuple[float, float]:
        """(low, high) of the values drawn (mean -/+ 2 std for ``normal``)."""
        if self.kind == "normal":
            m, s = np.asarray(self.low, np.float64), np.asarray(self.high, np.float64)
            return float(np.min(m - 2 * s)), float(np.max(m + 2 * s))
        return float(np.min(self.low)), float(np.max(self.high))

    @property
    def text(self) -> str:
        lo, hi = self.bounds
        if self.kind == "normal" and self.why == "no declared input range":
            return "random N(0,1) inputs (no declared or inferred input range)"
        what = {"uniform": "random inputs", "integers": "random integers", "normal": "random normal inputs"}[self.kind]
        return f"{what} in [{lo:.4g}, {hi:.4g}] ({self.why})"

    def draw(self, rng: np.random.Generator, shape: tuple, dtype) -> np.ndarray:
        if self.kind == "integers":
            return rng.integers(int(self.low), int(self.high) + 1, size=shape).astype(dtype)
        if self.kind == "uniform":
            return rng.uniform(self.low, self.high, size=shape).astype(np.float32)
        return (self.low + self.high * rng.standard_normal(shape)).astype(np.float32)


N01 = InputRange("normal", 0.0, 1.0)


def input_range(source, spec, preprocessing: Any = None) -> InputRange:
    """The range to draw synthetic inputs for ``spec`` (one input of ``source``) from; see the module doc."""
    if preprocessing is not None and not callable(preprocessing):
        got = _from_preprocessing(preprocessing)
        if got is not None:
            return got
    dt = np.dtype(spec.dtype)
    if dt.kind in "iu":
        info = np.iinfo(dt) if dt.itemsize == 1 else None
        if info is not None:
            return InputRange("integers", int(info.min), int(info.max), f"{dt.name} input")
    if source is not None and getattr(source, "kind", None) == "keras" and len(source.inputs) == 1:
        got = _from_keras(source.obj)
        if got is not None:
            return got
    return N01


def _from_preprocessing(pre) -> Optional[InputRange]:
    if isinstance(pre, dict):
        rng = pre.get("range") or pre.get("input_range")
        if rng is not None:
            lo, hi = (float(v) for v in rng)
            if not lo < hi:
                raise ConversionError(f"preprocessing range must be [low, high] with low < high, got {rng}")
            return InputRange("uniform", lo, hi, "the preprocessing's declared range")
        pre = pre.get("function") or pre.get("name")
    if isinstance(pre, str) and pre in NAMED_RANGES:
        lo, hi = NAMED_RANGES[pre]
        return InputRange("uniform", lo, hi, f"preprocessing {pre!r}")
    return None


def _first_layers(model, depth: int = 0) -> List[Any]:
    """The model's layers from the input on, looking into a nested model that comes first."""
    layers = list(getattr(model, "layers", None) or [])
    out: List[Any] = []
    for layer in layers:
        if getattr(layer, "layers", None) and depth < 3:
            out.extend(_first_layers(layer, depth + 1))
        else:
            out.append(layer)
        if type(layer).__name__ not in _PASS_THROUGH:
            break
    return out


def _from_keras(model) -> Optional[InputRange]:
    for layer in _first_layers(model):
        kind = type(layer).__name__
        if kind == "Rescaling":
            scale = np.asarray(layer.scale, np.float64)
            offset = np.asarray(layer.offset, np.float64)
            if np.any(scale == 0):
                return None
            y_lo, y_hi = (0.0, 1.0) if np.all(offset >= 0) else (-1.0, 1.0)
            a, b = (y_lo - offset) / scale, (y_hi - offset) / scale
            lo, hi = float(np.min(np.minimum(a, b))), float(np.max(np.maximum(a, b)))
            return InputRange("uniform", lo, hi, f"inferred from Keras layer {layer.name!r}: "
                                                 f"Rescaling(scale={float(np.mean(scale)):.4g}, "
                                                 f"offset={float(np.mean(offset)):.4g})")
        if kind == "Normalization":
            mean = getattr(layer, "mean", None)
            var = getattr(layer, "variance", None)
            if mean is None or var is None:
                return None
            mean = np.asarray(mean, np.float64)
            std = np.sqrt(np.maximum(np.asarray(var, np.float64), 1e-12))
            return InputRange("normal", mean, std, f"inferred from Keras layer {layer.name!r}: Normalization "
                                                   f"mean/variance")
        if kind not in _PASS_THROUGH:
            return None
    return None


def synthetic_inputs(source, n: int, seed: int, preprocessing: Any = None) -> Tuple[List[dict], str]:
    """``n`` seeded batch-1 samples for ``source`` drawn from each input's range, and a one-line description.

    Raises:
        ConversionError: an input has a dynamic dimension other than the batch.
    """
    rng = np.random.default_rng(seed)
    ranges = []
    for spec in source.inputs:
        if any(d < 0 for d in spec.shape[1:]):
            raise ConversionError(f"input '{spec.name}' has dynamic dims {spec.shape}: give --validation "
                                  f"data so the outputs can be checked")
        ranges.append(input_range(source, spec, preprocessing))
    samples = []
    for _ in range(n):
        samples.append({spec.name: r.draw(rng, (1,) + tuple(spec.shape[1:]),
                                          spec.dtype if np.dtype(spec.dtype).kind in "iu" else np.float32)
                        for spec, r in zip(source.inputs, ranges)})
    if len(ranges) == 1:
        text = ranges[0].text
    else:
        text = "; ".join(f"{s.name}: {r.text}" for s, r in zip(source.inputs, ranges))
    return samples, text


__all__ = ["InputRange", "input_range", "synthetic_inputs", "NAMED_RANGES", "WORTH"]
