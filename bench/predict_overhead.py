"""How much does ``edgeship.load(...).predict`` cost over the bare LiteRT interpreter?

Builds a small Keras CNN (128x128x3 -> 10 classes, about 1.3 ms fp32 / 1.6 ms
int8 per inference on one 2-core EPYC vCPU), converts it to float32 and
full-int8 TFLite once (in a child process, so TensorFlow never shares the timed
process) and caches both in the temp dir. Then, on 1 thread, it times the raw
``interpreter.set_tensor / invoke / get_tensor`` call and ``Model.predict`` on
the same input, interleaved: every round runs each variant once, in a fresh
random order, so load from other processes and CPU frequency changes hit all
of them alike. The int8 raw call is handed the already-quantized input, so the
ratio includes everything edgeship adds: input checks, quantize, dequantize.
For int8 a third variant, "raw+numpy quantize", does that work by hand in
numpy the usual way, to show how much of the gap is the quantization itself.

Prints the median latencies and the ratios, and exits 1 when the gated ratio
exceeds ``--max-ratio`` (1.05). The gate compares like with like: for a float
model, predict / raw invoke; for an integer-input model, predict /
(raw invoke + the same quantize/dequantize by hand), since an app that holds
float data pays for that step with or without edgeship. Both ratios are printed. Medians of interleaved
rounds are robust, but a machine busy with other jobs still moves the int8
ratio by about +-0.01 (memory-bound quantization suffers most).

Run:
    python bench/predict_overhead.py                 # build (once) + measure
    python bench/predict_overhead.py --json          # one JSON object on stdout
    python bench/predict_overhead.py --model a.tflite --model b.tflite
    python bench/predict_overhead.py --kws --rounds 3000   # issue 12: both KWS models, 1 thread
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RECIPE_VERSION = 1  # bump when build_cnn changes: it names the cache folder
INPUT_SHAPE = (1, 128, 128, 3)


def build_cnn(out_dir: Path) -> dict:
    """Train-free small CNN, converted to fp32 and int8 TFLite; returns {name: path}."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    inp = keras.Input(INPUT_SHAPE[1:], batch_size=1)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(inp)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(128, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inp, out)

    fp32 = tf.lite.TFLiteConverter.from_keras_model(model).convert()

    calib = np.random.default_rng(1).random((16, *INPUT_SHAPE[1:]), dtype=np.float32)

    def representative():
        for sample in calib:
            yield [sample[None]]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    int8 = conv.convert()

    paths = {}
    for name, data in (("fp32", fp32), ("int8", int8)):
        paths[name] = _atomic_write(out_dir / f"small_cnn_{name}.tflite", data)
    return paths


def _atomic_write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def cached_models(cache_dir: Path | None) -> dict:
    """Paths of the fp32/int8 CNN, built on first use; the folder name pins recipe + TF version."""
    from importlib import metadata

    try:
        tfv = metadata.version("tensorflow-cpu")
    except metadata.PackageNotFoundError:
        try:
            tfv = metadata.version("tensorflow")
        except metadata.PackageNotFoundError:
            tfv = "none"
    key = hashlib.sha256(f"{RECIPE_VERSION}|{INPUT_SHAPE}|{tfv}".encode()).hexdigest()[:12]
    root = (cache_dir or Path(tempfile.gettempdir()) / "edgeship-bench") / f"small_cnn_{key}"
    paths = {n: root / f"small_cnn_{n}.tflite" for n in ("fp32", "int8")}
    if all(p.is_file() for p in paths.values()):
        return paths
    print(f"building the small CNN once into {root} ...", file=sys.stderr)
    # In a child process: TensorFlow's threads and heap must not share the timed process.
    # Its chatter goes to stderr so that --json output stays one object on stdout.
    subprocess.run([sys.executable, __file__, "--build-into", str(root)], check=True, stdout=sys.stderr)
    return paths


def kws_models() -> dict:
    """The zoo KWS model and the MLPerf Tiny reference int8 and float32 models (those present)."""
    import edgeship.models

    root = Path(__file__).resolve().parent.parent
    shared = Path(os.environ.get("EDGESHIP_SHARED", root.parent / "shared")) / "models" / "mlperf_tiny_kws"
    out = {}
    try:
        out["kws_dscnn_int8"] = Path(edgeship.models.path("kws_dscnn_int8"))
    except Exception as exc:
        print(f"kws_dscnn_int8 skipped: {exc}", file=sys.stderr)
    for name, f in (("mlperf_kws_int8", "kws_ref_model.tflite"), ("mlperf_kws_float32", "kws_ref_model_float32.tflite")):
        if (shared / f).is_file():
            out[name] = shared / f
        else:
            print(f"{name} skipped: {shared / f} is absent", file=sys.stderr)
    if not out:
        raise SystemExit("no KWS model found")
    return out


def measure(path: Path, rounds: int, warmup: int, seed: int = 0) -> dict:
    """Interleaved raw-invoke vs edgeship-predict timing of one model on 1 thread."""
    from ai_edge_litert.interpreter import Interpreter

    import edgeship

    model = edgeship.load(path, backend="litert", threads=1)
    raw = Interpreter(model_path=str(path), num_threads=1)
    raw.allocate_tensors()
    ins, outs = raw.get_input_details(), raw.get_output_details()
    if len(ins) != 1 or len(outs) != 1:
        raise SystemExit(f"{path.name}: this benchmark takes single-input, single-output models; "
                         f"it has {len(ins)} inputs and {len(outs)} outputs")
    (inp,), (out,) = ins, outs

    rng = np.random.default_rng(seed)
    x = rng.random(tuple(inp["shape"]), dtype=np.float32)  # the same real input for both
    scale, zp = inp["quantization"]
    scale, zp = np.float32(scale), np.float32(zp)
    quantized = np.dtype(inp["dtype"]).kind in "iu" and bool(scale)
    info = np.iinfo(inp["dtype"]) if quantized else None

    def quantize(v):
        # What a user of the bare interpreter writes to feed it real values (TF's docs).
        return np.clip(np.rint(v / scale + zp), info.min, info.max).astype(inp["dtype"])

    x_raw = quantize(x) if quantized else x.astype(inp["dtype"])
    in_idx, out_idx = inp["index"], out["index"]
    set_tensor, invoke, get_tensor = raw.set_tensor, raw.invoke, raw.get_tensor
    predict = model.predict

    def raw_call():
        set_tensor(in_idx, x_raw)
        invoke()
        return get_tensor(out_idx)

    def edge_call():
        return predict(x)

    calls = {"raw": raw_call, "edgeship": edge_call}
    oscale, ozp = out["quantization"]
    if quantized:
        def raw_by_hand():
            set_tensor(in_idx, quantize(x))
            invoke()
            return (get_tensor(out_idx).astype(np.float32) - ozp) * oscale

        calls["raw_by_hand"] = raw_by_hand

    # Same answer first: otherwise the comparison means nothing.
    y_raw = raw_call().astype(np.float64)
    if np.dtype(out["dtype"]).kind in "iu" and oscale:
        y_raw = (y_raw - ozp) * oscale
    y_edge = np.asarray(edge_call(), dtype=np.float64)
    if y_edge.shape != y_raw.shape or not np.allclose(y_edge, y_raw, atol=1e-6):
        raise SystemExit(f"{path.name}: predict and raw invoke disagree "
                         f"(max |diff| {np.abs(y_edge - y_raw).max():.3g}); not comparing speed")

    t = interleaved(calls, rounds, warmup, seed)
    med = {k: float(np.median(v)) for k, v in t.items()}
    r = {"model": str(path), "input_dtype": np.dtype(inp["dtype"]).name, "rounds": rounds,
         "raw_invoke_median_ms": med["raw"], "edgeship_predict_median_ms": med["edgeship"],
         "overhead_us": (med["edgeship"] - med["raw"]) * 1e3, "ratio": med["edgeship"] / med["raw"],
         # Median of per-round ratios: robust to slow drifts of the machine's load.
         "ratio_paired_median": float(np.median(t["edgeship"] / t["raw"]))}
    if quantized:
        r["raw_by_hand_median_ms"] = med["raw_by_hand"]
        r["ratio_vs_raw_by_hand"] = med["edgeship"] / med["raw_by_hand"]
    return r


def interleaved(calls: dict, rounds: int, warmup: int, seed: int = 0) -> dict:
    """Per-call times in ms; every round runs each callable once, in a fresh random order."""
    import gc

    for _ in range(warmup):
        for f in calls.values():
            f()
    names = list(calls)
    times = {k: np.empty(rounds) for k in names}
    order = np.random.default_rng(seed)
    clock = time.perf_counter_ns
    gc.disable()  # a collection must not land inside one sample
    try:
        for i in range(rounds):
            for j in order.permutation(len(names)):
                f = calls[names[j]]
                t0 = clock()
                f()
                times[names[j]][i] = (clock() - t0) / 1e6
    finally:
        gc.enable()
    return times


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", action="append", type=Path,
                    help="measure these .tflite files instead of the built CNN (repeatable)")
    ap.add_argument("--rounds", type=int, default=1000, help="interleaved timed rounds per model")
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--max-ratio", type=float, default=1.05)
    ap.add_argument("--cache-dir", type=Path, default=None)
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    ap.add_argument("--kws", action="store_true",
                    help="the KWS models of issue 12: the zoo kws_dscnn_int8 and the MLPerf Tiny reference int8 and "
                         "float32 ($EDGESHIP_SHARED); results also written to bench/results/predict_kws.json")
    ap.add_argument("--build-into", type=Path, help=argparse.SUPPRESS)  # internal: the build child
    args = ap.parse_args(argv)
    if args.build_into:
        build_cnn(args.build_into)
        return 0
    if args.rounds < 1 or args.warmup < 0:
        ap.error("--rounds must be >= 1 and --warmup >= 0")

    models = ({p.stem: p for p in args.model} if args.model else kws_models() if args.kws
              else cached_models(args.cache_dir))
    load_before = os.getloadavg()
    results = {name: measure(Path(p), args.rounds, args.warmup) for name, p in models.items()}
    for r in results.values():
        r["gated_ratio"] = r.get("ratio_vs_raw_by_hand", r["ratio"])
    ok = all(r["gated_ratio"] <= args.max_ratio for r in results.values())
    if args.kws:
        out = Path(__file__).resolve().parent / "results" / "predict_kws.json"
        out.write_text(json.dumps({"bench": "predict_kws", "ok": ok, "max_ratio": args.max_ratio, "threads": 1,
                                   "loadavg_before": [round(x, 2) for x in load_before],
                                   "loadavg_after": [round(x, 2) for x in os.getloadavg()],
                                   "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                   "results": results}, indent=1) + "\n")

    if args.json:
        print(json.dumps({"ok": ok, "max_ratio": args.max_ratio, "threads": 1, "results": results}))
    else:
        print(f"{'model':<6} {'raw invoke':>11} {'predict':>11} {'overhead':>10} {'ratio':>6}   "
              f"{'raw+numpy quantize':>18} {'ratio':>6}")
        for name, r in results.items():
            line = (f"{name:<6} {r['raw_invoke_median_ms']:>8.3f} ms {r['edgeship_predict_median_ms']:>8.3f} ms "
                    f"{r['overhead_us']:>7.1f} us {r['ratio']:>6.3f}")
            if "raw_by_hand_median_ms" in r:
                line += f"   {r['raw_by_hand_median_ms']:>15.3f} ms {r['ratio_vs_raw_by_hand']:>6.3f}"
            print(line)
        print(f"1 thread, medians of {args.rounds} rounds, each round runs every variant once in random "
              f"order. 'raw' gets the input already in the model's dtype; 'raw+numpy quantize' also "
              f"quantizes the same float input and dequantizes the output in numpy.")
        print("gated: " + ", ".join(f"{n} {r['gated_ratio']:.3f}" for n, r in results.items()))
        print("PASS" if ok else f"FAIL: a gated ratio is above {args.max_ratio}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
