"""Soak: the keyword-spotting streaming path over >= 1 h of generated audio (issue 11; ``make soak``).

Generated audio (seeded: noise at varying levels, tones, silences) is cut into chunks of varied,
real-time-like sizes (mostly 10-500 ms, sometimes a handful of samples; one in five as int16
PCM) and fed as fast as possible into the listen pipeline: :class:`edgeship.kws.KeywordDetector`
(whose :class:`edgeship.audio.StreamingFeatures` makes the windows) with the zoo int8 model.

Checks (exit 1 when one fails):
  * no dropped chunk: samples fed == samples the front end took in, and windows produced ==
    the windows that fit the stream (1 + (samples - clip) // hop);
  * RSS growth after warm-up <= ``--max-growth-mb`` (5 MB): RSS is sampled every
    ``--sample-every-s`` seconds of audio; growth = max(RSS after warm-up) - RSS at warm-up end.

Usage: python bench/soak_kws_stream.py [--audio-s 3600] [--model kws_dscnn_int8] [--warmup-s 300]
                                       [--out bench/results/soak_kws_stream.json] [--json]
Writes the JSON result and an RSS-over-audio-time plot (``.png`` beside it).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def rss_mb() -> float:
    """Resident set size of this process (Linux /proc), in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _chunk(rng: np.random.Generator, sr: int, t: int) -> np.ndarray:
    """One chunk of generated audio: size and content drawn from ``rng`` (``t``: stream position)."""
    r = rng.random()
    n = int(rng.integers(1, 64)) if r < 0.02 else int(rng.integers(sr // 100, sr // 2 + 1))
    kind = rng.random()
    if kind < 0.1:
        x = np.zeros(n, np.float32)                                     # silence
    else:
        level = float(10 ** rng.uniform(-3, -0.5))
        x = rng.normal(0, level, n).astype(np.float32)                 # noise
        if kind > 0.6:                                                  # + a tone
            f = float(rng.uniform(100, 4000))
            x += (0.3 * np.sin(2 * np.pi * f * (t + np.arange(n)) / sr)).astype(np.float32)
        np.clip(x, -1, 1, out=x)
    if rng.random() < 0.2:
        return np.round(x * 32767).astype(np.int16)                     # integer PCM, as a sound card gives
    return x


def run_soak(audio_s: float, *, model: str = "kws_dscnn_int8", seed: int = 0, warmup_s: float = 300,
             sample_every_s: float = 60, hop_ms: int = 100,
             progress: Optional[Callable[[float, float], None]] = None) -> dict:
    """Feed ``audio_s`` seconds of generated audio through the detector; return the figures and checks."""
    from edgeship.kws import KeywordDetector

    det = KeywordDetector(model, hop_samples=hop_ms * 16, threads=1)
    sr, clip, hop = det.sample_rate, det.spec.clip_samples, det.hop_samples
    total = int(audio_s * sr)
    rng = np.random.default_rng(seed)
    rss0 = rss_mb()
    samples_in, chunks, detections, min_chunk, max_chunk = 0, 0, 0, 1 << 30, 0
    series = [(0.0, rss0)]
    next_sample = sample_every_s * sr
    t0 = time.perf_counter()
    while samples_in < total:
        x = _chunk(rng, sr, samples_in)[: total - samples_in]
        detections += len(det.push(x))
        samples_in += x.size
        chunks += 1
        min_chunk, max_chunk = min(min_chunk, x.size), max(max_chunk, x.size)
        if samples_in >= next_sample:
            series.append((samples_in / sr, rss_mb()))
            next_sample += sample_every_s * sr
            if progress is not None:
                progress(samples_in / sr, audio_s)
    detections += len(det.finish())
    seconds = time.perf_counter() - t0
    series.append((samples_in / sr, rss_mb()))
    expected_windows = 0 if samples_in < clip else 1 + (samples_in - clip) // hop
    after = [r for t, r in series if t >= warmup_s]
    warm = next((r for t, r in series if t >= warmup_s), series[-1][1])
    growth = max(after) - warm if after else 0.0
    ts = np.array([t for t, _ in series if t >= warmup_s])
    slope = float(np.polyfit(ts, [r for t, r in series if t >= warmup_s], 1)[0] * 3600) if len(ts) >= 3 else None
    return {
        "model": str(det.model.path), "model_sha256": det.model.sha256, "backend": det.model.backend,
        "audio_s": round(samples_in / sr, 3), "seed": seed, "hop_s": hop / sr, "chunks": chunks,
        "chunk_samples_min": min_chunk, "chunk_samples_max": max_chunk,
        "samples_fed": samples_in, "samples_taken_in": det.samples_seen,
        "windows": det.windows, "windows_expected": expected_windows, "detections": detections,
        "config": det.config.to_dict(), "config_from": det.info.config_from,
        "seconds": round(seconds, 2), "real_time_factor": round(seconds / max(samples_in / sr, 1e-9), 5),
        "rss_mb": {"start": round(rss0, 1), "at_warmup_end": round(warm, 1), "end": round(series[-1][1], 1),
                   "max": round(max(r for _, r in series), 1), "growth_after_warmup": round(growth, 2),
                   "slope_mb_per_h_after_warmup": None if slope is None else round(slope, 3)},
        "warmup_s": warmup_s, "rss_series": [(round(t, 1), round(r, 2)) for t, r in series],
        "checks": {"no_dropped_samples": det.samples_seen == samples_in,
                   "all_windows_produced": det.windows == expected_windows},
        "machine": f"{platform.machine()} {platform.python_version()}",
    }


def _plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t, r = zip(*result["rss_series"])
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(np.array(t) / 60, r, marker=".")
    ax.axvline(result["warmup_s"] / 60, color="grey", ls="--", label="end of warm-up")
    ax.set_xlabel("audio fed (minutes)")
    ax.set_ylabel("RSS (MB)")
    ax.set_title(f"KWS streaming soak: {result['audio_s'] / 3600:.2f} h audio, {result['chunks']} chunks, "
                 f"growth {result['rss_mb']['growth_after_warmup']:.2f} MB", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--audio-s", type=float, default=3600.0, help="seconds of audio to feed (default 1 h)")
    ap.add_argument("--model", default="kws_dscnn_int8", help="zoo name, .tflite or bundle")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--warmup-s", type=float, default=300.0, help="audio seconds before RSS growth is measured")
    ap.add_argument("--sample-every-s", type=float, default=60.0, help="audio seconds between RSS samples")
    ap.add_argument("--max-growth-mb", type=float, default=5.0)
    ap.add_argument("--out", default=str(REPO / "bench/results/soak_kws_stream.json"))
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    a = ap.parse_args(argv)
    if a.audio_s <= a.warmup_s or a.sample_every_s <= 0:
        print("--audio-s must exceed --warmup-s, and --sample-every-s must be > 0", file=sys.stderr)
        return 2

    def progress(done: float, total: float) -> None:
        if int(done) % 600 < a.sample_every_s:
            print(f"  {done / 60:.0f} / {total / 60:.0f} min of audio", file=sys.stderr, flush=True)

    res = run_soak(a.audio_s, model=a.model, seed=a.seed, warmup_s=a.warmup_s, sample_every_s=a.sample_every_s,
                   progress=progress)
    res["max_growth_mb"] = a.max_growth_mb
    res["checks"]["rss_growth_within_limit"] = res["rss_mb"]["growth_after_warmup"] <= a.max_growth_mb
    res["ok"] = all(res["checks"].values())
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from edgeship._io import atomic_write_json

    atomic_write_json(out, res)
    _plot(res, out.with_suffix(".png"))
    if a.json:
        print(json.dumps({k: v for k, v in res.items() if k != "rss_series"}))
    else:
        m = res["rss_mb"]
        print(f"{res['audio_s'] / 3600:.2f} h of audio in {res['chunks']} chunks ({res['chunk_samples_min']}-"
              f"{res['chunk_samples_max']} samples) in {res['seconds']:.0f} s (RTF {res['real_time_factor']}): "
              f"samples fed {res['samples_fed']} / taken in {res['samples_taken_in']}, windows {res['windows']} / "
              f"expected {res['windows_expected']}, {res['detections']} detections; RSS start {m['start']} MB, "
              f"warm {m['at_warmup_end']}, end {m['end']}, max {m['max']}, growth {m['growth_after_warmup']} MB "
              f"-> {'OK' if res['ok'] else 'FAILED ' + str(res['checks'])}  ({out})")
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
