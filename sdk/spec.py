"""Plain descriptions of model inputs/outputs, shared by every backend and tool."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional, Tuple

import numpy as np


@dataclass(frozen=True)
class Quantization:
    """Affine quantization of a tensor: ``real = scale * (q - zero_point)``.

    ``scale``/``zero_point`` are tuples so per-channel parameters fit; ``axis``
    is the channel axis for per-channel tensors (None for per-tensor).
    """

    scale: Tuple[float, ...]
    zero_point: Tuple[int, ...]
    axis: Optional[int] = None

    @property
    def per_tensor(self) -> bool:
        return len(self.scale) == 1

    def to_dict(self) -> dict:
        return {"scale": list(self.scale), "zero_point": list(self.zero_point), "axis": self.axis}


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape (``-1`` marks a dynamic dimension), numpy dtype name and quantization."""

    name: str
    shape: Tuple[int, ...]
    dtype: str
    quantization: Optional[Quantization] = None
    index: int = -1  # backend-specific tensor index (TFLite) or position (ONNX)

    @property
    def is_quantized(self) -> bool:
        return self.quantization is not None and np.dtype(self.dtype).kind in "iu"

    @property
    def is_dynamic(self) -> bool:
        return any(d is None or d < 0 for d in self.shape)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        d["quantization"] = self.quantization.to_dict() if self.quantization else None
        return d
