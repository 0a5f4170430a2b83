"""Face detector decoders: YuNet vs OpenCV's FaceDetectorYN, all detectors on real faces."""
from __future__ import annotations

import numpy as np
import pytest

from edgeship.errors import InputSpecError
from edgeship.face_detect import (DETECTORS, FaceDetector, create_detector, iou, nms, ssd_anchor_centers,
                                  weighted_nms)

from ._face_align_helpers import face_files, load_rgb

cv2 = pytest.importorskip("cv2", reason="OpenCV (the [face] extra) is not installed")


@pytest.fixture(scope="module")
def detectors(tmp_path_factory):
    import os

    from tests.conftest import shared_path

    os.environ.setdefault("EDGESHIP_MIRROR", str(shared_path() / "models"))
    out = {"yunet": create_detector("yunet", threads=1), "blazeface": create_detector("blazeface", threads=1)}
    try:
        out["ultraface"] = create_detector("ultraface", threads=1)  # not shipped: mirror or download
    except Exception:  # noqa: BLE001 - tested when available
        pass
    return out


@pytest.mark.shared
def test_yunet_decoder_matches_opencv(shared_dir, detectors):
    from edgeship import models

    cvdet = cv2.FaceDetectorYN.create(str(models.path("yunet_n_320")), "", (320, 320), 0.6, 0.3, 5000)
    yn = detectors["yunet"]
    n = 0
    for f in face_files(shared_dir, 12, 4):
        img = load_rgb(f, orl_scale=1)
        h, w = img.shape[:2]
        s = min(320 / w, 320 / h)
        canvas = np.zeros((320, 320, 3), np.uint8)
        canvas[:round(h * s), :round(w * s)] = cv2.resize(img, (round(w * s), round(h * s)))
        _, ref = cvdet.detect(np.ascontiguousarray(canvas[:, :, ::-1]))
        ours = yn.detect(canvas)
        assert len(ours) == (0 if ref is None else len(ref))
        for o, r in zip(sorted(ours, key=lambda d: -d.score), ref if ref is not None else []):
            assert np.allclose([o.box[0], o.box[1], o.width, o.height], r[:4], atol=0.05)
            assert np.allclose(o.keypoints, r[4:14].reshape(5, 2), atol=0.05)
            assert abs(o.score - r[14]) < 1e-3
            n += 1
    assert n >= 14


@pytest.mark.shared
def test_every_detector_finds_the_centred_face(shared_dir, detectors):
    for name, det in detectors.items():
        found = 0
        files = face_files(shared_dir, 16, 8)
        for f in files:
            img = load_rgb(f)
            h, w = img.shape[:2]
            dets = det.detect(img)
            assert all(d.detector == name and d.box[2] > d.box[0] for d in dets)
            assert [d.score for d in dets] == sorted((d.score for d in dets), reverse=True)
            hit = [d for d in dets if d.box[0] < w / 2 < d.box[2] and d.box[1] < h / 2 < d.box[3]]
            if hit:
                found += 1
                lb = det.landmark_box(hit[0])
                assert lb[2] - lb[0] == lb[3] - lb[1] > 20  # a square dlib rectangle
        assert found >= len(files) - 1, f"{name} found {found}/{len(files)} centred faces"


def test_nms_helpers():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30.]])
    scores = np.array([0.9, 0.8, 0.7])
    assert nms(boxes, scores, 0.3).tolist() == [0, 2]
    assert nms(boxes, scores, 0.9).tolist() == [0, 1, 2]
    b, s, k = weighted_nms(boxes, scores, None, 0.3)
    assert len(b) == 2 and 0 < b[0][0] < 1 and s.tolist() == [0.9, 0.7] and k is None
    assert iou(boxes[0], boxes[2:])[0] == 0
    assert ssd_anchor_centers(128, 128, (8, 16, 16, 16), 2).shape == (896, 2)


def test_detector_input_errors(detectors):
    det = detectors["yunet"]
    for bad in (np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32), np.zeros((1, 10, 3), np.uint8), "x"):
        with pytest.raises(InputSpecError):
            det.detect(bad)
    with pytest.raises(InputSpecError):
        create_detector("haar")
    with pytest.raises(InputSpecError):
        create_detector("yunet", score_threshold=2)
    assert det.detect(np.zeros((480, 640, 3), np.uint8)) == []
    assert "yunet" in DETECTORS and isinstance(det, FaceDetector)
