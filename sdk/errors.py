"""The one exception hierarchy of edgeship.

Every error that a user's input can cause is an :class:`EdgeshipError`
subclass whose message says what was expected and what was given.
"""
from __future__ import annotations


class EdgeshipError(Exception):
    """Root of every error edgeship raises on purpose."""


class ModelFormatError(EdgeshipError, ValueError):
    """A model file is truncated, corrupted, of an unknown format or unsupported."""


class InputSpecError(EdgeshipError, ValueError):
    """Input data does not match the model: shape, dtype, NaN/inf, empty."""


class MissingDependencyError(EdgeshipError, ImportError):
    """An optional dependency (an extra) is not installed."""


class IntegrityError(EdgeshipError):
    """A checksum or manifest does not match the files it describes."""


class TargetError(EdgeshipError):
    """A target cannot run or receive the model (incompatible, unreachable, unknown)."""


class IncompatibleTargetError(TargetError):
    """The model fails a target's check; ``report`` holds the check report (a dict) that says why."""

    def __init__(self, message: str, report=None):
        super().__init__(message)
        self.report = report


class ConversionError(EdgeshipError):
    """A conversion could not be carried out (bad source, unsupported layer, bad calibration)."""


class ParityError(ConversionError):
    """A converted model is outside its tolerance against the source model."""

    def __init__(self, message: str, report=None):
        super().__init__(message)
        self.report = report


__all__ = [
    "EdgeshipError", "ModelFormatError", "InputSpecError", "MissingDependencyError",
    "IntegrityError", "TargetError", "IncompatibleTargetError", "ConversionError", "ParityError",
]
