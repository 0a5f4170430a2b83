"""Ship the edgeship that is running here to a device: a wheel, and the exact pip lines around it.

edgeship is not published on a package index, so ``pip install edgeship`` cannot work on a
device. :func:`local_wheel` makes a wheel of *this* edgeship instead:

* running from a source tree (an editable install or a checkout on ``sys.path``): the
  project files (pyproject.toml, README, the package folders) are copied to a temp folder
  and built there with ``pip wheel --no-deps --no-build-isolation --no-index`` (needs
  setuptools here, no network); the wheel is cached by version + source hash;
* installed from a wheel: the original wheel when pip recorded where it came from, else
  the installed files are packed back into a wheel from the dist-info RECORD.

:func:`device_requirements` lists what the device needs besides that wheel: edgeship's core
requirements taken from the wheel's own metadata (numpy, typer, rich; no extras) plus the
target profile's pip line for the model's runtime (for example ``ai-edge-litert==1.4.0`` on a
Raspberry Pi, whose aarch64 wheels differ from the pins in pyproject). The wheel is installed
with ``--no-deps`` so its host-side runtime pins never reach the device.

Example:
    >>> from edgeship.targets import get_target
    >>> from edgeship.targets.device_install import runtime_line
    >>> runtime_line(get_target("rpi4"), "tflite")[1]
    ['ai-edge-litert==1.4.0']
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .._io import sha256_file
from ..errors import TargetError

# Python packages that are model runtimes, by the format they run. edgeship's own metadata pins
# the host's runtimes; on a device the target profile's pip line decides instead.
RUNTIME_PACKAGES: Dict[str, str] = {"ai-edge-litert": "tflite", "tflite-runtime": "tflite",
                                    "tensorflow": "tflite", "onnxruntime": "onnx"}
MODEL_FORMATS = {".tflite": "tflite", ".onnx": "onnx"}
# Project files outside the package folders that a build may read.
_PROJECT_FILES = ("pyproject.toml", "setup.py", "setup.cfg", "MANIFEST.in", "LICENSE", "LICENSE.txt",
                  "LICENSE.md", "README.md", "README.rst")
_SKIP_PARTS = {"__pycache__", "build", "dist"}
# Fixed zip timestamps: the same source gives a byte-identical wheel (setuptools honours it).
_SOURCE_DATE_EPOCH = "315532800"


@dataclass(frozen=True)
class LocalWheel:
    """A wheel of the running edgeship: where it is and how it was obtained."""

    path: Path
    sha256: str
    version: str
    origin: str            # "source-build", "source-cache", "installed-wheel" or "repacked"
    source: str            # the source tree or the installed dist-info it came from
    source_hash: Optional[str] = None

    def to_dict(self) -> dict:
        return {"wheel": self.path.name, "wheel_sha256": self.sha256, "version": self.version,
                "origin": self.origin, "source": self.source, "source_hash": self.source_hash}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _req_name(req: str) -> str:
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
    return _canonical(m.group(1)) if m else ""


# --- where the running edgeship comes from ---------------------------------------------------
def _package_dir() -> Path:
    import edgeship

    return Path(edgeship.__file__).resolve().parent


def find_source_tree(package_dir: Optional[Path] = None) -> Optional[Tuple[Path, dict]]:
    """(project root, its [tool.setuptools] package-dir) when edgeship runs from a source tree."""
    import tomllib

    pkg = Path(package_dir or _package_dir()).resolve()
    for root in list(pkg.parents)[:3]:
        pyproject = root / "pyproject.toml"
        if not pyproject.is_file():
            continue
        try:
            doc = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if doc.get("project", {}).get("name") != "edgeship":
            continue
        mapping = doc.get("tool", {}).get("setuptools", {}).get("package-dir") or {"edgeship": "edgeship"}
        if (root / mapping.get("edgeship", "edgeship")).resolve() == pkg:
            return root, mapping
    return None


def source_hash(root: Path, mapping: dict) -> Tuple[str, List[Path]]:
    """sha256 over (relative path, bytes) of every file a build would read; and those files."""
    files: List[Path] = [root / n for n in _PROJECT_FILES if (root / n).is_file()]
    for folder in sorted(set(mapping.values())):
        base = root / folder
        for p in sorted(base.rglob("*")):
            rel = p.relative_to(root)
            if p.is_file() and not _SKIP_PARTS & set(rel.parts) and p.suffix != ".pyc" \
                    and not any(part.endswith(".egg-info") for part in rel.parts):
                files.append(p)
    h = hashlib.sha256()
    for p in files:
        h.update(p.relative_to(root).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest(), files


def _build_from_source(root: Path, mapping: dict, version: str, cache: Path) -> LocalWheel:
    digest, files = source_hash(root, mapping)
    slot = cache / "wheels" / f"edgeship-{version}-{digest[:16]}"
    cached = sorted(slot.glob("edgeship-*.whl")) if slot.is_dir() else []
    if cached:
        return LocalWheel(cached[0], sha256_file(cached[0]), version, "source-cache", str(root), digest)
    from .._deps import available

    missing = [m for m in ("setuptools", "wheel") if not available(m)]
    if missing:
        raise TargetError(f"building the edgeship wheel for the device needs {' and '.join(missing)} in this "
                          f"Python ({sys.executable}): pip install setuptools wheel; or deploy with --no-install "
                          "to a device that already has edgeship")
    with tempfile.TemporaryDirectory(prefix="edgeship-wheel-") as tmp:
        src = Path(tmp) / "src"   # build a copy: an in-tree build would leave build/ and egg-info behind
        for p in files:
            dst = src / p.relative_to(root)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, dst)
        out = Path(tmp) / "out"
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
               "--disable-pip-version-check", "-q", "-w", str(out), str(src)]
        env = dict(os.environ, SOURCE_DATE_EPOCH=_SOURCE_DATE_EPOCH, PIP_NO_INPUT="1")
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        built = sorted(out.glob("edgeship-*.whl")) if out.is_dir() else []
        if res.returncode != 0 or len(built) != 1:
            raise TargetError(f"could not build the edgeship wheel from {root} (exit {res.returncode}): "
                              f"{' '.join(cmd)}\n{(res.stderr or res.stdout).strip()[-1500:]}")
        slot.mkdir(parents=True, exist_ok=True)
        final = slot / built[0].name
        part = slot / (built[0].name + ".part")
        shutil.copyfile(built[0], part)
        os.replace(part, final)   # atomic: a concurrent reader sees the whole wheel or none
    return LocalWheel(final, sha256_file(final), version, "source-build", str(root), digest)


def repack_installed(dist, out_dir: Path) -> Path:
    """Pack an installed distribution back into a wheel from its RECORD (no build tools needed).

    Byte-code, files outside site-packages (console scripts: pip recreates them from
    entry_points.txt) and the installer's own records (INSTALLER, REQUESTED,
    direct_url.json, RECORD) are left out; a fresh RECORD with sha256 hashes is written.
    """
    name, version = dist.metadata["Name"], dist.version
    info = f"{_canonical(name).replace('-', '_')}-{version}.dist-info"
    entries: List[Tuple[str, bytes]] = []
    wheel_file = None
    for f in dist.files or ():
        rel = Path(str(f)).as_posix()
        parts = rel.split("/")
        if rel.startswith("../") or "__pycache__" in parts or rel.endswith(".pyc"):
            continue
        if parts[0].endswith(".dist-info"):
            if parts[-1] in ("INSTALLER", "REQUESTED", "direct_url.json", "RECORD"):
                continue
            rel = f"{info}/{'/'.join(parts[1:])}"
        path = Path(dist.locate_file(f))
        if not path.is_file():
            raise TargetError(f"installed {name} {version} is incomplete: {path} is listed in its RECORD but missing")
        data = path.read_bytes()
        if rel == f"{info}/WHEEL":
            wheel_file = data
        entries.append((rel, data))
    if wheel_file is None:
        raise TargetError(f"installed {name} {version} has no dist-info/WHEEL file; cannot repack it into a wheel")
    tags = [l.split(":", 1)[1].strip() for l in wheel_file.decode().splitlines() if l.startswith("Tag:")]
    tag = tags[0] if len(tags) == 1 else "py3-none-any"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{_canonical(name).replace('-', '_')}-{version}-{tag}.whl"
    record = []
    part = target.with_suffix(".whl.part")
    with zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED) as z:
        for rel, data in sorted(entries):
            z.writestr(zipfile.ZipInfo(rel, date_time=(1980, 1, 1, 0, 0, 0)), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{rel},sha256={digest},{len(data)}")
        record.append(f"{info}/RECORD,,")
        z.writestr(zipfile.ZipInfo(f"{info}/RECORD", date_time=(1980, 1, 1, 0, 0, 0)), "\n".join(record) + "\n")
    os.replace(part, target)
    return target


def _from_installed(version: str, cache: Path) -> LocalWheel:
    from importlib import metadata

    pkg = _package_dir()
    try:
        dist = metadata.distribution("edgeship")
    except metadata.PackageNotFoundError:
        dist = None
    owns = dist is not None and any(Path(dist.locate_file(f)).resolve() == pkg / "__init__.py"
                                    for f in dist.files or () if str(f).endswith("__init__.py"))
    if not owns:
        raise TargetError(f"cannot tell where the running edgeship ({pkg}) comes from: it is neither in a source "
                          "tree with pyproject.toml nor an installed distribution; deploy with --no-install to a "
                          "device that already has edgeship")
    direct = dist.read_text("direct_url.json")
    if direct:   # installed from a local wheel file that may still be there
        url = json.loads(direct).get("url", "")
        if url.startswith("file://") and url.endswith(".whl"):
            from urllib.parse import unquote, urlparse

            whl = Path(unquote(urlparse(url).path))
            if whl.is_file() and f"-{dist.version}-" in whl.name:
                return LocalWheel(whl, sha256_file(whl), version, "installed-wheel", str(whl))
    record = dist.read_text("RECORD") or ""
    digest = hashlib.sha256(record.encode()).hexdigest()
    slot = cache / "wheels" / f"edgeship-{version}-installed-{digest[:16]}"
    whl = repack_installed(dist, slot)
    return LocalWheel(whl, sha256_file(whl), version, "repacked", str(dist.locate_file(f"edgeship-{dist.version}.dist-info")), digest)


def local_wheel(cache_dir: Optional[Path] = None) -> LocalWheel:
    """A wheel of the edgeship that is running now (built, cached or repacked; see module doc).

    Example:
        >>> w = local_wheel()  # doctest: +SKIP
        >>> w.path.name, w.origin  # doctest: +SKIP
        ('edgeship-0.1.0-py3-none-any.whl', 'source-build')
    """
    from .._version import __version__

    from .._io import cache_dir as cache_root

    cache = Path(cache_dir) if cache_dir is not None else cache_root()
    tree = find_source_tree()
    wheel = _build_from_source(*tree, __version__, cache) if tree else _from_installed(__version__, cache)
    got = wheel_metadata(wheel.path).get("Version")
    if got != __version__:
        raise TargetError(f"the edgeship wheel {wheel.path} is version {got}, but the running edgeship is "
                          f"{__version__}: make pyproject.toml's version match edgeship.__version__")
    return wheel


# --- what the device needs ----------------------------------------------------------------------
def wheel_metadata(path: Path) -> dict:
    """The wheel's METADATA as a dict; ``Requires-Dist`` is a list."""
    from email.parser import HeaderParser

    with zipfile.ZipFile(path) as z:
        names = [n for n in z.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
        if len(names) != 1:
            raise TargetError(f"{path}: not a wheel (expected one *.dist-info/METADATA, found {len(names)})")
        msg = HeaderParser().parsestr(z.read(names[0]).decode("utf-8"))
    meta = {k: v for k, v in msg.items() if k != "Requires-Dist"}
    meta["Requires-Dist"] = msg.get_all("Requires-Dist") or []
    return meta


def core_requirements(wheel: Path) -> List[str]:
    """edgeship's own requirements minus extras and model runtimes (those come from the target)."""
    out = []
    for req in wheel_metadata(wheel)["Requires-Dist"]:
        marker = req.split(";", 1)[1] if ";" in req else ""
        if "extra" in re.findall(r"[A-Za-z_]+", marker) or _req_name(req) in RUNTIME_PACKAGES:
            continue
        out.append(req.strip())
    return out


def _pip_args(line: str) -> Optional[List[str]]:
    """The arguments after ``pip install`` in one install line (None when it is not one)."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError:
        return None
    for i in range(len(words) - 1):
        if words[i] in ("pip", "pip3") and words[i + 1] == "install":
            args = words[i + 2:]
            for stop in ("&&", ";", "||", "|"):
                if stop in args:
                    args = args[:args.index(stop)]
            return args
    return None


def runtime_line(profile, fmt: str) -> Optional[Tuple[str, List[str]]]:
    """The profile's first install line that pip-installs a runtime for ``fmt``: (line, its pip args)."""
    for line in profile.install:
        args = _pip_args(line)
        if args and any(RUNTIME_PACKAGES.get(_req_name(a)) == fmt for a in args if not a.startswith("-")):
            return line, args
    return None


def device_requirements(profile, fmt: str, wheel: Path) -> Tuple[List[str], str]:
    """(pip install arguments for the device besides the wheel, the profile line the runtime came from)."""
    found = runtime_line(profile, fmt)
    if found is None:
        lines = "; ".join(profile.install) or "none"
        raise TargetError(f"target {profile.name!r} names no pip line that installs a {fmt} runtime (its install "
                          f"lines: {lines}); deploy with --no-install to a device whose Python already has "
                          "edgeship and a runtime")
    line, args = found
    return core_requirements(wheel) + args, line


def model_format(path: Path) -> str:
    try:
        return MODEL_FORMATS[Path(path).suffix.lower()]
    except KeyError:
        raise TargetError(f"{Path(path).name}: expected a .tflite or .onnx model to run on the device") from None


__all__ = ["LocalWheel", "local_wheel", "find_source_tree", "source_hash", "repack_installed", "wheel_metadata",
           "core_requirements", "runtime_line", "device_requirements", "model_format", 
           "RUNTIME_PACKAGES"]
