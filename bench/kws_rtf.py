"""Streaming real-time factor of keyword spotting: edgeship's front end + the int8 model, 1 thread.

Feeds ``--seconds`` of audio (real background noise from ../shared with real Speech Commands
clips added every 3 s; a seeded synthetic signal when ../shared is absent) to
:class:`edgeship.kws.KeywordDetector` in 100 ms chunks, exactly as ``listen`` does, and times
every ``push``. The real-time factor is compute time / audio time (goal <= 0.02: 2 ms of CPU
per 100 ms of audio), on wall-clock time; the same figure on the thread's CPU time is printed
beside it, since a machine shared with other jobs inflates wall time (the load average is
recorded). The front end alone and the model alone are timed in the same run (interleaved per
chunk) to show where the time goes. Medians of ``--repeats`` passes.

Run:
    python bench/kws_rtf.py [--model M] [--seconds 60] [--json]   # exits 1 above --max-rtf
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def default_model(shared: Path) -> str:
    from edgeship import models

    if "kws_dscnn_int8" in models.REGISTRY:
        return "kws_dscnn_int8"
    os.environ.setdefault("EDGESHIP_MIRROR", str(shared / "models"))
    return "mlperf_kws_int8"


def test_signal(shared: Path, seconds: float) -> tuple:
    from edgeship import audio

    n = int(seconds * 16000)
    noise_dir = shared / "data" / "noise"
    if noise_dir.is_dir():
        parts, total = [], 0
        for f in sorted(noise_dir.rglob("*.wav")):
            x = audio.read_audio(f)
            parts.append(x)
            total += x.size
            if total >= n:
                break
        sig = np.concatenate(parts)
        while sig.size < n:
            sig = np.concatenate([sig, sig])
        sig = sig[:n].copy()
        clips = sorted((shared / "data" / "speech_commands_dev" / "yes").glob("*.flac"))
        for i, s in enumerate(range(16000, n - 16000, 48000)):
            c = audio.read_audio(clips[i % len(clips)])
            sig[s:s + c.size] += c
        return sig, "../shared noise + Speech Commands clips every 3 s"
    rng = np.random.default_rng(0)
    return (0.05 * rng.standard_normal(n)).astype(np.float32), "seeded white noise (../shared absent)"


def measure(model: str, sig: np.ndarray, repeats: int) -> dict:
    import edgeship
    from edgeship import audio, kws

    det = kws.KeywordDetector(model, threads=1)
    hop = det.hop_samples
    chunks = [sig[i:i + hop] for i in range(0, sig.size, hop)]
    feats = audio.features(sig[:16000]).reshape(det.model.inputs[0].shape)
    full, fe, nn, cpu = [], [], [], []
    clock, cpu_clock = time.perf_counter, time.thread_time   # 1 interpreter thread: it runs on this one
    for _ in range(repeats):
        det.reset()
        stream = audio.StreamingFeatures(det.spec, hop_samples=hop)
        t_full = t_fe = t_nn = t_cpu = 0.0
        for c in chunks:
            c0, t0 = cpu_clock(), clock()
            det.push(c)
            t1, c1 = clock(), cpu_clock()
            stream.push(c)
            t2 = clock()
            det.model.predict(feats)
            t3 = clock()
            t_full, t_fe, t_nn, t_cpu = t_full + t1 - t0, t_fe + t2 - t1, t_nn + t3 - t2, t_cpu + c1 - c0
        det.finish()
        full.append(t_full)
        fe.append(t_fe)
        nn.append(t_nn)
        cpu.append(t_cpu)
    secs = sig.size / 16000
    return {"model": str(det.model.path), "model_sha256": det.model.sha256, "zoo_name": det.info.zoo_name,
            "backend": det.model.backend,
            "threads": 1, "audio_s": secs, "hop_s": hop / 16000, "windows": det.windows, "repeats": repeats,
            "real_time_factor": float(np.median(full)) / secs, "cpu_real_time_factor": float(np.median(cpu)) / secs,
            "front_end_rtf": float(np.median(fe)) / secs, "model_rtf": float(np.median(nn)) / secs,
            "ms_per_hop": float(np.median(full)) / len(chunks) * 1000}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-rtf", type=float, default=0.02)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    shared = Path(os.environ.get("EDGESHIP_SHARED", REPO.parent / "shared"))
    model = args.model or default_model(shared)
    sig, what = test_signal(shared, args.seconds)
    from edgeship.benchmark import host_info

    r = measure(model, sig, args.repeats)
    r.update(signal=what, goal_rtf=args.max_rtf, passed=r["real_time_factor"] <= args.max_rtf,
             machine=f"{platform.machine()} {os.cpu_count()} cpu(s), load {os.getloadavg()[0]:.2f}",
             cpu=host_info()["cpu"])
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        print(f"{Path(r['model']).name} ({r['backend']}, 1 thread) on {r['audio_s']:.0f} s of {what}:")
        print(f"  real-time factor {r['real_time_factor']:.4f} ({r['ms_per_hop']:.2f} ms per {r['hop_s'] * 1000:.0f} ms hop)"
              f"  [front end {r['front_end_rtf']:.4f}, model {r['model_rtf']:.4f}; CPU time only "
              f"{r['cpu_real_time_factor']:.4f}]  goal <= {args.max_rtf}: "
              f"{'met' if r['passed'] else 'NOT met'}  ({r['machine']})")
    return 0 if r["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
