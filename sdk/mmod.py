"""dlib's MMOD CNN face detection around a converted network, in numpy.

dlib's ``cnn_face_detection_model_v1`` runs its network on one *tiled image pyramid*: the image
and its ``pyramid_down<6>`` reductions (each 5/6 the size of the previous one, down to 5 rows)
packed into a single canvas, then turns the score map into boxes. This module does the same
around a converted model (TFLite / ONNX through :func:`edgeship.load`, or any callable), so
detections match dlib's:

1. :func:`pyramid_layout` places the levels exactly as dlib's
   ``compute_tiled_image_pyramid_details`` (``padding`` 10 pixels between levels, an outer
   border of 11; the first column top-down, then the rest bottom-up on the right).
2. :func:`build_pyramid` fills the canvas: level 0 is the image, each further level a
   bilinear resize (corner-aligned, as dlib's ``resize_image``) of the previous one; the
   gaps hold the network's mean colour (dlib fills them with zeros *after* mean subtraction;
   the converted model does the mean subtraction itself, so it sees the same numbers).
3. The network maps the canvas to a score map; a cell ``(r, c)`` is the centre
   ``(c * stride + offset_x, r * stride + offset_y)`` in canvas pixels (dlib's
   ``output_tensor_to_input_tensor``) of a detector window (80x80 for the face model).
4. :func:`decode` keeps cells scoring above the threshold (0 by default, as dlib), maps each
   window back to the image through the pyramid level whose tile is nearest its centre
   (``point_up``: ``p * 6/5 + 0.3`` per level), sorts by score and applies dlib's non-max
   suppression (a box is dropped if, against a kept one, intersection / *bounding box of
   both* > the IoU threshold or the intersection covers more than a fraction of either box).

Boxes are dlib rectangles: integer ``(left, top, right, bottom)`` with ``right``/``bottom``
*inclusive* (the last pixel inside), returned as floats.

The numbers that describe a particular network (mean colour, paddings, window sizes, NMS
thresholds, receptive-field stride and offset) come from its ``.dat`` file; see
``edgeship.converters.dlib.mmod_config`` and :func:`edgeship.models.face.model_path`, which
stores them next to the converted model.

Example:
    >>> rects, nr, nc = pyramid_layout(100, 120)
    >>> rects[0], (nr, nc), len(rects)
    ((11, 11, 130, 110), (418, 142), 15)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

from .errors import InputSpecError, ModelFormatError

__all__ = ["Detection", "MmodDetector", "pyramid_layout", "build_pyramid", "decode", "nms",
           "to_rgb_uint8", "CONFIG_KEYS"]

Rect = Tuple[int, int, int, int]  # left, top, right, bottom (inclusive)

CONFIG_KEYS = ("mean_rgb", "pyramid_padding", "pyramid_outer_padding", "pyramid_n", "windows",
               "nms_iou_thresh", "nms_percent_covered_thresh", "stride", "offset")


@dataclass
class Detection:
    """One detection: ``box`` (left, top, right, bottom; right/bottom inclusive), ``score``, ``label``."""

    box: Tuple[float, float, float, float]
    score: float
    label: str = ""


# ------------------------------------------------------------------------------ geometry helpers

def _lround(v: float) -> int:
    """C's lround: half away from zero."""
    return int(math.floor(abs(v) + 0.5)) * (1 if v >= 0 else -1)


def _rect_area(r: Rect) -> int:
    w, h = r[2] - r[0] + 1, r[3] - r[1] + 1
    return w * h if w > 0 and h > 0 else 0


def _intersect(a: Rect, b: Rect) -> Rect:
    return (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))


def _overlaps(a: Rect, b: Rect, iou: float, covered: float) -> bool:
    """dlib's ``test_box_overlap``: 'IoU' uses the bounding box of both as the outer area."""
    inner = _rect_area(_intersect(a, b))
    if inner == 0:
        return False
    outer = _rect_area((min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])))
    return inner / outer > iou or inner / _rect_area(a) > covered or inner / _rect_area(b) > covered


# ------------------------------------------------------------------------------ pyramid

def pyramid_layout(nr: int, nc: int, padding: int = 10, outer_padding: int = 11,
                   pyramid_n: int = 6) -> Tuple[List[Rect], int, int]:
    """Where dlib's tiled pyramid puts each level of an ``nr`` x ``nc`` image.

    Returns:
        ``(rects, canvas_rows, canvas_cols)``; ``rects[i]`` is level ``i``'s
        ``(left, top, right, bottom)`` (inclusive) in the canvas.
    """
    if nr <= 0 or nc <= 0:
        return [], 0, 0
    rate = (pyramid_n - 1.0) / pyramid_n
    sizes = [(nr, nc)]
    h, w = nr, nc
    while True:
        h, w = int(math.floor(rate * h)), int(math.floor(rate * w))
        if h * w == 0 or h < 5:
            break
        sizes.append((h, w))
    h0, w0 = sizes[0]
    total_height = sum(s[0] + padding for s in sizes) - 2 * padding
    height = prev_width = 0
    for sh, sw in sizes:
        if sw <= w0 - prev_width - padding and (height - h0) * 2 >= (total_height - h0):
            break
        height += sh + padding
        prev_width = sw
    height -= padding
    canvas_nr, canvas_nc = height + 2 * outer_padding, w0 + 2 * outer_padding
    rects: List[Rect] = []
    y = outer_padding
    i = 0
    while y < height + outer_padding and i < len(sizes):
        sh, sw = sizes[i]
        rects.append((outer_padding, y, outer_padding + sw - 1, y + sh - 1))
        y += sh + padding
        i += 1
    y -= padding
    while i < len(sizes):
        sh, sw = sizes[i]
        x1, y1 = outer_padding + w0 - 1, y - 1
        rect = (x1 - (sw - 1), y1 - (sh - 1), x1, y1)
        if _rect_area(_intersect(rects[0], rect)) > 0:
            break
        rects.append(rect)
        y -= sh + padding
        i += 1
    return rects, canvas_nr, canvas_nc


def _resize_bilinear(src: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """dlib's ``resize_image`` (bilinear, corner-aligned) of an HxWxC float32 image."""
    in_h, in_w = src.shape[:2]
    ys = np.arange(out_h, dtype=np.float64) * ((in_h - 1) / max(out_h - 1, 1))
    xs = np.arange(out_w, dtype=np.float64) * ((in_w - 1) / max(out_w - 1, 1))
    top = np.floor(ys).astype(np.int64)
    left = np.floor(xs).astype(np.int64)
    bottom = np.minimum(top + 1, in_h - 1)
    right = np.minimum(left + 1, in_w - 1)
    fy = (ys - top).astype(np.float32)[:, None, None]
    fx = (xs - left).astype(np.float32)[None, :, None]
    tl = src[top][:, left]
    tr = src[top][:, right]
    bl = src[bottom][:, left]
    br = src[bottom][:, right]
    return ((1 - fy) * ((1 - fx) * tl + fx * tr) + fy * ((1 - fx) * bl + fx * br)).astype(np.float32)


def to_rgb_uint8(image: Any) -> np.ndarray:
    """An ``HxW`` (grayscale, replicated) or ``HxWx3`` RGB uint8 image as ``HxWx3`` uint8.

    Raises:
        InputSpecError: not a 2-D/3-channel uint8 array, empty, or too small.
    """
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise InputSpecError(f"expected a uint8 image (HxW grayscale or HxWx3 RGB), got dtype {a.dtype}; "
                             f"read files with edgeship.face.read_image")
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] != 3:
        raise InputSpecError(f"expected an HxW or HxWx3 image, got shape {list(a.shape)}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise InputSpecError(f"the image is empty (shape {list(a.shape)})")
    return a


def build_pyramid(image: np.ndarray, config: dict) -> Tuple[np.ndarray, List[Rect]]:
    """The tiled pyramid canvas ``[1, rows, cols, 3]`` float32 (RGB 0-255) and the level rects."""
    img = to_rgb_uint8(image)
    rects, nr, nc = pyramid_layout(img.shape[0], img.shape[1], int(config["pyramid_padding"]),
                                   int(config["pyramid_outer_padding"]), int(config.get("pyramid_n", 6)))
    canvas = np.empty((nr, nc, 3), np.float32)
    canvas[:] = np.asarray(config["mean_rgb"], np.float32)
    l, t, r, b = rects[0]
    canvas[t:b + 1, l:r + 1] = img
    for i in range(1, len(rects)):
        pl, pt, pr, pb = rects[i - 1]
        l, t, r, b = rects[i]
        canvas[t:b + 1, l:r + 1] = _resize_bilinear(canvas[pt:pb + 1, pl:pr + 1], b - t + 1, r - l + 1)
    return canvas[None], rects


# ------------------------------------------------------------------------------ decoding

def _nearest_rect(rects: Sequence[Rect], x: float, y: float) -> int:
    px, py = math.floor(x + 0.5), math.floor(y + 0.5)  # dlib's dpoint -> point conversion
    best, best_d = 0, math.inf
    for i, (l, t, r, b) in enumerate(rects):
        if l <= px <= r and t <= py <= b:
            return i
        nx, ny = min(max(px, l), r), min(max(py, t), b)
        d = math.hypot(nx - px, ny - py)
        if d < best_d:
            best, best_d = i, d
    return best


def nms(dets: List[Detection], iou: float, covered: float) -> List[Detection]:
    """dlib's greedy non-max suppression over detections sorted by decreasing score."""
    kept: List[Detection] = []
    for d in dets:
        box = tuple(int(v) for v in d.box)
        if any(_overlaps(tuple(int(v) for v in k.box), box, iou, covered) for k in kept):
            continue
        kept.append(d)
    return kept


def decode(score_map: np.ndarray, rects: Sequence[Rect], config: dict, threshold: float = 0.0) -> List[Detection]:
    """Turn the network's score map ``[rows, cols, windows]`` into dlib's detections.

    Args:
        score_map: the output for one canvas (a leading batch axis of 1 is accepted).
        rects: the pyramid level rects from :func:`build_pyramid`.
        config: the network's MMOD settings (see the module docstring).
        threshold: dlib's ``adjust_threshold``: keep cells scoring above it (0 by default).
    """
    s = np.asarray(score_map, dtype=np.float32)
    if s.ndim == 4:
        if s.shape[0] != 1:
            raise InputSpecError(f"decode takes one score map, got a batch of {s.shape[0]}")
        s = s[0]
    if s.ndim == 2:
        s = s[:, :, None]
    windows = config["windows"]
    if s.ndim != 3 or s.shape[2] < len(windows):
        raise ModelFormatError(f"the MMOD network's output has shape {list(np.shape(score_map))}; expected "
                               f"[1, rows, cols, {len(windows)}] (one channel per detector window)")
    sy, sx = config["stride"]
    oy, ox = config["offset"]
    n = float(config.get("pyramid_n", 6))
    up = n / (n - 1.0)
    dets: List[Tuple[float, Detection]] = []
    order = 0
    for k, win in enumerate(windows):
        rows, cols = np.nonzero(s[:, :, k] > threshold)
        for r, c in zip(rows.tolist(), cols.tolist()):
            score = float(s[r, c, k])
            px, py = c * sx + ox, r * sy + oy
            w, h = float(win["width"]) - 1, float(win["height"]) - 1
            l, t, rr, b = px - w / 2, py - h / 2, px + w / 2, py + h / 2
            lvl = _nearest_rect(rects, (l + rr) / 2, (t + b) / 2)
            x0, y0 = rects[lvl][0], rects[lvl][1]
            l, t, rr, b = l - x0, t - y0, rr - x0, b - y0
            for _ in range(lvl):
                l, t, rr, b = l * up + 0.3, t * up + 0.3, rr * up + 0.3, b * up + 0.3
            box = (float(_lround(l)), float(_lround(t)), float(_lround(rr)), float(_lround(b)))
            dets.append((score, Detection(box, score, str(win.get("label", "")))))
            order += 1
    dets.sort(key=lambda d: -d[0])
    return nms([d for _, d in dets], float(config["nms_iou_thresh"]), float(config["nms_percent_covered_thresh"]))


# ------------------------------------------------------------------------------ detector

class MmodDetector:
    """dlib's CNN face detector on a converted MMOD network.

    Args:
        model: a converted model path (``.tflite`` / ``.onnx``, loaded with
            :func:`edgeship.load`), an :class:`edgeship.Model`, or a callable mapping the
            canvas ``[1, rows, cols, 3]`` float32 to the score map ``[1, rows', cols', windows]``.
        config: the network's MMOD settings (keys :data:`CONFIG_KEYS`); with ``model`` from
            :func:`edgeship.models.face.model_path` use :func:`edgeship.models.face.mmod_config`.
        threads: interpreter threads when ``model`` is a path.

    Example:
        >>> det = MmodDetector(lambda x: np.zeros((1, 4, 4, 1), np.float32),
        ...                    {"mean_rgb": [0, 0, 0], "pyramid_padding": 10, "pyramid_outer_padding": 11,
        ...                     "windows": [{"width": 80, "height": 80}], "nms_iou_thresh": 0.4,
        ...                     "nms_percent_covered_thresh": 1.0, "stride": [8, 8], "offset": [14, 14]})
        >>> det.detect(np.zeros((40, 40), np.uint8))
        []
    """

    def __init__(self, model: Union[str, Any, Callable], config: dict, *, threads: Optional[int] = None):
        missing = [k for k in CONFIG_KEYS if k not in config and k != "pyramid_n"]
        if missing:
            raise ModelFormatError(f"MMOD config is missing {missing}; expected the keys {list(CONFIG_KEYS)} "
                                   f"(edgeship.models.face.mmod_config() gives them)")
        self.config = dict(config)
        if callable(model) and not hasattr(model, "predict"):
            self._run = model
        else:
            if not hasattr(model, "predict"):
                import edgeship

                model = edgeship.load(model, threads=threads) if threads else edgeship.load(model)
            self._run = model.predict

    def score_map(self, image: np.ndarray) -> Tuple[np.ndarray, List[Rect]]:
        """The network's raw score map for ``image`` and the pyramid rects."""
        canvas, rects = build_pyramid(image, self.config)
        out = self._run(canvas)
        if isinstance(out, (list, tuple)):
            out = out[0]
        return np.asarray(out), rects

    def detect(self, image: np.ndarray, threshold: float = 0.0) -> List[Detection]:
        """Faces in an ``HxW`` / ``HxWx3`` uint8 RGB image, best first (as dlib's ``detector(img, 0)``)."""
        img = to_rgb_uint8(image)
        if img.shape[0] < 5 or img.shape[1] < 5:
            return []
        out, rects = self.score_map(img)
        return decode(out, rects, self.config, threshold)
