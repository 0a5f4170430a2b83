"""Atomic writes and hashing: never leave a half-written file where a user's file was."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Union

PathLike = Union[str, "os.PathLike[str]"]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def umask_mode(base: int = 0o666) -> int:
    """``base`` less the process umask: the mode a plain ``open``/``mkdir`` would give."""
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


def atomic_write_bytes(path: PathLike, data: bytes, *, private: bool = False) -> Path:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename.

    The file gets the mode a plain write would (0666 less the user's umask), or 0600 with
    ``private=True`` (keys, encrypted stores, cache records).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600 if private else umask_mode(0o666))
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_text(path: PathLike, text: str, *, private: bool = False) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), private=private)


def atomic_write_json(path: PathLike, obj: Any, *, private: bool = False) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n",
                             private=private)


def _json_default(o: Any):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def to_jsonable(obj: Any) -> Any:
    """Round-trip through json so numpy scalars/arrays/paths become plain values."""
    return json.loads(json.dumps(obj, default=_json_default))


class stdout_to_stderr:
    """Send everything written to stdout (Python and C level) to stderr, or both to a log file.

    Converters print progress from C++ and from Keras' exporters; with ``--json`` the
    one JSON object must be the only thing on stdout, and a summary should not drown in it.
    """

    def __init__(self, log_path: "Union[str, os.PathLike[str], None]" = None):
        self.log_path = log_path

    def __enter__(self):
        import contextlib
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        self._saved = [os.dup(1), os.dup(2)]
        if self.log_path is None:
            os.dup2(2, 1)
        else:
            fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)  # umask applies
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.close(fd)
        # Python-level writes too, even when sys.stdout is not fd 1 (a test runner's capture)
        self._py = contextlib.redirect_stdout(sys.stderr)
        self._py.__enter__()
        return self

    def __exit__(self, *exc):
        import sys

        self._py.__exit__(*exc)
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, saved in zip((1, 2), self._saved):
            os.dup2(saved, fd)
            os.close(saved)
        return False


_NATIVE_LOCK = threading.Lock()


def _flush_stderr() -> None:
    import sys

    try:
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):   # closed, or None (no console)
        pass


class native_chatter_to_log:
    """Route what native code writes to fd 2 inside the block: lines that start with one of
    ``chatter`` go to ``logger`` (INFO), everything else goes back to stderr when the block ends.

    For one-off banners of C++ runtimes (LiteRT's "INFO: Created TensorFlow Lite XNNPACK
    delegate for CPU." on its first ``allocate_tensors`` in a process), which no option or
    environment variable silences. fd 2 is process-wide: other threads' stderr written meanwhile
    is held back and replayed, not lost; blocks of different threads run one at a time.
    """

    def __init__(self, logger: str, chatter: "tuple[bytes, ...]"):
        self.logger, self.chatter = logger, tuple(chatter)

    def __enter__(self):
        _NATIVE_LOCK.acquire()
        self._saved = self._tmp = None
        _flush_stderr()
        try:
            self._tmp = tempfile.TemporaryFile()
            self._saved = os.dup(2)
            os.dup2(self._tmp.fileno(), 2)
        except OSError:  # no fd 2 (a daemon), no temp space: leave stderr as it is
            if self._saved is not None:
                os.close(self._saved)
            if self._tmp is not None:
                self._tmp.close()
            self._saved = self._tmp = None
        except BaseException:
            _NATIVE_LOCK.release()
            raise
        return self

    def __exit__(self, *exc):
        import logging

        if self._saved is None:
            _NATIVE_LOCK.release()
            return False
        try:
            _flush_stderr()
            os.dup2(self._saved, 2)
            os.close(self._saved)
            self._tmp.seek(0)
            held = self._tmp.read()
            self._tmp.close()
        finally:
            _NATIVE_LOCK.release()
        rest = []
        for line in held.splitlines(keepends=True):
            if line.startswith(self.chatter):
                logging.getLogger(self.logger).info(line.decode("utf-8", "replace").rstrip())
            else:
                rest.append(line)
        if rest:
            try:
                os.write(2, b"".join(rest))
            except OSError:   # stderr went away meanwhile: nowhere to show it
                pass
        return False


def model_bytes(model, what: str = "a .tflite model file") -> bytes:
    """The bytes of a model given as bytes or as a path; ModelFormatError if the path is no file."""
    from .errors import ModelFormatError

    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model)
    p = Path(model)
    if not p.is_file():
        raise ModelFormatError(f"expected {what}, got {str(p)!r} (not a file)")
    return p.read_bytes()


def cache_dir() -> Path:
    """edgeship's one cache root: ``$EDGESHIP_CACHE``, else ``$XDG_CACHE_HOME/edgeship``, else
    ``~/.cache/edgeship``. Subfolders: ``probe/``, ``backend/``, ``bundles/``, ``models/``, ``wheels/``."""
    env = os.environ
    key = (env.get("EDGESHIP_CACHE"), env.get("XDG_CACHE_HOME"), env.get("HOME"))
    root = _CACHE_DIRS.get(key)
    if root is None:
        if key[0]:
            root = Path(key[0]).expanduser()
        else:
            root = Path(key[1] or str(Path.home() / ".cache")).expanduser() / "edgeship"
        _CACHE_DIRS[key] = root
    return root


_CACHE_DIRS: dict = {}  # (EDGESHIP_CACHE, XDG_CACHE_HOME, HOME) -> the root they name


def tree_sha256(root: PathLike) -> str:
    """One hash over every file (relative path + content) below a folder, e.g. a SavedModel."""
    root = Path(root)
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + sha256_file(f).encode())
    return h.hexdigest()


# Distributions whose versions are recorded in everything edgeship produces.
VERSIONED_DISTS = ("numpy", "ai-edge-litert", "tflite-runtime", "onnxruntime", "tensorflow-cpu", "tensorflow",
                   "keras", "onnx", "tf2onnx", "torch")


def versions() -> dict:
    """Versions of everything that produced an artefact (read from package metadata, no imports)."""
    import platform
    from importlib import metadata

    from ._version import __version__

    out = {"edgeship": __version__, "python": platform.python_version(), "platform": platform.platform()}
    for dist in VERSIONED_DISTS:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out
