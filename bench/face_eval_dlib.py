"""dlib's own pipeline on the same data, as the baseline for the face unlock figures.

dlib (the ``dlib-bin`` wheel, a test/bench oracle only -- the app never imports it): its
frontal-face HOG detector (1 upsample), its 5-point shape predictor and
``face_recognition_model_v1.compute_face_descriptor`` (no jitter, padding 0.25), all from the
files of ``face-recognition-models``. Images are read as edgeship's app reads them (grayscale
replicated to RGB). In LFW images the face nearest the centre is the subject; no face -> no
embedding (the pair counts as "different").

The threshold rule is the app's: a FAR <= 1e-3 threshold calibrated on pairs built from lfw_dev
images that are not among ``pairs_dev.txt``'s pairs (see ``face_eval_calibrate.py``).

Usage::

    nice python bench/face_eval_dlib.py [--limit N]   # embeddings cached; prints one JSON object
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import face_eval_common as fc  # noqa: E402


def dlib_models() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None:
        raise SystemExit("face-recognition-models is not installed (pip install face-recognition-models)")
    return Path(spec.submodule_search_locations[0]) / "models"


class DlibPipeline:
    def __init__(self):
        import dlib

        m = dlib_models()
        self.dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.sp = dlib.shape_predictor(str(m / "shape_predictor_5_face_landmarks.dat"))
        self.rec = dlib.face_recognition_model_v1(str(m / "dlib_face_recognition_resnet_model_v1.dat"))
        self.version = dlib.__version__

    def read(self, path) -> np.ndarray:
        import cv2

        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))

    def embed(self, path, central: bool = True):
        img = self.read(path)
        dets = list(self.detector(img, 1))
        if not dets:
            return None, 0
        h, w = img.shape[:2]
        r = min(dets, key=lambda r: ((r.left() + r.right()) / 2 - w / 2) ** 2 + ((r.top() + r.bottom()) / 2 - h / 2) ** 2)
        shape = self.sp(img, r)
        return np.asarray(self.rec.compute_face_descriptor(img, shape), np.float32), len(dets)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=None, help="embed only the first N LFW images (quick look)")
    args = ap.parse_args(argv)
    if not fc.lfw_dir().is_dir():
        raise SystemExit(f"LFW dev data not found at {fc.lfw_dir()} (set EDGESHIP_SHARED)")
    dp = DlibPipeline()
    tag = f"dlib-{dp.version}"
    files = fc.lfw_files()
    if args.limit:
        files = dict(list(files.items())[: args.limit])
    lfw = fc.embed_files(f"{tag}-lfw_dev", files, dp.embed, "dlib: LFW dev")
    orl = fc.embed_files(f"{tag}-orl", fc.orl_files(), lambda p: dp.embed(p), "dlib: ORL")
    if args.limit:
        print(json.dumps({"embedded": len(lfw)}))
        return {}
    res = fc.lfw_protocol(lfw)
    out = {"pipeline": "dlib " + dp.version + ": HOG detector (1 upsample) + shape_predictor_5 + resnet v1",
           "lfw_images": len(lfw), "lfw_images_without_face": sum(v[0] is None for v in lfw.values()),
           **{k: v for k, v in res.items() if not k.endswith("_distances")}}
    d, same = res["pairs_dev_distances"]
    out["pairs_dev_at_0.6"] = fc.ev.verification_metrics(d, same, 0.6)  # dlib's documented threshold, for reference
    out["orl"] = fc.orl_protocol(orl, res["threshold"])
    np.savez(fc.cache_file(f"{tag}-lfw_dev-distances"), d=d, same=same)
    p = fc.write_result("face_eval_dlib", out)
    from edgeship._io import to_jsonable

    print(json.dumps(to_jsonable(out)))
    print(f"written {p}", file=sys.stderr)
    return out


if __name__ == "__main__":
    main()
