"""What every CLI command shares: the console, the ``--json`` convention, typed exits, progress.

Conventions: human output goes to stderr through rich; ``--json`` (the parameter is always
called ``json_``) prints exactly one JSON object on stdout; a user error exits 2 with the
error's type and message; a failed check (parity out of tolerance, incompatible target)
exits 1. Library code never imports this module: it reports progress through
:mod:`edgeship.progress`, and commands install :func:`rich_progress` around the call.
"""
from __future__ import annotations

import contextlib
import functools
import json
import sys
from typing import Any, Callable, Iterator

import typer

from .._io import to_jsonable
from ..errors import EdgeshipError

EXIT_FAILED_CHECK = 1
EXIT_USER_ERROR = 2


def json_option(help: str = "Print one JSON object on stdout.") -> Any:
    """The ``--json`` option every reporting command takes, as ``json_: bool = json_option()``."""
    return typer.Option(False, "--json", help=help)


WIDE = 240  # columns when the output is not a terminal (a pipe, a file, CI logs)


def console(file=None):
    """A rich console on stderr (stdout is kept for ``--json``), or on ``file``.

    On a terminal rich uses its width; piped or redirected, rich would assume 80 columns and
    cut tables, so the width is ``$COLUMNS`` when set, else :data:`WIDE`.
    """
    import os

    from rich.console import Console

    stream = file if file is not None else sys.stderr
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    width = None if tty else (int(os.environ["COLUMNS"]) if os.environ.get("COLUMNS", "").isdigit() else WIDE)
    return Console(file=file, stderr=file is None, width=width)


def emit_json(obj: Any) -> None:
    """Print exactly one JSON object on stdout."""
    sys.stdout.write(json.dumps(to_jsonable(obj)) + "\n")
    sys.stdout.flush()


def handle_errors(fn: Callable) -> Callable:
    """Decorator: an :class:`EdgeshipError` becomes a clean message (or JSON with ``--json``) and exit 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EdgeshipError as exc:
            if kwargs.get("json_"):
                emit_json({"ok": False, "error": {"type": type(exc).__name__, "message": str(exc)}})
            else:
                console().print(f"[bold red]{type(exc).__name__}:[/] {exc}")
            raise typer.Exit(EXIT_USER_ERROR)

    return wrapper


@contextlib.contextmanager
def rich_progress(enabled: bool = True, file=None) -> Iterator[None]:
    """Show the progress that library calls report (:mod:`edgeship.progress`) as rich bars on
    stderr (or ``file``, e.g. the terminal while stderr goes to a log) while the ``with`` block
    runs; a no-op when ``enabled`` is False."""
    from ..progress import reporting

    if not enabled:
        with reporting(None):
            yield
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bars = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=console(file), transient=True)
    tasks: dict = {}

    def update(description: str, done: int, total) -> None:
        if description not in tasks:
            tasks[description] = bars.add_task(description, total=total)
        bars.update(tasks[description], completed=done, total=total)

    with bars, reporting(update):
        yield
