"""edgeship.face: read_image and FacePipeline (detection + landmarks + chip; descriptors when the
converted model is available)."""
from __future__ import annotations

import numpy as np
import pytest

from edgeship.errors import InputSpecError, ModelFormatError

from ._face_align_helpers import dlib_models_dir, dlib_oracle, face_files, load_rgb

cv2 = pytest.importorskip("cv2", reason="OpenCV (the [face] extra) is not installed")
face = pytest.importorskip("edgeship.face")


# -- read_image ---------------------------------------------------------------------------------
def test_read_image_colour_order_gray_16bit_alpha(tmp_path):
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    cv2.imwrite(str(tmp_path / "c.png"), rgb[:, :, ::-1])
    assert np.array_equal(face.read_image(tmp_path / "c.png"), rgb)

    g = np.arange(600, dtype=np.uint8).reshape(20, 30)
    cv2.imwrite(str(tmp_path / "g.png"), g)
    out = face.read_image(tmp_path / "g.png")
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8 and (out == g[:, :, None]).all()

    g16 = (np.arange(600).reshape(20, 30) * 109).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "g16.png"), g16)
    assert cv2.imread(str(tmp_path / "g16.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16  # really 16-bit
    out = face.read_image(tmp_path / "g16.png")
    assert out.dtype == np.uint8 and out.shape == (20, 30, 3)
    assert np.abs(out[..., 0].astype(int) - np.round(g16 / 257.0)).max() <= 1
    assert out.max() >= 230

    rgba = np.dstack([rgb[:, :, ::-1], np.full((20, 30), 7, np.uint8)])
    cv2.imwrite(str(tmp_path / "a.png"), rgba)
    assert np.array_equal(face.read_image(tmp_path / "a.png"), rgb)


def test_read_image_errors(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("this is not a picture\n" * 10)
    (tmp_path / "noise.png").write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    for name, what in [("missing.jpg", "cannot read"), ("empty.jpg", "empty"), ("text.jpg", "not an image"),
                       ("noise.png", "not an image")]:
        with pytest.raises(InputSpecError, match=what):
            face.read_image(tmp_path / name)
    with pytest.raises(InputSpecError, match="folder"):
        face.read_image(tmp_path)


# -- pipeline (no descriptor) ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def pipe():
    dlib_models_dir()
    return face.FacePipeline(embedder=None, threads=1)


def test_no_face_in_blank_and_noise(pipe):
    assert pipe.faces(np.full((480, 640, 3), 128, np.uint8)) == []
    assert pipe.faces(np.random.default_rng(1).integers(0, 256, (240, 320, 3), dtype=np.uint8)) == []


@pytest.mark.shared
def test_two_faces_grayscale_and_alignment(shared_dir, pipe):
    # two LFW images that each show one person only (LFW often has other people at the edges)
    singles = [im for im in (load_rgb(f) for f in face_files(shared_dir, 12, 0)) if len(pipe.faces(im)) == 1]
    a, b = singles[:2]
    two = np.concatenate([a, b], axis=1)                           # 250 x 500, two people
    faces = pipe.faces(two)
    assert len(faces) == 2
    centres = sorted((f.box[0] + f.box[2]) / 2 for f in faces)
    assert centres[0] < 250 < centres[1]
    for f in faces:
        x0, y0, x1, y1 = f.box
        assert f.landmarks.shape == (5, 2) and f.chip.shape == (150, 150, 3) and f.chip.dtype == np.uint8
        assert ((f.landmarks[:, 0] > x0) & (f.landmarks[:, 0] < x1)).all()
        assert f.embedding is None and 0 < f.score <= 1
        # dlib order: points 0-1 are the subject's right eye (image left of ... right side of the image
        # for a frontal face: larger x than the left eye's points 2-3)
        assert f.landmarks[:2, 0].mean() > f.landmarks[2:4, 0].mean() and f.landmarks[4, 1] > f.landmarks[:4, 1].max()
    assert len(pipe.faces(two, max_faces=1)) == 1
    gray = pipe.faces(two[:, :, 0])                                # HxW grayscale input
    assert len(gray) == 2 and np.allclose(sorted(g.box for g in gray), sorted(f.box for f in faces))


@pytest.mark.shared
def test_pipeline_landmarks_and_chips_agree_with_dlib(shared_dir, pipe):
    """The default detector's box is mapped to the box dlib's predictor expects: the landmarks
    then agree with dlib's own pipeline (HOG box + predictor) within a few % of the eye distance."""
    dlib, det, sp = dlib_oracle()
    errs, mads = [], []
    for f in face_files(shared_dir, 30, 0):
        img = load_rgb(f)
        refs = det(img, 1)
        faces = pipe.faces(img)
        if not refs or not faces:
            continue
        shape = sp(img, refs[0])
        ref = np.array([[p.x, p.y] for p in shape.parts()], float)
        ours = min(faces, key=lambda x: np.abs(x.landmarks - ref).sum()).landmarks
        iod = np.linalg.norm(ref[:2].mean(0) - ref[2:4].mean(0))
        errs.append(np.linalg.norm(ours - ref, axis=1).mean() / iod)
        chip = min(faces, key=lambda x: np.abs(x.landmarks - ref).sum()).chip
        mads.append(np.abs(chip.astype(int) - dlib.get_face_chip(img, shape, 150, 0.25).astype(int)).mean())
    assert len(errs) >= 25
    assert np.mean(errs) < 0.03 and np.max(errs) < 0.12, (np.mean(errs), np.max(errs))
    assert np.mean(mads) < 6, np.mean(mads)


def test_bad_inputs(pipe, tmp_path):
    for bad in (np.zeros((10, 10, 3), np.float32), np.zeros((10, 10, 4), np.uint8), [[1, 2]], None):
        with pytest.raises(InputSpecError):
            pipe.faces(bad)
    with pytest.raises(InputSpecError):
        pipe.embed(np.zeros((150, 150, 3), np.uint8))
    with pytest.raises(InputSpecError):
        face.FacePipeline(detector="nope", embedder=None)
    with pytest.raises(InputSpecError):
        face.FacePipeline(embedder=str(tmp_path / "missing.tflite"))
    with pytest.raises(InputSpecError):
        face.FacePipeline(embedder=None, threads=0)


def test_embedder_must_be_a_descriptor_model(weights):
    with pytest.raises(ModelFormatError, match="descriptor"):
        face.FacePipeline(embedder=weights / "shapes_cnn_fp32.tflite")
