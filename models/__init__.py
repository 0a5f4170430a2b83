"""The edgeship model zoo: architectures, training recipes, small trained weights and a registry.

Example:
    >>> from edgeship import models
    >>> models.path("shapes_cnn_fp32").suffix
    '.tflite'
"""
from .registry import REGISTRY, ModelEntry, entry, fetch, list_models, path

__all__ = ["REGISTRY", "ModelEntry", "entry", "fetch", "list_models", "path"]
