"""TFLite float16 weights: half the size, float compute (GPU delegates run it in fp16).

Example:
    >>> from edgeship.converters.registry import EXPORTERS
    >>> import edgeship.converters.tflite_fp16
    >>> EXPORTERS["tflite-fp16"].needs_calibration
    False
"""
from __future__ import annotations

from edgeship._deps import require
from edgeship.converters.registry import register
from edgeship.converters.tflite_common import TFLITE_SOURCES, make_converter, run_converter



@register("tflite-fp16", format="tflite", quantization="fp16", sources=TFLITE_SOURCES)
def export_tflite_fp16(source, options: dict) -> bytes:
    """TFLite with float16 weights (dequantized to float32 at load on CPU)."""
    tf = require("tensorflow", "convert", "converting to TFLite")
    conv = make_converter(source)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]
    return run_converter(conv, "TFLite float16 conversion")
