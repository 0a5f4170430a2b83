"""dlib's aligned face chip in numpy: ``get_face_chip_details`` + ``extract_image_chip``.

The 128-d face descriptor network was trained on chips cut exactly the way dlib cuts them, so
this module reproduces dlib's geometry and resampling step by step (facts from dlib's
``image_transforms/interpolation.h``, ``image_pyramid.h`` and ``geometry/*.h``):

1. :func:`face_chip_details`: a similarity transform (Umeyama least squares) from five canonical
   chip positions (scaled by ``padding``) to the five landmarks; its rotation angle and scale
   define a rotated rectangle ("chip details") in the image.
2. :func:`extract_image_chip`: when the rectangle is much larger than the chip, dlib first
   builds a ``pyramid_down<2>`` (5-tap [1 4 6 4 1] separable filter, integer arithmetic, every
   other row and column) of the part of the image the chip needs, picks the level whose
   rectangle is just above the chip area, then samples it with bilinear interpolation (values
   truncated toward zero, black outside the image).

Landmarks given to :func:`face_chip` are used as given. dlib stores landmarks as integer
points (rounded half up), so to reproduce ``dlib.get_face_chip`` pass landmarks rounded the same
way (:func:`dlib_round`); :class:`edgeship.face.FacePipeline` does so.

Example:
    >>> import numpy as np
    >>> img = np.zeros((250, 250, 3), np.uint8)
    >>> lm = np.array([[150, 110], [132, 111], [ 95, 110], [113, 111], [123, 145]], float)
    >>> chip = face_chip(img, lm)
    >>> chip.shape, chip.dtype
    ((150, 150, 3), dtype('uint8'))
    >>> d = face_chip_details(lm)
    >>> (d.rows, d.cols), abs(d.angle) < 0.01   # an upright face: (almost) no rotation
    ((150, 150), True)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Tuple

import numpy as np

from .errors import InputSpecError

#: dlib's canonical positions of the 5 landmarks in a unit chip (before padding), in dlib's
#: 5-point order: right eye outer corner, right eye inner corner, left eye outer corner,
#: left eye inner corner, bottom of the nose (subject's left/right).
CHIP_POINTS_5 = np.array([
    [0.8595674595992, 0.2134981538014],
    [0.6460604764104, 0.2289674387677],
    [0.1205750620789, 0.2137274526848],
    [0.3340850613712, 0.2290642403242],
    [0.4901123135679, 0.6277975316475],
])

CHIP_SIZE = 150
CHIP_PADDING = 0.25


@dataclass(frozen=True)
class ChipDetails:
    """Where a chip comes from: dlib's ``chip_details``.

    Attributes:
        rect: (left, top, right, bottom) of the unrotated rectangle, dlib ``drectangle``
            convention (right/bottom inclusive, width = right - left + 1).
        angle: rotation (radians) of the rectangle about its centre.
        rows, cols: chip size in pixels.
    """

    rect: Tuple[float, float, float, float]
    angle: float
    rows: int
    cols: int


def dlib_round(a) -> np.ndarray:
    """Round as dlib converts a floating point to an integer point: ``floor(x + 0.5)``.

    >>> dlib_round([0.5, 1.5, -0.5, 2.49]).tolist()
    [1.0, 2.0, 0.0, 2.0]
    """
    return np.floor(np.asarray(a, dtype=np.float64) + 0.5)


def _lround(x: float) -> int:
    """C ``std::lround``: halves away from zero (``np.round`` would round halves to even)."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Least-squares similarity ``dst ~ c R src + t`` (Umeyama 1991, eqs. 34-43, as dlib).

    Returns:
        (M, t): 2x2 matrix ``c R`` and translation, mapping a column point p to ``M p + t``.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mean_s, mean_d = src.mean(0), dst.mean(0)
    ds, dd = src - mean_s, dst - mean_d
    sigma_s = float((ds ** 2).sum(1).mean())
    cov = dd.T @ ds / len(src)
    u, d, vt = np.linalg.svd(cov)
    s = np.eye(2)
    det = np.linalg.det(cov)
    if det < 0 or (det == 0 and np.linalg.det(u) * np.linalg.det(vt) < 0):
        if d[1] < d[0]:
            s[1, 1] = -1
        else:
            s[0, 0] = -1
    r = u @ s @ vt
    c = 1.0 if sigma_s == 0 else float(np.trace(np.diag(d) @ s)) / sigma_s
    return c * r, mean_d - c * r @ mean_s


def face_chip_details(landmarks, size: int = CHIP_SIZE, padding: float = CHIP_PADDING) -> ChipDetails:
    """dlib's ``get_face_chip_details`` for 5-point landmarks.

    Args:
        landmarks: 5x2 (x, y) image coordinates in dlib's 5-point order.
        size: chip side in pixels (dlib's descriptor uses 150).
        padding: border around the face as a fraction of the canonical face box (0.25 for the
            descriptor).

    Raises:
        InputSpecError: landmarks not 5x2 finite numbers, size < 1 or padding < 0.
    """
    lm = _check_landmarks(landmarks)
    if int(size) != size or size < 1:
        raise InputSpecError(f"chip size must be a positive integer, got {size!r}")
    if not (padding >= 0 and math.isfinite(padding)):
        raise InputSpecError(f"chip padding must be a finite number >= 0, got {padding!r}")
    size = int(size)
    chip_pts = (padding + CHIP_POINTS_5) / (2 * padding + 1) * size
    m, t = similarity_transform(chip_pts, lm)
    p = m @ np.array([1.0, 0.0])
    angle = math.atan2(p[1], p[0])
    scale = math.hypot(p[0], p[1])
    cx, cy = m @ np.array([size / 2.0, size / 2.0]) + t
    w = size * scale - 1  # centered_drect: width-- and height--
    return ChipDetails((cx - w / 2, cy - w / 2, cx + w / 2, cy + w / 2), angle, size, size)


def face_chip(image: np.ndarray, landmarks, size: int = CHIP_SIZE, padding: float = CHIP_PADDING) -> np.ndarray:
    """The aligned face chip (``size`` x ``size``), as ``dlib.get_face_chip(img, shape, size, padding)``.

    Args:
        image: HxWx3 uint8 (RGB) or HxW uint8 image.
        landmarks: 5x2 landmarks in dlib's 5-point order (see :func:`dlib_round`).
    """
    return extract_image_chip(image, face_chip_details(landmarks, size, padding))


def extract_image_chip(image: np.ndarray, details: ChipDetails) -> np.ndarray:
    """dlib's ``extract_image_chip`` with bilinear interpolation (image pyramid included).

    Args:
        image: HxWx3 or HxW uint8 array.
        details: from :func:`face_chip_details`.

    Returns:
        ``details.rows`` x ``details.cols`` (x 3) uint8 chip; pixels outside the image are black.

    Raises:
        InputSpecError: not a uint8 2-D/3-D image, or an empty one.
    """
    img = _check_image(image)
    rows, cols = details.rows, details.cols
    l, t, r, b = details.rect
    if details.angle == 0 and rows == _dwidth(t, b) and cols == _dwidth(l, r):
        return _basic_extract(img, tuple(_lround(v) for v in details.rect))
    h, w = img.shape[:2]
    n = rows * cols
    cx, cy = (l + r) / 2, (t + b) / 2
    # Pyramid depth and the part of the image the chip needs (dlib grows it for the filter border).
    depth, grow = 0, 2.0
    rect = _rect_down(details.rect)
    while _darea(rect) > n:
        rect = _rect_down(rect)
        depth += 1
        grow = grow * 2 + 2
    corners = np.array([[l, t], [r, t], [l, b], [r, b]])
    rot = _rotate(corners, (cx, cy), details.angle)
    g = (rot[:, 0].min() - grow, rot[:, 1].min() - grow, rot[:, 0].max() + grow, rot[:, 1].max() + grow)
    g = (max(g[0], 0), max(g[1], 0), min(g[2], w - 1), min(g[3], h - 1))
    bl, bt, br, bb = (_lround(v) for v in g)
    if bl > br or bt > bb:  # the chip lies entirely outside the image
        return np.zeros((rows, cols) + img.shape[2:], np.uint8)
    src = img[bt:bb + 1, bl:br + 1]
    # Which pyramid level to sample, and the chip rectangle in that level's coordinates.
    level = -1
    rect = (l - bl, t - bt, r - bl, b - bt)
    while _darea(_rect_down(rect)) > n:
        level += 1
        rect = _rect_down(rect)
    for _ in range(level + 1):
        src = pyramid_down2(src)
    rl, rt, rr, rb = rect
    to = _rotate(np.array([[rl, rt], [rr, rt], [rl, rb]]), ((rl + rr) / 2, (rt + rb) / 2), details.angle)
    frm = np.array([[0, 0], [cols - 1, 0], [0, rows - 1]], np.float64)
    a = _affine_from_3(frm, to)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64)
    px = a[0, 0] * xx + a[0, 1] * yy + a[0, 2]
    py = a[1, 0] * xx + a[1, 1] * yy + a[1, 2]
    return _bilinear(src, px, py)


def pyramid_down2(img: np.ndarray) -> np.ndarray:
    """dlib's ``pyramid_down<2>``: 5x5 Gaussian ([1 4 6 4 1]/16 each way, integer sums, floor
    division by 256), keeping every other row and column; output ``(H-3)//2 x (W-3)//2``.
    Images of 8 rows or columns or fewer give an empty image (as dlib)."""
    h, w = img.shape[:2]
    if h <= 8 or w <= 8:
        return np.zeros((0, 0) + img.shape[2:], np.uint8)
    o = img.astype(np.int32)
    nc = (w - 3) // 2
    c = 2 * np.arange(nc)
    tmp = o[:, c] + 4 * o[:, c + 1] + 6 * o[:, c + 2] + 4 * o[:, c + 3] + o[:, c + 4]
    rr = np.arange(2, h - 2, 2)
    out = tmp[rr - 2] + 4 * tmp[rr - 1] + 6 * tmp[rr] + 4 * tmp[rr + 1] + tmp[rr + 2]
    return (out // 256).astype(np.uint8)


# -- helpers ---------------------------------------------------------------------------------
def _dwidth(a: float, b: float) -> float:
    return 0.0 if a > b else b - a + 1


def _darea(rect) -> float:
    l, t, r, b = rect
    return _dwidth(l, r) * _dwidth(t, b)


def _rect_down(rect):
    l, t, r, b = rect
    return (l / 2.0 - 1.25, t / 2.0 - 0.75, r / 2.0 - 1.25, b / 2.0 - 0.75)


def _rotate(pts: np.ndarray, center, angle: float) -> np.ndarray:
    s, c = math.sin(angle), math.cos(angle)
    d = pts - np.asarray(center)
    return np.stack([c * d[:, 0] - s * d[:, 1], s * d[:, 0] + c * d[:, 1]], 1) + np.asarray(center)


def _affine_from_3(frm: np.ndarray, to: np.ndarray) -> np.ndarray:
    """2x3 affine mapping the 3 ``frm`` points onto ``to`` (dlib: Q * pinv(P), exact for 3 points)."""
    p = np.vstack([frm.T, np.ones(3)])
    return to.T @ np.linalg.pinv(p)


def _bilinear(src: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    h, w = src.shape[:2]
    ch = src.shape[2:]
    left = np.floor(px)
    top = np.floor(py)
    ok = (left >= 0) & (top >= 0) & (left + 1 < w) & (top + 1 < h)
    if not ok.any():
        return np.zeros(px.shape + ch, np.uint8)
    # gather through flat indices (np.take is much faster than 2-D fancy indexing); points
    # outside the image read pixel 0 and are blacked out afterwards
    li = np.where(ok, left, 0).astype(np.intp).ravel()
    ti = np.where(ok, top, 0).astype(np.intp).ravel()
    lr = (px - left).ravel()
    tb = (py - top).ravel()
    flat = src.reshape((h * w,) + ch)
    k = ti * w + li

    def gather(idx):  # channels first, so every arithmetic op below runs over long rows
        g = np.take(flat, idx, axis=0)
        return np.ascontiguousarray(g.T if ch else g, dtype=np.float64)

    tl, tr, bl, br = gather(k), gather(k + 1), gather(k + w), gather(k + w + 1)
    one_lr, one_tb = 1 - lr, 1 - tb
    val = one_tb * (one_lr * tl + lr * tr) + tb * (one_lr * bl + lr * br)  # dlib's expression, in double
    val = val.astype(np.uint8)  # static_cast<unsigned char>: truncation
    out = (val.T if ch else val).reshape(px.shape + ch)
    if not ok.all():
        out[~ok] = 0
    return out


def _basic_extract(img: np.ndarray, rect) -> np.ndarray:
    l, t, r, b = rect
    h, w = img.shape[:2]
    out = np.zeros((max(b - t + 1, 0), max(r - l + 1, 0)) + img.shape[2:], np.uint8)
    il, it, ir, ib = max(l, 0), max(t, 0), min(r, w - 1), min(b, h - 1)
    if il <= ir and it <= ib:
        out[it - t:ib - t + 1, il - l:ir - l + 1] = img[it:ib + 1, il:ir + 1]
    return out


def _check_landmarks(landmarks) -> np.ndarray:
    try:
        lm = np.asarray(landmarks, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputSpecError(f"landmarks must be a 5x2 array of numbers, got {type(landmarks).__name__}") from exc
    if lm.shape != (5, 2):
        raise InputSpecError(f"landmarks must be 5x2 (x, y) points in dlib's 5-point order, got shape {lm.shape}")
    if not np.isfinite(lm).all():
        raise InputSpecError("landmarks contain NaN or infinity")
    return lm


def _check_image(image) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise InputSpecError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise InputSpecError(f"image must be uint8 (0-255), got {image.dtype}; read files with edgeship.face.read_image")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3))):
        raise InputSpecError(f"image must be HxW or HxWx3 (RGB), got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InputSpecError(f"image is empty (shape {image.shape})")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    return image
