"""Shared pieces of the face evaluation benchmarks: embedding caches, the LFW and ORL protocols.

An embedding cache is one ``.npz`` per (pipeline, model sha256, data set) under
``$EDGESHIP_CACHE/face_eval`` (default ``~/.cache/edgeship/face_eval``): image keys, a [N,128]
matrix (NaN rows: no usable face) and the number of faces found. It is written atomically every
few hundred images, so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from edgeship._io import atomic_write_bytes, sha256_file  # noqa: E402
from edgeship._io import cache_dir  # noqa: E402

from examples.face_unlock import evaluate as ev  # noqa: E402


def shared_dir() -> Path:
    return Path(os.environ.get("EDGESHIP_SHARED", REPO.parent / "shared"))


def lfw_dir() -> Path:
    return shared_dir() / "data" / "faces" / "lfw_dev"


def orl_dir() -> Path:
    return shared_dir() / "data" / "faces" / "orl"


def cache_file(tag: str) -> Path:
    return cache_dir() / "face_eval" / f"{tag}.npz"


def load_cache(tag: str) -> Dict[str, Tuple[Optional[np.ndarray], int]]:
    p = cache_file(tag)
    if not p.is_file():
        return {}
    z = np.load(p, allow_pickle=False)
    out = {}
    for k, e, n in zip(z["keys"], z["emb"], z["n_faces"]):
        out[str(k)] = (None if np.isnan(e).any() else e.astype(np.float32), int(n))
    return out


def save_cache(tag: str, data: Dict[str, Tuple[Optional[np.ndarray], int]]) -> None:
    import io

    keys = sorted(data)
    emb = np.stack([data[k][0] if data[k][0] is not None else np.full(128, np.nan, np.float32) for k in keys]) \
        if keys else np.zeros((0, 128), np.float32)
    buf = io.BytesIO()
    np.savez(buf, keys=np.array(keys), emb=emb.astype(np.float32), n_faces=np.array([data[k][1] for k in keys]))
    atomic_write_bytes(cache_file(tag), buf.getvalue())


def embed_files(tag: str, files: Dict[str, Path], embed: Callable[[Path], Tuple[Optional[np.ndarray], int]],
                label: str = "embedding") -> Dict[str, Tuple[Optional[np.ndarray], int]]:
    """Embed every file not in the cache yet (``embed(path) -> (embedding or None, n_faces)``)."""
    data = load_cache(tag)
    todo = [k for k in files if k not in data]
    if todo:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        t0 = time.perf_counter()
        with Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=Console(stderr=True)) as bar:
            task = bar.add_task(label, total=len(todo))
            for i, k in enumerate(todo):
                data[k] = embed(files[k])
                bar.advance(task)
                if (i + 1) % 250 == 0:
                    save_cache(tag, data)
        save_cache(tag, data)
        print(f"{label}: {len(todo)} images in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return data


CAL_FOLDS = (6, 7)  # 0-based: LFW dev folds 7-8 calibrate the threshold; folds 1-6 are people-disjoint from them


def lfw_pairs() -> List[ev.Pair]:
    return ev.read_pairs(lfw_dir() / "pairs_dev.txt")


def lfw_files() -> Dict[str, Path]:
    """Every image the pairs use, calibration folds first, then folds 1, 2, ... (partial runs stay usable)."""
    pairs = lfw_pairs()
    order = [p for f in CAL_FOLDS for p in pairs if p.fold == f] + [p for p in pairs if p.fold not in CAL_FOLDS]
    return {f"{n}/{k}": ev.image_path(lfw_dir(), (n, k)) for n, k in ev.unique_keys(order)}


def orl_files() -> Dict[str, Path]:
    return {f"s{s}/{k}": orl_dir() / f"s{s}" / f"{k}.pgm" for s in range(1, 41) for k in range(1, 11)}


def lfw_embeddings(data) -> Dict[ev.ImageKey, Optional[np.ndarray]]:
    out = {}
    for k, (e, _) in data.items():
        n, num = k.rsplit("/", 1)
        out[(n, int(num))] = e
    return out


def complete_folds(data) -> List[int]:
    """0-based folds of pairs_dev.txt whose images are all in ``data``."""
    embs = lfw_embeddings(data)
    pairs = lfw_pairs()
    return sorted({p.fold for p in pairs} - {p.fold for p in pairs if p.a not in embs or p.b not in embs})


def lfw_protocol(data, threshold: Optional[float] = None, *, seed: int = 0, folds: Optional[Sequence[int]] = None) -> dict:
    """Calibrate a FAR<=1e-3 threshold on the calibration folds' images, then score pairs_dev.txt.

    Calibration pairs are built from the images of folds ``CAL_FOLDS`` and exclude every pair of
    ``pairs_dev.txt``; LFW folds share no people, so folds 1-6 are also people-disjoint from it.
    Evaluation uses every fold whose images are all embedded (``folds_evaluated``), and the
    figures for folds 1-6 only (``pairs_dev_disjoint``) are reported beside them.
    """
    embs = lfw_embeddings(data)
    pairs = lfw_pairs()
    cal_keys = ev.unique_keys([p for p in pairs if p.fold in CAL_FOLDS])
    missing = [k for k in cal_keys if k not in embs]
    if missing:
        raise SystemExit(f"calibration needs all {len(cal_keys)} images of folds {[f + 1 for f in CAL_FOLDS]}; "
                         f"{len(missing)} are not embedded yet")
    cal = calibrate({k: embs[k] for k in cal_keys}, pairs, seed=seed)
    cal["folds"] = [f + 1 for f in CAL_FOLDS]
    thr = cal["threshold"] if threshold is None else threshold
    done = complete_folds(data) if folds is None else sorted(folds)
    out = {"calibration": cal, "threshold": thr, "folds_evaluated": [f + 1 for f in done]}
    for name, folds in (("pairs_dev", done), ("pairs_dev_disjoint", [f for f in done if f not in CAL_FOLDS])):
        ps = [p for p in pairs if p.fold in folds]
        if not ps:
            continue
        d = ev.pair_distances(ps, embs)
        same = np.array([p.same for p in ps])
        out[name] = ev.verification_metrics(d, same, thr)
        out[name]["folds"] = [f + 1 for f in folds]
        out[f"{name}_distances"] = (d, same)
    return out


def calibrate(embs: Dict[ev.ImageKey, Optional[np.ndarray]], exclude: Sequence[ev.Pair], *, seed: int = 0,
              n_impostor: int = 200_000) -> dict:
    """FAR<=1e-3 threshold on genuine + impostor pairs built from ``embs``' images, none in ``exclude``."""
    people: Dict[str, List[int]] = {}
    for (n, k) in embs:
        people.setdefault(n, []).append(k)
    for n in people:
        people[n].sort()
    cal_pairs = ev.calibration_pairs(people, exclude, n_impostor=n_impostor, seed=seed)
    d = ev.pair_distances(cal_pairs, embs)
    same = np.array([p.same for p in cal_pairs])
    t, tar = ev.threshold_at_far(d[same], d[~same], ev.FAR_TARGET)
    return {"threshold": t, "tar": tar, "far": float(np.mean(d[~same] <= t)), "n_genuine": int(same.sum()),
            "n_impostor": int((~same).sum()), "n_people": len(people), "seed": seed,
            "n_genuine_without_face": int(np.sum(~np.isfinite(d[same])))}


def orl_protocol(data, threshold: float, enrol_per_person: int = 2) -> dict:
    """Enrol each ORL person from their first usable images, try all other images against everyone.

    Verification (``unlock --user``): every probe claims its own identity (false reject if refused)
    and every other identity (false accept if accepted). Identification (``unlock`` without a user):
    a probe unlocks as the nearest enrolled user within the threshold.
    """
    from examples.face_unlock.engine import decide

    tmpl, probes, refused = {}, [], []
    for s in range(1, 41):
        user = f"s{s}"
        ks = [f"{user}/{k}" for k in range(1, 11)]
        usable = [k for k in ks if data[k][0] is not None and data[k][1] == 1]
        enrol = usable[:enrol_per_person]
        refused += [k for k in ks[:ks.index(enrol[-1]) + 1] if k not in enrol] if enrol else ks
        tmpl[user] = np.stack([data[k][0] for k in enrol]) if enrol else np.zeros((0, 128), np.float32)
        probes += [(user, k) for k in ks if k not in enrol]
    fr = fa = ident_ok = ident_wrong = ident_none = no_face = 0
    n_claims_impostor = 0
    for user, k in probes:
        e, n = data[k]
        if e is None or n != 1:  # the app refuses: no face / several faces -> a false reject, no false accept
            no_face += 1
            fr += 1
            n_claims_impostor += len(tmpl) - 1
            ident_none += 1
            continue
        if not decide({user: tmpl[user]}, e, threshold)["unlocked"]:
            fr += 1
        for other in tmpl:
            if other != user:
                n_claims_impostor += 1
                fa += bool(decide({other: tmpl[other]}, e, threshold)["unlocked"])
        r = decide(tmpl, e, threshold)
        if not r["unlocked"]:
            ident_none += 1
        elif r["user"] == user:
            ident_ok += 1
        else:
            ident_wrong += 1
    n = len(probes)
    return {"threshold": threshold, "people": len(tmpl), "enrol_images_refused": refused, "probes": n,
            "probes_without_one_face": no_face,
            "verification": {"false_rejects": fr, "frr": fr / n, "false_accepts": fa,
                             "impostor_claims": n_claims_impostor, "far": fa / max(n_claims_impostor, 1)},
            "identification": {"correct": ident_ok, "wrong_user": ident_wrong, "not_unlocked": ident_none}}


def write_result(name: str, obj: dict) -> Path:
    from edgeship._io import to_jsonable

    p = REPO / "bench" / "results" / f"{name}.json"
    atomic_write_bytes(p, (json.dumps(to_jsonable(obj), indent=2) + "\n").encode())
    return p


def int8_calibration_chips(n: int = 200) -> Path:
    """Face chips for int8 calibration of the descriptor: the first ``n`` usable faces of the
    calibration folds' images (LFW dev folds 7-8, never scored in the folds 1-6 figures), cut by
    ``edgeship.face`` without an embedder. Cached as ``.npy``; used via $EDGESHIP_FACE_CALIBRATION."""
    p = cache_dir() / "face_eval" / f"int8_calibration_chips_lfw_dev_folds7-8_n{n}.npy"
    if p.is_file():
        return p
    import io

    import edgeship.face as F

    pipe = F.FacePipeline(embedder=None, threads=1)
    chips = []
    pairs = lfw_pairs()
    for k in ev.unique_keys([q for q in pairs if q.fold in CAL_FOLDS]):
        faces = pipe.faces(F.read_image(ev.image_path(lfw_dir(), k)))
        if len(faces) == 1:
            chips.append(faces[0].chip)
        if len(chips) >= n:
            break
    buf = io.BytesIO()
    np.save(buf, np.stack(chips))
    atomic_write_bytes(p, buf.getvalue())
    return p
