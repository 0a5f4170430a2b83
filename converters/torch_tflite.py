"""Float TFLite from a PyTorch module, through litert-torch (``tflite-fp32-torch``).

litert-torch traces the module with ``torch.export`` on the source's example inputs
and lowers it to a TFLite flatbuffer. It is an optional dependency of the ``torch``
extra; when it cannot be imported the exporter raises
:class:`~edgeship.errors.MissingDependencyError` naming that extra and the pip spec.

Known limit (measured 2026-11-22 with ``pip install --dry-run``): ``litert-torch 0.10.0``
resolves beside ``torch==2.13.0`` without pulling a CUDA torch, but it pins
``xdsl==0.28.0``, which requires ``typing-extensions<4.13``: pip would downgrade
typing-extensions 4.16 -> 4.12.2 and pydantic 2.14 -> 2.11 and leave the installed
cattrs (needed by coremltools, wants typing-extensions>=4.14) broken; it also pulls
jax, transformers, torchao and kagglehub. So it is not in the default environment.

The line that works beside ``edgeship[torch]`` (tested: ``make venv-test`` builds exactly this
into ``.overlay-litert-torch/`` and tests/test_overlay_exporters.py converts through it) is
``pip install --no-deps`` with every package pip resolves for litert-torch except those the
edgeship environment already has (torch, pydantic, typing-extensions, typing-inspection) and
tomli. ``pip check`` then reports two unmet pins that the conversion does not need: xdsl's
``typing-extensions<4.13`` and litert-lm-builder's tomli::

    pip install --no-deps litert-torch==0.10.0 litert-converter==0.5.0 ai-edge-quantizer==0.10.0 \\
        anyio==4.14.2 click==8.5.1 fire==0.7.1 h11==0.16.0 hf-xet==1.8.0 httpcore2==2.16.2 \\
        httpx2==2.16.2 huggingface-hub==2.4.0 immutabledict==4.2.1 jax==0.10.2 jaxlib==0.10.2 \\
        jaxtyping==0.3.11 kagglehub==1.0.2 kagglesdk==0.1.37 lark==1.3.1 litert-lm-builder==0.18.1 \\
        multipledispatch==1.0.0 ordered-set==4.1.0 regex==2026.11.15 safetensors==0.8.0 \\
        scipy==1.17.1 sentencepiece==0.2.3 tabulate==0.10.0 tokenizers==0.23.3 torchao==0.18.0 \\
        transformers==5.23.0 truststore==0.10.5 wadler-lindig==0.1.8 xdsl==0.28.0

(1.1 GB. Converting a CNN imports only litert_torch, litert_converter, ai_edge_quantizer,
jax, jaxlib, scipy, torchao and immutabledict of these.)

Example:
    >>> import torch  # doctest: +SKIP
    >>> from edgeship.converters.sources import load_source  # doctest: +SKIP
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())  # doctest: +SKIP
    >>> data = export_tflite_from_torch(load_source(net, example_inputs=torch.zeros(1, 3, 8, 8)), {})  # doctest: +SKIP
    >>> data[4:8]  # doctest: +SKIP
    b'TFL3'
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from edgeship._deps import require
from edgeship._io import stdout_to_stderr
from edgeship.errors import ConversionError, MissingDependencyError

from .onnx_fp32 import _first_line
from .registry import register

PIP_SPEC = "litert-torch==0.10.*"
# Installs it beside edgeship[torch] without touching torch / typing-extensions (the Makefile's
# LITERT_TORCH_PINS): every package of litert-torch's resolution, pinned, with --no-deps.
PIP_LINE = ("pip install --no-deps litert-torch==0.10.0 litert-converter==0.5.0 ai-edge-quantizer==0.10.0 "
            "anyio==4.14.2 click==8.5.1 fire==0.7.1 h11==0.16.0 hf-xet==1.8.0 httpcore2==2.16.2 httpx2==2.16.2 "
            "huggingface-hub==2.4.0 immutabledict==4.2.1 jax==0.10.2 jaxlib==0.10.2 jaxtyping==0.3.11 "
            "kagglehub==1.0.2 kagglesdk==0.1.37 lark==1.3.1 litert-lm-builder==0.18.1 multipledispatch==1.0.0 "
            "ordered-set==4.1.0 regex==2026.11.15 safetensors==0.8.0 scipy==1.17.1 sentencepiece==0.2.3 "
            "tabulate==0.10.0 tokenizers==0.23.3 torchao==0.18.0 transformers==5.23.0 truststore==0.10.5 "
            "wadler-lindig==0.1.8 xdsl==0.28.0")


@register("tflite-fp32-torch", format="tflite", quantization="fp32", sources=("torch",))
def export_tflite_from_torch(source, options: dict) -> bytes:
    """Float32 TFLite from a torch.nn.Module via litert-torch (torch.export + LiteRT lowering)."""
    require("torch", "torch", "converting PyTorch models to TFLite")
    try:
        import litert_torch
    except ImportError as exc:
        raise MissingDependencyError(
            f"converting PyTorch models to TFLite needs litert-torch, which could not be imported ({exc}). "
            f"It belongs to the extra edgeship[torch] but is not pulled by it, because it downgrades "
            f"typing-extensions; install it beside edgeship with: {PIP_LINE}. "
            f"ONNX from PyTorch (onnx-fp32/onnx-dynamic/onnx-qdq-int8) works without it") from exc
    if source.kind != "torch":
        raise ConversionError(f"tflite-fp32-torch converts torch sources only, got a {source.kind} source")
    if not source.example_inputs:
        raise ConversionError("a torch source needs example_inputs to be converted to TFLite; none were given")
    for key in ("io_dtype", "keep_float_ops"):
        if options.get(key):
            raise ConversionError(f"{key}={options[key]!r} does not apply to a float TFLite model "
                                  f"(tflite-fp32-torch has no quantization)")
    from edgeship.converters.batching import torch_export_args

    module = source.obj.eval()
    args, dynamic = torch_export_args(source)
    with tempfile.TemporaryDirectory(prefix="edgeship-torch-tflite-") as tmp:
        path = Path(tmp) / "model.tflite"
        try:
            with stdout_to_stderr():
                edge_model = litert_torch.convert(module, args, dynamic_shapes=dynamic)
                edge_model.export(str(path))
        except Exception as exc:
            if dynamic is not None:
                raise ConversionError(
                    f"litert-torch could not convert the module with a dynamic batch ({_first_line(exc)}). "
                    f"Without --dynamic-batch it converts at the example's batch; a dynamic batch is available "
                    f"for ONNX (--to onnx, torch.onnx with a symbolic batch dimension)") from exc
            raise ConversionError(f"litert-torch could not convert the module: {_first_line(exc)}") from exc
        data = path.read_bytes()
    if data[4:8] != b"TFL3":
        raise ConversionError("litert-torch wrote a file that is not a TFLite flatbuffer")
    return data


__all__ = ["export_tflite_from_torch", "PIP_SPEC", "PIP_LINE"]
