"""The app's view of edgeship's face pipeline: one usable face per image, model identity, threshold.

Only the public API is used: :mod:`edgeship.face` (``read_image``, ``FacePipeline``) and
:mod:`edgeship.models.face` (``model_path``). The shipped decision threshold lives in
``threshold.json`` beside this file, one entry per model format, each recorded with the sha256
of the model it was calibrated for, the data and the method (see ``bench/face_eval_calibrate.py``).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from edgeship.errors import EdgeshipError, InputSpecError, MissingDependencyError, ModelFormatError

THRESHOLD_FILE = Path(__file__).with_name("threshold.json")
MODEL_FORMATS = ("int8", "fp32", "onnx")


class FaceRejected(EdgeshipError):
    """An image does not hold exactly one usable face; ``reason`` is a short machine word."""

    def __init__(self, message: str, reason: str, n_faces: int):
        super().__init__(message)
        self.reason = reason
        self.n_faces = n_faces


@dataclass
class Threshold:
    """The distance threshold used to accept a face, and where it came from."""

    value: float
    source: str          # "shipped:<fmt>", "user" or "shipped:<fmt> (not calibrated for this model)"
    calibrated_for: Optional[str] = None  # sha256 of the model it was calibrated on
    warning: Optional[str] = None


def face_api():
    """``edgeship.face``, or a clear error when the face pipeline (or its extra) is missing."""
    try:
        import edgeship.face as face
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("edgeship"):
            raise MissingDependencyError(
                "edgeship.face (the face pipeline) is not part of this edgeship installation; "
                "update edgeship to a version with face support") from None
        raise MissingDependencyError(f"the face pipeline needs a missing package ({exc}); "
                                     f"install it with: pip install 'edgeship[face]'") from None
    return face


def model_file(model: str) -> Path:
    """The embedder file for ``int8`` / ``fp32`` / ``onnx`` (built and cached on first use) or a PATH."""
    if model in MODEL_FORMATS:
        try:
            from edgeship.models import face as face_models
        except ModuleNotFoundError as exc:
            raise MissingDependencyError(f"edgeship.models.face is not available ({exc}); "
                                         f"install it with: pip install 'edgeship[face]'") from None
        return Path(face_models.model_path("descriptor", model))
    p = Path(model).expanduser()
    if not p.is_file():
        raise ModelFormatError(f"expected --model int8, fp32, onnx or a path to a face descriptor model "
                               f"(.tflite/.onnx), got {model!r} (no such file)")
    return p


def load_thresholds(path: Path = THRESHOLD_FILE) -> dict:
    """The shipped threshold file ({} when it is missing)."""
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise ModelFormatError(f"the shipped threshold file {path} is damaged ({exc}); reinstall the app") from None


def threshold_for(model: str, model_sha256: str, override: Optional[float] = None,
                  path: Path = THRESHOLD_FILE) -> Threshold:
    """The threshold to use for ``model`` (whose file hashes to ``model_sha256``).

    A user-given ``override`` wins. Otherwise the shipped entry for the model's format is used;
    a PATH model uses the entry whose sha256 matches, else the fp32 entry with a warning.
    """
    if override is not None:
        if not (isinstance(override, (int, float)) and math.isfinite(override) and override > 0):
            raise InputSpecError(f"expected a positive --threshold (a Euclidean distance, ~0.3-0.7), got {override}")
        return Threshold(float(override), "user")
    doc = load_thresholds(path)
    entries = doc.get("models", {})
    if not entries:
        raise ModelFormatError(f"no shipped threshold in {path}; run bench/face_eval_calibrate.py or pass --threshold")
    fmt = model if model in entries else next((f for f, e in entries.items() if e.get("model_sha256") == model_sha256), None)
    warning = None
    if fmt is None:
        fmt = "fp32" if "fp32" in entries else next(iter(entries))
        warning = (f"model {model} was not calibrated; using the {fmt} model's threshold. "
                   f"Calibrate it (bench/face_eval_calibrate.py) or pass --threshold")
    e = entries[fmt]
    if warning is None and e.get("model_sha256") not in (None, model_sha256):
        warning = (f"the {fmt} model here (sha256 {model_sha256[:12]}) differs from the one the threshold was "
                   f"calibrated on ({str(e.get('model_sha256'))[:12]}); results may shift")
    return Threshold(float(e["threshold"]), f"shipped:{fmt}", e.get("model_sha256"), warning)


class FaceEngine:
    """Detect, align and embed faces with edgeship's pipeline; pick the one usable face.

    Args:
        model: ``"int8"`` (default), ``"fp32"``, ``"onnx"`` or a path to a descriptor model.
        detector: a detector name for ``edgeship.face.FacePipeline`` (None: its default).
        threads: interpreter threads (None: the runtime's default).
    """

    def __init__(self, model: str = "int8", detector: Optional[str] = None, threads: Optional[int] = None):
        from edgeship._io import sha256_file

        self.face = face_api()
        self.model = model
        self.model_path = model_file(model)
        self.model_sha256 = sha256_file(self.model_path)
        kw = {"embedder": model if model in MODEL_FORMATS else str(self.model_path), "threads": threads}
        if detector:
            kw["detector"] = detector
        self.pipeline = self.face.FacePipeline(**kw)

    @property
    def model_id(self) -> str:
        """``<format or file name>:<sha256>``: what a template was made with."""
        name = self.model if self.model in MODEL_FORMATS else self.model_path.name
        return f"{name}:{self.model_sha256}"

    def read(self, path) -> np.ndarray:
        """An image file as uint8 RGB (grayscale replicated, 16-bit scaled, alpha dropped)."""
        return self.face.read_image(path)

    def faces(self, image: np.ndarray) -> list:
        return list(self.pipeline.faces(image))

    def one_face(self, image: np.ndarray, source: str = "the image"):
        """The single face of ``image``; :class:`FaceRejected` with the reason otherwise."""
        faces = self.faces(image)
        if not faces:
            raise FaceRejected(f"no face found in {source}", "no face", 0)
        if len(faces) > 1:
            raise FaceRejected(f"{len(faces)} faces found in {source}; use an image with exactly one face",
                               "several faces", len(faces))
        emb = np.asarray(faces[0].embedding, np.float32).reshape(-1)
        if not np.all(np.isfinite(emb)):
            raise FaceRejected(f"the face embedding of {source} is not finite (model output broken)", "bad embedding", 1)
        return faces[0]

    def central_face_embedding(self, image: np.ndarray) -> Optional[np.ndarray]:
        """For LFW-style evaluation: the face nearest the image centre (the subject), or None."""
        faces = self.faces(image)
        if not faces:
            return None
        h, w = image.shape[:2]

        def dist(f):
            x0, y0, x1, y1 = f.box
            return ((x0 + x1) / 2 - w / 2) ** 2 + ((y0 + y1) / 2 - h / 2) ** 2

        return np.asarray(min(faces, key=dist).embedding, np.float32).reshape(-1)


def nearest(templates: dict, emb: np.ndarray):
    """``(user, distance)`` of the closest template over all users (min distance per user)."""
    best_user, best_d = None, math.inf
    for user, t in templates.items():
        if len(t) == 0:
            continue
        d = float(np.min(np.linalg.norm(t.astype(np.float64) - emb.astype(np.float64), axis=1)))
        if d < best_d:
            best_user, best_d = user, d
    return best_user, best_d


def decide(templates: dict, emb: np.ndarray, threshold: float) -> dict:
    """Accept when the nearest template is within ``threshold``; returns a result dict.

    Example:
        >>> t = {"ada": np.zeros((1, 128), np.float32), "bob": np.ones((1, 128), np.float32)}
        >>> r = decide(t, np.full(128, 0.01, np.float32), 0.6)
        >>> r["unlocked"], r["user"], round(r["score"], 3)
        (True, 'ada', 0.113)
    """
    user, d = nearest(templates, emb)
    if user is not None and d <= threshold:
        return {"unlocked": True, "user": user, "score": d, "threshold": threshold}
    return {"unlocked": False, "user": None, "score": None if user is None else d, "threshold": threshold,
            "reason": "below threshold",
            "detail": f"nearest enrolled face at distance {d:.3f} > threshold {threshold:.3f}"}


__all__ = ["FaceEngine", "FaceRejected", "Threshold", "threshold_for", "decide", "nearest", "model_file",
           "MODEL_FORMATS", "THRESHOLD_FILE"]
