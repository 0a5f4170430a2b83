"""Face verification on LFW-style pairs: reading ``pairs.txt``, distances, metrics, ROC, calibration.

Everything here is numpy only; embeddings come from whatever the caller passes in, so the same
code scores edgeship's pipeline (``evaluate-pairs``), dlib's own pipeline (``bench/``) and the
threshold calibration that ships with the app.

Conventions (dlib's): a face is a 128-d embedding, two faces are compared by their Euclidean
distance, and a pair is called "same person" when the distance is **at most** the threshold.
A pair where either image gave no usable face has distance ``inf`` (never a match), so failed
detections count against the pipeline that produced them.

Example:
    >>> import numpy as np
    >>> d = np.array([0.2, 0.3, 0.7, 0.9]); same = np.array([True, True, False, False])
    >>> m = verification_metrics(d, same, threshold=0.5)
    >>> m["accuracy_at_shipped_threshold"], m["best_accuracy"], m["n_pairs"]
    (1.0, 1.0, 4)
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import numpy as np

from edgeship.errors import EdgeshipError, InputSpecError

FAR_TARGET = 1e-3

ImageKey = Tuple[str, int]  # (person name, image number) as in pairs.txt


@dataclass(frozen=True)
class Pair:
    """One line of an LFW ``pairs.txt``: two images and whether they show the same person."""

    a: ImageKey
    b: ImageKey
    same: bool
    fold: int


def read_pairs(path) -> List[Pair]:
    """Read an LFW ``pairs.txt`` (View 2 format).

    The first line is ``<folds>\\t<n>``; then each fold holds ``n`` same-person lines
    ``name\\ti\\tj`` followed by ``n`` different-person lines ``name1\\ti\\tname2\\tj``.
    A file without that header (a plain list of 3- and 4-field lines) is accepted as one fold.

    Args:
        path: the pairs file.

    Returns:
        The pairs in file order, each with its fold number (0-based).

    Raises:
        InputSpecError: the file is missing, unreadable, empty or a line is malformed.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputSpecError(f"expected an LFW pairs file, got {str(p)!r} (no such file)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputSpecError(f"expected an LFW pairs file (text), could not read {str(p)!r}: {exc}") from None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise InputSpecError(f"expected an LFW pairs file, got an empty file {str(p)!r}")
    head = lines[0].split()
    per_fold = None
    if len(head) == 2 and all(h.isdigit() for h in head):
        folds, per_fold = int(head[0]), int(head[1])
        lines = lines[1:]
        if len(lines) != folds * per_fold * 2:
            raise InputSpecError(
                f"{p}: header says {folds} folds of {per_fold} same + {per_fold} different pairs "
                f"({folds * per_fold * 2} lines) but the file has {len(lines)} pair lines")
    pairs: List[Pair] = []
    for i, ln in enumerate(lines):
        f = ln.split()
        fold = i // (2 * per_fold) if per_fold else 0
        try:
            if len(f) == 3:
                pairs.append(Pair((f[0], int(f[1])), (f[0], int(f[2])), True, fold))
            elif len(f) == 4:
                pairs.append(Pair((f[0], int(f[1])), (f[2], int(f[3])), False, fold))
            else:
                raise ValueError(f"{len(f)} fields")
        except ValueError as exc:
            lineno = i + (2 if per_fold is not None else 1)
            raise InputSpecError(
                f"{p}, line {lineno}: expected 'name<TAB>i<TAB>j' or 'name1<TAB>i<TAB>name2<TAB>j', "
                f"got {ln!r} ({exc})") from None
    if not pairs:
        raise InputSpecError(f"expected at least one pair in {str(p)!r}, found none")
    return pairs


def image_path(images_dir, key: ImageKey) -> Path:
    """``DIR/<name>/<name>_<NNNN>.jpg``, LFW's layout."""
    name, num = key
    return Path(images_dir) / name / f"{name}_{num:04d}.jpg"


def index_images(images_dir) -> Dict[str, List[int]]:
    """Every ``<name>/<name>_<NNNN>.jpg`` under ``images_dir``: {name: sorted image numbers}."""
    root = Path(images_dir)
    if not root.is_dir():
        raise InputSpecError(f"expected a folder of LFW images (<name>/<name>_NNNN.jpg), got {str(root)!r}")
    out: Dict[str, List[int]] = {}
    pat = re.compile(r"^(.+)_(\d{4})\.jpg$")
    for d in sorted(root.iterdir()):
        if not d.is_dir():
            continue
        nums = []
        for f in d.iterdir():
            m = pat.match(f.name)
            if m and m.group(1) == d.name:
                nums.append(int(m.group(2)))
        if nums:
            out[d.name] = sorted(nums)
    return out


def pair_distances(pairs: Sequence[Pair], embeddings: Dict[ImageKey, Optional[np.ndarray]]) -> np.ndarray:
    """Euclidean distance of each pair; ``inf`` where either image has no embedding (no usable face)."""
    index: Dict[ImageKey, int] = {}
    rows = []
    for k, e in embeddings.items():
        index[k] = len(rows)
        rows.append(np.full(128, np.nan) if e is None else np.asarray(e, np.float64).reshape(-1))
    if not pairs:
        return np.zeros(0)
    missing = len(rows)
    rows.append(np.full(rows[0].shape if rows else 128, np.nan))
    m = np.stack(rows)
    ia = np.fromiter((index.get(p.a, missing) for p in pairs), np.int64, len(pairs))
    ib = np.fromiter((index.get(p.b, missing) for p in pairs), np.int64, len(pairs))
    d = np.linalg.norm(m[ia] - m[ib], axis=1)
    d[np.isnan(d)] = math.inf
    return d


def threshold_at_far(genuine: np.ndarray, impostor: np.ndarray, far: float = FAR_TARGET) -> Tuple[float, float]:
    """The largest threshold whose false-accept rate on ``impostor`` distances is at most ``far``.

    Accepting means ``distance <= threshold``. With ``n`` impostor distances at most
    ``floor(far * n)`` of them may be accepted; the threshold is placed halfway between the last
    accepted impostor distance allowed and the next one (so it does not sit exactly on a sample).

    Returns:
        ``(threshold, true_accept_rate)`` where the TAR is measured on ``genuine``.

    Example:
        >>> t, tar = threshold_at_far(np.array([0.1, 0.2, 0.6]), np.array([0.5, 0.7, 0.8, 0.9]), far=0.0)
        >>> round(t, 3), round(tar, 3)
        (0.35, 0.667)
    """
    imp = np.sort(np.asarray(impostor, np.float64))
    gen = np.asarray(genuine, np.float64)
    if imp.size == 0 or gen.size == 0:
        raise InputSpecError(f"need genuine and impostor pairs to set a threshold; got {gen.size} genuine, {imp.size} impostor")
    k = int(math.floor(far * imp.size + 1e-9))  # impostors we may accept
    if k >= imp.size or not math.isfinite(imp[k]):
        fin = np.concatenate([imp[np.isfinite(imp)], gen[np.isfinite(gen)]])
        t = float(fin.max()) if fin.size else 0.0
    else:
        hi = float(imp[k])
        both = np.concatenate([imp, gen])
        below = both[both < hi]
        lo = float(below.max()) if below.size else hi
        t = (lo + hi) / 2
    tar = float(np.mean(gen <= t))
    return t, tar


def roc_curve(distances: np.ndarray, same: np.ndarray):
    """False-accept and true-accept rates at every distinct finite threshold (ascending)."""
    d = np.asarray(distances, np.float64)
    s = np.asarray(same, bool)
    finite = np.unique(d[np.isfinite(d)])
    thr = np.concatenate([[-np.inf], finite])
    n_gen, n_imp = max(int(s.sum()), 1), max(int((~s).sum()), 1)
    order = np.argsort(d, kind="stable")
    ds, ss = d[order], s[order]
    idx = np.searchsorted(ds, thr, side="right")
    cg = np.concatenate([[0], np.cumsum(ss)])
    ci = np.concatenate([[0], np.cumsum(~ss)])
    tar = cg[idx] / n_gen
    far = ci[idx] / n_imp
    return far, tar, thr


def verification_metrics(distances, same, threshold: float, far_target: float = FAR_TARGET) -> dict:
    """Accuracy at ``threshold``, best-threshold accuracy, TAR at FAR = ``far_target``, AUC.

    Args:
        distances: one Euclidean distance per pair (``inf`` = no usable face in a pair image).
        same: one bool per pair, True for same-person pairs.
        threshold: the threshold to report accuracy at (the app's shipped one).
        far_target: the false-accept rate for the TAR figure.

    Returns:
        A JSON-ready dict with ``accuracy_at_shipped_threshold``, ``best_accuracy``,
        ``best_threshold``, ``tar_at_far_1e-3`` (named after ``far_target``), ``far_at_shipped_threshold``,
        ``tar_at_shipped_threshold``, ``auc``, ``n_pairs``, ``n_same``, ``n_different``,
        ``n_pairs_without_face``.
    """
    d = np.asarray(distances, np.float64)
    s = np.asarray(same, bool)
    if d.shape != s.shape or d.ndim != 1 or d.size == 0:
        raise InputSpecError(f"expected one distance per pair, got {d.shape} distances and {s.shape} labels")
    if np.isnan(d).any():
        raise InputSpecError("distances contain NaN: an embedding was NaN (model output broken?)")
    accept = d <= threshold
    acc = float(np.mean(accept == s))
    far, tar, thr = roc_curve(d, s)
    # best accuracy over all thresholds: accepted = d <= t for each candidate t
    n_gen, n_imp = int(s.sum()), int((~s).sum())
    accs = (tar * n_gen + (1 - far) * n_imp) / d.size
    b = int(np.argmax(accs))
    best_t = float(thr[b]) if math.isfinite(thr[b]) else 0.0
    if n_gen and n_imp:
        t_far, tar_far = threshold_at_far(d[s], d[~s], far_target)
    else:
        t_far, tar_far = float("nan"), float("nan")
    auc = float(np.trapezoid(np.concatenate([tar, [1.0]]), np.concatenate([far, [1.0]])))
    key = f"tar_at_far_{far_target:.0e}".replace("e-0", "e-")
    return {
        "accuracy_at_shipped_threshold": acc,
        "shipped_threshold": float(threshold),
        "far_at_shipped_threshold": float(np.mean(accept[~s])) if n_imp else float("nan"),
        "tar_at_shipped_threshold": float(np.mean(accept[s])) if n_gen else float("nan"),
        "best_accuracy": float(accs[b]),
        "best_threshold": best_t,
        key: tar_far,
        "threshold_at_far_target": t_far,
        "auc": auc,
        "n_pairs": int(d.size),
        "n_same": n_gen,
        "n_different": n_imp,
        "n_pairs_without_face": int(np.sum(~np.isfinite(d))),
    }


def plot_roc(curves: Dict[str, Tuple[np.ndarray, np.ndarray]], path, title: str = "ROC",
             marks: Optional[Dict[str, Tuple[float, float]]] = None) -> Path:
    """Save a ROC plot (log-scale FAR) to ``path`` atomically; ``curves`` maps a label to (far, tar)."""
    from edgeship._deps import require
    from edgeship._io import atomic_write_bytes
    import io

    mpl = require("matplotlib", "convert", "the ROC plot")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=110)
    for label, (far, tar) in curves.items():
        far = np.asarray(far, float)
        ax.step(np.clip(far, 1e-5, 1), tar, where="post", label=label)
    for label, (fx, ty) in (marks or {}).items():
        ax.plot([max(fx, 1e-5)], [ty], "o", label=label)
    ax.axvline(FAR_TARGET, color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1)
    ax.set_ylim(0.5, 1.005)
    ax.set_xlabel("false accept rate (impostor pairs accepted)")
    ax.set_ylabel("true accept rate (same-person pairs accepted)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def calibration_pairs(people: Dict[str, List[int]], exclude: Iterable[Pair], *, n_impostor: int = 200_000,
                      max_genuine_per_person: int = 300, seed: int = 0) -> List[Pair]:
    """Pairs for threshold calibration that are NOT among ``exclude`` (the pairs to be evaluated).

    Genuine pairs: every within-person combination (capped per person, seeded), minus excluded
    pairs. Impostor pairs: ``n_impostor`` seeded random cross-person combinations, minus excluded
    pairs. Many more impostor pairs than an LFW pairs file holds (2,400 different-person pairs in
    ``pairs_dev.txt``), so a FAR of 1e-3 rests on hundreds of accepted-or-not decisions, not 2.
    """
    rng = np.random.default_rng(seed)
    ex: Set[frozenset] = {frozenset((p.a, p.b)) for p in exclude}
    out: List[Pair] = []
    names = sorted(people)
    for n in names:
        nums = people[n]
        combos = [((n, a), (n, b)) for i, a in enumerate(nums) for b in nums[i + 1:]]
        if len(combos) > max_genuine_per_person:
            sel = rng.choice(len(combos), max_genuine_per_person, replace=False)
            combos = [combos[i] for i in sorted(sel)]
        out += [Pair(a, b, True, -1) for a, b in combos if frozenset((a, b)) not in ex]
    if len(names) < 2:
        return out
    flat = [(n, k) for n in names for k in people[n]]
    pid = np.array([i for i, name in enumerate(names) for _ in people[name]])
    pos = {k: i for i, k in enumerate(flat)}
    n = len(flat)
    ex_codes = {min(pos[p.a], pos[p.b]) * n + max(pos[p.a], pos[p.b]) for p in exclude if p.a in pos and p.b in pos}
    codes: List[int] = []
    seen: Set[int] = set()
    for _ in range(50):
        i, j = rng.integers(0, n, (2, max(2 * (n_impostor - len(codes)), 1000)))
        keep = pid[i] != pid[j]
        c = np.minimum(i, j)[keep] * n + np.maximum(i, j)[keep]
        for v in c.tolist():
            if v not in seen and v not in ex_codes:
                seen.add(v)
                codes.append(v)
                if len(codes) >= n_impostor:
                    break
        if len(codes) >= n_impostor:
            break
    out += [Pair(flat[c // n], flat[c % n], False, -1) for c in codes]
    return out


def embed_all(keys: Sequence[ImageKey], images_dir, embed: Callable[[Path], Optional[np.ndarray]],
              progress: Optional[Callable[[int], None]] = None) -> Dict[ImageKey, Optional[np.ndarray]]:
    """Embed each image once (``embed(path)`` returns a 128-vector, or None when no usable face).

    A missing image file is a user error (the pairs file and the folder do not match).
    """
    out: Dict[ImageKey, Optional[np.ndarray]] = {}
    root = Path(images_dir)
    for k in keys:
        if k in out:
            continue
        p = image_path(root, k)
        if not p.is_file():
            raise InputSpecError(f"pairs file names {k[0]} image {k[1]} but {p} does not exist; "
                                 f"--images must be the LFW folder (<name>/<name>_NNNN.jpg) that matches --pairs")
        out[k] = embed(p)
        if progress:
            progress(1)
    return out


def unique_keys(pairs: Iterable[Pair]) -> List[ImageKey]:
    """The distinct images the pairs use, in first-use order."""
    seen: Dict[ImageKey, None] = {}
    for p in pairs:
        seen.setdefault(p.a)
        seen.setdefault(p.b)
    return list(seen)


__all__ = ["Pair", "read_pairs", "image_path", "index_images", "pair_distances", "threshold_at_far",
           "roc_curve", "verification_metrics", "plot_roc", "calibration_pairs", "embed_all", "unique_keys",
           "FAR_TARGET", "EdgeshipError"]
