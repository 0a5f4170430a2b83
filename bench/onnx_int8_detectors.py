"""YuNet and UltraFace (ONNX) -> calibrated int8 TFLite -> Edge TPU check, with parity per output.

Each detector is converted with ``edgeship.converters.convert(..., to="tflite", quantize="int8")``
(exporter ``tflite-int8-onnx``: onnx2tf, then TFLite int8 calibration), calibrated on real LFW
faces (``$EDGESHIP_SHARED/data/faces/lfw_dev``) read and prepared by the detector's own
preprocessing spec (``edgeship.face_detect.<Detector>.preprocessing``, written next to the
outputs as ``<name>.preprocessing.json``: the arrays the face app feeds the model at run time),
with 20 % of the images held out for the parity check. Then every written file goes through the
Edge TPU target check (``edgeship check --target edgetpu``). Prints one row per output and the
verdict; writes ``summary.json``.

onnx2tf lives in the side overlay (see the Makefile), so run with it on PYTHONPATH::

    make overlays
    PYTHONPATH=.overlay-onnx2tf .venv/bin/python bench/onnx_int8_detectors.py --n 100 --only yunet \
        --summary bench/results/onnx_int8_yunet.json     # make bench-onnx-int8 runs both detectors

YuNet passes parity with the default (minmax) calibration; UltraFace needs ``--calibration-method
percentile`` (with minmax its box regressions reach only cosine 0.964).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def detectors(shared: Path):
    from edgeship.face_detect import UltraFaceDetector, YuNetDetector

    return [("yunet", REPO / "models" / "weights" / "yunet_n_320_320.onnx", YuNetDetector.preprocessing),
            ("ultraface", shared / "models" / "ultraface" / "version-RFB-320_without_postprocessing.onnx",
             UltraFaceDetector.preprocessing)]


def detection_agreement(name: str, onnx_path: Path, tflite_path: Path, faces: Path, n: int = 60) -> dict:
    """The face app's detector with the ONNX source and with the int8 file, on ``n`` LFW images
    taken from the end of the sorted list (the calibration subset is a seeded pick over all of them):
    how often each finds a face, IoU of the two best boxes, and the best-score difference."""
    import numpy as np

    import edgeship
    from edgeship.face_detect import create_detector, iou
    from edgeship.preprocessing import read_image

    ref, q = create_detector(name, model=edgeship.load(onnx_path)), create_detector(name, model=edgeship.load(tflite_path))
    files = sorted(faces.rglob("*.jpg"))[-n:]
    found_ref = found_q = both = 0
    ious, dscore = [], []
    for f in files:
        img = read_image(f)
        a, b = ref.detect(img), q.detect(img)
        found_ref += bool(a)
        found_q += bool(b)
        if a and b:
            both += 1
            ious.append(float(iou(a[0].box, np.asarray([b[0].box]))[0]))
            dscore.append(abs(a[0].score - b[0].score))
    return {"images": len(files), "found_onnx": found_ref, "found_int8": found_q, "found_both": both,
            "best_box_iou_mean": float(np.mean(ious)) if ious else None,
            "best_box_iou_min": float(np.min(ious)) if ious else None,
            "best_score_abs_diff_mean": float(np.mean(dscore)) if dscore else None}


def run_one(name: str, src: Path, spec, faces: Path, n: int, out: Path, method: str = "minmax") -> dict:
    from edgeship.converters import convert
    from edgeship.errors import ParityError
    from edgeship.targets import check

    spec_path = spec.save(out / f"{name}.preprocessing.json")
    t0 = time.perf_counter()
    try:
        result = convert(str(src), to="tflite", quantize="int8", calibration=str(faces), preprocessing=str(spec_path),
                         max_calibration=n, out=out / name, seed=0, calibration_method=method).to_dict()
    except ParityError as exc:
        result = exc.report
    seconds = time.perf_counter() - t0
    (rec,) = result["outputs"]
    path = Path(rec["path"])
    checked = path
    if not rec["shipped"]:  # a rejected file is still checked, under a .tflite name, and said so
        checked = path.with_name(path.name.replace(".tflite.rejected", ".rejected-copy.tflite"))
        shutil.copyfile(path, checked)
    verdict = check(checked, "edgetpu").to_dict()
    agreement = detection_agreement(name, src, checked, faces)
    return {"name": name, "calibration_method": method, "source": str(src), "seconds": round(seconds, 1),
            "file": str(path), "bytes": rec["bytes"], "shipped": rec["shipped"], "calibration": result["calibration"], "validation": result["validation"],
            "parity": rec["parity"], "edgetpu": verdict, "detections": agreement}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="LFW images to use (80 %% calibrate, 20 %% validate)")
    ap.add_argument("-o", "--out", type=Path, default=Path("/tmp/edgeship-onnx-int8"), help="converted files")
    ap.add_argument("--summary", type=Path, default=None, help="summary JSON (default: OUT/summary.json)")
    ap.add_argument("--only", choices=("yunet", "ultraface"), default=None)
    ap.add_argument("--calibration-method", choices=("minmax", "percentile"), default="minmax")
    args = ap.parse_args(argv)
    shared = Path(os.environ.get("EDGESHIP_SHARED", REPO.parent / "shared"))
    faces = shared / "data" / "faces" / "lfw_dev"
    if not faces.is_dir():
        print(f"LFW faces not found at {faces} (set EDGESHIP_SHARED)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, src, spec in detectors(shared):
        if args.only and name != args.only:
            continue
        r = run_one(name, src, spec, faces, args.n, args.out, args.calibration_method)
        rows.append(r)
        par, tpu = r["parity"], r["edgetpu"]
        print(f"\n{name} int8, {r['calibration_method']} ({r['bytes'] / 1024:.0f} KiB, {r['seconds']} s, calibration "
              f"{r['calibration']['count']} LFW images, validation {par['n_samples']} held out): parity "
              f"{'PASS' if par['passed'] else 'FAIL'}")
        print(f"  {'output':10s} {'kind':9s} {'cosine':>8s} {'cos_min':>8s} {'max_abs':>8s} {'rel_max':>8s}  ok")
        for o in par["outputs"]:
            print(f"  {o['name']:10s} {o['kind']:9s} {o['cosine']:8.5f} {o['cosine_min']:8.5f} {o['max_abs']:8.4f} "
                  f"{o['rel_max_abs']:8.4f}  {'yes' if o['passed'] else 'NO'}")
        print(f"  edgetpu check: {'compatible' if tpu['compatible'] else 'NOT compatible'}; "
              + f"ops on TPU {tpu['details'].get('tpu_ops')}, on CPU {tpu['details'].get('cpu_ops')}; "
              + f"problems {[p.get('message', p) for p in tpu['problems']]}")
        d = r["detections"]
        print(f"  face app detector on {d['images']} LFW images: a face found by ONNX {d['found_onnx']}, by int8 "
              f"{d['found_int8']}; best-box IoU mean {d['best_box_iou_mean']}, min {d['best_box_iou_min']}; "
              f"|score diff| mean {d['best_score_abs_diff_mean']}")
    from edgeship._io import atomic_write_json

    from edgeship._io import versions

    summary = args.summary or args.out / "summary.json"
    atomic_write_json(summary, {"detectors": rows, "n_images": args.n, "versions": versions()})
    print(f"\nsummary: {summary}")
    return 0 if all(r["parity"]["passed"] and r["edgetpu"]["compatible"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
