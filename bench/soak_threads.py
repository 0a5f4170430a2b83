"""Soak: one Model shared by N threads x M predicts (issue 11): no error, no wrong answer, and
what the per-model lock costs, measured side by side in one run.

For each of a TFLite int8 model and an ONNX model, three runs of the same total work:
  1. one thread, one Model (baseline);
  2. N threads sharing one Model (the soak: every result compared with the single-thread one);
  3. N threads, one Model each (what the docstring recommends for parallel throughput).
Inputs vary in batch size (1..3) so that threads also race on resizing. RSS is sampled before
and after the soak.

Usage: python bench/soak_threads.py [--threads 8] [--calls 10000] [--json]
Exit 1 if any call failed or returned another thread's result.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _run(models, inputs, refs, threads: int, calls: int) -> dict:
    errors, wrong = [], [0]
    lock = threading.Lock()

    def work(t):
        m = models[t % len(models)]
        rng = np.random.default_rng(t)
        bad = 0
        for _ in range(calls):
            k = int(rng.integers(0, len(inputs)))
            try:
                out = m.predict(inputs[k])
            except Exception as exc:  # noqa: BLE001 - counted and reported
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            if not np.array_equal(out, refs[k]):
                bad += 1
        with lock:
            wrong[0] += bad

    ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    dt = time.perf_counter() - t0
    n = threads * calls
    return {"calls": n, "seconds": round(dt, 3), "calls_per_s": round(n / dt), "errors": len(errors),
            "error_examples": errors[:3], "wrong_results": wrong[0]}


def soak(path: Path, shape, threads: int, calls: int) -> dict:
    import edgeship

    m = edgeship.load(path, threads=1)
    rng = np.random.default_rng(0)
    inputs = [rng.uniform(0, 1, ((i % 3) + 1,) + tuple(shape)).astype(np.float32) for i in range(24)]
    refs = [m.predict(x) for x in inputs]
    rss0 = _rss_mb()
    single = _run([m], inputs, refs, 1, threads * calls // 4)  # a quarter of the work: a rate
    shared = _run([m], inputs, refs, threads, calls)
    rss1 = _rss_mb()
    own = _run([edgeship.load(path, threads=1) for _ in range(threads)], inputs, refs, threads, calls // 4)
    return {"model": path.name, "format": m.format, "threads": threads, "calls_per_thread": calls,
            "single_thread": single, "shared_model": shared, "model_per_thread": own,
            "rss_mb_before": round(rss0, 1), "rss_mb_after": round(rss1, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--calls", type=int, default=10000)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if a.threads < 1 or a.calls < 4:
        print("--threads >= 1 and --calls >= 4", file=sys.stderr)
        return 2
    from tests._onnx_models import dense_relu

    tmp = Path(tempfile.mkdtemp(prefix="soak-"))
    onnx_path, _, _ = dense_relu(tmp / "dense.onnx", batch="N", n_in=16, n_out=8)
    results = [soak(REPO / "models/weights/shapes_cnn_int8.tflite", (32, 32, 1), a.threads, a.calls),
               soak(onnx_path, (16,), a.threads, a.calls)]
    bad = any(r["shared_model"]["errors"] or r["shared_model"]["wrong_results"] for r in results)
    if a.json:
        print(json.dumps({"results": results, "ok": not bad}))
    else:
        for r in results:
            s, sh, o = r["single_thread"], r["shared_model"], r["model_per_thread"]
            print(f"{r['model']} ({r['format']}): {r['threads']} threads x {r['calls_per_thread']} predicts on one "
                  f"Model: {sh['errors']} errors, {sh['wrong_results']} wrong results, {sh['calls_per_s']}/s "
                  f"(one thread: {s['calls_per_s']}/s; one Model per thread: {o['calls_per_s']}/s); "
                  f"RSS {r['rss_mb_before']} -> {r['rss_mb_after']} MB")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
