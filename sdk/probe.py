"""Run a model once in a child process before the parent trusts it.

A structurally valid file can still drive a native kernel out of bounds; if
that happens here, only the child dies and the caller gets a ModelFormatError.
A success is cached in the private cache (:mod:`edgeship._cache`) as a record bound to the
file's sha256, the backend and its version, so each file is probed once per runtime version.

Usage as a program: ``python -P -m edgeship.probe FILE FORMAT BACKEND``.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from .errors import ModelFormatError

PROBE_TIMEOUT_S = float(os.environ.get("EDGESHIP_PROBE_TIMEOUT", "120"))
_EXIT_PY_ERROR = 3


# The PyPI distribution behind each backend: a cached "ok" holds only for the runtime version
# that produced it.
_DISTS = {"litert": "ai-edge-litert", "tflite-runtime": "tflite-runtime", "onnxruntime": "onnxruntime"}


_RUNTIME_VERSIONS: dict = {}


def _runtime_version(backend: str) -> str:
    """The installed version of ``backend``'s distribution, read once per process (~1 ms each)."""
    if backend not in _RUNTIME_VERSIONS:
        from importlib import metadata

        try:
            _RUNTIME_VERSIONS[backend] = metadata.version(_DISTS.get(backend, backend))
        except metadata.PackageNotFoundError:
            _RUNTIME_VERSIONS[backend] = "unknown"
    return _RUNTIME_VERSIONS[backend]


def _stamp(sha256: str, backend: str) -> dict:
    from ._version import __version__

    return {"result": "ok", "sha256": sha256, "backend": backend, "runtime_version": _runtime_version(backend),
            "edgeship": __version__, "python": sys.version.split()[0]}


def probed_ok(sha256: str, backend: str) -> bool:
    """True when a file with this sha256 already passed :func:`probe` on this backend and runtime
    version, with this edgeship (whose structure check ran before that probe)."""
    return _cached_ok(_marker(sha256, backend), _stamp(sha256, backend))


def _marker(sha256: str, backend: str):
    from ._cache import private_dir

    d = private_dir("probe")
    return None if d is None else d / f"{sha256}-{backend}.json"


def _cached_ok(marker, stamp: dict) -> bool:
    """True only for a marker written by :func:`probe` for this very file hash and runtime."""
    if marker is None:
        return False
    try:
        with open(marker, "rb") as f:
            rec = json.loads(f.read(4096))
    except (OSError, ValueError):
        return False
    return rec == stamp


def _child_command(path: str, fmt: str, backend: str, sha256: str = "") -> list:
    """The probe child's command: the current folder is never on its import path.

    ``-P`` (Python 3.11+) keeps the current folder off ``sys.path``; on 3.10 the child drops it
    itself before importing anything else, and it runs in ``/`` anyway.
    """
    boot = ("import sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; "
            "from edgeship.probe import _child; sys.exit(_child(*sys.argv[1:5]))")
    safe = ["-P"] if sys.version_info >= (3, 11) else []
    return [sys.executable, *safe, "-c", boot, str(Path(path).resolve()), fmt, backend, sha256]


def probe(path: str, fmt: str, backend: str, sha256: str) -> None:
    """Load, allocate and invoke ``path`` once in a child; raise ModelFormatError if it fails or crashes."""
    marker, stamp = _marker(sha256, backend), _stamp(sha256, backend)
    if _cached_ok(marker, stamp):
        return
    env = dict(os.environ, PYTHONFAULTHANDLER="0", TF_CPP_MIN_LOG_LEVEL="3")
    try:
        proc = subprocess.run(_child_command(path, fmt, backend, sha256), capture_output=True, text=True,
                              timeout=PROBE_TIMEOUT_S, env=env, stdin=subprocess.DEVNULL, cwd="/")
    except subprocess.TimeoutExpired:
        raise ModelFormatError(
            f"{backend} did not finish loading and running {Path(path).name} once within {PROBE_TIMEOUT_S:.0f} s "
            f"(a hang in the runtime); refusing the model") from None
    if proc.returncode == 0:
        if marker is not None:
            from ._io import atomic_write_json

            try:
                atomic_write_json(marker, stamp, private=True)
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


def _child(path: str, fmt: str, backend: str, sha256: str = "") -> int:
    import numpy as np

    from ._io import sha256_bytes
    from .backends import make_backend

    try:
        content = Path(path).read_bytes()
        if sha256 and sha256_bytes(content) != sha256:
            raise ModelFormatError(f"{path} changed while it was being loaded (sha256 differs); load it again")
        b = make_backend(fmt, backend, content, 1, model_dir=str(Path(path).resolve().parent))
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
    sys.exit(_child(*sys.argv[1:5]))
