"""The numpy 5-point shape predictor vs dlib.shape_predictor on the same boxes, real faces."""
from __future__ import annotations

import numpy as np
import pytest

from edgeship.errors import InputSpecError, ModelFormatError
from edgeship.shape_predictor import ShapePredictor, default_model_path

from ._face_align_helpers import dlib_models_dir, dlib_oracle, face_files, load_rgb


@pytest.fixture(scope="module")
def sp():
    dlib_models_dir()
    return ShapePredictor.default()


def test_model_structure(sp):
    assert sp.num_parts == 5 and sp.num_cascades == 15 and sp.num_trees == 500 and sp.depth == 4
    assert len(sp.sha256) == 64


@pytest.mark.shared
def test_landmarks_match_dlib_on_real_faces(shared_dir, sp):
    _, det, dsp = dlib_oracle()
    n, worst, exact = 0, 0.0, 0
    for f in face_files(shared_dir, 60, 20):
        img = load_rgb(f)
        dets = det(img, 1)
        if not dets:
            continue
        r = dets[0]
        ref = np.array([[p.x, p.y] for p in dsp(img, r).parts()], float)   # dlib rounds to integers
        ours = sp.predict(img, (r.left(), r.top(), r.right(), r.bottom()))
        worst = max(worst, float(np.abs(ours - ref).max()))
        exact += bool((np.floor(ours + 0.5) == ref).all())
        # grayscale input gives the same landmarks (intensity of a replicated RGB pixel)
        if n % 10 == 0:
            assert np.array_equal(sp.predict(img[:, :, 0], (r.left(), r.top(), r.right(), r.bottom())), ours)
        n += 1
    assert n >= 60
    assert worst <= 0.5, f"landmarks differ from dlib's by up to {worst:.3f} px"
    assert exact == n, f"only {exact}/{n} faces round to dlib's integer landmarks"


def test_box_and_image_errors(sp):
    img = np.zeros((100, 100, 3), np.uint8)
    for bad in ((1, 2, 3), (10, 10, 5, 50), (0, 0, np.nan, 5), "box"):
        with pytest.raises(InputSpecError):
            sp.predict(img, bad)
    with pytest.raises(InputSpecError):
        sp.predict(np.zeros((100, 100, 4), np.uint8), (10, 10, 50, 50))
    # a box partly outside the image still gives 5 finite points (pixels outside read as 0)
    out = sp.predict(img, (-40, -40, 60, 60))
    assert out.shape == (5, 2) and np.isfinite(out).all()


def test_corrupted_files_raise_model_format_error(tmp_path):
    data = default_model_path().read_bytes()
    for name, blob in [("truncated.dat", data[:len(data) // 20]), ("garbage.dat", b"\x01\x07" + bytes(range(256)) * 4),
                       ("empty.dat", b""), ("version.dat", b"\x01\x02" + data[2:1000])]:
        p = tmp_path / name
        p.write_bytes(blob)
        with pytest.raises(ModelFormatError):
            ShapePredictor.load(p, cache=False)
    with pytest.raises(ModelFormatError):
        ShapePredictor.load(tmp_path / "missing.dat")
