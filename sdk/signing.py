"""Signed bundles: Ed25519 signatures over a bundle's manifest (needs the ``sign`` extra).

The manifest already holds the sha256 of every file in the bundle, so signing its exact
bytes signs the whole bundle: a changed file breaks its checksum, a changed manifest breaks
the signature. The signature lives beside the manifest in ``signature.json``:
``{"algorithm": "ed25519", "key_id": ..., "public_key": <hex>, "signature": <hex>}``.

Example:
    >>> from edgeship.signing import new_keypair, sign_bundle          # doctest: +SKIP
    >>> priv, pub = new_keypair("keys/release")                         # doctest: +SKIP
    >>> sign_bundle("out/kws", priv)                                     # doctest: +SKIP
    >>> edgeship.load("out/kws", trusted_keys=[pub])                      # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable, Optional, Tuple, Union

from ._deps import require
from ._io import atomic_write_json
from .errors import IntegrityError, ModelFormatError

from .bundle import SIGNATURE  # noqa: E402  (one name for the file)
_MAX_KEY_FILE = 64 << 10
KeyLike = Union[str, "os.PathLike[str]", bytes, object]


def _crypto():
    require("cryptography", "sign", "signed bundles")
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519, serialization, InvalidSignature


def key_id(public_raw: bytes) -> str:
    """A short, stable name for a public key: the first 16 hex digits of its sha256."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


def public_key_id(key) -> str:
    """The :func:`key_id` of a public or private key (object, PEM path, PEM bytes, raw bytes or hex)."""
    return key_id(_public_raw(load_public_key(key)))


def _public_raw(pub) -> bytes:
    _, serialization, _ = _crypto()
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def new_keypair(path: Union[str, "os.PathLike[str]"]) -> Tuple[Path, Path]:
    """Create an Ed25519 key pair: ``path`` (private, PEM, mode 0600) and ``path.pub`` (public, PEM).

    Never overwrites: raises :class:`ModelFormatError` when either file exists.

    Returns:
        (private key path, public key path).
    """
    ed25519, serialization, _ = _crypto()
    priv_path = Path(path)
    pub_path = priv_path.with_name(priv_path.name + ".pub")
    for p in (priv_path, pub_path):
        if p.exists() or p.is_symlink():
            raise ModelFormatError(f"{p} already exists; refusing to overwrite a key. Choose another path")
    key = ed25519.Ed25519PrivateKey.generate()
    priv_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    pub_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    priv_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(priv_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # O_EXCL: never clobber
    with os.fdopen(fd, "wb") as f:
        f.write(priv_pem)
    fd = os.open(pub_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # public: the umask decides
    with os.fdopen(fd, "wb") as f:
        f.write(pub_pem)
    return priv_path, pub_path


def _read_small(p: Path, what: str) -> bytes:
    if not p.is_file():
        raise ModelFormatError(f"{what} {p}: no such file")
    if p.stat().st_size > _MAX_KEY_FILE:
        raise ModelFormatError(f"{what} {p}: {p.stat().st_size} bytes is too large for a key file")
    return p.read_bytes()


def _load_private(key):
    ed25519, serialization, _ = _crypto()
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    data = _read_small(Path(key), "private key")
    try:
        k = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ModelFormatError(f"private key {key}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(k, ed25519.Ed25519PrivateKey):
        raise ModelFormatError(f"private key {key}: expected an Ed25519 key; given {type(k).__name__}")
    return k


def load_public_key(key: KeyLike):
    """An Ed25519 public key from a key object, a PEM file path, PEM bytes, 32 raw bytes or 64 hex digits."""
    ed25519, serialization, _ = _crypto()
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.public_key()
    try:
        if isinstance(key, (bytes, bytearray)) and len(key) == 32:
            return ed25519.Ed25519PublicKey.from_public_bytes(bytes(key))
        if isinstance(key, str) and len(key) == 64 and all(c in "0123456789abcdefABCDEF" for c in key):
            return ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(key))
        data = bytes(key) if isinstance(key, (bytes, bytearray)) else _read_small(Path(key), "public key")
        k = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ModelFormatError(f"trusted key {str(key)[:80]!r}: not an Ed25519 public key ({exc})") from None
    if not isinstance(k, ed25519.Ed25519PublicKey):
        raise ModelFormatError(f"trusted key {str(key)[:80]!r}: expected an Ed25519 key; given {type(k).__name__}")
    return k


def sign_bundle(bundle_dir: Union[str, "os.PathLike[str]"], key) -> Path:
    """Verify a bundle folder, then sign its manifest with ``key`` (a private key path or object).

    Writes (atomically) and returns ``bundle_dir/signature.json``; re-signing replaces it.
    Zip the bundle afterwards (``edgeship.bundle.write_zip``) to ship it signed.
    """
    from .bundle import MANIFEST, read_bundle

    d = Path(bundle_dir)
    if not d.is_dir():
        raise ModelFormatError(f"{d}: sign_bundle takes a bundle folder (sign before zipping)")
    read_bundle(d)  # every checksum holds before we vouch for it
    priv = _load_private(key)
    manifest_bytes = (d / MANIFEST).read_bytes()
    pub_raw = _public_raw(priv.public_key())
    record = {"algorithm": "ed25519", "key_id": key_id(pub_raw), "public_key": pub_raw.hex(),
              "signature": priv.sign(manifest_bytes).hex()}
    return atomic_write_json(d / SIGNATURE, record)


def verify_bundle_signature(bundle_dir: Union[str, "os.PathLike[str]"], trusted_keys: Iterable[KeyLike],
                            manifest: Optional[dict] = None, manifest_bytes: Optional[bytes] = None) -> str:
    """Check that the bundle's manifest is signed by one of ``trusted_keys``; return that key's id.

    Args:
        bundle_dir: an (unpacked) bundle folder.
        trusted_keys: public keys (see :func:`load_public_key`); at least one.
        manifest: the manifest the caller verified the files against (from ``read_bundle``);
            when given, the signed bytes must describe exactly it.
        manifest_bytes: the manifest's bytes as the caller read them (read from the folder when
            None); pass them to act on exactly the bytes whose signature was checked.

    Raises:
        IntegrityError: unsigned, signed by an untrusted key, or the signature does not match.
    """
    from .bundle import MANIFEST

    _, _, InvalidSignature = _crypto()
    keys = [load_public_key(k) for k in trusted_keys]
    if not keys:
        raise IntegrityError("trusted_keys is empty; pass at least one public key (or None to skip signatures)")
    trusted = {_public_raw(k): k for k in keys}
    d = Path(bundle_dir)
    sig_path = d / SIGNATURE
    if not sig_path.is_file():
        raise IntegrityError(f"bundle {d.name} is not signed (no {SIGNATURE}) and trusted keys are required; "
                             f"sign it with edgeship.signing.sign_bundle")
    try:
        rec = json.loads(_read_small(sig_path, "signature"))
        pub_raw = bytes.fromhex(rec["public_key"])
        sig = bytes.fromhex(rec["signature"])
        alg = rec.get("algorithm")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise IntegrityError(f"bundle {d.name}: {SIGNATURE} is malformed ({type(exc).__name__}: {exc})") from None
    if alg != "ed25519":
        raise IntegrityError(f"bundle {d.name}: signature algorithm {alg!r}; expected 'ed25519'")
    if pub_raw not in trusted:
        raise IntegrityError(f"bundle {d.name} is signed by key {key_id(pub_raw)}, which is not among the trusted "
                             f"keys ({', '.join(key_id(r) for r in trusted)})")
    if manifest_bytes is None:
        manifest_bytes = (d / MANIFEST).read_bytes()
    try:
        trusted[pub_raw].verify(sig, manifest_bytes)
    except InvalidSignature:
        raise IntegrityError(f"bundle {d.name}: the signature does not match its manifest: the manifest was "
                             f"changed after signing") from None
    if manifest is not None:
        plain = {k: v for k, v in manifest.items() if k != "_dir"}
        try:
            same = json.loads(manifest_bytes) == plain
        except ValueError:
            same = False
        if not same:
            raise IntegrityError(f"bundle {d.name}: the manifest changed while it was being verified")
    return key_id(pub_raw)


__all__ = ["SIGNATURE", "new_keypair", "sign_bundle", "verify_bundle_signature", "load_public_key", "key_id", "public_key_id"]
