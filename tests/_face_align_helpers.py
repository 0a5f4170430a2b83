"""Shared bits for the face alignment / pipeline tests: real faces from ../shared and the dlib oracle."""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import List

import numpy as np
import pytest


def dlib_models_dir() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("face-recognition-models is not installed (pip install 'edgeship[face]')")
    return Path(spec.submodule_search_locations[0]) / "models"


def dlib():
    return pytest.importorskip("dlib", reason="dlib-bin (the test oracle, [dev] extra) is not installed")


def gray_to_rgb(g: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(g[:, :, None], 3, 2))


def face_files(shared: Path, n_lfw: int, n_orl: int) -> List[Path]:
    """A deterministic spread of LFW (250x250) and ORL (92x112) images."""
    lfw = sorted((shared / "data/faces/lfw_dev").glob("*/*.jpg"))
    orl = sorted((shared / "data/faces/orl").glob("s*/*.pgm"))
    pick = lambda xs, n: [xs[i] for i in np.linspace(0, len(xs) - 1, n).astype(int)] if n else []
    return pick(lfw, n_lfw) + pick(orl, n_orl)


def load_rgb(path: Path, orl_scale: int = 3) -> np.ndarray:
    """Grayscale file -> RGB; ORL images are upscaled (faces of ~60 px are below dlib's HOG minimum)."""
    import cv2

    g = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if path.suffix == ".pgm" and orl_scale != 1:
        g = cv2.resize(g, None, fx=orl_scale, fy=orl_scale, interpolation=cv2.INTER_LINEAR)
    return gray_to_rgb(g)


@lru_cache(maxsize=1)
def dlib_oracle():
    d = dlib()
    m = dlib_models_dir()
    return d, d.get_frontal_face_detector(), d.shape_predictor(str(m / "shape_predictor_5_face_landmarks.dat"))
