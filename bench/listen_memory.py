"""Peak memory of ``listen --wav`` and ``false-alarms --audio`` on a long recording: read block by
block, against the same commands reading the whole file first (``read_audio``, what they did
before), side by side in one run.

A seeded ``--hours`` long 16-bit 16 kHz mono WAV of noise is written to a temporary folder; each
side runs ``python -m examples.keyword_spotting listen --wav FILE --json`` (or ``false-alarms
--audio FILE --json``) in a fresh child process, and the child's peak resident set size is read
from ``getrusage`` (Linux: kilobytes). The whole-file side is the same command with
``edgeship.audio.read_audio_blocks`` replaced by a function that reads the file with
``read_audio`` and slices it. Both sides must report the same windows and detections (false
accepts). Exits 1 when a block side's peak exceeds ``--max-mb``.

Run:
    python bench/listen_memory.py [--hours 1] [--json] [--out bench/results/listen_memory.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# the child: run listen, print the peak RSS (MB) on the last stderr line
CHILD = r"""
import resource, sys
from edgeship import audio
if sys.argv[1] == "whole":
    def read_audio_blocks(path, block_samples, sample_rate=16000, resample=False):
        x = audio.read_audio(path, sample_rate=sample_rate, resample=resample)
        return (x[i:i + block_samples] for i in range(0, x.size, block_samples))
    audio.read_audio_blocks = read_audio_blocks
from examples.keyword_spotting.__main__ import main
rc = main(["listen", "--wav", sys.argv[3], "--json"] if sys.argv[2] == "listen" else
          ["false-alarms", "--audio", sys.argv[3], "--json"])
print(f"peak_rss_mb {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}", file=sys.stderr)
sys.exit(rc)
"""


def write_noise(path: Path, hours: float, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    left = int(hours * 3600 * 16000)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        while left:
            n = min(left, 16000 * 60)
            w.writeframes((rng.standard_normal(n) * 1000).astype("<i2").tobytes())
            left -= n


def run_side(side: str, command: str, wav: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-c", CHILD, side, command, str(wav)], capture_output=True, text=True,
                       cwd=ROOT, env=env, timeout=3600)
    if p.returncode != 0:
        raise SystemExit(f"{command} ({side}) failed (exit {p.returncode}): {p.stderr[-2000:]}")
    end = json.loads(p.stdout.strip().splitlines()[-1])
    peak = float(p.stderr.strip().splitlines()[-1].split()[1])
    if command == "listen":
        return {"peak_rss_mb": peak, "windows": end["windows"], "detections": end["detections"],
                "audio_s": end["audio_s"], "real_time_factor": end["real_time_factor"]}
    return {"peak_rss_mb": peak, "hours": end["hours"], "false_accepts": end["false_accepts"]}


def compare(command: str, wav: Path, max_mb: float) -> dict:
    blocks, whole = run_side("blocks", command, wav), run_side("whole", command, wav)
    same = {k: v for k, v in blocks.items() if k not in ("peak_rss_mb", "real_time_factor")} == \
        {k: v for k, v in whole.items() if k not in ("peak_rss_mb", "real_time_factor")}
    return {"blocks": blocks, "whole_file": whole,
            "peak_ratio_whole_over_blocks": round(whole["peak_rss_mb"] / blocks["peak_rss_mb"], 2),
            "same_results": same, "passed": same and blocks["peak_rss_mb"] <= max_mb}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--max-mb", type=float, default=100.0, help="limit on the block side's peak RSS")
    ap.add_argument("--out", default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "noise.wav"
        write_noise(wav, args.hours)
        size_mb = wav.stat().st_size / 2 ** 20
        runs = {c: compare(c, wav, args.max_mb) for c in ("listen", "false-alarms")}
    r = {"hours": args.hours, "wav_mb": round(size_mb, 1), **runs, "max_mb": args.max_mb,
         "passed": all(v["passed"] for v in runs.values()),
         "machine": f"{platform.machine()} {os.cpu_count()} cpu(s), Python {platform.python_version()}"}
    if args.out:
        from edgeship._io import atomic_write_json

        atomic_write_json(args.out, r)
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        for c, v in runs.items():
            print(f"{c} on {args.hours:g} h ({size_mb:.0f} MB WAV): peak RSS {v['blocks']['peak_rss_mb']:.0f} MB "
                  f"block by block, {v['whole_file']['peak_rss_mb']:.0f} MB reading the whole file "
                  f"(x{v['peak_ratio_whole_over_blocks']}); same results: {v['same_results']}; "
                  f"limit {args.max_mb:g} MB: {'met' if v['passed'] else 'NOT met'}")
    return 0 if r["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
