"""Face unlock figures: LFW dev pairs and ORL end to end, int8 vs fp32 vs dlib's own pipeline.

For each model (``--models int8 fp32``) the app's engine (``edgeship.face`` through
``examples.face_unlock.engine.FaceEngine``) embeds every LFW dev image (grayscale -> RGB; the face
nearest the centre is the subject) and every ORL image (cached; see ``face_eval_common``). Then:

1. **Threshold calibration** (``--write-threshold``): the largest Euclidean distance with a
   false-accept rate <= 1e-3 on pairs built from the images of LFW dev folds 7-8 -- every
   within-person pair and 200,000 seeded random cross-person pairs, none of them a
   ``pairs_dev.txt`` pair. Written to ``examples/face_unlock/threshold.json`` with the model's
   sha256, the data hash and the method. LFW folds share no people, so folds 1-6 are also
   people-disjoint from the calibration.
2. **LFW**: ``pairs_dev.txt`` scored at that shipped threshold (every fold whose images are
   embedded; folds 1-6 also reported alone), best-threshold accuracy, TAR at FAR = 1e-3, ROC plot.
3. **ORL**: each of 40 people enrolled from their first 2 usable images into a real encrypted
   store; the other 8 images unlock (as themselves: false rejects; claiming each other person:
   false accepts; and unlock without a user name).
4. **dlib**: the same figures for dlib's own pipeline from its embedding cache (``face_eval_dlib.py``), on
   the same folds: only folds embedded by every pipeline are scored.

Usage::

    nice python bench/face_eval.py --models int8 fp32 --write-threshold --plot bench/results/face_roc.png
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import face_eval_common as fc  # noqa: E402


def engine_embedder(eng):
    def embed(path):
        img = eng.read(path)
        faces = eng.faces(img)
        if not faces:
            return None, 0
        h, w = img.shape[:2]
        f = min(faces, key=lambda f: ((f.box[0] + f.box[2]) / 2 - w / 2) ** 2 + ((f.box[1] + f.box[3]) / 2 - h / 2) ** 2)
        return np.asarray(f.embedding, np.float32).reshape(-1), len(faces)
    return embed


def orl_through_store(eng, data, threshold):
    """Enrol ORL people into a real store with the app's Store (encrypted), then score probes."""
    from examples.face_unlock.store import Store

    with tempfile.TemporaryDirectory() as d:
        st = Store(Path(d) / "store")
        for s in range(1, 41):
            ks = [f"s{s}/{k}" for k in range(1, 11)]
            usable = [k for k in ks if data[k][0] is not None and data[k][1] == 1][:2]
            if usable:
                st.enroll(f"s{s}", [data[k][0] for k in usable], model_id=eng.model_id)
        # the templates as the app reads them back (decrypted), must equal what went in
        back = st.templates(st.load())
    res = fc.orl_protocol(data, threshold)
    res["store_roundtrip_users"] = len(back)
    return res


def data_hash(files) -> str:
    from edgeship._io import sha256_bytes

    return sha256_bytes("\n".join(sorted(str(Path(p).relative_to(fc.shared_dir())) for p in files)).encode())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["int8", "fp32"])
    ap.add_argument("--int8-calibration", choices=["default", "lfw"], default="default",
                    help="int8 descriptor calibration: the app's default build (synthetic chips, what a fresh "
                         "install gets) or 200 real LFW chips of folds 7-8")
    ap.add_argument("--write-threshold", action="store_true", help="write examples/face_unlock/threshold.json")
    ap.add_argument("--plot", type=Path, default=None, help="ROC plot of every model (and dlib) on pairs_dev")
    ap.add_argument("--max-images", type=int, default=None,
                    help="embed at most N LFW images this run (cached; run again to continue)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--score-only", action="store_true", help="embed nothing new: score what the caches hold")
    args = ap.parse_args(argv)
    if not fc.lfw_dir().is_dir():
        raise SystemExit(f"LFW dev data not found at {fc.lfw_dir()} (set EDGESHIP_SHARED)")
    from edgeship._io import to_jsonable
    from examples.face_unlock.engine import THRESHOLD_FILE, FaceEngine

    files = fc.lfw_files()
    import os

    int8_cal = None
    if "int8" in args.models:
        if args.int8_calibration == "lfw" and not os.environ.get("EDGESHIP_FACE_CALIBRATION"):
            os.environ["EDGESHIP_FACE_CALIBRATION"] = str(fc.int8_calibration_chips())
        int8_cal = os.environ.get("EDGESHIP_FACE_CALIBRATION")  # None: the app's default (synthetic chips)
    caches, engines = {}, {}
    for model in args.models:
        eng = FaceEngine(model, threads=args.threads)
        tag = f"edgeship-{model}-{eng.model_sha256[:16]}"
        todo = files if args.max_images is None else dict(list(files.items())[: args.max_images])
        t0 = time.perf_counter()
        if args.score_only:
            caches[model] = (fc.load_cache(f"{tag}-lfw_dev"), fc.load_cache(f"{tag}-orl"))
        else:
            caches[model] = (fc.embed_files(f"{tag}-lfw_dev", todo, engine_embedder(eng), f"{model}: LFW dev"),
                             fc.embed_files(f"{tag}-orl", fc.orl_files(), engine_embedder(eng), f"{model}: ORL"))
        engines[model] = (eng, round(time.perf_counter() - t0, 1))
    dlib_tag = "dlib-20.0.1"
    if fc.cache_file(f"{dlib_tag}-lfw_dev").is_file() and fc.cache_file(f"{dlib_tag}-orl").is_file():
        caches["dlib"] = (fc.load_cache(f"{dlib_tag}-lfw_dev"), fc.load_cache(f"{dlib_tag}-orl"))
    # every pipeline is scored on the same folds: those fully embedded by all of them
    common = sorted(set.intersection(*[set(fc.complete_folds(c[0])) for c in caches.values()]))
    results, curves, thresholds = {}, {}, {}
    for model, (lfw, orl) in caches.items():
        res = fc.lfw_protocol(lfw)  # every fold this pipeline has embedded
        com = fc.lfw_protocol(lfw, folds=common)  # the folds every pipeline has embedded: like for like
        thr = res["threshold"]
        d, same = res["pairs_dev_distances"]
        far, tar, _ = fc.ev.roc_curve(d, same)
        curves[f"{'edgeship ' if model != 'dlib' else ''}{model}: folds {','.join(map(str, res['pairs_dev']['folds']))}, "
               f"{res['pairs_dev']['n_pairs']} pairs (AUC {res['pairs_dev']['auc']:.4f})"] = (far, tar)
        r = {"lfw_images": len(lfw), "lfw_images_without_face": sum(v[0] is None for v in lfw.values()),
             **{k: v for k, v in res.items() if not k.endswith("_distances")},
             "common_folds": com.get("pairs_dev")}
        if model == "dlib":
            r["pipeline"] = "dlib 20.0.1 (dlib-bin): HOG detector (1 upsample) + shape_predictor_5 + resnet v1, no jitter"
            r["pairs_dev_at_0.6"] = fc.ev.verification_metrics(d, same, 0.6)
            r["orl"] = fc.orl_protocol(orl, thr) if len(orl) == 400 else None
            results[model] = r
            continue
        eng, secs = engines[model]
        r.update({"model_id": eng.model_id, "orl": orl_through_store(eng, orl, thr) if len(orl) == 400 else None,
                  "seconds": secs})
        results[model] = r
        cal = res["calibration"]
        cal_files = [fc.ev.image_path(fc.lfw_dir(), k) for k in
                     fc.ev.unique_keys([p for p in fc.lfw_pairs() if p.fold in fc.CAL_FOLDS])]
        thresholds[model] = {
            "threshold": round(float(thr), 6), "model_sha256": eng.model_sha256,
            "far_on_calibration": cal["far"], "tar_on_calibration": cal["tar"],
            "calibration_pairs": {"genuine": cal["n_genuine"], "impostor": cal["n_impostor"], "people": cal["n_people"],
                                  "seed": cal["seed"]},
            "data": {"set": "shared/data/faces/lfw_dev", "folds": cal["folds"], "images": len(cal_files),
                     "image_list_sha256": data_hash(cal_files)},
        }
        if model == "int8":
            thresholds[model]["int8_calibration"] = (
                f"{Path(int8_cal).name}: sha256 {fc.sha256_file(int8_cal)[:16]}; the first 200 single-face chips of "
                f"LFW dev folds 7-8 (bench/face_eval_common.int8_calibration_chips), via $EDGESHIP_FACE_CALIBRATION"
                if int8_cal else "the default build: edgeship.models.face.synthetic_chips (seeded, data-free), "
                "what a fresh install gets")
    if args.plot and curves:
        fc.ev.plot_roc(curves, args.plot, title="LFW dev pairs (grayscale), shipped-threshold rule: FAR<=1e-3")
    summary = {}
    for k, r in results.items():
        m = r["pairs_dev"]
        c = r.get("common_folds") or {}
        summary[k] = {"folds": m["folds"], "n_pairs": m["n_pairs"], "threshold": r["threshold"],
                      "common_folds": {"folds": c.get("folds"), "n_pairs": c.get("n_pairs"),
                                       "accuracy_at_shipped_threshold": c.get("accuracy_at_shipped_threshold"),
                                       "best_accuracy": c.get("best_accuracy"), "tar_at_far_1e-3": c.get("tar_at_far_1e-3"),
                                       "far_at_shipped_threshold": c.get("far_at_shipped_threshold")},
                      "accuracy_at_shipped_threshold": m["accuracy_at_shipped_threshold"],
                      "best_accuracy": m["best_accuracy"], "tar_at_far_1e-3": m["tar_at_far_1e-3"],
                      "far_at_shipped_threshold": m["far_at_shipped_threshold"],
                      "folds_1_6_accuracy": r.get("pairs_dev_disjoint", {}).get("accuracy_at_shipped_threshold"),
                      "orl": None if not r["orl"] else {
                          "false_rejects": r["orl"]["verification"]["false_rejects"], "probes": r["orl"]["probes"],
                          "false_accepts": r["orl"]["verification"]["false_accepts"],
                          "impostor_claims": r["orl"]["verification"]["impostor_claims"],
                          "identification": r["orl"]["identification"]}}
    checks = {}
    acc = {k: v["accuracy_at_shipped_threshold"] for k, v in summary.items()}
    cacc = {k: v["common_folds"]["accuracy_at_shipped_threshold"] for k, v in summary.items()}
    if "int8" in acc and "fp32" in acc and summary["int8"]["folds"] == summary["fp32"]["folds"]:
        checks["int8_minus_fp32_points"] = round(100 * (acc["int8"] - acc["fp32"]), 3)
        checks["int8_within_0.3_point_of_fp32"] = abs(acc["int8"] - acc["fp32"]) <= 0.003
    for k in ("int8", "fp32"):
        if k in cacc and "dlib" in cacc and cacc[k] is not None:  # on the same pairs
            checks[f"{k}_minus_dlib_points_common_folds"] = round(100 * (cacc[k] - cacc["dlib"]), 3)
            checks[f"{k}_at_least_dlib_common_folds"] = cacc[k] >= cacc["dlib"]
    summary["checks"] = checks
    summary["folds_scored"] = [f + 1 for f in common]
    out = {"summary": summary, "results": results}
    fc.write_result("face_eval", out)
    if args.write_threshold and thresholds:
        from edgeship._io import atomic_write_json

        doc = json.loads(THRESHOLD_FILE.read_text()) if THRESHOLD_FILE.is_file() else {}
        doc.setdefault("models", {}).update(thresholds)
        doc["method"] = ("largest Euclidean distance with false-accept rate <= 1e-3 on calibration pairs built from the "
                         "images of LFW dev folds 7-8 (all within-person pairs, 200,000 seeded random cross-person pairs), "
                         "none of them a pairs_dev.txt pair; LFW folds share no people, so folds 1-6 are people-disjoint "
                         "from the calibration. Written by bench/face_eval.py --write-threshold.")
        doc["far_target"] = fc.ev.FAR_TARGET
        doc["compare"] = "accept when the Euclidean distance to the nearest enrolled template is <= threshold"
        atomic_write_json(THRESHOLD_FILE, doc)
        print(f"wrote {THRESHOLD_FILE}", file=sys.stderr)
    print(json.dumps(to_jsonable(summary)))


if __name__ == "__main__":
    main()
