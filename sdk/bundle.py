"""Bundles: a folder (and optional .zip) of model files plus a checked ``manifest.json``.

``manifest.json`` (schema version 1) holds:

- ``files``: per key (a format/quantization such as ``tflite-int8`` or a target name):
  ``path``, ``sha256``, ``bytes``, ``format``, ``quantization``, ``targets`` and the file's
  ``inputs``/``outputs`` spec; ``targets`` names the targets the file serves (``edgeship bundle``
  and :func:`edgeship.targets.serving.bundle_targets` find them by running every target
  profile's check on the file), so ``edgeship.load(bundle, target="rpi4")`` picks the entry
  that serves the Raspberry Pi 4;
- ``default``: the key :func:`edgeship.load` picks without ``target=``;
- ``io``: the default file's inputs/outputs (name, shape, dtype, scale/zero point);
- ``preprocessing``: free-form but documented, e.g.
  ``{"type": "image", "size": [h, w], "color": "RGB", "layout": "NHWC", "mean": [...], "std": [...]}``
  or ``{"type": "mfcc", "sample_rate": 16000, "frame_length": 480, "frame_step": 320,
  "fft_length": 512, "num_mel_bins": 40, "lower_hz": 20, "upper_hz": 4000,
  "num_coefficients": 10, "log_offset": 1e-6}``;
- ``postprocessing``: free-form but documented: how the model's outputs become results, e.g. a
  keyword detector's setting ``{"type": "keyword_detector", "threshold": 0.95, "smoothing": 5,
  "refractory_s": 1.0, "max_episode": 12, "source": "..."}``
  (:meth:`edgeship.kws.DetectorConfig.to_manifest`, read back by :func:`edgeship.kws.model_info`);
- ``labels`` (also written as ``labels.txt``), ``source`` (path and sha256 of the model it was
  made from), ``versions`` (edgeship, python, numpy, runtimes), ``extra`` (reports etc.) and
  ``extra_files`` (sha256 of every other file in the bundle).

Loading verifies every checksum first and raises :class:`IntegrityError` on any mismatch.

Example:
    >>> import tempfile, edgeship.models
    >>> from edgeship.bundle import write_bundle, read_bundle
    >>> out = tempfile.mkdtemp() + "/shapes"
    >>> manifest = write_bundle(out, {"tflite-int8": edgeship.models.path("shapes_cnn_int8")}, labels=["a", "b", "c"])
    >>> manifest["default"], manifest["files"]["tflite-int8"]["quantization"]
    ('tflite-int8', 'int8')
    >>> read_bundle(out)["labels"]
    ['a', 'b', 'c']
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Iterable, List, Mapping, Optional, Tuple, Union

from ._io import (umask_mode, atomic_write_bytes, atomic_write_json, sha256_bytes, sha256_file, to_jsonable, tree_sha256,
                  versions)
from .errors import EdgeshipError, InputSpecError, IntegrityError, ModelFormatError, TargetError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
SIGNATURE = "signature.json"  # written by edgeship.signing.sign_bundle (optional)
REMOTE_DIR = "remote"   # not covered by the manifest: device results added after the bundle was written
_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")


def _file_entry(path: Path, targets: Iterable[str]) -> dict:
    """A manifest entry from the file's :class:`~edgeship.facts.ModelFacts` (one parse)."""
    from .facts import read_facts

    facts = read_facts(path)
    return {"path": path.name, "sha256": facts.sha256, "bytes": facts.file_bytes, "format": facts.format,
            "quantization": facts.quantization.value, "targets": sorted(set(targets)), **facts.io_dict()}


def default_key(path) -> str:
    """The key a model file gets in a bundle when none is given: ``<format>-<quantization>``
    from its facts, e.g. ``tflite-int8`` or ``onnx-fp32`` (:attr:`ModelFacts.key`)."""
    from .facts import read_facts

    return read_facts(path).key


def write_bundle(out_dir, files: Mapping[str, Union[str, os.PathLike]], *, labels: Optional[List[str]] = None,
                 preprocessing: Optional[dict] = None, postprocessing: Optional[dict] = None,
                 source: Optional[Union[str, os.PathLike, dict]] = None, extra: Optional[dict] = None,
                 extra_files: Optional[Mapping[str, Union[str, bytes]]] = None,
                 extra_dirs: Optional[Mapping[str, Union[str, os.PathLike]]] = None,
                 targets: Optional[Mapping[str, Iterable[str]]] = None, default: Optional[str] = None,
                 zip_path: Optional[Union[str, os.PathLike]] = None, name: Optional[str] = None,
                 overwrite: bool = False) -> dict:
    """Write a bundle directory (built in a temporary folder, then moved into place).

    Args:
        out_dir: the bundle directory to create.
        files: {key: model path}; key names the variant ("tflite-int8", "onnx", "rpi4", ...).
        labels: class names, in output order.
        preprocessing: how raw data becomes the model input (see module docstring).
        postprocessing: how the model's outputs become results (see module docstring).
        source: the source model path (hashed) or a dict describing it.
        extra: any JSON-serialisable dict to keep (reports, parity tables).
        extra_files: {file name: path or bytes} copied into the bundle and checksummed (README.md...).
        extra_dirs: {folder name: path} copied into the bundle; every file in it is checksummed
            (e.g. Android's drop-in ``assets/``).
        targets: {key: [target names]} the file is meant for (default: [key]);
            :func:`edgeship.targets.serving.bundle_targets` gives the targets whose checks pass.
        default: key that :func:`edgeship.load` picks by default (default: the first).
        zip_path: also write the bundle as a .zip there.
        overwrite: replace an existing bundle at ``out_dir``. Never replaces a non-bundle folder.

    Returns:
        The manifest that was written, as :func:`read_bundle` returns it (``_dir`` holds the
        bundle directory), so callers need not re-read and re-hash what was just written.
    """
    out = Path(out_dir)
    _check_arguments(out, files, labels, preprocessing, default, overwrite)
    postprocessing = _postprocessing_entry(postprocessing)
    if zip_path is not None:
        _check_zip_target(Path(zip_path), overwrite)
    if not safe_name(name or out.name):
        raise InputSpecError(f"bundle name {name or out.name!r}: expected one plain folder name (no '/', '..', "
                             "leading '.', control characters); pass name=... or choose another folder name")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        entries = _stage_models(tmp, files, targets or {})
        extras = _stage_extras(tmp, labels, extra_files or {}, extra_dirs or {}, {e["path"] for e in entries.values()})
        default = default or next(iter(files))
        manifest = to_jsonable({
            "schema_version": SCHEMA_VERSION,
            "name": name or out.name,
            "default": default,
            "files": entries,
            "io": {"inputs": entries[default]["inputs"], "outputs": entries[default]["outputs"]},
            "preprocessing": _preprocessing_entry(preprocessing),
            "postprocessing": postprocessing,
            "labels": list(labels) if labels is not None else None,
            "source": _source_entry(source),
            "versions": versions(),
            "extra": extra or {},
            "extra_files": extras,
        })
        atomic_write_json(tmp / MANIFEST, manifest)
        os.chmod(tmp, umask_mode(0o777))  # mkdtemp made it 0700: the bundle gets the user's umask
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if zip_path is not None:
        write_zip(out, zip_path)
    manifest["_dir"] = str(out)
    return manifest


def _check_arguments(out: Path, files, labels, preprocessing, default, overwrite: bool) -> None:
    """Refuse bad keys, labels, preprocessing, and any folder we did not write (or may not replace)."""
    if not files:
        raise ModelFormatError("a bundle needs at least one model file; given none")
    for key in files:
        if not _KEY_RE.match(key):
            raise ModelFormatError(f"bundle key {key!r} must be 1-64 letters, digits or _.+- (no path separators)")
    if default is not None and default not in files:
        raise TargetError(f"default {default!r} is not one of the bundle's keys {sorted(files)}")
    if preprocessing is not None and not isinstance(preprocessing, Mapping) and not hasattr(preprocessing, "to_dict"):
        raise ModelFormatError(f"preprocessing must be a dict; given {type(preprocessing).__name__}")
    if labels is not None and (not isinstance(labels, (list, tuple)) or not all(isinstance(x, str) for x in labels)):
        raise ModelFormatError("labels must be a list of strings")
    if out.exists() and any(out.iterdir()):
        _check_replaceable(out)
        if not overwrite:
            raise ModelFormatError(f"{out} already holds a bundle; pass overwrite=True (--force) to replace it")


def _postprocessing_entry(postprocessing) -> Optional[dict]:
    """The manifest's ``postprocessing``; a keyword detector's setting is checked now, not on the device."""
    if postprocessing is None:
        return None
    if not isinstance(postprocessing, Mapping):
        raise ModelFormatError(f"postprocessing must be a dict; given {type(postprocessing).__name__}")
    from .kws_setting import MANIFEST_TYPE, DetectorConfig

    if postprocessing.get("type") == MANIFEST_TYPE:
        DetectorConfig.from_dict(postprocessing, "bundle postprocessing")
    return dict(postprocessing) or None


def _preprocessing_entry(preprocessing) -> Optional[dict]:
    """The manifest's ``preprocessing``: an image spec (:class:`~edgeship.preprocessing.ImagePreprocessing`
    or its dict, ``"type": "image"``) is validated and written in its canonical form; other dicts as given."""
    from .preprocessing import ImagePreprocessing

    if not preprocessing:
        return None
    if isinstance(preprocessing, ImagePreprocessing):
        return preprocessing.to_dict()
    if isinstance(preprocessing, Mapping) and preprocessing.get("type") == "image":
        return ImagePreprocessing.from_dict(preprocessing, where="bundle preprocessing").to_dict()
    return dict(preprocessing)


def _check_replaceable(out: Path) -> None:
    """Only an intact edgeship bundle that holds nothing but its own files may be replaced.

    A folder that merely has a ``manifest.json`` (a browser extension, a web app), a bundle whose
    files no longer match, or one holding files its manifest does not list is refused.
    """
    try:
        read_bundle(out)  # every file listed and matching, nothing unlisted (remote/ excepted)
    except EdgeshipError as exc:
        raise ModelFormatError(f"{out} exists and is not an intact edgeship bundle ({str(exc)[:200]}); "
                               "refusing to replace it: choose another folder or remove it yourself") from None


def _check_zip_target(zip_path: Path, overwrite: bool) -> None:
    """An existing zip is replaced only with ``overwrite`` and only when it is an edgeship bundle zip."""
    if not zip_path.exists():
        return
    if not overwrite:
        raise ModelFormatError(f"{zip_path} already exists; pass overwrite=True (--force) to replace a bundle zip")
    try:
        with zipfile.ZipFile(zip_path) as z:
            doc = json.loads(z.read(MANIFEST).decode("utf-8"))
        ours = isinstance(doc, dict) and doc.get("schema_version") == SCHEMA_VERSION and isinstance(doc.get("files"), dict)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, RuntimeError):
        ours = False
    if not ours:
        raise ModelFormatError(f"{zip_path} exists and is not an edgeship bundle zip; refusing to replace it")


def _stage_models(tmp: Path, files, targets) -> dict:
    """Copy the model files into the staging folder; their manifest entries by key."""
    entries, used = {}, set()
    for key, src in files.items():
        src = Path(src)
        if not src.is_file():
            raise ModelFormatError(f"bundle file for {key!r}: {src} does not exist")
        fname = src.name if src.name not in used else f"{key}{src.suffix}"
        used.add(fname)
        shutil.copyfile(src, tmp / fname)
        entries[key] = _file_entry(tmp / fname, targets.get(key, [key]))
    return entries


def _stage_extras(tmp: Path, labels, extra_files, extra_dirs, used) -> dict:
    """Write labels.txt, extra files and extra folders; the sha256 of each by relative path."""
    extras = {}
    if labels is not None:
        (tmp / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
        extras["labels.txt"] = sha256_file(tmp / "labels.txt")
    for fname, content in extra_files.items():
        if "/" in fname or "\\" in fname or fname in (MANIFEST, *used):
            raise ModelFormatError(f"extra file name {fname!r} must be a plain, unused file name")
        data = content if isinstance(content, bytes) else Path(content).read_bytes()
        (tmp / fname).write_bytes(data)
        extras[fname] = sha256_bytes(data)
    for dname, src_dir in extra_dirs.items():
        if not _KEY_RE.match(dname) or dname in used or dname in extras or dname == REMOTE_DIR:
            raise ModelFormatError(f"extra folder name {dname!r} must be a plain, unused name")
        shutil.copytree(src_dir, tmp / dname)
        for f in sorted(p for p in (tmp / dname).rglob("*") if p.is_file()):
            extras[f.relative_to(tmp).as_posix()] = sha256_file(f)
    return extras


def _source_entry(source) -> Optional[dict]:
    if source is None:
        return None
    if isinstance(source, Mapping):
        return dict(source)
    p = Path(source)
    if p.is_file():
        return {"path": str(p), "sha256": sha256_file(p)}
    if p.is_dir():
        return {"path": str(p), "sha256": tree_sha256(p)}
    raise ModelFormatError(f"source {source} does not exist")


def _replace_dir(new: Path, out: Path) -> None:
    """Swap ``new`` into ``out``: the old bundle is kept until the new one is in place."""
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))  # a fresh name: nothing of the user's
        os.replace(out, old)
        os.replace(new, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, out)


def write_zip(bundle_dir, zip_path) -> Path:
    """Zip a verified bundle directory (deterministic order and timestamps)."""
    bundle_dir, zip_path = Path(bundle_dir), Path(zip_path)
    read_bundle(bundle_dir)
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(p for p in bundle_dir.rglob("*") if p.is_file()):
            rel = f.relative_to(bundle_dir).as_posix()
            if rel.startswith(REMOTE_DIR + "/"):
                continue  # device results are not part of what ships
            info = zipfile.ZipInfo(rel, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, f.read_bytes())
    atomic_write_bytes(zip_path, buf.getvalue())
    return zip_path


# Limits checked on a zip's central directory before anything is extracted (a zip bomb or a
# crafted archive is refused without writing a byte). Environment variables raise them.
ZIP_MAX_BYTES = int(os.environ.get("EDGESHIP_ZIP_MAX_BYTES", str(2 << 30)))    # unpacked total
ZIP_MAX_MEMBERS = int(os.environ.get("EDGESHIP_ZIP_MAX_MEMBERS", "10000"))
ZIP_MAX_RATIO = 200          # unpacked/packed size of one member larger than 1 MiB
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError,
               ValueError, OverflowError, UnicodeDecodeError, MemoryError, OSError, zlib.error)


def _check_zip_members(zip_path: Path, infos: List[zipfile.ZipInfo]) -> List[zipfile.ZipInfo]:
    """Refuse an archive whose names, sizes or kinds are unsafe; return the file members."""
    import stat

    name = zip_path.name
    if len(infos) > ZIP_MAX_MEMBERS:
        raise IntegrityError(f"{name}: {len(infos)} members; a bundle zip may hold at most {ZIP_MAX_MEMBERS} "
                             f"(set EDGESHIP_ZIP_MAX_MEMBERS to allow more)")
    files, seen, total = [], set(), 0
    for info in infos:
        n = info.filename
        if info.is_dir():
            if not _plain_relpath(n.rstrip("/")):
                raise IntegrityError(f"{name}: member {n!r} is not a plain folder name; refusing it")
            continue
        if not _plain_relpath(n):
            raise IntegrityError(f"{name}: member {n!r} is not a plain file name; refusing it")
        if n.lower() in seen:
            raise IntegrityError(f"{name}: member {n!r} appears twice; refusing the archive")
        seen.add(n.lower())
        mode = info.external_attr >> 16
        if mode and not (stat.S_ISREG(mode) or stat.S_IFMT(mode) == 0):
            raise IntegrityError(f"{name}: member {n!r} is not a regular file (a link or device); refusing it")
        if info.flag_bits & 0x1:
            raise IntegrityError(f"{name}: member {n!r} is encrypted; bundles are not")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise IntegrityError(f"{name}: member {n!r} uses compression method {info.compress_type}; "
                                 f"bundles use stored or deflated members")
        if info.file_size < 0 or info.compress_size < 0:
            raise IntegrityError(f"{name}: member {n!r} declares a negative size")
        if info.file_size > (1 << 20) and info.file_size > ZIP_MAX_RATIO * max(1, info.compress_size):
            raise IntegrityError(
                f"{name}: member {n!r} unpacks {info.compress_size} bytes into {info.file_size} "
                f"(ratio above {ZIP_MAX_RATIO}): a zip bomb, not a model bundle; refusing it")
        total += info.file_size
        if total > ZIP_MAX_BYTES:
            raise IntegrityError(f"{name}: unpacks to more than {ZIP_MAX_BYTES} bytes; refusing it "
                                 f"(set EDGESHIP_ZIP_MAX_BYTES to allow larger bundles)")
        files.append(info)
    return files


def _unpack(z: zipfile.ZipFile, infos: List[zipfile.ZipInfo], dest: Path) -> None:
    """Stream each member to ``dest`` in chunks, never more bytes than the member declares."""
    for info in infos:
        out = dest / info.filename
        out.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        with z.open(info) as src, open(out, "xb") as dst:
            while True:
                block = src.read(1 << 20)
                if not block:
                    break
                written += len(block)
                if written > info.file_size:
                    raise IntegrityError(f"member {info.filename!r} unpacks to more than the {info.file_size} "
                                         f"bytes it declares; refusing the archive")
                dst.write(block)
        if written != info.file_size:
            raise IntegrityError(f"member {info.filename!r} unpacks to {written} bytes; it declares {info.file_size}")


def _check_zip_is_bundle(zip_path: Path, names: set) -> None:
    """A zip without a top-level manifest is not a bundle: say what it looks like instead."""
    if MANIFEST in names:
        return
    if {"config.json", "metadata.json"} <= names and any(n.endswith(".weights.h5") for n in names):
        raise ModelFormatError(f"{zip_path.name}: a Keras model file (.keras), which edgeship runs only once "
                               f"converted; convert it first (edgeship convert {zip_path.name} --to tflite, or "
                               f"edgeship.converters.convert) and load the .tflite")
    raise ModelFormatError(f"{zip_path.name}: a zip archive without {MANIFEST}, so not an edgeship bundle; expected "
                           f"a .tflite, an .onnx or a bundle (edgeship bundle)")


def _extract_zip(zip_path: Path) -> Path:
    """Unpack and verify a bundle zip into a private folder; return that folder.

    Names, kinds and sizes are checked on the central directory first; members are streamed
    into a private temporary folder (0700), the bundle is verified there, and only then is it
    moved into the private cache (keyed by the zip's hash). Any failure removes the folder.
    Without a trustworthy cache (see :mod:`edgeship._cache`) the private temporary folder is
    used directly and removed when the process exits.
    """
    import atexit

    from ._cache import private_dir

    zip_hash = sha256_file(zip_path)
    cache = private_dir("bundles")
    if cache is not None and (cache / zip_hash / MANIFEST).is_file():
        return cache / zip_hash  # read_bundle verifies every checksum again
    tmp = Path(tempfile.mkdtemp(prefix=".unzip.", dir=cache))  # 0700; system temp without a cache
    try:
        try:
            with zipfile.ZipFile(zip_path) as z:
                infos = _check_zip_members(zip_path, z.infolist())
                _check_zip_is_bundle(zip_path, {i.filename for i in infos})
                free = shutil.disk_usage(tmp).free
                need = sum(i.file_size for i in infos)
                if need > free:
                    raise IntegrityError(f"{zip_path.name}: unpacks to {need} bytes; only {free} are free in {tmp.parent}")
                _unpack(z, infos, tmp)
        except (IntegrityError, ModelFormatError):   # ours: already say what is wrong
            raise
        except zipfile.BadZipFile as exc:
            raise ModelFormatError(f"{zip_path.name}: not a readable zip ({exc})") from None
        except _ZIP_ERRORS as exc:
            raise ModelFormatError(f"{zip_path.name}: cannot unpack this zip ({type(exc).__name__}: {exc})") from None
        read_bundle(tmp)  # verify before it is kept anywhere
        if cache is None:
            atexit.register(shutil.rmtree, tmp, True)
            return tmp
        dest = cache / zip_hash
        try:
            os.replace(tmp, dest)
        except OSError:  # another process unpacked it first
            shutil.rmtree(tmp, ignore_errors=True)
        return dest
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_bundle(path) -> dict:
    """Read a bundle directory or .zip and verify every checksum; returns the manifest.

    The returned dict has an extra key ``_dir`` with the directory the files are in.
    """
    p = Path(path)
    if p.is_file():
        p = _extract_zip(p)
    mpath = p / MANIFEST
    if not mpath.is_file():
        raise ModelFormatError(f"{path}: not an edgeship bundle (no {MANIFEST})")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise IntegrityError(f"{mpath}: manifest is not valid JSON ({str(exc)[:200]})") from None
    if not isinstance(manifest, dict) or manifest.get("schema_version") != SCHEMA_VERSION:
        raise IntegrityError(
            f"{mpath}: expected schema_version {SCHEMA_VERSION}; given {manifest.get('schema_version') if isinstance(manifest, dict) else manifest!r}")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise IntegrityError(f"{mpath}: manifest lists no model files")
    _check_manifest_types(manifest, mpath)
    listed = {MANIFEST, SIGNATURE}  # the signature signs the manifest, which covers every other file
    checks: List[Tuple[str, str]] = [(e.get("path", ""), e.get("sha256", "")) for e in files.values()]
    checks += list((manifest.get("extra_files") or {}).items())
    for name, want in checks:
        if not _plain_relpath(name):
            raise IntegrityError(f"{mpath}: file entry {name!r} is not a plain file name")
        f = p / name
        if not f.is_file():
            raise IntegrityError(f"bundle {p}: {name} is listed in the manifest but missing")
        got = sha256_file(f)
        if got != want:
            raise IntegrityError(
                f"bundle {p}: {name} does not match its manifest checksum (expected sha256 {want[:16]}..., "
                f"file has {got[:16]}...): the file was modified or damaged")
        listed.add(name)
    # remote/ holds results brought back from a device (deploy --host), written after the manifest
    unlisted = sorted(rel for rel in (f.relative_to(p).as_posix() for f in p.rglob("*") if f.is_file())
                      if rel not in listed and not rel.startswith(REMOTE_DIR + "/"))
    if unlisted:
        raise IntegrityError(f"bundle {p}: files not covered by the manifest: {', '.join(unlisted)}")
    manifest["_dir"] = str(p)
    return manifest


def _check_manifest_types(manifest: dict, mpath: Path) -> None:
    """The fields edgeship reads have the types it expects (a damaged manifest is an IntegrityError)."""
    def bad(what: str, value) -> IntegrityError:
        return IntegrityError(f"{mpath}: {what}; given {type(value).__name__} {str(value)[:60]!r}")

    for key, e in manifest["files"].items():
        if not isinstance(e, dict):
            raise bad(f"files[{key!r}] must be an object", e)
        for field in ("path", "sha256"):
            if not isinstance(e.get(field), str):
                raise bad(f"files[{key!r}].{field} must be a string", e.get(field))
        t = e.get("targets")
        if t is not None and not (isinstance(t, list) and all(isinstance(x, str) for x in t)):
            raise bad(f"files[{key!r}].targets must be a list of strings", t)
    extra = manifest.get("extra_files")
    if extra is not None and not (isinstance(extra, dict) and all(isinstance(v, str) for v in extra.values())):
        raise bad("extra_files must map file names to sha256 strings", extra)
    default = manifest.get("default")
    if default is not None and not isinstance(default, str):
        raise bad("default must be a string (a key of files)", default)
    name = manifest.get("name")
    if name is not None and not safe_name(name):
        raise bad("name must be one plain folder name (no '/', '..', leading '.', control characters); "
                  "deploy uses it as the device folder", name)


def safe_name(name) -> bool:
    """One plain path component: what a bundle's ``name`` must be, since deploy builds a remote path from it.

    Example:
        >>> safe_name("kws_rpi4"), safe_name("../.ssh"), safe_name(".hidden"), safe_name("a/b")
        (True, False, False, False)
    """
    return (isinstance(name, str) and 0 < len(name) <= 255 and not name.startswith(".")
            and not any(c in name for c in "/\\") and all(c.isprintable() for c in name))


def _plain_relpath(name) -> bool:
    """A relative path inside the bundle: no '..', no absolute path, no hidden parts."""
    if not isinstance(name, str) or not name or "\\" in name or name.startswith("/") or "\0" in name:
        return False
    if len(name) > 1024:
        return False
    return all(part and not part.startswith(".") and len(part) <= 255 for part in name.split("/"))


def resolve_bundle_file(path, target: Optional[str]) -> Tuple[Path, dict]:
    """Verify a bundle and return (model file, manifest) for ``target`` (None = default)."""
    manifest = read_bundle(path)
    files = manifest["files"]
    if target is None:
        key = manifest.get("default") or next(iter(files))
    elif target in files:
        key = target
    else:
        keys = [k for k, e in files.items() if target in (e.get("targets") or [])]
        if not keys:
            serves = "; ".join(f"{k} -> {', '.join(e.get('targets') or []) or 'no target'}" for k, e in files.items())
            raise TargetError(f"bundle {Path(path).name} has no file that serves target {target!r}; its files serve: "
                              f"{serves}. Add a file for {target!r} (edgeship check MODEL --target {target} says "
                              f"what it needs) or load one of those")
        # the default entry when it serves the target, else the first that does
        key = manifest.get("default") if manifest.get("default") in keys else keys[0]
    if key not in files:
        raise IntegrityError(f"bundle manifest default {key!r} is not among its files {sorted(files)}")
    return Path(manifest["_dir"]) / files[key]["path"], manifest
