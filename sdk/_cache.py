"""edgeship's on-disk cache: a private folder (0700, owned by the current user) or nothing.

What sits in the cache is trusted later: a probe result lets a model skip its isolation
probe, and an unpacked bundle is what ``load(bundle.zip)`` runs. So a cache folder that
another user owns or can write to is never used (edgeship then works without a cache: it
re-probes, and unpacks zips into a private temporary folder).

The root is :func:`edgeship._io.cache_dir` (``$EDGESHIP_CACHE``, else the XDG cache folder).
"""
from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path
from typing import Optional

from ._io import cache_dir

_warned: set = set()


def cache_root() -> Path:
    """The cache root folder (it may not exist yet, and may be refused by :func:`private_dir`)."""
    return cache_dir()


class _Untrusted(Exception):
    pass


def _private(d: Path, created_parents: bool = False) -> None:
    """Create ``d`` as 0700 or check that an existing one is ours and not writable by others."""
    try:
        st = os.lstat(d)  # the usual case, an existing folder: checked without trying to create it
    except FileNotFoundError:
        if created_parents:
            d.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(d, 0o700)
            os.chmod(d, 0o700)  # we created it: ours, whatever the umask
            return
        except FileExistsError:  # made by another process meanwhile: check it like any other
            st = os.lstat(d)
    if not stat.S_ISDIR(st.st_mode):
        raise _Untrusted(f"{d} is not a folder (a symlink or a file)")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise _Untrusted(f"{d} belongs to another user (uid {st.st_uid})")
    if st.st_mode & 0o022:
        raise _Untrusted(f"{d} can be written by other users (mode {stat.S_IMODE(st.st_mode):o})")
    if st.st_mode & 0o077:
        os.chmod(d, 0o700)  # ours and only readable by others (an older edgeship made it): tighten


_VERIFIED: dict = {}  # (root, parts) -> the leaf's lstat facts once every level passed _private
_CHAINS: dict = {}  # (root, parts) -> [root, root/parts[0], ...]


def _facts(d: Path):
    st = os.lstat(d)
    return st.st_dev, st.st_ino, st.st_mode, st.st_uid


def private_dir(*parts: str) -> Optional[Path]:
    """The cache sub-folder ``parts`` (created 0700), or None when the cache cannot be trusted.

    Every folder from the root down is checked: a directory (not a symlink), owned by the
    current user, not writable by group or others. A refused cache warns once per process.
    A folder already checked in this process is re-checked with one ``lstat``: the same folder
    (device, inode), mode and owner as when it passed (a directory cannot be hard-linked, so the
    same inode is still below the same checked parents).
    """
    root = cache_root()
    key = (root, parts)
    chain = _CHAINS.get(key)
    if chain is None:
        chain = [root]
        for part in parts:
            chain.append(chain[-1] / part)
        _CHAINS[key] = chain
    known = _VERIFIED.get(key)
    if known is not None:
        try:
            if _facts(chain[-1]) == known:
                return chain[-1]
        except OSError:
            pass
        _VERIFIED.pop(key, None)
    try:
        _private(root, created_parents=True)
        for d in chain[1:]:
            _private(d)
        _VERIFIED[key] = _facts(chain[-1])
    except (OSError, _Untrusted) as exc:
        if str(root) not in _warned:
            _warned.add(str(root))
            warnings.warn(f"edgeship cache {root} is not used: {exc}. Set EDGESHIP_CACHE to a private "
                          f"folder to enable caching", RuntimeWarning, stacklevel=3)
        return None
    return chain[-1]
