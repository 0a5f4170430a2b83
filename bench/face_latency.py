"""Per-frame latency of edgeship.face: detect + landmarks + chip + descriptor, one thread.

The frame is 640x480, made from a real face (an LFW dev image scaled to 240 px on a grey
background). Each stage is timed separately and the whole ``FacePipeline.faces`` call end to end,
wall clock and process CPU time (on a shared machine the CPU time is the steadier figure).
Goal: total <= 40 ms with the int8 descriptor and 1 thread.

Usage:
    python bench/face_latency.py [--embedder int8|fp32|onnx|PATH] [--detector yunet] [--runs 50] [--json]
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

GOAL_MS = 40.0


def shared() -> Path:
    return Path(os.environ.get("EDGESHIP_SHARED", REPO.parent / "shared"))


def frame_640x480(face_rgb: np.ndarray) -> np.ndarray:
    """A 640x480 frame: a mid-grey background with the face image scaled to 240x240 near the centre."""
    import cv2

    f = np.full((480, 640, 3), 110, np.uint8)
    f[120:360, 160:400] = cv2.resize(face_rgb, (240, 240), interpolation=cv2.INTER_LINEAR)
    return f


def _stats(xs) -> dict:
    a = np.array(xs) * 1000
    return {"p50": round(float(np.median(a)), 2), "p90": round(float(np.percentile(a, 90)), 2),
            "mean": round(float(a.mean()), 2)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--embedder", default="int8", help="int8, fp32, onnx, a model path, or none (no descriptor)")
    ap.add_argument("--detector", default="yunet")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    from edgeship import face
    from edgeship.face_chip import dlib_round, face_chip

    lfw = sorted((shared() / "data/faces/lfw_dev").glob("*/*.jpg"))
    if not lfw:
        print(f"no LFW images under {shared()} (set EDGESHIP_SHARED)", file=sys.stderr)
        return 2
    frame = frame_640x480(face.read_image(lfw[len(lfw) // 2]))
    t = time.perf_counter()
    emb = None if a.embedder == "none" else a.embedder
    pipe = face.FacePipeline(detector=a.detector, embedder=emb, threads=a.threads)
    init_s = time.perf_counter() - t
    faces = pipe.faces(frame)
    if len(faces) != 1:
        print(f"expected one face in the test frame, found {len(faces)}", file=sys.stderr)
        return 1
    stages = {k: ([], []) for k in ("detect", "landmarks", "chip", "embed", "total")}

    def timed(key, fn, *args):
        w, c = time.perf_counter(), time.process_time()
        out = fn(*args)
        stages[key][0].append(time.perf_counter() - w)
        stages[key][1].append(time.process_time() - c)
        return out

    for _ in range(a.runs):
        d = timed("detect", pipe.detector.detect, frame)[0]
        lm = timed("landmarks", pipe.shape_predictor.predict, frame, pipe.detector.landmark_box(d))
        chip = timed("chip", face_chip, frame, dlib_round(lm))
        if emb is not None:
            timed("embed", pipe.embed, chip)
        timed("total", pipe.faces, frame)
    rep = {"frame": [480, 640, 3], "detector": a.detector, "embedder": a.embedder, "threads": a.threads,
           "runs": a.runs, "init_s": round(init_s, 2), "goal_ms": GOAL_MS,
           "wall_ms": {k: _stats(v[0]) for k, v in stages.items() if v[0]},
           "cpu_ms": {k: _stats(v[1]) for k, v in stages.items() if v[1]}}
    rep["meets_goal_wall_p50"] = rep["wall_ms"]["total"]["p50"] <= GOAL_MS
    rep["meets_goal_cpu_p50"] = rep["cpu_ms"]["total"]["p50"] <= GOAL_MS
    if a.json:
        print(json.dumps(rep))
    else:
        print(f"640x480 frame, detector={a.detector}, embedder={a.embedder}, threads={a.threads}, {a.runs} runs "
              f"(pipeline init {rep['init_s']} s)")
        print(f"{'stage':10} {'wall p50':>9} {'wall p90':>9} {'cpu p50':>9}")
        for k in rep["wall_ms"]:
            print(f"{k:10} {rep['wall_ms'][k]['p50']:9.2f} {rep['wall_ms'][k]['p90']:9.2f} {rep['cpu_ms'][k]['p50']:9.2f}")
        print(f"goal {GOAL_MS} ms: wall p50 {'met' if rep['meets_goal_wall_p50'] else 'NOT met'}, "
              f"cpu p50 {'met' if rep['meets_goal_cpu_p50'] else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
