"""Progress reporting for long library calls, without the library knowing who displays it.

Library code (calibration, parity, benchmarks) reports ``(description, done, total)`` to a
:data:`ProgressCallback`: the one passed to the call, else the one installed by the caller with
:func:`reporting`, else nobody (silent). The CLI installs a rich progress bar on stderr
(:func:`edgeship.cli.console.rich_progress`); a notebook or a GUI can install its own.

Example:
    >>> from edgeship.progress import reporting, track
    >>> seen = []
    >>> with reporting(lambda what, done, total: seen.append((what, done, total))):
    ...     sum(track([1, 2, 3], "adding"))
    6
    >>> seen
    [('adding', 0, 3), ('adding', 1, 3), ('adding', 2, 3), ('adding', 3, 3)]
    >>> list(track("ab", "quiet"))   # no callback installed: plain iteration
    ['a', 'b']
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterable, Iterator, Optional, TypeVar

ProgressCallback = Callable[[str, int, Optional[int]], None]
"""``callback(description, done, total)``; ``total`` is None when unknown."""

T = TypeVar("T")
_current: Optional[ProgressCallback] = None


def current() -> Optional[ProgressCallback]:
    """The callback installed by :func:`reporting`, or None."""
    return _current


@contextlib.contextmanager
def reporting(callback: Optional[ProgressCallback]) -> Iterator[Optional[ProgressCallback]]:
    """Send the progress of library calls made inside the ``with`` block to ``callback``."""
    global _current
    saved, _current = _current, callback
    try:
        yield callback
    finally:
        _current = saved


def track(items: Iterable[T], description: str, total: Optional[int] = None,
          callback: Optional[ProgressCallback] = None) -> Iterator[T]:
    """Iterate over ``items``, reporting each step to ``callback`` (default: :func:`current`)."""
    cb = callback or _current
    if cb is None:
        yield from items
        return
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    cb(description, 0, total)
    for i, item in enumerate(items, 1):
        yield item
        cb(description, i, total)


__all__ = ["ProgressCallback", "reporting", "track", "current"]


@contextlib.contextmanager
def step(description: str, callback: Optional[ProgressCallback] = None) -> Iterator[None]:
    """Report one step of a long call as ``(description, 0, 1)`` then ``(description, 1, 1)``.

    Example:
        >>> seen = []
        >>> with reporting(lambda *a: seen.append(a)):
        ...     with step("converting"):
        ...         pass
        >>> seen
        [('converting', 0, 1), ('converting', 1, 1)]
    """
    cb = callback or _current
    if cb is None:
        yield
        return
    cb(description, 0, 1)
    yield
    cb(description, 1, 1)
