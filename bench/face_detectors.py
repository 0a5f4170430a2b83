"""Accuracy and latency of edgeship's face detectors on real faces, side by side in one run.

For LFW dev (250x250, one centred face per image, sometimes more people behind) and ORL
(92x112, one face; upscaled 3x so dlib's HOG detector, the reference, can see it):

* found: a detection whose box contains the image centre (LFW faces are centred), no dlib needed;
* extra: mean number of other detections per image (an upper bound on false positives: LFW
  images often show other people);
* IoU: the detector's landmark box (after the fitted mapping) vs dlib's HOG box;
* landmarks: our 5 points on that box vs dlib's points on dlib's box, mean/max error in % of the
  eye-to-eye distance; chip: mean abs pixel difference of the 150x150 chips;
* latency: detect() on a 640x480 frame made from a real face, 1 thread, median of N runs (wall
  and process CPU time).

``--fit`` fits :data:`edgeship.face_detect.LANDMARK_BOX_FITS` (detector box -> the box dlib's
5-point predictor was trained on) on the even-indexed images and reports agreement on the odd ones
(with ``--fit`` the evaluation rows are the held-out half).

Usage:
    python bench/face_detectors.py [--n-lfw 300] [--n-orl 100] [--fit] [--json] [--detectors yunet,blazeface]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from face_latency import frame_640x480  # noqa: E402 (the same test frame as the latency bench)


def shared() -> Path:
    return Path(os.environ.get("EDGESHIP_SHARED", REPO.parent / "shared"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-lfw", type=int, default=300)
    ap.add_argument("--n-orl", type=int, default=100)
    ap.add_argument("--detectors", default="yunet,blazeface,ultraface,mmod")
    ap.add_argument("--fit", action="store_true", help="fit the landmark-box mappings (even images), report odd")
    ap.add_argument("--runs", type=int, default=30, help="latency runs")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    os.environ.setdefault("EDGESHIP_MIRROR", str(shared() / "models"))
    import dlib

    from edgeship import face_detect as fd
    from edgeship.face_chip import dlib_round, face_chip
    from edgeship.shape_predictor import ShapePredictor
    from tests._face_align_helpers import dlib_models_dir, face_files, load_rgb

    det_ref = dlib.get_frontal_face_detector()
    sp_ref = dlib.shape_predictor(str(dlib_models_dir() / "shape_predictor_5_face_landmarks.dat"))
    sp = ShapePredictor.default()
    names = [n for n in a.detectors.split(",") if n]
    detectors = {}
    for n in names:
        try:
            detectors[n] = fd.create_detector(n, threads=1)
        except Exception as exc:  # noqa: BLE001 - report and go on with the others
            print(f"[skip] {n}: {exc}", file=sys.stderr)
    files = face_files(shared(), a.n_lfw, a.n_orl)
    rows = {n: [] for n in detectors}
    t0 = time.time()
    for k, f in enumerate(files):
        img = load_rgb(f)
        h, w = img.shape[:2]
        refs = det_ref(img, 1)
        ref = None
        if refs:
            r = max(refs, key=lambda r: -((r.center().x - w / 2) ** 2 + (r.center().y - h / 2) ** 2))
            shape = sp_ref(img, r)
            ref = (np.array([r.left(), r.top(), r.right(), r.bottom()], float),
                   np.array([[p.x, p.y] for p in shape.parts()], float), dlib.get_face_chip(img, shape, 150, 0.25))
        for n, d in detectors.items():
            dets = d.detect(img)
            hit = [x for x in dets if x.box[0] <= w / 2 <= x.box[2] and x.box[1] <= h / 2 <= x.box[3]]
            rows[n].append({"k": k, "orl": f.suffix == ".pgm", "found": bool(hit), "extra": len(dets) - bool(hit),
                            "box": hit[0].box.tolist() if hit else None, "ref": ref, "img": None})
            if hit and ref is not None:
                rows[n][-1]["img"] = img
        if (k + 1) % 50 == 0:
            print(f"  {k + 1}/{len(files)} images, {time.time() - t0:.0f} s", file=sys.stderr)

    fits = {}
    if a.fit:
        for n, rs in rows.items():
            tr = [r for r in rs if r["k"] % 2 == 0 and r["box"] is not None and r["ref"] is not None]
            b = np.array([r["box"] for r in tr])
            d = np.array([r["ref"][0] for r in tr])
            bw, bh = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
            dcx, dcy = (d[:, 0] + d[:, 2] + 1) / 2, (d[:, 1] + d[:, 3] + 1) / 2
            dside = d[:, 2] - d[:, 0] + 1
            a0 = float(np.mean((dcx - (b[:, 0] + b[:, 2]) / 2) / bw))
            a1 = float(np.mean((dcy - (b[:, 1] + b[:, 3]) / 2) / bh))
            # boxes are near square, so w and h are collinear: fit one scale on their mean
            m = (bw + bh) / 2
            half = float(np.dot(m, dside) / np.dot(m, m)) / 2
            fits[n] = {"a": [round(a0, 4), round(a1, 4), round(half, 4), round(half, 4)], "n": len(tr)}
            fd.LANDMARK_BOX_FITS[n] = fits[n]

    report = {"images": len(files), "n_lfw": a.n_lfw, "n_orl": a.n_orl, "held_out": bool(a.fit), "detectors": {}}
    frame = frame_640x480(load_rgb(files[0]))
    for n, rs in rows.items():
        ev = [r for r in rs if not a.fit or r["k"] % 2 == 1]
        d = detectors[n]
        ious, lm_err, lm_max, chip = [], [], [], []
        for r in ev:
            if r["img"] is None:
                continue
            ref_box, ref_lm, ref_chip = r["ref"]
            det = fd.Detection(np.array(r["box"]), 1.0)
            lb = d.landmark_box(det)
            ib = np.array([lb[0], lb[1], lb[2] + 1, lb[3] + 1], float)
            rb = np.array([ref_box[0], ref_box[1], ref_box[2] + 1, ref_box[3] + 1])
            ious.append(float(fd.iou(rb, ib[None])[0]))
            lm = sp.predict(r["img"], lb)
            iod = np.linalg.norm((ref_lm[0] + ref_lm[1]) / 2 - (ref_lm[2] + ref_lm[3]) / 2)
            e = np.linalg.norm(dlib_round(lm) - ref_lm, axis=1) / iod * 100
            lm_err.append(float(e.mean()))
            lm_max.append(float(e.max()))
            chip.append(float(np.abs(face_chip(r["img"], dlib_round(lm)).astype(int) - ref_chip.astype(int)).mean()))
        lat, cpu = [], []
        d.detect(frame)
        for _ in range(a.runs):
            t, c = time.perf_counter(), time.process_time()
            d.detect(frame)
            lat.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        # small faces: each LFW image scaled to 100 px (face ~40 px) pasted into a 640x480 frame
        small = []
        for r in [r for r in ev if not r["orl"]][:40]:
            fr = np.full((480, 640, 3), 110, np.uint8)
            im = load_rgb(files[r["k"]])
            import cv2

            fr[300:400, 420:520] = cv2.resize(im, (100, 100), interpolation=cv2.INTER_AREA)
            small.append(any(x.box[0] <= 470 <= x.box[2] and x.box[1] <= 350 <= x.box[3] for x in d.detect(fr)))
        lfw = [r for r in ev if not r["orl"]]
        orl = [r for r in ev if r["orl"]]
        report["detectors"][n] = {
            "found_lfw": round(float(np.mean([r["found"] for r in lfw])), 4) if lfw else None,
            "found_orl": round(float(np.mean([r["found"] for r in orl])), 4) if orl else None,
            "found_small_face_in_640x480": round(float(np.mean(small)), 4) if small else None,
            "extra_per_image": round(float(np.mean([r["extra"] for r in ev])), 3),
            "iou_vs_dlib_box": round(float(np.mean(ious)), 3) if ious else None,
            "landmark_err_pct_iod_mean": round(float(np.mean(lm_err)), 2) if lm_err else None,
            "landmark_err_pct_iod_p95": round(float(np.percentile(lm_max, 95)), 2) if lm_max else None,
            "chip_mad_mean": round(float(np.mean(chip)), 2) if chip else None,
            "compared_faces": len(ious),
            "latency_ms_640x480_p50": round(1000 * float(np.median(lat)), 2),
            "cpu_ms_640x480_p50": round(1000 * float(np.median(cpu)), 2),
            "threshold": d.score_threshold,
        }
    if fits:
        report["fits"] = fits
    if a.json:
        print(json.dumps(report))
    else:
        cols = ["found_lfw", "found_orl", "found_small_face_in_640x480", "extra_per_image", "iou_vs_dlib_box", "landmark_err_pct_iod_mean",
                "landmark_err_pct_iod_p95", "chip_mad_mean", "latency_ms_640x480_p50", "cpu_ms_640x480_p50"]
        print("detector   " + " ".join(f"{c[:14]:>14}" for c in cols))
        for n, v in report["detectors"].items():
            print(f"{n:10} " + " ".join(f"{str(v[c]):>14}" for c in cols))
        if fits:
            print("fits:", json.dumps(fits))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
