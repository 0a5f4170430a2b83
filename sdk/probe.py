"""Run a model once in a child process before the parent trusts it.

A structurally valid file can still drive a native kernel out of bounds; if
that happens here, only the child dies and the caller gets a ModelFormatError.
Results are cached by (sha256, backend) so each file is probed once.

Usage as a program: ``python -m edgeship.probe FILE FORMAT BACKEND``.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from ._io import cache_dir
from .errors import ModelFormatError

PROBE_TIMEOUT_S = float(os.environ.get("EDGESHIP_PROBE_TIMEOUT", "120"))
_EXIT_PY_ERROR = 3


def _marker(sha256: str, backend: str) -> Path:
    return cache_dir() / "probe" / f"{sha256}-{backend}.ok"


def probe(path: str, fmt: str, backend: str, sha256: str) -> None:
    """Load, allocate and invoke ``path`` once in a child; raise ModelFormatError if it fails or crashes."""
    marker = _marker(sha256, backend)
    if marker.exists():
        return
    env = dict(os.environ, PYTHONFAULTHANDLER="0", TF_CPP_MIN_LOG_LEVEL="3")
    try:
        proc = subprocess.run([sys.executable, "-m", "edgeship.probe", str(path), fmt, backend],
                              capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, env=env,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ModelFormatError(
            f"{backend} did not finish loading and running {Path(path).name} once within {PROBE_TIMEOUT_S:.0f} s "
            f"(a hang in the runtime); refusing the model") from None
    if proc.returncode == 0:
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
        except OSError:
            pass  # an unwritable cache only costs a re-probe
        return
    if proc.returncode == _EXIT_PY_ERROR:
        try:
            err = json.loads(proc.stdout.strip().splitlines()[-1])
            msg = err["message"]
        except (ValueError, IndexError, KeyError):
            msg = (proc.stderr or proc.stdout).strip()[-400:]
        raise ModelFormatError(f"{backend} cannot run {Path(path).name}: {msg}")
    if proc.returncode < 0:
        try:
            sig = signal.Signals(-proc.returncode).name
        except ValueError:
            sig = f"signal {-proc.returncode}"
        raise ModelFormatError(
            f"{backend} crashed ({sig}) while loading and running {Path(path).name} once in an isolated "
            f"process: the file is corrupt or holds something the runtime cannot handle")
    raise ModelFormatError(
        f"{backend} failed (exit {proc.returncode}) on {Path(path).name}: {(proc.stderr or '').strip()[-400:]}")


def _child(path: str, fmt: str, backend: str) -> int:
    import numpy as np

    from .backends import make_backend

    try:
        b = make_backend(fmt, backend, Path(path).read_bytes(), 1)
        arrays = []
        for i, spec in enumerate(b.inputs):
            shape = tuple(d if d > 0 else 1 for d in b.current_shape(i))
            if spec.dtype == "string":
                raise ModelFormatError("string inputs are not supported")
            arrays.append(np.zeros(shape, dtype=np.dtype(spec.dtype)))
        b.run(arrays)
    except Exception as exc:  # report any Python-level failure to the parent
        print(json.dumps({"error": type(exc).__name__, "message": str(exc)[:2000]}))
        return _EXIT_PY_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(_child(*sys.argv[1:4]))
