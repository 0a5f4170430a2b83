"""Face detectors over :func:`edgeship.load`: YuNet, BlazeFace, UltraFace decoders and dlib's MMOD.

Every detector takes an HxWx3 uint8 RGB image and returns :class:`Detection` objects (best
first) with a box in image pixels, a score in [0, 1] and, when the network gives them, its own
keypoints. The networks' post-processing is re-implemented in numpy (facts from OpenCV's
``FaceDetectorYN`` for YuNet, MediaPipe's SSD anchors / ``TensorsToDetections`` for BlazeFace,
and the Ultra-Light-Fast-Generic-Face-Detector's prior boxes for UltraFace):

=========== ============================= ========= ==========================================
name        model (registry)              input     decoding
=========== ============================= ========= ==========================================
yunet       ``yunet_n_320`` (ONNX, shipped) 320x320  anchor-free, strides 8/16/32,
                                                     score = sqrt(cls * obj), 5 keypoints
blazeface   ``blazeface_short`` (TFLite,   128x128   896 SSD anchors (strides 8, 16), sigmoid
            shipped)                                 scores, weighted NMS, 6 keypoints
ultraface   ``ultraface_rfb_320`` (ONNX,   320x240   4,420 priors, variances 0.1 / 0.2, softmax
            mirror / URL)                            scores, no keypoints
mmod        dlib's CNN (converted by                 dlib's tiled pyramid (:mod:`edgeship.mmod`)
            ``edgeship.models.face``)
=========== ============================= ========= ==========================================

Choice of the default (``bench/face_detectors.py --fit --n-lfw 400 --n-orl 100``, held-out half,
640x480 latency with 1 thread as process CPU time on the shared 2-core dev machine):

=========== ======== ======== ================== ================== ==============
detector    LFW      ORL      small face (40 px  landmarks vs dlib  latency (CPU)
            found    found    in 640x480) found  LFW / ORL (% IOD)
=========== ======== ======== ================== ================== ==============
yunet       100 %    100 %    90 %               0.78 / 7.1         10.2 ms
blazeface   100 %    100 %    0 %                0.76 / 7.1         4.8 ms
ultraface   100 %    100 %    100 %              0.83 / 8.3         18.5 ms
=========== ======== ======== ================== ================== ==============

(landmarks: mean distance to the points dlib's own pipeline -- HOG box + predictor -- gives, in %
of the eye-to-eye distance; ORL's 92x112 images crop the head tightly, so detector and HOG boxes
differ more there.)

YuNet is the default: as accurate as the others on frontal faces, it also finds small/distant
faces (BlazeFace short-range does not: its 128x128 input is meant for selfie distances) at half
UltraFace's cost, and it ships in the repo (317 KB, Apache-2.0) as does BlazeFace (229 KB).

The image is letterboxed into the network input (aspect ratio kept, black padding at the
right/bottom) with OpenCV's bilinear resize (the ``[face]`` extra).

:meth:`FaceDetector.landmark_box` maps a detection to the box dlib's 5-point shape predictor
expects (it was trained on dlib's detector boxes). The mapping for each detector is a fit on
real faces recorded in :data:`LANDMARK_BOX_FITS` (see ``bench/face_detectors.py --fit``).

Example:
    >>> det = create_detector("yunet", threads=1)                  # doctest: +SKIP
    >>> [d.box for d in det.detect(rgb)]                           # doctest: +SKIP
    [array([ 61.2,  70.9, 181.7, 214.3])]
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .errors import InputSpecError
from .preprocessing import ImagePreprocessing, resize

DEFAULT_DETECTOR = "yunet"
DETECTORS = ("yunet", "blazeface", "ultraface", "mmod")

#: Box (centre x, centre y, side) that dlib's 5-point predictor expects, as a function of a
#: detector's box: ``cx' = cx + a[0]*w``, ``cy' = cy + a[1]*h``, ``side = a[2]*w + a[3]*h``
#: (dlib rectangle: left = cx' - side/2 ... inclusive right = left + side - 1). Least-squares fit
#: on LFW dev faces against dlib's HOG frontal detector boxes (the predictor's training boxes),
#: by ``bench/face_detectors.py --fit``; "n" is the number of faces fitted.
LANDMARK_BOX_FITS: Dict[str, dict] = {
    # bench/face_detectors.py --fit --n-lfw 400 --n-orl 100 (fit on the 248 even-indexed faces dlib's
    # HOG detector also finds; the held-out odd half: landmarks within 0.8 % (LFW) / 7 % (ORL) of the
    # eye distance on average vs dlib's own pipeline). MMOD boxes are dlib's own: kept as they are.
    "yunet": {"a": [-0.0312, 0.0451, 0.4761, 0.4761], "n": 248},
    "blazeface": {"a": [-0.0295, -0.0558, 0.494, 0.494], "n": 248},
    "ultraface": {"a": [-0.0395, -0.0146, 0.46, 0.46], "n": 247},
    "mmod": {"a": [0.0, 0.0, 0.5, 0.5], "n": 0},
}


@dataclass
class Detection:
    """One face found by a detector.

    Attributes:
        box: (x0, y0, x1, y1) float image coordinates (x1, y1: right/bottom edge).
        score: confidence in [0, 1] (MMOD: dlib's raw score, which is not bounded).
        keypoints: (K, 2) detector keypoints in image coordinates, or None. YuNet: right eye,
            left eye, nose tip, right and left mouth corner; BlazeFace: right eye, left eye,
            nose tip, mouth centre, right and left ear tragion (the subject's right/left).
        detector: the detector's name.
    """

    box: np.ndarray
    score: float
    keypoints: Optional[np.ndarray] = None
    detector: str = ""

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])


class FaceDetector:
    """Base class: letterbox, run the network, decode, map back to image coordinates.

    Args:
        model: a path / registry file accepted by :func:`edgeship.load`, or a loaded
            :class:`edgeship.Model`.
        score_threshold: keep detections scoring at least this.
        nms_threshold: IoU above which a lower-scoring overlapping box is suppressed.
        threads: interpreter threads (None: the runtime's default).
    """

    name = "base"
    input_size: Tuple[int, int] = (320, 320)  # (width, height)
    score_threshold = 0.5
    nms_threshold = 0.3

    def __init__(self, model, *, score_threshold: Optional[float] = None, nms_threshold: Optional[float] = None,
                 threads: Optional[int] = None):
        if hasattr(model, "predict"):
            self.model = model
        else:
            import edgeship

            self.model = edgeship.load(model, threads=threads)
        if score_threshold is not None:
            self.score_threshold = _check_fraction(score_threshold, "score_threshold")
        if nms_threshold is not None:
            self.nms_threshold = _check_fraction(nms_threshold, "nms_threshold")

    # -- public ---------------------------------------------------------------------------------
    def detect(self, image: np.ndarray) -> List[Detection]:
        """Faces in an HxWx3 uint8 RGB image, best first.

        Raises:
            InputSpecError: not an HxWx3 uint8 image, or an empty one.
        """
        img = check_rgb(image)
        tensor, scale = self._letterbox(img)
        boxes, scores, kps = self._decode(self.model.predict(tensor, as_dict=True))
        keep = scores >= self.score_threshold
        boxes, scores = boxes[keep], scores[keep]
        kps = kps[keep] if kps is not None else None
        boxes, scores, kps = self._nms(boxes, scores, kps)
        h, w = img.shape[:2]
        out = []
        for i in range(len(scores)):
            b = boxes[i] / scale
            b = np.clip(b, [-0.5 * w, -0.5 * h, 0, 0], [w, h, 1.5 * w, 1.5 * h])  # keep boxes sane
            if b[2] - b[0] < 1 or b[3] - b[1] < 1:
                continue
            k = kps[i] / scale if kps is not None else None
            out.append(Detection(b.astype(np.float64), float(scores[i]), k, self.name))
        return out

    def landmark_box(self, det: Detection) -> Tuple[int, int, int, int]:
        """The dlib rectangle (left, top, right, bottom; inclusive) for the 5-point predictor."""
        a = LANDMARK_BOX_FITS[self.name]["a"]
        x0, y0, x1, y1 = (float(v) for v in det.box)
        w, h = x1 - x0, y1 - y0
        cx, cy = (x0 + x1) / 2 + a[0] * w, (y0 + y1) / 2 + a[1] * h
        side = max(a[2] * w + a[3] * h, 2.0)
        left, top = math.floor(cx - side / 2 + 0.5), math.floor(cy - side / 2 + 0.5)
        s = int(math.floor(side + 0.5))
        return left, top, left + s - 1, top + s - 1

    # -- per network ----------------------------------------------------------------------------
    def _prepare(self, canvas: np.ndarray) -> np.ndarray:  # canvas: input-sized uint8 RGB
        raise NotImplementedError

    def _decode(self, outs: Dict[str, np.ndarray]):  # -> boxes (N,4) in input pixels, scores (N,), kps (N,K,2)
        raise NotImplementedError

    def _nms(self, boxes, scores, kps):
        keep = nms(boxes, scores, self.nms_threshold)
        return boxes[keep], scores[keep], (kps[keep] if kps is not None else None)

    preprocessing: Optional[ImagePreprocessing] = None  # the input spec (edgeship.preprocessing), when data

    def _letterbox(self, img: np.ndarray) -> Tuple[np.ndarray, float]:
        if self.preprocessing is not None:  # the one preprocessing function, as calibration uses it
            return self.preprocessing.apply_with_scale(img)
        iw, ih = self.input_size
        h, w = img.shape[:2]
        scale = min(iw / w, ih / h)
        nw, nh = max(1, min(iw, int(round(w * scale)))), max(1, min(ih, int(round(h * scale))))
        canvas = np.zeros((ih, iw, 3), np.uint8)
        canvas[:nh, :nw] = resize(img, nw, nh)
        return self._prepare(canvas), scale


class YuNetDetector(FaceDetector):
    """YuNet (OpenCV zoo, ``face_detection_yunet_2023mar``): BGR 0-255 NCHW input."""

    name = "yunet"
    input_size = (320, 320)
    score_threshold = 0.6
    nms_threshold = 0.3
    strides = (8, 16, 32)

    preprocessing = ImagePreprocessing((320, 320), "letterbox", "BGR", layout="NCHW")

    def _prepare(self, canvas):
        return self.preprocessing.apply(canvas)

    def _decode(self, outs):
        iw, ih = self.input_size
        boxes, scores, kps = [], [], []
        for s in self.strides:
            cols = iw // s
            cls = np.clip(outs[f"cls_{s}"][0, :, 0], 0, 1)
            obj = np.clip(outs[f"obj_{s}"][0, :, 0], 0, 1)
            score = np.sqrt(cls * obj)
            i = np.nonzero(score >= self.score_threshold)[0]
            if not len(i):
                continue
            r, c = (i // cols).astype(np.float32), (i % cols).astype(np.float32)
            bb = outs[f"bbox_{s}"][0][i]
            cx, cy = (c + bb[:, 0]) * s, (r + bb[:, 1]) * s
            w, h = np.exp(bb[:, 2]) * s, np.exp(bb[:, 3]) * s
            boxes.append(np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1))
            k = outs[f"kps_{s}"][0][i].reshape(-1, 5, 2)
            kps.append(np.stack([(k[..., 0] + c[:, None]) * s, (k[..., 1] + r[:, None]) * s], -1))
            scores.append(score[i])
        if not scores:
            return np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2))
        return np.concatenate(boxes), np.concatenate(scores), np.concatenate(kps)


class BlazeFaceDetector(FaceDetector):
    """MediaPipe BlazeFace short range: RGB in [-1, 1], 896 SSD anchors, weighted NMS."""

    name = "blazeface"
    input_size = (128, 128)
    score_threshold = 0.5
    nms_threshold = 0.3

    def __init__(self, model, **kw):
        super().__init__(model, **kw)
        self.anchors = ssd_anchor_centers(128, 128, strides=(8, 16, 16, 16), per_layer=2)

    preprocessing = ImagePreprocessing((128, 128), "letterbox", "RGB", mean=(127.5,), std=(127.5,))

    def _prepare(self, canvas):
        return self.preprocessing.apply(canvas)

    def _decode(self, outs):
        raw = outs["regressors"][0].astype(np.float64)
        logit = np.clip(outs["classificators"][0, :, 0].astype(np.float64), -100, 100)
        score = 1 / (1 + np.exp(-logit))
        a = self.anchors
        sz = 128.0
        cx, cy = raw[:, 0] / sz + a[:, 0], raw[:, 1] / sz + a[:, 1]
        w, h = raw[:, 2] / sz, raw[:, 3] / sz
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1) * sz
        k = raw[:, 4:16].reshape(-1, 6, 2) / sz + a[:, None, :]
        return boxes, score, k * sz

    def _nms(self, boxes, scores, kps):
        return weighted_nms(boxes, scores, kps, self.nms_threshold)


class UltraFaceDetector(FaceDetector):
    """Ultra-Light-Fast-Generic-Face-Detector RFB-320 (no post-processing in the graph)."""

    name = "ultraface"
    input_size = (320, 240)
    score_threshold = 0.7
    nms_threshold = 0.3
    min_boxes = ((10, 16, 24), (32, 48), (64, 96), (128, 192, 256))
    strides = (8, 16, 32, 64)

    def __init__(self, model, **kw):
        super().__init__(model, **kw)
        iw, ih = self.input_size
        pri = []
        for s, sizes in zip(self.strides, self.min_boxes):
            fw, fh = math.ceil(iw / s), math.ceil(ih / s)
            for y in range(fh):
                for x in range(fw):
                    for m in sizes:
                        pri.append(((x + 0.5) / (iw / s), (y + 0.5) / (ih / s), m / iw, m / ih))
        self.priors = np.clip(np.array(pri), 0, 1)

    preprocessing = ImagePreprocessing((240, 320), "letterbox", "RGB", mean=(127.0,) * 3, std=(128.0,) * 3,
                                       layout="NCHW")

    def _prepare(self, canvas):
        return self.preprocessing.apply(canvas)

    def _decode(self, outs):
        p = self.priors
        loc = outs["boxes"][0].astype(np.float64)
        score = outs["scores"][0][:, 1].astype(np.float64)
        cx = loc[:, 0] * 0.1 * p[:, 2] + p[:, 0]
        cy = loc[:, 1] * 0.1 * p[:, 3] + p[:, 1]
        w = np.exp(loc[:, 2] * 0.2) * p[:, 2]
        h = np.exp(loc[:, 3] * 0.2) * p[:, 3]
        iw, ih = self.input_size
        boxes = np.stack([(cx - w / 2) * iw, (cy - h / 2) * ih, (cx + w / 2) * iw, (cy + h / 2) * ih], 1)
        return boxes, score, None


class MmodFaceDetector(FaceDetector):
    """dlib's MMOD CNN face detector, converted by :mod:`edgeship.models.face` (``fmt``: int8,
    fp32 or onnx), run through :class:`edgeship.mmod.MmodDetector` (dlib's own pyramid). Scores
    are dlib's raw detection scores (threshold 0 as dlib)."""

    name = "mmod"
    score_threshold = 0.0

    def __init__(self, fmt: str = "fp32", *, threads: Optional[int] = None, score_threshold: Optional[float] = None,
                 **_):
        from edgeship.models import face as face_models

        from .mmod import MmodDetector

        import edgeship

        path = face_models.model_path("mmod", fmt)
        # verify="structure": the isolated test run feeds 1x1 dynamic dimensions, which a fully
        # convolutional net cannot take; the file's structure is still checked
        self.model = edgeship.load(path, threads=threads, verify="structure")
        self._mmod = MmodDetector(self.model, face_models.mmod_config())
        if score_threshold is not None:
            self.score_threshold = float(score_threshold)

    def landmark_box(self, det: Detection) -> Tuple[int, int, int, int]:
        """dlib's own rectangle: the shape predictor works on MMOD boxes as they are."""
        x0, y0, x1, y1 = (int(round(float(v))) for v in det.box)
        return x0, y0, x1 - 1, y1 - 1

    def detect(self, image: np.ndarray) -> List[Detection]:
        img = check_rgb(image)
        out = []
        for d in self._mmod.detect(img, threshold=self.score_threshold):
            l, t, r, b = d.box
            out.append(Detection(np.array([l, t, r + 1, b + 1], np.float64), float(d.score), None, self.name))
        return out


_CLASSES = {"yunet": (YuNetDetector, "yunet_n_320"), "blazeface": (BlazeFaceDetector, "blazeface_short"),
            "ultraface": (UltraFaceDetector, "ultraface_rfb_320")}


def create_detector(name: str = DEFAULT_DETECTOR, *, model=None, threads: Optional[int] = None,
                    score_threshold: Optional[float] = None, mmod_format: str = "fp32") -> FaceDetector:
    """A detector by name (:data:`DETECTORS`).

    Args:
        name: "yunet" (default), "blazeface", "ultraface" or "mmod".
        model: another file of the same network (default: the registry's, shipped or fetched).
        threads: interpreter threads.
        score_threshold: override the detector's default threshold.
        mmod_format: for "mmod": the converted model's format ("int8", "fp32", "onnx").

    Raises:
        InputSpecError: unknown detector name.
    """
    if name == "mmod":
        return MmodFaceDetector(mmod_format, threads=threads, score_threshold=score_threshold)
    if name not in _CLASSES:
        raise InputSpecError(f"unknown face detector {name!r}; choose one of {', '.join(DETECTORS)}")
    cls, entry = _CLASSES[name]
    if model is None:
        from edgeship import models

        model = models.path(entry)
    return cls(model, threads=threads, score_threshold=score_threshold)


# -- shared numpy helpers -------------------------------------------------------------------------
def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (x0, y0, x1, y1) box with each row of ``boxes``.

    >>> iou(np.array([0, 0, 2, 2.]), np.array([[1, 1, 3, 3.], [0, 0, 2, 2]])).round(3).tolist()
    [0.143, 1.0]
    """
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda b: np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)
    union = area(box) + area(boxes) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression; indices kept, best first."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    while len(order):
        i = order[0]
        keep.append(i)
        if len(order) == 1:
            break
        rest = order[1:]
        order = rest[iou(boxes[i], boxes[rest]) <= threshold]
    return np.array(keep, np.int64)


def weighted_nms(boxes, scores, kps, threshold):
    """MediaPipe's weighted NMS: each kept box (and its keypoints) is the score-weighted mean of
    the boxes overlapping the best remaining one by more than ``threshold`` IoU."""
    order = np.argsort(-scores, kind="stable")
    ob, os_, ok = [], [], []
    while len(order):
        i = order[0]
        ov = iou(boxes[i], boxes[order])
        grp = order[ov > threshold]
        grp = grp if len(grp) else order[:1]
        wgt = scores[grp] / scores[grp].sum()
        ob.append((boxes[grp] * wgt[:, None]).sum(0))
        ok.append((kps[grp] * wgt[:, None, None]).sum(0) if kps is not None else None)
        os_.append(scores[i])
        order = order[ov <= threshold]
    if not ob:
        return boxes[:0], scores[:0], (kps[:0] if kps is not None else None)
    return np.array(ob), np.array(os_), (np.array(ok) if kps is not None else None)


def ssd_anchor_centers(in_w: int, in_h: int, strides: Sequence[int], per_layer: int) -> np.ndarray:
    """Anchor centres of MediaPipe's ``SsdAnchorsCalculator`` with fixed anchor size (normalised).
    Consecutive layers of equal stride share one grid; each layer adds ``per_layer`` anchors per cell."""
    out = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        n = per_layer * (j - i)
        fw, fh = math.ceil(in_w / strides[i]), math.ceil(in_h / strides[i])
        ys, xs = np.mgrid[0:fh, 0:fw]
        c = np.stack([(xs + 0.5) / fw, (ys + 0.5) / fh], -1).reshape(-1, 1, 2)
        out.append(np.repeat(c, n, axis=1).reshape(-1, 2))
        i = j
    return np.concatenate(out)


def check_rgb(image) -> np.ndarray:
    """Check an image is HxWx3 uint8 (RGB) and non-empty; return it contiguous."""
    if not isinstance(image, np.ndarray):
        raise InputSpecError(f"image must be a numpy array (HxWx3 uint8 RGB), got {type(image).__name__}; "
                             f"read files with edgeship.face.read_image")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise InputSpecError(f"image must be HxWx3 uint8 RGB, got {image.dtype} {image.shape}; "
                             f"edgeship.face.read_image converts grayscale, 16-bit and RGBA files")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise InputSpecError(f"image is too small to hold a face: {image.shape}")
    return np.ascontiguousarray(image)


def _check_fraction(v, what: str) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise InputSpecError(f"{what} must be a number in [0, 1], got {v!r}") from None
    if not 0 <= f <= 1:
        raise InputSpecError(f"{what} must be in [0, 1], got {v!r}")
    return f
