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
    """The installed version of ``backend``'s distribution, read once per process.

    The runtime's own ``__version__`` when it has one (each of the three does; importing
    ``importlib.metadata`` to ask the distribution costs ~70 ms, as much as the rest of a
    first load), else the distribution's metadata.
    """
    if backend not in _RUNTIME_VERSIONS:
        import importlib

        from .backends import BACKENDS

        version = None
        try:
            top = importlib.import_module(BACKENDS[backend][0].split(".")[0])
            version = getattr(top, "__version__", None)
        except (ImportError, KeyError):
            pass
        if not isinstance(version, str) or not version:
            from importlib import metadata

            try:
                version = metadata.version(_DISTS.get(backend, backend))
            except metadata.PackageNotFoundError:
                version = "unknown"
        _RUNTIME_VERSIONS[backend] = version
    return _RUNTIME_VERSIONS[backend]


def _stamp(sha256: str, backend: str) -> dict:
    from ._version import __version__

    return {"result": "ok", "sha256": sha256, "backend": backend, "runtime_version": _runtime_version(backend),
            "edgeship": __version__, "python": sys.version.split()[0]}


_OK: dict = {}  # (cache root, sha256, backend) -> (its "ok" record's path, that record's fingerprint)


def probed_ok(sha256: str, backend: str) -> bool:
    """True when a file with this sha256 already passed :func:`probe` on this backend and runtime
    version, with this edgeship (whose structure check ran before that probe).

    A record read as "ok" in this process is trusted again while its file is the same file,
    unchanged (one ``stat``): it was read from the checked private folder, and a replaced or
    rewritten record has another fingerprint (and is then read and checked again).
    """
    from ._io import cache_dir

    key = (cache_dir(), sha256, backend)
    hit = _OK.get(key)
    if hit is not None:
        try:
            if fingerprint(os.stat(hit[0])) == hit[1]:
                return True
        except OSError:
            pass
        _OK.pop(key, None)  # (another thread may have dropped it already)
    marker = _marker(sha256, backend)
    if marker is None:
        return False
    version, rec = _read_record(marker)
    if rec != _stamp(sha256, backend):
        return False
    if len(_OK) > 4096:
        _OK.clear()
    _OK[key] = (str(marker), version)
    return True


def ok_record(sha256: str, backend: str):
    """(path, fingerprint) of the "ok" record :func:`probed_ok` last accepted in this process for
    this file hash and backend under the current cache root, or None. The record still holds
    while a ``stat`` of that path gives the same fingerprint."""
    from ._io import cache_dir

    return _OK.get((cache_dir(), sha256, backend))


def _in_probe_dir(name: str):
    from ._cache import private_dir

    d = private_dir("probe")
    return None if d is None else d / name


def _marker(sha256: str, backend: str):
    return _in_probe_dir(f"{sha256}-{backend}.json")


# A file whose (device, inode, size, mtime, ctime) match a record written when its bytes were
# hashed still holds those bytes: any write moves ctime, which no user can set back. A record is
# only written for a file left alone for RACY_S before it was read, so a write within the same
# clock tick as the last one (file times are coarse) cannot go unnoticed.
RACY_S = 2.0


def fingerprint(st: os.stat_result) -> list:
    """What identifies one version of a file's bytes without reading them."""
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


_RECORDS: dict = {}  # cache record path -> (its fingerprint, its JSON), this process


def _read_record(path) -> tuple:
    """(fingerprint, JSON) of a small record in the private cache, or (None, None); re-read only
    when its file changed (records are replaced atomically, so a new record is a new inode)."""
    try:
        st = os.stat(path)
    except OSError:
        return None, None
    version = fingerprint(st)
    hit = _RECORDS.get(path)
    if hit is not None and hit[0] == version:
        return hit
    try:
        with open(path, "rb") as f:
            rec = json.loads(f.read(4096))
    except (OSError, ValueError):
        return None, None
    if len(_RECORDS) > 4096:
        _RECORDS.clear()
    _RECORDS[path] = (version, rec)
    return version, rec


def _stat_record(fp: list):
    return _in_probe_dir(f"stat-{fp[0]}-{fp[1]}.json")


_KNOWN: dict = {}  # tuple(fingerprint) -> sha256, recorded or read in this process


def known_sha256(fp: list):
    """The sha256 recorded for this very file version by :func:`remember_sha256`, or None."""
    sha = _KNOWN.get(tuple(fp))
    if sha is not None:
        return sha
    rec_path = _stat_record(fp)
    rec = None if rec_path is None else _read_record(rec_path)[1]
    from ._version import __version__

    if not isinstance(rec, dict) or rec.get("fingerprint") != fp or rec.get("edgeship") != __version__:
        return None
    sha = rec.get("sha256")
    if not (isinstance(sha, str) and len(sha) == 64):
        return None
    _remember_here(fp, sha)
    return sha


def _remember_here(fp: list, sha256: str) -> None:
    if len(_KNOWN) > 4096:
        _KNOWN.clear()
    _KNOWN[tuple(fp)] = sha256


def remember_sha256(fp: list, sha256: str, read_at_ns: int) -> None:
    """Record that the file version ``fp`` (read from ``read_at_ns`` on) hashes to ``sha256``."""
    import time

    if read_at_ns - max(fp[3], fp[4]) < RACY_S * 1e9 or time.time_ns() < read_at_ns:
        return  # changed just before it was read (or the clock moved back): hash it next time too
    _remember_here(fp, sha256)
    rec_path = _stat_record(fp)
    if rec_path is None:
        return
    from ._io import atomic_write_json
    from ._version import __version__

    try:
        atomic_write_json(rec_path, {"fingerprint": fp, "sha256": sha256, "edgeship": __version__}, private=True)
    except OSError:
        pass  # an unwritable cache only costs hashing again


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
    if probed_ok(sha256, backend):
        return
    marker, stamp = _marker(sha256, backend), _stamp(sha256, backend)
    import signal
    import subprocess  # here, not at the top: a cached load never starts a child (~8 ms to import)

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
