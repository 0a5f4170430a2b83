"""The one labels parser: class names from a list, a text file (one per line) or ``"a,b,c"``.

Example:
    >>> from edgeship.labels import parse_labels
    >>> parse_labels("circle, square,triangle")
    ['circle', 'square', 'triangle']
    >>> parse_labels(["yes", " no "])
    ['yes', 'no']
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Sequence, Union

from .errors import InputSpecError

__all__ = ["parse_labels"]


def parse_labels(value: Union[str, os.PathLike, Sequence[str]]) -> List[str]:
    """Class names from a sequence, a UTF-8 text file with one label per line, or a comma-separated list.

    Blank lines and surrounding spaces are dropped. A string that looks like a file name
    (it has a suffix and no comma) but names no file is an error, not a one-label list.

    Raises:
        InputSpecError: no labels, or a file name that does not exist.
    """
    if isinstance(value, (list, tuple)):
        items = [str(x) for x in value]
    else:
        text = os.fspath(value) if isinstance(value, os.PathLike) else str(value)
        p = Path(text)
        if p.is_file():
            items = p.read_text(encoding="utf-8").splitlines()
        elif "," in text or not p.suffix:
            items = text.split(",")
        else:
            raise InputSpecError(f"labels {text!r}: no such file (expected a file with one label per line, "
                                 "or a comma-separated list such as yes,no,up)")
    labels = [x.strip() for x in items if x.strip()]
    if not labels:
        raise InputSpecError(f"labels: expected a list, a file with one label per line or 'a,b,c'; given {value!r}")
    return labels
