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
from .preprocessing import read_image  # noqa: F401  (public: edgeship.face.read_image)

__all__ = ["Face", "FacePipeline", "read_image", "DEFAULT_DETECTOR", "DETECTORS", "EMBEDDER_FORMATS", "distance"]

EMBEDDER_FORMATS = ("int8", "fp32", "onnx")


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
        calibration: for "int8": what :func:`edgeship.models.face.model_path` accepts (150x150
            chips as an array, ``.npy``/``.npz`` or a folder of chip images; when None,
            ``$EDGESHIP_FACE_CALIBRATION``, else seeded synthetic chips, recorded beside the
            model), or *photos*: a folder of face images of any size or a list of image paths,
            which this pipeline turns into chips (:meth:`chips_from`) first. 100-300 faces like
            the ones the device will see are plenty.
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
        if embedder == "int8" and _are_photos(calibration):
            calibration = self.chips_from(calibration)
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
            lm, chip = self._align(img, d)
            out.append(Face(tuple(float(v) for v in d.box), d.score, lm, chip, None, d))
        if out and self.embedder is not None:
            emb = self.embed(np.stack([f.chip for f in out]))
            for f, e in zip(out, emb):
                f.embedding = e
        return out

    def _align(self, img: np.ndarray, det: Detection):
        """dlib's landmarks on the box the predictor expects, then the chip from them rounded as dlib does."""
        lm = self.shape_predictor.predict(img, self.detector.landmark_box(det))
        return lm, face_chip(img, dlib_round(lm), CHIP_SIZE, CHIP_PADDING)

    def chips_from(self, images, *, limit: Optional[int] = None) -> np.ndarray:
        """Aligned chips [N,150,150,3] uint8 from photos: the best face of each image that has one.

        Args:
            images: a folder of images, or a list of paths / RGB arrays.
            limit: stop after this many chips.

        Raises:
            InputSpecError: no face found in any of the images, or an unreadable file.
        """
        if isinstance(images, (str, os.PathLike)):
            folder = Path(images)
            if not folder.is_dir():
                raise InputSpecError(f"{folder} is not a folder of images")
            images = sorted(p for p in folder.iterdir() if p.suffix.lower() in _PHOTO_SUFFIXES)
        chips = []
        for im in images:
            img = _as_rgb(read_image(im) if isinstance(im, (str, os.PathLike)) else im)
            dets = self.detector.detect(img)
            if dets:
                chips.append(self._align(img, dets[0])[1])
            if limit is not None and len(chips) >= limit:
                break
        if not chips:
            raise InputSpecError("no face found in any of the images given to make chips from")
        return np.stack(chips)

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


_PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp")


def _are_photos(calibration) -> bool:
    """True for a list of image paths, or a folder whose first image is not a 150x150 chip."""
    if isinstance(calibration, (list, tuple)) and calibration and isinstance(calibration[0], (str, os.PathLike)):
        return True
    if isinstance(calibration, (str, os.PathLike)) and Path(calibration).is_dir():
        first = next((p for p in sorted(Path(calibration).iterdir()) if p.suffix.lower() in _PHOTO_SUFFIXES), None)
        return first is not None and read_image(first).shape[:2] != (CHIP_SIZE, CHIP_SIZE)
    return False


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
