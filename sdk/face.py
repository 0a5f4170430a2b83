"""``edgeship.face``: detect -> 5 landmarks -> aligned chip -> 128-d descriptor, on-device.

The pipeline a face-unlock app needs, in a few lines, with every model from pip or the repo:

* detection: YuNet by default (shipped in ``models/weights``, Apache-2.0; chosen on accuracy and
  latency in ``bench/face_detectors.py``), or BlazeFace, UltraFace, dlib's MMOD
  (:mod:`edgeship.face_detect`);
* landmarks: dlib's 5-point regression-tree cascade in numpy (:mod:`edgeship.shape_predictor`),
  run on the detector's box mapped to the box it was trained on;
* alignment: dlib's 150x150 face chip with padding 0.25 (:mod:`edgeship.face_chip`);
* descriptor: dlib's ResNet converted to TFLite int8 (default), TFLite fp32 or ONNX by
  :func:`edgeship.models.face.model_path`, or your own model file. Compare descriptors with the
  Euclidean distance (dlib's usual threshold is 0.6).

Example (a door app):
    >>> import numpy as np
    >>> from edgeship import face
    >>> pipe = face.FacePipeline(threads=1)                       # doctest: +SKIP
    >>> faces = pipe.faces(face.read_image("visitor.jpg"))        # doctest: +SKIP
    >>> if len(faces) == 1 and np.linalg.norm(faces[0].embedding - template) < 0.6:  # doctest: +SKIP
    ...     open_door()

Only numpy is imported with this module; OpenCV (the ``[face]`` extra) is imported when an image
is read or resized, and the interpreters when a model is loaded.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Union

import numpy as np

from .errors import EdgeshipError, InputSpecError, ModelFormatError
from .face_chip import CHIP_PADDING, CHIP_SIZE, dlib_round, face_chip
from .face_detect import DEFAULT_DETECTOR, DETECTORS, Detection, FaceDetector, create_detector

__all__ = ["Face", "FacePipeline", "read_image", "DEFAULT_DETECTOR", "DETECTORS", "EMBEDDER_FORMATS", "distance"]

EMBEDDER_FORMATS = ("int8", "fp32", "onnx")
_IMAGE_EXTS = "JPEG, PNG, BMP, PGM/PPM, TIFF, WebP"


@dataclass
class Face:
    """One face found in an image.

    Attributes:
        box: (x0, y0, x1, y1) float image coordinates from the detector.
        score: the detector's confidence.
        landmarks: (5, 2) float (x, y) in dlib's 5-point order (right eye outer and inner corner,
            left eye outer and inner corner, base of the nose; the subject's right/left). The chip
            is cut from these rounded to integers, as dlib does.
        chip: (150, 150, 3) uint8 RGB aligned face (dlib's ``get_face_chip``, padding 0.25).
        embedding: (128,) float32 descriptor, or None when the pipeline has no embedder.
        detection: the raw :class:`~edgeship.face_detect.Detection` (detector keypoints included).
    """

    box: tuple
    score: float
    landmarks: np.ndarray
    chip: np.ndarray
    embedding: Optional[np.ndarray]
    detection: Optional[Detection] = None


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two descriptors (dlib's measure: same person below ~0.6).

    >>> distance(np.zeros(128, np.float32), np.full(128, 0.05, np.float32)) < 0.6
    True
    """
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


class FacePipeline:
    """Detect, align and embed faces.

    Args:
        detector: a detector name (:data:`~edgeship.face_detect.DETECTORS`; default "yunet") or a
            :class:`~edgeship.face_detect.FaceDetector`.
        embedder: "int8" (default), "fp32" or "onnx" for dlib's descriptor converted by
            :func:`edgeship.models.face.model_path` (built and cached on first use, parity-checked
            against the source), a path to a model with input [N,150,150,3] float32 RGB 0-255 and
            output [N,128], or None for detection and alignment only (``Face.embedding`` is None).
        threads: interpreter threads for both networks (None: the runtime's default).
        calibration: for "int8": calibration chips passed to ``model_path`` (see there for what is
            used when None).
        score_threshold: override the detector's score threshold.

    Raises:
        InputSpecError: unknown detector or embedder format.
        ModelFormatError: an embedder file that is not a descriptor model.
        MissingDependencyError: a missing extra (``[face]`` for OpenCV and the dlib models).
    """

    def __init__(self, detector: Union[str, FaceDetector] = DEFAULT_DETECTOR,
                 embedder: Union[str, os.PathLike, None] = "int8", threads: Optional[int] = None, *,
                 calibration=None, score_threshold: Optional[float] = None):
        from .shape_predictor import ShapePredictor

        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise InputSpecError(f"threads must be a positive integer or None, got {threads!r}")
        self.threads = threads
        if isinstance(detector, FaceDetector):
            self.detector = detector
        elif isinstance(detector, str):
            self.detector = create_detector(detector, threads=threads, score_threshold=score_threshold)
        else:
            raise InputSpecError(f"detector must be one of {', '.join(DETECTORS)} or a FaceDetector, "
                                 f"got {type(detector).__name__}")
        self.shape_predictor = ShapePredictor.default()
        self.embedder = None if embedder is None else _load_embedder(embedder, threads, calibration)
        self.embedder_name = None if embedder is None else str(embedder)

    def faces(self, image: np.ndarray, *, max_faces: Optional[int] = None) -> List[Face]:
        """Every face in ``image``, best detection first.

        Args:
            image: HxWx3 uint8 RGB (as :func:`read_image` returns) or HxW uint8 grayscale.
            max_faces: keep at most this many (the highest scoring).

        Raises:
            InputSpecError: not a uint8 image.
        """
        img = _as_rgb(image)
        dets = self.detector.detect(img)
        if max_faces is not None:
            dets = dets[:max(0, int(max_faces))]
        out = []
        for d in dets:
            lm = self.shape_predictor.predict(img, self.detector.landmark_box(d))
            chip = face_chip(img, dlib_round(lm), CHIP_SIZE, CHIP_PADDING)
            out.append(Face(tuple(float(v) for v in d.box), d.score, lm, chip, None, d))
        if out and self.embedder is not None:
            emb = self.embed(np.stack([f.chip for f in out]))
            for f, e in zip(out, emb):
                f.embedding = e
        return out

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """128-d descriptors of aligned chips ([N,150,150,3] or [150,150,3] uint8/float RGB 0-255).

        Raises:
            InputSpecError: wrong shape, or the pipeline has no embedder.
        """
        if self.embedder is None:
            raise InputSpecError("this FacePipeline was made with embedder=None; pass embedder='int8', 'fp32', "
                                 "'onnx' or a model path to compute descriptors")
        c = np.asarray(chips)
        if c.ndim == 3:
            c = c[None]
        if c.ndim != 4 or c.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
            raise InputSpecError(f"chips must be [N,150,150,3] RGB (from FacePipeline.faces), got shape {c.shape}")
        out = self.embedder.predict(c.astype(np.float32))
        return np.asarray(out, np.float32).reshape(len(c), -1)


def _load_embedder(embedder, threads, calibration):
    import edgeship

    if isinstance(embedder, str) and embedder in EMBEDDER_FORMATS:
        try:
            from edgeship.models import face as face_models
        except ImportError as exc:
            raise EdgeshipError(f"the descriptor model builder (edgeship.models.face) is not available in this "
                                f"edgeship ({exc}); pass a converted descriptor model path as embedder=") from exc
        path = face_models.model_path("descriptor", embedder, calibration=calibration) if embedder == "int8" \
            else face_models.model_path("descriptor", embedder)
    elif isinstance(embedder, (str, os.PathLike)):
        path = Path(embedder)
        if not path.exists():
            raise InputSpecError(f"embedder must be one of {', '.join(EMBEDDER_FORMATS)} or an existing model "
                                 f"file, got {str(embedder)!r} (no such file)")
    else:
        raise InputSpecError(f"embedder must be one of {', '.join(EMBEDDER_FORMATS)}, a model path or None, "
                             f"got {type(embedder).__name__}")
    m = edgeship.load(path, threads=threads)
    shape = tuple(m.inputs[0].shape) if m.inputs else ()
    if len(m.inputs) != 1 or len(shape) != 4 or tuple(shape[1:]) != (CHIP_SIZE, CHIP_SIZE, 3) or len(m.outputs) != 1 \
            or m.outputs[0].shape[-1] != 128:
        raise ModelFormatError(
            f"{path}: not a face descriptor model; expected one input [N,150,150,3] and one output [N,128], found "
            f"inputs {[tuple(s.shape) for s in m.inputs]} and outputs {[tuple(s.shape) for s in m.outputs]}")
    return m


def _as_rgb(image) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise InputSpecError(f"image must be a numpy array, got {type(image).__name__}; read files with "
                             f"edgeship.face.read_image")
    if image.dtype != np.uint8:
        raise InputSpecError(f"image must be uint8 (0-255), got {image.dtype}; edgeship.face.read_image scales "
                             f"16-bit files down")
    if image.ndim == 2:
        return np.ascontiguousarray(np.repeat(image[:, :, None], 3, 2))
    if image.ndim == 3 and image.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(image, 3, 2))
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputSpecError(f"image must be HxWx3 RGB or HxW grayscale, got shape {image.shape}")
    return np.ascontiguousarray(image)


def read_image(path: Union[str, os.PathLike]) -> np.ndarray:
    """Read an image file as HxWx3 uint8 RGB.

    Grayscale is replicated to three channels, 16-bit images are scaled to 8 bits
    (``round(v / 257)``), an alpha channel is dropped, and the EXIF orientation of photos is
    applied.

    Raises:
        InputSpecError: the file is missing, unreadable, empty, or not an image OpenCV can decode
            (JPEG, PNG, BMP, PGM/PPM, TIFF, WebP).
        MissingDependencyError: OpenCV (the ``[face]`` extra) is not installed.
    """
    from ._deps import require

    p = Path(path)
    if p.is_dir():
        raise InputSpecError(f"{p} is a folder, not an image file")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputSpecError(f"cannot read image {p}: {exc.strerror or exc}") from exc
    if not data:
        raise InputSpecError(f"{p} is empty (0 bytes); expected an image ({_IMAGE_EXTS})")
    cv2 = require("cv2", "face", "reading images")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    if img is None or img.size == 0:
        raise InputSpecError(f"{p} is not an image OpenCV can decode ({_IMAGE_EXTS}); it starts with {data[:8]!r}")
    if img.dtype == np.uint16:
        img = ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif img.dtype in (np.float32, np.float64):
        img = np.clip(np.nan_to_num(img) * (255.0 if float(np.nanmax(img)) <= 1.0 else 1.0), 0, 255).round().astype(np.uint8)
    elif img.dtype != np.uint8:
        raise InputSpecError(f"{p}: unsupported pixel type {img.dtype}; expected 8- or 16-bit images")
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[:, :, None], 3, 2))
    if img.shape[2] == 4:
        img = img[:, :, :3]
    return np.ascontiguousarray(img[:, :, ::-1])  # OpenCV decodes to BGR
