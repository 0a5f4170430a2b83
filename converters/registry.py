"""The registry of exporters: one module per output format, listed in :data:`EXPORTER_MODULES`.

Each exporter turns a loaded :class:`~edgeship.converters.sources.Source` into the bytes of
one deployable file and declares itself with :func:`register`. The list of exporter modules
is explicit (a new exporter is added here, nothing is found by a name scan); none of them
imports TF/ONNX/torch at module level, so :func:`load_exporters` is cheap.

Example:
    >>> from edgeship.converters.registry import load_exporters
    >>> exporters = load_exporters()
    >>> exporters["tflite-int8"].quantization, exporters["onnx-fp32"].format
    (<QuantMode.INT8: 'int8'>, 'onnx')
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Tuple

from edgeship.errors import ConversionError, EdgeshipError
from edgeship.facts import QuantMode

# Every exporter module, in the order ``--all`` runs them.
EXPORTER_MODULES = ("tflite_fp32", "tflite_fp16", "tflite_dynamic", "tflite_int8", "tflite_int16x8",
                    "onnx_fp32", "onnx_quant", "onnx_tflite", "onnx_tflite_int8", "torch_tflite")


@dataclass(frozen=True)
class Exporter:
    name: str                 # unique, e.g. "tflite-int8", "onnx-qdq-int8"
    format: str               # "tflite" | "onnx" | "coreml"
    quantization: QuantMode
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
        EXPORTERS[name] = Exporter(name, format, QuantMode.parse(quantization), tuple(sources), needs_calibration,
                                   fn, (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else "")
        return fn

    return deco


def load_exporters() -> Dict[str, Exporter]:
    """Import every module of :data:`EXPORTER_MODULES` (each registers itself) and return the registry."""
    import importlib

    for name in EXPORTER_MODULES:
        importlib.import_module(f"edgeship.converters.{name}")
    # The order is EXPORTER_MODULES' (then registration order within a module), whatever was
    # imported first in this process: reports and --all list formats the same on every run.
    rank = {f"edgeship.converters.{m}": i for i, m in enumerate(EXPORTER_MODULES)}
    ordered = sorted(EXPORTERS.items(), key=lambda kv: rank.get(kv[1].fn.__module__, len(rank)))
    if list(EXPORTERS) != [k for k, _ in ordered]:
        EXPORTERS.clear()
        EXPORTERS.update(ordered)
    return EXPORTERS


def find(format: str, quantization, source_kind: str) -> Exporter:
    """The exporter for (format, quantization) that accepts ``source_kind``."""
    load_exporters()
    try:
        quantization = QuantMode.parse(quantization)
    except EdgeshipError as exc:
        raise ConversionError(f"no exporter for --to {format} --quantize {quantization}: {exc}") from None
    for exp in EXPORTERS.values():
        if exp.format == format and exp.quantization == quantization and source_kind in exp.sources:
            return exp
    have = sorted(f"{e.format}/{e.quantization}" for e in EXPORTERS.values() if source_kind in e.sources)
    raise ConversionError(
        f"no exporter for --to {format} --quantize {quantization} from a {source_kind} source; "
        f"available for {source_kind}: {', '.join(have) or 'none'}"
    )
