"""TFLite int16x8: int16 activations, int8 weights; much finer activation resolution than int8.

Float I/O. Fewer kernels support it (no Edge TPU, limited NNAPI), so it is a fallback for
models that lose too much accuracy in int8.

Example:
    >>> from edgeship.converters.registry import EXPORTERS
    >>> import edgeship.converters.tflite_int16x8
    >>> str(EXPORTERS["tflite-int16x8"].quantization)
    'int16x8'
"""
from __future__ import annotations

from edgeship._deps import require
from edgeship.converters.registry import register
from edgeship.converters.tflite_common import (TFLITE_SOURCES, make_converter, representative_dataset,
                                               run_converter)



@register("tflite-int16x8", format="tflite", quantization="int16x8", sources=TFLITE_SOURCES,
          needs_calibration=True)
def export_tflite_int16x8(source, options: dict) -> bytes:
    """TFLite 16-bit activations with 8-bit weights (float I/O)."""
    tf = require("tensorflow", "convert", "converting to TFLite")
    conv = make_converter(source)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative_dataset(source, options.get("calibration"))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    conv._experimental_disable_per_channel = not options.get("per_channel", True)
    return run_converter(conv, "TFLite int16x8 conversion")
