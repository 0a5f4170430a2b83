"""TFLite full-integer int8: int8 weights and activations, calibrated on representative data.

Options: ``io_dtype`` "int8" (default) | "uint8" | "float32" (float I/O with QUANTIZE/DEQUANTIZE
ops inside), ``per_channel`` (default True), ``keep_float_ops`` (tensor names whose producing
layers stay float: selective quantization, used by the accuracy-budget fix). Without
``keep_float_ops`` every compute op must be int8, else a ConversionError lists the float ones.

Example:
    >>> from edgeship.converters.registry import EXPORTERS
    >>> import edgeship.converters.tflite_int8
    >>> EXPORTERS["tflite-int8"].needs_calibration
    True
"""
from __future__ import annotations

from edgeship.converters.registry import register
from edgeship.converters.tflite_common import TFLITE_SOURCES, float_op_names, quantize_calibrated
from edgeship.errors import ConversionError



@register("tflite-int8", format="tflite", quantization="int8", sources=TFLITE_SOURCES,
          needs_calibration=True)
def export_tflite_int8(source, options: dict) -> bytes:
    """TFLite full-integer int8 (int8/uint8 I/O, or float I/O with quantize ops inside)."""
    data = quantize_calibrated(source, options)
    if not options.get("keep_float_ops"):
        still_float = float_op_names(data)
        if still_float:
            raise ConversionError(
                f"full-integer int8 left {len(still_float)} op(s) in float: {', '.join(still_float[:8])}. "
                f"Pass keep_float_ops to accept float layers (selective quantization) or use "
                f"--quantize dynamic")
    return data
