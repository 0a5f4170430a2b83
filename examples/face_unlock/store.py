"""The face unlock store: enrolled templates encrypted at rest, with a lockout that survives restarts.

Layout of a store folder (created private, mode 0700)::

    store.bin      the store: a header line + AES-256-GCM ciphertext of a JSON document
    key            the 32-byte key (mode 0600), unless the key lives in the OS keyring
    .lock          lock file: every read-modify-write holds an exclusive ``flock`` on it
    images/        encrypted copies of enrolment images, only with ``--keep-images``

``store.bin`` starts with ``EDGESHIP-FACE-STORE`` and a JSON header line (format version, cipher,
nonce, key fingerprint, where the key lives); the header is the GCM associated data, so a changed
header, a flipped ciphertext bit or a truncated file all fail the tag check and are reported as a
:class:`StoreCorruptError` -- a store is never silently reset. A key that does not match the
fingerprint is reported as :class:`WrongKeyError`; a store written by a newer format version as
:class:`StoreVersionError`.

Writes go through a temporary file, ``fsync`` and an atomic rename, under the lock, so two
processes enrolling at once both land, and a process killed at any point leaves the previous
store intact.

Lockout: after ``max_failures`` consecutive failed unlocks of a user (default 5) that user is
locked for ``lockout_s`` seconds (default 30). The counters live inside the encrypted document,
so a restart does not clear them. Unlocks without a user name (identification) share one counter
under the name ``"*"``.

Example:
    >>> import tempfile, numpy as np
    >>> d = tempfile.mkdtemp()
    >>> s = Store(d + "/s")
    >>> s.enroll("ada", [np.zeros(128, np.float32)], model_id="int8:0123")
    1
    >>> Store(d + "/s").users()[0]["user"]
    'ada'
"""
from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np

from edgeship._deps import require
from edgeship._io import atomic_write_bytes, sha256_bytes
from edgeship.errors import EdgeshipError, InputSpecError, IntegrityError, MissingDependencyError

FORMAT_VERSION = 1
MAGIC = b"EDGESHIP-FACE-STORE\n"
STORE_FILE = "store.bin"
KEY_FILE = "key"
LOCK_FILE = ".lock"
IMAGES_DIR = "images"
KEYRING_SERVICE = "edgeship-face-unlock"
EMBEDDING_DIM = 128
DEFAULT_MAX_FAILURES = 5
DEFAULT_LOCKOUT_S = 30.0
IDENTIFY = "*"  # lockout counter for unlocks that name no user


class StoreError(EdgeshipError):
    """The store cannot be used as asked (missing key, bad user name, unknown user...)."""


class StoreCorruptError(IntegrityError):
    """The store file fails its integrity check (corrupted, truncated or tampered with)."""


class WrongKeyError(IntegrityError):
    """The key given does not belong to this store."""


class StoreVersionError(StoreError):
    """The store was written by a newer version of the app."""


class UnknownUserError(StoreError):
    """No such enrolled user."""


def default_store_dir() -> Path:
    """``$XDG_DATA_HOME/edgeship/face_unlock``, else ``~/.local/share/edgeship/face_unlock``."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "edgeship" / "face_unlock"


def check_user_name(name: str) -> str:
    """A user name: 1-64 printable characters, not ``*``; returned stripped."""
    n = (name or "").strip()
    if not n or len(n) > 64 or not n.isprintable() or n == IDENTIFY:
        raise InputSpecError(f"expected a user name of 1-64 printable characters (not '*'), got {name!r}")
    return n


def key_fingerprint(key: bytes) -> str:
    """A short public fingerprint of the key (to tell a wrong key from a damaged store)."""
    return sha256_bytes(b"edgeship-face-unlock-key-id\0" + key)[:16]


@dataclass
class Lockout:
    """Lockout state of one user after a check."""

    locked: bool
    remaining_s: float
    failures: int


class Store:
    """An encrypted face-template store in one folder.

    Args:
        root: the store folder (created 0700 on first write).
        key_file: where the key is (default ``root/key``); created 0600 with a fresh random key
            when neither it nor the store exists.
        use_keyring: keep the key in the OS keyring (the ``keyring`` package) instead of a file.
            The choice is recorded in the store header, so later opens find the key by themselves.
        max_failures: consecutive failed unlocks before a user is locked out (>= 1).
        lockout_s: how long a lockout lasts, in seconds (>= 0).
        clock: time source (seconds), for tests.

    Raises:
        StoreCorruptError, WrongKeyError, StoreVersionError, StoreError on reading a bad store.
    """

    def __init__(self, root, *, key_file=None, use_keyring: bool = False,
                 max_failures: int = DEFAULT_MAX_FAILURES, lockout_s: float = DEFAULT_LOCKOUT_S, clock=time.time):
        self.root = Path(root).expanduser()
        self.key_file = Path(key_file).expanduser() if key_file else self.root / KEY_FILE
        self.use_keyring = use_keyring
        if int(max_failures) < 1:
            raise InputSpecError(f"expected max_failures >= 1, got {max_failures}")
        if not (float(lockout_s) >= 0):
            raise InputSpecError(f"expected lockout_s >= 0 seconds, got {lockout_s}")
        self.max_failures = int(max_failures)
        self.lockout_s = float(lockout_s)
        self.clock = clock
        self._key: Optional[bytes] = None

    # ------------------------------------------------------------------ files, lock, key
    @property
    def path(self) -> Path:
        return self.root / STORE_FILE

    def exists(self) -> bool:
        return self.path.is_file()

    def _ensure_root(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"expected a store folder at {self.root}, but it is a file; pass another --store")
        if not self.root.exists():
            old = os.umask(0o077)
            try:
                self.root.mkdir(parents=True, mode=0o700)
            except FileExistsError:  # another process made it meanwhile (two enrols at once)
                if not self.root.is_dir():
                    raise StoreError(f"expected a store folder at {self.root}, but it is a file; "
                                     "pass another --store") from None
                return  # theirs: made private by them, left as it is
            finally:
                os.umask(old)
            os.chmod(self.root, 0o700)  # a folder we create is private; one the user gave is left as it is

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold an exclusive lock on the store for a read-modify-write."""
        import fcntl

        self._ensure_root()
        fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            # temporary files of a writer that was killed mid-write: safe to drop under the lock
            for tmp in self.root.glob(f".{STORE_FILE}.*.tmp"):
                with contextlib.suppress(OSError):
                    tmp.unlink()
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def _keyring(self):
        try:
            import keyring
        except ImportError as exc:
            raise MissingDependencyError(
                f"--keyring needs the 'keyring' package ({exc}); install it with: pip install keyring "
                f"(or keep the key in a file: drop --keyring)") from None
        return keyring

    def _load_key(self, header: Optional[dict], create: bool) -> bytes:
        if self._key is not None:
            return self._key
        where = (header or {}).get("key", "keyring" if self.use_keyring else "file")
        if where == "keyring":
            kr = self._keyring()
            account = str(self.root.resolve())
            val = kr.get_password(KEYRING_SERVICE, account)
            if val is None:
                if not create:
                    raise StoreError(f"the key of store {self.root} is not in the OS keyring "
                                     f"(service {KEYRING_SERVICE!r}, account {account!r}); the store cannot be opened")
                key = secrets.token_bytes(32)
                kr.set_password(KEYRING_SERVICE, account, base64.b64encode(key).decode())
            else:
                key = base64.b64decode(val)
        else:
            kf = self.key_file
            if kf.is_file():
                st = kf.stat()
                if st.st_mode & 0o077:
                    raise StoreError(f"key file {kf} is readable by others (mode {stat.S_IMODE(st.st_mode):o}); "
                                     f"run: chmod 600 {kf}")
                key = kf.read_bytes()
                if len(key) != 32:
                    raise WrongKeyError(f"expected a 32-byte key in {kf}, found {len(key)} bytes; "
                                        f"this is not the store's key file")
            elif create:
                kf.parent.mkdir(parents=True, exist_ok=True)
                key = secrets.token_bytes(32)
                fd = os.open(kf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(key)
                    f.flush()
                    os.fsync(f.fileno())
            else:
                raise StoreError(f"the key file {kf} of store {self.root} is missing; without it the "
                                 f"templates cannot be decrypted. Restore the key file (or pass --key-file), "
                                 f"or remove the store folder to start over")
        self._key = key
        return key

    # ------------------------------------------------------------------ encryption
    def _aead(self, key: bytes):
        aead = require("cryptography.hazmat.primitives.ciphers.aead", "face", "the encrypted face store")
        return aead.AESGCM(key)

    def _read(self) -> dict:
        """Decrypt and check the store; an empty document if there is no store yet."""
        if not self.exists():
            if self.root.exists() and not self.root.is_dir():
                raise StoreError(f"expected a store folder at {self.root}, but it is a file")
            return {"format_version": FORMAT_VERSION, "users": {}, "lockout": {}}
        raw = self.path.read_bytes()
        if not raw.startswith(MAGIC):
            raise StoreCorruptError(f"{self.path} is not a face unlock store (bad magic); it may be damaged. "
                                    f"It was left untouched; restore it from a backup or remove the folder to start over")
        nl = raw.find(b"\n", len(MAGIC))
        if nl < 0:
            raise StoreCorruptError(f"{self.path} is truncated (no header); left untouched")
        hbytes = raw[len(MAGIC):nl]
        try:
            header = json.loads(hbytes)
            version = int(header["format_version"])
        except (ValueError, KeyError, TypeError):
            raise StoreCorruptError(f"{self.path}: the header is damaged; the store was left untouched") from None
        if version > FORMAT_VERSION:
            raise StoreVersionError(f"{self.path} was written by a newer version of the face unlock app "
                                    f"(store format {version}; this app reads up to {FORMAT_VERSION}). "
                                    f"Upgrade edgeship to use it; the store was left untouched")
        if header.get("cipher") != "AES-256-GCM" or "nonce" not in header:
            raise StoreCorruptError(f"{self.path}: unknown cipher {header.get('cipher')!r}; left untouched")
        key = self._load_key(header, create=False)
        if header.get("key_id") != key_fingerprint(key):
            raise WrongKeyError(f"the key ({'OS keyring' if header.get('key') == 'keyring' else self.key_file}) "
                                f"does not belong to store {self.path} (key fingerprint "
                                f"{key_fingerprint(key)}, store expects {header.get('key_id')}); pass the right --key-file")
        from cryptography.exceptions import InvalidTag

        try:
            plain = self._aead(key).decrypt(bytes.fromhex(header["nonce"]), raw[nl + 1:], MAGIC + hbytes)
        except (InvalidTag, ValueError):
            raise StoreCorruptError(f"{self.path} fails its integrity check (corrupted, truncated or tampered "
                                    f"with). It was left untouched; restore it from a backup or remove the folder "
                                    f"to start over") from None
        try:
            doc = json.loads(plain)
            if doc.get("format_version") != version or not isinstance(doc.get("users"), dict):
                raise ValueError("bad document")
            doc.setdefault("lockout", {})
        except (ValueError, AttributeError):
            raise StoreCorruptError(f"{self.path}: decrypted content is not a valid store document") from None
        return doc

    def _write(self, doc: dict) -> None:
        header_present = self.exists()
        key = self._load_key(None, create=not header_present)
        header = {"format_version": FORMAT_VERSION, "cipher": "AES-256-GCM",
                  "nonce": secrets.token_bytes(12).hex(), "key_id": key_fingerprint(key),
                  "key": "keyring" if self._key_in_keyring() else "file"}
        hbytes = json.dumps(header, sort_keys=True).encode()
        doc["format_version"] = FORMAT_VERSION
        ct = self._aead(key).encrypt(bytes.fromhex(header["nonce"]), json.dumps(doc).encode(), MAGIC + hbytes)
        atomic_write_bytes(self.path, MAGIC + hbytes + b"\n" + ct, private=True)

    def _key_in_keyring(self) -> bool:
        if self.exists():
            try:
                raw = self.path.read_bytes()
                nl = raw.find(b"\n", len(MAGIC))
                return json.loads(raw[len(MAGIC):nl]).get("key") == "keyring"
            except (OSError, ValueError):
                return self.use_keyring
        return self.use_keyring

    # ------------------------------------------------------------------ public API
    def load(self) -> dict:
        """The decrypted document (read-only use); checks integrity."""
        return self._read()

    def users(self) -> List[dict]:
        """One dict per enrolled user: ``user``, ``templates``, ``model``, ``enrolled_at``, ``images`` kept,
        and lockout state."""
        doc = self._read()
        now = self.clock()
        out = []
        for name in sorted(doc["users"]):
            u = doc["users"][name]
            lo = self._lockout(doc, name, now)
            out.append({"user": name, "templates": len(u["templates"]), "model": u.get("model"),
                        "enrolled_at": u.get("enrolled_at"), "images_kept": len(u.get("images", [])),
                        "locked": lo.locked, "locked_for_s": round(lo.remaining_s, 1),
                        "consecutive_failures": lo.failures})
        return out

    def enroll(self, user: str, embeddings: Sequence[np.ndarray], *, model_id: str,
               images: Sequence[bytes] = (), replace: bool = False) -> int:
        """Add templates for ``user`` (creating the user); return the user's template count.

        Args:
            user: the user name.
            embeddings: one 128-d embedding per enrolment image.
            model_id: which model made them (``"<format>:<sha256>"``); a user's templates all come
                from one model -- enrolling with another model needs ``replace=True``.
            images: encoded image files to keep (encrypted), only when the user asked to keep images.
            replace: drop the user's previous templates first.
        """
        user = check_user_name(user)
        embs = [np.asarray(e, np.float32).reshape(-1) for e in embeddings]
        if not embs:
            raise InputSpecError(f"expected at least one face embedding to enrol {user!r}, got none")
        for e in embs:
            if e.shape != (EMBEDDING_DIM,) or not np.all(np.isfinite(e)):
                raise InputSpecError(f"expected finite {EMBEDDING_DIM}-d embeddings, got shape {e.shape}"
                                     f"{' with NaN/inf' if e.shape == (EMBEDDING_DIM,) else ''}")
        with self._locked():
            doc = self._read()
            u = doc["users"].get(user)
            if u is not None and not replace and u.get("model") != model_id:
                raise StoreError(f"user {user!r} was enrolled with model {u.get('model')}, not {model_id}; "
                                 f"enrol again with --replace (or use that model)")
            if u is None or replace:
                if u is not None:
                    self._drop_images(u)
                u = {"templates": [], "model": model_id, "images": []}
            u["templates"] += [e.tolist() for e in embs]
            u["enrolled_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            for data in images:
                u["images"].append(self._save_image(data))
            doc["users"][user] = u
            doc["lockout"].pop(user, None)
            self._write(doc)
            return len(u["templates"])

    def remove(self, user: str) -> None:
        """Delete a user, its templates, lockout state and kept images."""
        user = check_user_name(user)
        with self._locked():
            doc = self._read()
            if user not in doc["users"]:
                raise UnknownUserError(f"no enrolled user {user!r} in {self.root}; enrolled: "
                                       f"{', '.join(sorted(doc['users'])) or '(none)'}")
            u = doc["users"].pop(user)
            doc["lockout"].pop(user, None)
            self._write(doc)
            self._drop_images(u)

    def templates(self, doc: dict, user: Optional[str] = None) -> Dict[str, np.ndarray]:
        """{user: [k,128] templates} for one user or everyone."""
        names = [user] if user is not None else sorted(doc["users"])
        return {n: np.asarray(doc["users"][n]["templates"], np.float32).reshape(-1, EMBEDDING_DIM) for n in names}

    def _lockout(self, doc: dict, name: str, now: float) -> Lockout:
        st = doc["lockout"].get(name) or {}
        until = float(st.get("locked_until", 0.0))
        return Lockout(locked=until > now, remaining_s=max(0.0, until - now), failures=int(st.get("failures", 0)))

    def attempt(self, decide, user: Optional[str] = None):
        """Run one unlock attempt under the lock, recording success or failure for the lockout.

        Args:
            decide: ``decide(doc) -> (ok: bool, result: dict)``; called only when not locked out.
            user: the claimed user, or None to identify among everyone.

        Returns:
            ``(ok, result)``; a locked-out attempt returns ``(False, {"reason": "locked out", ...})``
            without calling ``decide``.
        """
        name = IDENTIFY if user is None else check_user_name(user)
        with self._locked():
            doc = self._read()
            if user is not None and name not in doc["users"]:
                raise UnknownUserError(f"no enrolled user {name!r} in {self.root}; enrolled: "
                                       f"{', '.join(sorted(doc['users'])) or '(none)'}")
            if not doc["users"]:
                raise StoreError(f"no one is enrolled in {self.root}; enrol someone first")
            now = self.clock()
            lo = self._lockout(doc, name, now)
            if lo.locked:
                return False, {"reason": "locked out", "locked_for_s": round(lo.remaining_s, 1),
                               "detail": f"{lo.failures} consecutive failed unlocks; try again in {lo.remaining_s:.0f} s"}
            ok, result = decide(doc)
            if result.get("counts", True):
                st = doc["lockout"].setdefault(name, {"failures": 0, "locked_until": 0.0})
                if ok:
                    doc["lockout"].pop(name, None)
                    if result.get("user") and result["user"] in doc["lockout"]:
                        doc["lockout"].pop(result["user"], None)
                else:
                    st["failures"] = int(st.get("failures", 0)) + 1
                    if st["failures"] >= self.max_failures:
                        st["locked_until"] = now + self.lockout_s
                        result["locked_for_s"] = self.lockout_s
                        st["failures"] = 0
                        result["lockout_started"] = True
                self._write(doc)
            result.pop("counts", None)
            return ok, result

    # ------------------------------------------------------------------ kept images
    def _save_image(self, data: bytes) -> str:
        key = self._load_key(None, create=not self.exists())
        d = self.root / IMAGES_DIR
        d.mkdir(mode=0o700, exist_ok=True)
        name = secrets.token_hex(16) + ".bin"
        nonce = secrets.token_bytes(12)
        atomic_write_bytes(d / name, nonce + self._aead(key).encrypt(nonce, data, name.encode()), private=True)
        return name

    def read_image(self, name: str) -> bytes:
        """Decrypt a kept enrolment image (as the encoded file bytes it was given as)."""
        from cryptography.exceptions import InvalidTag

        self._read()  # integrity of the store, and the key
        key = self._load_key(None, create=False)
        p = self.root / IMAGES_DIR / Path(name).name
        raw = p.read_bytes()
        try:
            return self._aead(key).decrypt(raw[:12], raw[12:], Path(name).name.encode())
        except InvalidTag:
            raise StoreCorruptError(f"kept image {p} fails its integrity check") from None

    def _drop_images(self, u: dict) -> None:
        for name in u.get("images", []):
            with contextlib.suppress(FileNotFoundError):
                (self.root / IMAGES_DIR / Path(name).name).unlink()
