"""Parsers of option values that more than one command takes (one parser per kind of value)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

from ..errors import InputSpecError
from ..labels import parse_labels


def label_names(value: Optional[str]) -> Optional[List[str]]:
    """Class names for ``--labels`` of ``bundle`` / ``deploy`` (see :func:`edgeship.labels.parse_labels`).

    Example:
        >>> label_names("circle, square,triangle")
        ['circle', 'square', 'triangle']
        >>> label_names(None) is None
        True
    """
    return None if value is None else parse_labels(value)


def class_indices(path: Optional[str]):
    """Class indices for ``convert --labels``: a ``.npy`` array, or a text/CSV file whose lines end
    with an integer class index (a header line is skipped)."""
    if path is None:
        return None
    import numpy as np

    p = Path(path)
    if not p.is_file():
        raise InputSpecError(f"labels file '{p}' does not exist (expected .npy or text with one class index per line)")
    if p.suffix.lower() == ".npy":
        return np.load(p, allow_pickle=False).reshape(-1)
    out = []
    for i, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        field = line.split(",")[-1].strip()
        try:
            out.append(int(field))
        except ValueError:
            if not out:  # a header line
                continue
            raise InputSpecError(f"{p}:{i}: expected an integer class index as the last field, got {field!r}") from None
    return np.asarray(out, np.int64)


def floats(text: Optional[str], what: str) -> Optional[List[float]]:
    """Comma-separated numbers, e.g. ``--mean 127.5,127.5,127.5``."""
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputSpecError(f"{what} must be comma-separated numbers like 127.5,127.5,127.5; got {text!r}") from None


def json_value(text: Optional[str], what: str):
    """JSON given inline or as a file name."""
    if text is None:
        return None
    p = Path(text)
    try:
        return json.loads(p.read_text() if p.is_file() else text)
    except ValueError as exc:
        raise InputSpecError(f"{what} must be JSON (text or a file); {exc}") from exc
