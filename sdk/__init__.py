"""edgeship: get a trained model onto a device, prove it still works, embed it in an app.

The runtime core imports only numpy (plus one interpreter when a model is loaded);
converters, targets and the model zoo import their heavy dependencies lazily.

Example:
    >>> import edgeship
    >>> issubclass(edgeship.ModelFormatError, edgeship.EdgeshipError)
    True
"""
from __future__ import annotations

from .errors import (ConversionError, EdgeshipError, IncompatibleTargetError, InputSpecError, IntegrityError,
                     MissingDependencyError, ModelFormatError, ParityError, TargetError)
from .facts import QuantMode
from .spec import Quantization, TensorSpec

from ._version import __version__

__all__ = [
    "__version__", "load", "Model", "TensorSpec", "Quantization",
    "EdgeshipError", "ModelFormatError", "InputSpecError", "MissingDependencyError",
    "IntegrityError", "TargetError", "IncompatibleTargetError", "ConversionError", "ParityError", "QuantMode",
]


def __getattr__(name):  # lazy: keep `import edgeship` cheap
    if name in ("load", "Model"):
        from . import runtime

        value = globals()[name] = getattr(runtime, name)  # found once; later lookups skip this hook
        return value
    raise AttributeError(f"module 'edgeship' has no attribute {name!r}")
