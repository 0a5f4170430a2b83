"""``edgeship.converters.convert`` against the same conversion written by hand with TFLiteConverter.

Cases (issue 12):

* ``mnv2_fp32``: Keras MobileNetV2 (``keras.applications``, ``weights=None``, seeded, 224x224),
  float32 TFLite. Raw: ``TFLiteConverter.from_keras_model(m).convert()``. edgeship:
  ``convert(m, to="tflite")`` as a user runs it, parity check included (no data given, so
  parity runs on edgeship's own synthetic inputs).
* ``mnv2_int8``: the same model, full-integer int8 with int8 I/O, calibrated on the same
  ``--mnv2-cal`` seeded images in [-1, 1] on both sides; edgeship also checks parity on
  ``--mnv2-val`` more images given as ``validation``.
* ``kws_int8``: the MLPerf Tiny KWS reference SavedModel (``$EDGESHIP_SHARED/models/
  mlperf_tiny_kws/saved_model``, a Keras 2 SavedModel that only the TF1 loader reads), int8 with
  int8 I/O, calibrated on the MFCC features (edgeship.audio) of 120 Speech Commands dev clips
  (10 per class) on both sides; edgeship checks parity on the 50 kws01 clips.

Every conversion runs in a fresh child process (TensorFlow imported and the model built before
the clock starts, on both sides); the time is the conversion itself, plus for edgeship
everything ``convert`` does (source loading, reference outputs, writing, parity check, report).
The order alternates (raw first, then edgeship first, ...), each side runs ``--repeats`` times,
and the medians and their ratio are written to ``bench/results/convert_speed.json`` with the
load average before and after. The machine may be shared: the ratio of interleaved runs still
holds, absolute seconds do not.

Run:
    python bench/convert_speed.py                       # all cases, 2 repeats
    python bench/convert_speed.py --cases kws_int8 --repeats 3
    python bench/convert_speed.py --profile mnv2_int8   # cProfile of one edgeship run (top 40)
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CASES = ("mnv2_fp32", "mnv2_int8", "kws_int8")
KWS_LABELS = ("down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes", "_silence_", "_unknown_")
MAX_RATIO = 1.2


def shared_dir() -> Path:
    return Path(os.environ.get("EDGESHIP_SHARED", ROOT.parent / "shared"))


# -- data (made once in the parent, read by every child) -------------------------------------------
def make_data(work: Path, cases, n_cal: int, n_val: int) -> dict:
    paths = {}
    if any(c.startswith("mnv2") for c in cases):
        rng = np.random.default_rng(0)
        imgs = rng.uniform(-1.0, 1.0, (n_cal + n_val, 224, 224, 3)).astype(np.float32)
        np.savez(work / "mnv2.npz", cal=imgs[:n_cal], val=imgs[n_cal:])
        paths["mnv2"] = str(work / "mnv2.npz")
    if "kws_int8" in cases:
        sys.path.insert(0, str(ROOT))
        from edgeship import audio

        sh = shared_dir()
        dev, par = sh / "data" / "speech_commands_dev", sh / "data" / "kws01_parity"
        cal = np.stack([audio.features(audio.read_audio(f)) for lab in KWS_LABELS
                        for f in sorted((dev / lab).glob("*.flac"))[:10]])[..., None].astype(np.float32)
        val = np.stack([audio.features(audio.read_audio(f))
                        for f in sorted((par / "wav").glob("*.wav"))])[..., None].astype(np.float32)
        np.savez(work / "kws.npz", cal=cal, val=val)
        paths["kws"] = str(work / "kws.npz")
    return paths


# -- one timed conversion (child process) ----------------------------------------------------------
def _mobilenet():
    import keras

    keras.utils.set_random_seed(0)
    return keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))


def child(case: str, side: str, data: str, out: str) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    d = np.load(data) if data else None
    cal = d["cal"] if d is not None else None
    val = d["val"] if d is not None else None
    kws = shared_dir() / "models" / "mlperf_tiny_kws" / "saved_model"
    model = _mobilenet() if case.startswith("mnv2") else None
    result = {"case": case, "side": side}
    t0 = time.perf_counter()
    if side == "raw":
        if case == "mnv2_fp32":
            blob = tf.lite.TFLiteConverter.from_keras_model(model).convert()
        else:
            if case == "mnv2_int8":
                conv = tf.lite.TFLiteConverter.from_keras_model(model)
            else:  # tf.lite.TFLiteConverter.from_saved_model fails on this Keras 2 SavedModel
                conv = tf.compat.v1.lite.TFLiteConverter.from_saved_model(
                    str(kws), signature_key="serving_default", tag_set={"serve"})

            def representative():
                for s in cal:
                    yield [s[None]]

            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = representative
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
            blob = conv.convert()
        Path(out).write_bytes(blob)
        result["bytes"] = len(blob)
    else:
        from edgeship.converters import convert
        from edgeship.errors import ParityError

        src = model if case.startswith("mnv2") else str(kws)
        kwargs = {} if case == "mnv2_fp32" else {"quantize": "int8", "calibration": cal, "validation": val}
        try:
            res = convert(src, to="tflite", out=out, **kwargs).to_dict()
        except ParityError as exc:  # timed all the same; the report says it did not pass
            res = exc.report
        o = res["outputs"][0]
        result.update(bytes=o["bytes"], parity_passed=bool(o["parity"]["passed"]),
                      parity={k: o["parity"].get(k) for k in ("n_samples", "cosine", "top1_agreement")})
    result["seconds"] = time.perf_counter() - t0
    return result


def run_child(case: str, side: str, data: str, work: Path, i: int) -> dict:
    out = work / f"{case}_{side}_{i}.tflite"
    cmd = [sys.executable, __file__, "--child", case, side, data or "", str(out)]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(ROOT))
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not line:
        raise SystemExit(f"{case}/{side} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(line[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--mnv2-cal", type=int, default=64, help="calibration images (both sides)")
    ap.add_argument("--mnv2-val", type=int, default=16, help="validation images (edgeship's parity)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "convert_speed.json"))
    ap.add_argument("--profile", choices=CASES, help="profile one edgeship conversion instead")
    ap.add_argument("--child", nargs=4, metavar=("CASE", "SIDE", "DATA", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0
    if "kws_int8" in args.cases and not (shared_dir() / "models" / "mlperf_tiny_kws").is_dir():
        print(f"skipping kws_int8: {shared_dir()}/models/mlperf_tiny_kws is absent", file=sys.stderr)
        args.cases = [c for c in args.cases if c != "kws_int8"]
    with tempfile.TemporaryDirectory(prefix="edgeship-convert-speed-") as tmp:
        work = Path(tmp)
        data = make_data(work, args.profile and [args.profile] or args.cases, args.mnv2_cal, args.mnv2_val)
        dfile = lambda c: data.get("kws" if c.startswith("kws") else "mnv2") if c != "mnv2_fp32" else ""
        if args.profile:
            import cProfile
            import pstats

            prof = work / "p.prof"
            subprocess.run([sys.executable, "-m", "cProfile", "-o", str(prof), __file__, "--child", args.profile,
                            "edgeship", dfile(args.profile) or "", str(work / "p.tflite")], check=True,
                           env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=str(ROOT))
            pstats.Stats(str(prof)).sort_stats("cumulative").print_stats(r"edgeship|converters|sdk|lite\.py", 40)
            return 0
        load_before = os.getloadavg()
        rows = {c: {"raw": [], "edgeship": []} for c in args.cases}
        details = []
        for r in range(args.repeats):
            for c in args.cases:
                order = ("raw", "edgeship") if r % 2 == 0 else ("edgeship", "raw")
                for side in order:
                    res = run_child(c, side, dfile(c), work, r)
                    rows[c][side].append(res["seconds"])
                    details.append(res)
                    print(f"{c:10s} {side:8s} {res['seconds']:7.2f} s"
                          + (f"  parity passed={res.get('parity_passed')}" if side == "edgeship" else ""),
                          file=sys.stderr, flush=True)
        load_after = os.getloadavg()
    summary = {}
    for c, r in rows.items():
        raw, ours = statistics.median(r["raw"]), statistics.median(r["edgeship"])
        summary[c] = {"raw_median_s": round(raw, 3), "edgeship_median_s": round(ours, 3),
                      "ratio": round(ours / raw, 3), "raw_s": [round(x, 3) for x in r["raw"]],
                      "edgeship_s": [round(x, 3) for x in r["edgeship"]]}
    report = {"bench": "convert_speed", "max_ratio": MAX_RATIO, "repeats": args.repeats,
              "mnv2_calibration": args.mnv2_cal, "mnv2_validation": args.mnv2_val,
              "loadavg_before": [round(x, 2) for x in load_before], "loadavg_after": [round(x, 2) for x in load_after],
              "cpus": os.cpu_count(), "cases": summary, "runs": details,
              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(f"{'case':10s} {'raw s':>8s} {'edgeship s':>11s} {'ratio':>6s}")
    for c, s in summary.items():
        print(f"{c:10s} {s['raw_median_s']:8.2f} {s['edgeship_median_s']:11.2f} {s['ratio']:6.2f}")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} ({os.cpu_count()} CPUs); "
          f"written {args.out}")
    return 0 if all(s["ratio"] <= MAX_RATIO for s in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
