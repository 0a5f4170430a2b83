"""``edgeship inspect``: what a model file holds and what it will cost to run.

The report is the JSON view of :class:`edgeship.facts.ModelFacts` (format, size, I/O with
quantization, operators with counts and versions, parameters, MACs per op and in total,
tensor memory, minimum runtime version). Pure Python over the checked readers, so it never
hands bytes to a native runtime.

Example:
    >>> import edgeship.models
    >>> from edgeship.inspect import inspect_model
    >>> info = inspect_model(edgeship.models.path("shapes_cnn_int8"))
    >>> info["format"], info["quantization"], info["inputs"][0]["dtype"]
    ('tflite', 'int8', 'int8')
"""
from __future__ import annotations

from .facts import read_facts


def inspect_model(path) -> dict:
    """Inspect a ``.tflite`` or ``.onnx`` file: :meth:`ModelFacts.to_dict` of :func:`read_facts`."""
    return read_facts(path).to_dict()


__all__ = ["inspect_model"]
