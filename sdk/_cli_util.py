"""Helpers shared by every CLI command: one JSON object on stdout, rich on stderr, typed exits."""
from __future__ import annotations

import functools
import json
import sys
from typing import Any, Callable

import typer

from ._io import to_jsonable
from .errors import EdgeshipError

EXIT_FAILED_CHECK = 1
EXIT_USER_ERROR = 2


def console():
    from rich.console import Console

    return Console(stderr=True)


def emit_json(obj: Any) -> None:
    """Print exactly one JSON object on stdout."""
    sys.stdout.write(json.dumps(to_jsonable(obj)) + "\n")
    sys.stdout.flush()


def handle_errors(json_flag: str = "json_") -> Callable:
    """Decorator: turn EdgeshipError into a clean message (or JSON) and exit code 2."""

    def deco(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except EdgeshipError as exc:
                if kwargs.get(json_flag) or kwargs.get("json") or kwargs.get("json_"):
                    emit_json({"ok": False, "error": {"type": type(exc).__name__, "message": str(exc)}})
                else:
                    console().print(f"[bold red]{type(exc).__name__}:[/] {exc}")
                raise typer.Exit(EXIT_USER_ERROR)

        return wrapper

    return deco
