"""The model zoo registry: models edgeship ships, and reference models fetched by URL + sha256.

Shipped models live in ``models/weights`` inside the package. Reference models
are fetched from their public home, verified against a pinned sha256 and kept
in a cache; with no internet, point ``EDGESHIP_MIRROR`` (or ``mirror=``) at a
local folder laid out as ``<folder>/<file>`` (e.g. ``../shared/models``), and
the same checksum is enforced.

Example:
    >>> from edgeship import models
    >>> models.path("shapes_cnn_int8").name
    'shapes_cnn_int8.tflite'
    >>> "yunet_n_320" in models.list_models()
    True
"""
from __future__ import annotations

import os
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from edgeship._io import atomic_write_bytes, sha256_bytes, sha256_file
from edgeship.errors import IntegrityError, ModelFormatError

WEIGHTS = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class ModelEntry:
    name: str
    file: str                      # file name; for shipped models, inside models/weights
    sha256: str
    task: str
    licence: str
    url: Optional[str] = None      # None = shipped with edgeship
    mirror_path: str = ""          # path below a mirror folder
    labels: tuple = ()
    preprocessing: dict = field(default_factory=dict)
    notes: str = ""
    shipped: bool = False          # a copy ships in models/weights (with <stem>.LICENSE) though it has a public URL
    detector: dict = field(default_factory=dict)  # keyword spotting: edgeship.kws.DetectorConfig fields + source


def _shapes(name: str, file: str, sha: str, notes: str) -> ModelEntry:
    from .shapes import LABELS, PREPROCESSING

    return ModelEntry(name, file, sha, "image-classification", "Apache-2.0 (edgeship)", None, "",
                      tuple(LABELS), dict(PREPROCESSING), notes)


_MFCC = {"type": "mfcc", "sample_rate": 16000, "clip_samples": 16000, "frame_length": 480, "frame_step": 320,
         "fft_length": 512, "window": "hann_periodic", "num_mel_bins": 40, "lower_hz": 20.0, "upper_hz": 4000.0,
         "mel_scale": "htk", "log_offset": 1e-6, "num_coefficients": 10, "layout": [1, 49, 10, 1]}
_KWS_LABELS = ("down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes", "_silence_", "_unknown_")
_GH = "https://github.com"


def _kws_setting(result: str, threshold: float, smoothing: int) -> dict:
    """The detector setting ``bench/kws_false_alarms.py`` chose for a model (its ``chosen_on_tune``;
    tests/test_kws_fa_bench.py checks the two agree)."""
    return {"threshold": threshold, "smoothing": smoothing, "refractory_s": 1.0,
            "source": f"bench/kws_false_alarms.py: highest tuning-half recall at <= 1 false accept per hour "
                      f"(bench/results/{result})"}


REGISTRY: Dict[str, ModelEntry] = {e.name: e for e in [
    _shapes("shapes_cnn_keras", "shapes_cnn.keras", "", "Keras source of the shipped shapes classifier"),
    _shapes("shapes_cnn_fp32", "shapes_cnn_fp32.tflite", "", "float32 TFLite"),
    _shapes("shapes_cnn_int8", "shapes_cnn_int8.tflite", "", "full-integer int8 TFLite, int8 I/O"),
    ModelEntry("mlperf_kws_int8", "kws_ref_model.tflite",
               "aeea436800704fce17b17292e4412630ad856e9d777c044c64ef748a880bd0ae", "keyword-spotting", "Apache-2.0",
               f"{_GH}/mlcommons/tiny/raw/master/benchmark/training/keyword_spotting/trained_models/kws_ref_model.tflite",
               "mlperf_tiny_kws/kws_ref_model.tflite", _KWS_LABELS, _MFCC,
               "MLPerf Tiny DS-CNN, int8 I/O (input scale 0.5847, zero point 83); 90.2 % on kws01",
               detector=_kws_setting("kws_false_alarms_mlperf_kws_int8.json", 0.9, 4)),
    ModelEntry("mlperf_kws_float", "kws_ref_model_float32.tflite",
               "e5004c6f1012246e33fa068d8488325538e0444073cd361f5a7edb40c73f12d2", "keyword-spotting", "Apache-2.0",
               f"{_GH}/mlcommons/tiny/raw/master/benchmark/training/keyword_spotting/trained_models/kws_ref_model_float32.tflite",
               "mlperf_tiny_kws/kws_ref_model_float32.tflite", _KWS_LABELS, _MFCC,
               "float I/O; note its five convolutions carry int8 weights (dynamic-range)"),
    ModelEntry("kws_dscnn_keras", "kws_dscnn.keras",
               "1db8b1df9c1800f5502a4469ed244160703e8a31cbb4a4d80ee67646aa108dbf", "keyword-spotting",
               "Apache-2.0 (edgeship; fine-tuned from the MLPerf Tiny reference weights)", None, "", _KWS_LABELS,
               _MFCC, "DS-CNN fine-tuned on speaker-split Speech Commands dev clips; card: models/cards/kws_dscnn.md"),
    ModelEntry("kws_dscnn_int8", "kws_dscnn_int8.tflite",
               "b2afea0038339ea87c07fcc30460633f9e32881de7515d978474ce20681bcb84", "keyword-spotting",
               "Apache-2.0 (edgeship; fine-tuned from the MLPerf Tiny reference weights)", None, "", _KWS_LABELS,
               _MFCC, "full-integer int8 of kws_dscnn_keras, int8 I/O, parity-checked; card: models/cards/kws_dscnn.md",
               detector=_kws_setting("kws_false_alarms_kws_dscnn_int8.json", 0.95, 5)),
    ModelEntry("yunet_n_320", "yunet_n_320_320.onnx",
               "81dbde155e982455488235acb8ec2dec5d647edf7cf7080d33e4abb69b93a0d2", "face-detection", "Apache-2.0",
               f"{_GH}/opencv/opencv_zoo/raw/main/models/face_detection_yunet/face_detection_yunet_2023mar.onnx",
               "yunet/yunet_n_320_320.onnx", (), {"type": "image", "size": [320, 320], "resize": "letterbox",
                                                  "color": "BGR", "layout": "NCHW", "scale": 1.0},
               "edgeship.face's default detector (decoder: edgeship.face_detect)", shipped=True),
    ModelEntry("ultraface_rfb_320", "version-RFB-320_without_postprocessing.onnx",
               "d7c687949526065ab6a192fdf993360045ce27b0fabf7c9fca5c2437b786b495", "face-detection", "MIT",
               f"{_GH}/Linzaer/Ultra-Light-Fast-Generic-Face-Detector-1MB/raw/master/models/onnx/"
               "version-RFB-320_without_postprocessing.onnx",
               "ultraface/version-RFB-320_without_postprocessing.onnx", (),
               {"type": "image", "size": [240, 320], "resize": "letterbox", "color": "RGB", "layout": "NCHW",
                "mean": [127, 127, 127], "std": [128, 128, 128]}),
    ModelEntry("blazeface_short", "face_detection_short_range.tflite",
               "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633", "face-detection", "Apache-2.0",
               f"{_GH}/google/mediapipe/raw/master/mediapipe/modules/face_detection/face_detection_short_range.tflite",
               "blazeface/face_detection_short_range.tflite", (),
               {"type": "image", "size": [128, 128], "resize": "letterbox", "color": "RGB", "layout": "NHWC",
                "mean": [127.5], "std": [127.5]},
               "decoder: edgeship.face_detect", shipped=True),
    ModelEntry("coral_mobilenet_v1_025_128", "mobilenet_v1_0.25_128_quant.tflite",
               "cb273c23ee76374b05b9583177e28aa19744858a7679c56a250e83d0333da785", "image-classification",
               "Apache-2.0", f"{_GH}/google-coral/test_data/raw/master/mobilenet_v1_0.25_128_quant.tflite",
               "edgetpu/mobilenet_v1_0.25_128_quant.tflite"),
]}


def list_models() -> List[str]:
    return sorted(REGISTRY)


def entry(name: str) -> ModelEntry:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ModelFormatError(f"unknown model {name!r}; the zoo has: {', '.join(list_models())}") from None


def path(name: str) -> Path:
    """Path of a model shipped inside edgeship (no download)."""
    e = entry(name)
    if e.url is not None and not e.shipped:
        return fetch(name)
    p = WEIGHTS / e.file
    if not p.is_file():
        raise ModelFormatError(f"shipped model {name!r} is missing from {WEIGHTS}; reinstall edgeship")
    if e.shipped and sha256_file(p) != e.sha256:
        raise IntegrityError(f"shipped model {name!r} ({p}) does not match its pinned sha256 "
                             f"{e.sha256[:16]}...; reinstall edgeship")
    return p


def cache_root() -> Path:
    from edgeship._io import cache_dir

    return cache_dir() / "models"


def fetch(name: str, *, mirror: Optional[str] = None, allow_download: bool = True) -> Path:
    """Return a verified local copy of a reference model.

    Order: the cache, then the mirror folder (``mirror`` or ``$EDGESHIP_MIRROR``), then the URL.
    Every copy must match the pinned sha256 (IntegrityError otherwise); writes are atomic.
    """
    e = entry(name)
    if e.url is None or e.shipped:
        return path(name)
    cached = cache_root() / e.sha256[:16] / e.file
    if cached.is_file() and sha256_file(cached) == e.sha256:
        return cached
    mirror = mirror or os.environ.get("EDGESHIP_MIRROR")
    if mirror:
        src = Path(mirror) / e.mirror_path
        if src.is_file():
            data = src.read_bytes()
            _verify(name, data, e.sha256, str(src))
            atomic_write_bytes(cached, data)
            return cached
    if not allow_download:
        raise ModelFormatError(f"{name}: not in the cache or mirror ({mirror or 'EDGESHIP_MIRROR unset'}) "
                               f"and downloads are disabled")
    try:
        with urllib.request.urlopen(e.url, timeout=30) as r:  # noqa: S310 (fixed https URL)
            data = r.read()
    except OSError as exc:
        raise ModelFormatError(
            f"{name}: download from {e.url} failed ({exc}). Offline? Put the file at "
            f"<mirror>/{e.mirror_path} and set EDGESHIP_MIRROR=<mirror>") from exc
    _verify(name, data, e.sha256, e.url)
    atomic_write_bytes(cached, data)
    return cached


def _verify(name: str, data: bytes, want: str, where: str) -> None:
    got = sha256_bytes(data)
    if got != want:
        raise IntegrityError(f"{name}: {where} has sha256 {got[:16]}..., expected {want[:16]}...; refusing it")
