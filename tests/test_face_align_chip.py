"""The numpy face chip vs dlib.get_face_chip on real faces (dlib's own detector + landmarks)."""
from __future__ import annotations

import numpy as np
import pytest

from edgeship.errors import InputSpecError
from edgeship.face_chip import dlib_round, extract_image_chip, face_chip, face_chip_details, pyramid_down2

from ._face_align_helpers import dlib_oracle, face_files, load_rgb


@pytest.mark.shared
def test_chip_matches_dlib_on_real_faces(shared_dir):
    dlib, det, sp = dlib_oracle()
    diffs = []
    for f in face_files(shared_dir, 40, 20):
        img = load_rgb(f)
        dets = det(img, 1)
        if not dets:
            continue
        shape = sp(img, dets[0])
        lm = np.array([[p.x, p.y] for p in shape.parts()], float)
        ref = dlib.get_face_chip(img, shape, 150, 0.25)
        ours = face_chip(img, lm)
        assert ours.shape == ref.shape == (150, 150, 3) and ours.dtype == np.uint8
        diffs.append(np.abs(ours.astype(int) - ref.astype(int)).mean())
    assert len(diffs) >= 45, f"dlib found faces in only {len(diffs)} of 60 images"
    assert max(diffs) <= 1.0, f"mean abs pixel difference up to {max(diffs):.3f}"
    assert np.mean(diffs) < 0.01  # measured: 0.0000 (bit-exact but for rare single pixels)


@pytest.mark.shared
@pytest.mark.parametrize("scale", [0.6, 2.0, 4.0])
def test_chip_matches_dlib_across_pyramid_levels_and_borders(shared_dir, scale):
    """Large faces go through dlib's pyramid_down<2>; a face cut by the border gets black fill."""
    import cv2

    dlib, det, sp = dlib_oracle()
    n = 0
    for f in face_files(shared_dir, 6, 0):
        img = cv2.resize(load_rgb(f), None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        img = np.ascontiguousarray(img[int(img.shape[0] * 0.3):, int(img.shape[1] * 0.35):])
        dets = det(img, 1 if scale < 1 else 0)
        if not dets:
            continue
        shape = sp(img, dets[0])
        lm = np.array([[p.x, p.y] for p in shape.parts()], float)
        ref = dlib.get_face_chip(img, shape, 150, 0.25)
        assert np.abs(face_chip(img, lm).astype(int) - ref.astype(int)).mean() <= 1.0
        n += 1
    assert n >= 3


def test_pyramid_down2_known_values():
    img = np.full((20, 30, 3), 200, np.uint8)
    out = pyramid_down2(img)
    assert out.shape == (8, 13, 3) and (out == 200).all()  # 16*16*200/256 = 200 exactly
    assert pyramid_down2(np.zeros((8, 30), np.uint8)).shape == (0, 0)


def test_chip_details_upright_face_and_errors():
    lm = np.array([[150, 110], [132, 111], [95, 110], [113, 111], [123, 145]], float)
    d = face_chip_details(lm)
    assert (d.rows, d.cols) == (150, 150) and abs(d.angle) < 0.05
    # rotating the landmarks by 90 degrees about a point rotates the chip rectangle's angle
    c = lm.mean(0)
    rot = (lm - c) @ np.array([[0, 1], [-1, 0]]).T + c
    assert abs(abs(face_chip_details(rot).angle - d.angle) - np.pi / 2) < 1e-6
    assert dlib_round([0.5, -0.5, 1.49]).tolist() == [1.0, 0.0, 1.0]
    img = np.zeros((250, 250, 3), np.uint8)
    for bad in (np.zeros((4, 2)), np.full((5, 2), np.nan), "eyes"):
        with pytest.raises(InputSpecError):
            face_chip(img, bad)
    with pytest.raises(InputSpecError, match="uint8"):
        face_chip(img.astype(np.float32), lm)
    with pytest.raises(InputSpecError, match="empty"):
        face_chip(np.zeros((0, 5, 3), np.uint8), lm)
    with pytest.raises(InputSpecError):
        face_chip_details(lm, size=0)
    # a face far outside the image gives a black chip, not a crash
    assert (extract_image_chip(img, face_chip_details(lm + 5000)) == 0).all()


def test_docstring_examples():
    import doctest

    import edgeship.face_chip as m

    r = doctest.testmod(m)
    assert r.failed == 0 and r.attempted > 0
