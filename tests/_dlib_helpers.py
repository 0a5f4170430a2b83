"""dlib as the oracle for the dlib importer's tests and bench (never used by edgeship itself).

Real face chips: images from ``shared/data/faces`` (LFW is grayscale: replicated to RGB; ORL
likewise), dlib's HOG frontal detector, its 5-point shape predictor and ``get_face_chip``
(150x150, padding 0.25) -- exactly the chip dlib's descriptor is meant for.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np


def dlib_models_dir() -> Optional[Path]:
    """face_recognition_models' model folder, found without importing it (it needs pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / "models"
    return p if p.is_dir() else None


def face_images(shared: Path, n: int, seed: int = 0) -> List[Path]:
    """``n`` image paths: a seeded, deterministic mix of LFW (3/4) and ORL (1/4)."""
    rng = np.random.default_rng(seed)
    lfw = sorted((shared / "data" / "faces" / "lfw_dev").glob("*/*.jpg"))
    orl = sorted((shared / "data" / "faces" / "orl").glob("s*/*.pgm"))
    n_orl = min(len(orl), n // 4)
    pick_l = rng.choice(len(lfw), min(len(lfw), n - n_orl), replace=False) if lfw else []
    pick_o = rng.choice(len(orl), n_orl, replace=False) if orl else []
    return [lfw[i] for i in sorted(pick_l)] + [orl[i] for i in sorted(pick_o)]


def read_rgb(path: Path) -> np.ndarray:
    import cv2

    g = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if g is None:
        raise FileNotFoundError(path)
    return np.ascontiguousarray(np.repeat(g[:, :, None], 3, axis=2))


def dlib_chips(paths: List[Path], models: Path) -> Tuple[np.ndarray, List[Path]]:
    """dlib's 150x150 chips of the first face dlib's HOG detector finds in each image (upsampling once).

    Returns the chips ``[N, 150, 150, 3]`` uint8 and the images they came from (images without a
    detected face are left out).
    """
    import dlib

    det = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    chips, used = [], []
    for p in paths:
        img = read_rgb(p)
        d = det(img, 1)
        if len(d) == 0:
            continue
        best = max(d, key=lambda r: r.area())
        chips.append(dlib.get_face_chip(img, sp(img, best), size=150, padding=0.25))
        used.append(p)
    return (np.stack(chips) if chips else np.zeros((0, 150, 150, 3), np.uint8)), used


def dlib_descriptors(chips: np.ndarray, models: Path) -> np.ndarray:
    """dlib's 128-d descriptors of 150x150 chips."""
    import dlib

    fr = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))
    return np.array([np.array(fr.compute_face_descriptor(c)) for c in chips], dtype=np.float64)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float64).reshape(len(a), -1)
    b = np.asarray(b, np.float64).reshape(len(b), -1)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def iou(a, b) -> float:
    """IoU of two (left, top, right, bottom) inclusive rectangles."""
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    area = lambda r: (r[2] - r[0] + 1) * (r[3] - r[1] + 1)
    return inter / (area(a) + area(b) - inter)
