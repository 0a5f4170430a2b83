"""TFLite dynamic-range int8: int8 weights, activations quantized on the fly; no calibration data.

Example:
    >>> from edgeship.converters.registry import EXPORTERS
    >>> import edgeship.converters.tflite_dynamic
    >>> EXPORTERS["tflite-dynamic"].format
    'tflite'
"""
from __future__ import annotations

from edgeship._deps import require
from edgeship.converters.registry import register
from edgeship.converters.tflite_common import TFLITE_SOURCES, make_converter, run_converter



@register("tflite-dynamic", format="tflite", quantization="dynamic", sources=TFLITE_SOURCES)
def export_tflite_dynamic(source, options: dict) -> bytes:
    """TFLite dynamic-range quantization (int8 weights, float I/O)."""
    tf = require("tensorflow", "convert", "converting to TFLite")
    conv = make_converter(source)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv._experimental_disable_per_channel = not options.get("per_channel", True)
    return run_converter(conv, "TFLite dynamic-range conversion")
