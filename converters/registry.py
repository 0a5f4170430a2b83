"""A small decorator registry of exporters: one module per output format.

Each exporter turns a loaded :class:`~edgeship.converters.sources.Source` into
the bytes of one deployable file. The registry is data, so ``--all`` and the
docs can list what exists without a god-class with a flag per format.

Example:
    >>> from edgeship.converters.registry import EXPORTERS
    >>> isinstance(EXPORTERS, dict)
    True
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Tuple

from edgeship.errors import ConversionError


@dataclass(frozen=True)
class Exporter:
    name: str                 # unique, e.g. "tflite-int8", "onnx-qdq-int8"
    format: str               # "tflite" | "onnx" | "coreml"
    quantization: str         # "none" | "fp16" | "dynamic" | "int8" | "int16x8"
    sources: Tuple[str, ...]  # Source.kind values it accepts: keras, saved_model, onnx, torch, tflite
    needs_calibration: bool
    fn: Callable              # fn(source, options: dict) -> bytes
    doc: str = ""


EXPORTERS: Dict[str, Exporter] = {}


def register(name: str, *, format: str, quantization: str, sources: Tuple[str, ...],
             needs_calibration: bool = False) -> Callable:
    """Decorator that adds an exporter function to :data:`EXPORTERS`."""

    def deco(fn: Callable) -> Callable:
        if name in EXPORTERS:
            raise RuntimeError(f"exporter {name!r} registered twice")
        EXPORTERS[name] = Exporter(name, format, quantization, tuple(sources), needs_calibration,
                                   fn, (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else "")
        return fn

    return deco


def find(format: str, quantization: str, source_kind: str) -> Exporter:
    """The exporter for (format, quantization) that accepts ``source_kind``."""
    for exp in EXPORTERS.values():
        if exp.format == format and exp.quantization == quantization and source_kind in exp.sources:
            return exp
    have = sorted(f"{e.format}/{e.quantization}" for e in EXPORTERS.values() if source_kind in e.sources)
    raise ConversionError(
        f"no exporter for --to {format} --quantize {quantization} from a {source_kind} source; "
        f"available for {source_kind}: {', '.join(have) or 'none'}"
    )
