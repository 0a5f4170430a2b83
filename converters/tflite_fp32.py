"""TFLite float32: the model as trained, no quantization (the parity baseline for the others).

Example:
    >>> from edgeship.converters.registry import EXPORTERS
    >>> import edgeship.converters.tflite_fp32
    >>> str(EXPORTERS["tflite-fp32"].quantization)
    'fp32'
"""
from __future__ import annotations

from edgeship.converters.registry import register
from edgeship.converters.tflite_common import TFLITE_SOURCES, make_converter, run_converter



@register("tflite-fp32", format="tflite", quantization="fp32", sources=TFLITE_SOURCES)
def export_tflite_fp32(source, options: dict) -> bytes:
    """TFLite float32 (no quantization)."""
    return run_converter(make_converter(source), "TFLite float32 conversion")
