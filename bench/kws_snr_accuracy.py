"""Clip accuracy of keyword-spotting models against the SNR of added real noise.

Each clip of the zoo DS-CNN's speaker-disjoint validation split (890 real ``speech_commands_dev``
clips, speakers the zoo model never heard) gets one seeded random 1 s segment of a real noise
recording from ``../shared/data/noise``, scaled so that the clip's speech power (its 10 ms frames
within 20 dB of the loudest, as in ``kws_false_alarms.py``) is SNR dB above the segment's power;
``_silence_`` clips stay as they are. Every model classifies the same mixtures, one 1 s clip at a
time. This separates what noise does to a model from what unknown words do in the false-alarm
bench.

Run (seconds per model on 2 cores):
    python bench/kws_snr_accuracy.py [--model M ...] [--snr 40,30,20,10,0] [--json] [--out results.json]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
SR = 16000


def mixtures(items, noise, snrs, seed: int):
    """{snr or None: [clip, ...]}: every clip with the same noise segment, at each SNR."""
    from kws_false_alarms import speech_power

    rng = np.random.default_rng(seed)
    segs = []
    for _ in items:
        r = noise[int(rng.integers(len(noise)))]
        s = int(rng.integers(0, r.size - SR + 1))
        segs.append(r[s:s + SR].astype(np.float64))
    out = {None: [x for _, x in items]}
    for snr in snrs:
        mixed = []
        for (label, x), n in zip(items, segs):
            if label == "_silence_":
                mixed.append(x)
                continue
            g = np.sqrt(speech_power(x) / ((np.mean(n ** 2) + 1e-12) * 10 ** (snr / 10)))
            mixed.append(np.clip(x + n * g, -1, 1).astype(np.float32))
        out[snr] = mixed
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", default=None,
                    help="repeatable (default: kws_dscnn_int8 and mlperf_kws_int8)")
    ap.add_argument("--snr", default="40,30,20,10,0", help="comma-separated SNRs in dB (default 40,30,20,10,0)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--out", default=None, help="also write the JSON report here")
    args = ap.parse_args(argv)
    try:
        snrs = [float(v) for v in args.snr.split(",")]
        if not all(np.isfinite(snrs)):
            raise ValueError
    except ValueError:
        ap.error(f"--snr expects comma-separated finite numbers in dB, e.g. 30,20,10; got {args.snr!r}")
    shared = Path(os.environ.get("EDGESHIP_SHARED", REPO.parent / "shared"))
    if not (shared / "data" / "speech_commands_dev").is_dir():
        print(f"../shared not found at {shared}; set EDGESHIP_SHARED", file=sys.stderr)
        return 2
    os.environ.setdefault("EDGESHIP_MIRROR", str(shared / "models"))
    from rich.console import Console
    from rich.progress import Progress

    from kws_false_alarms import publish

    from edgeship import audio, kws
    from edgeship.models.kws import label_index, speaker_split
    from edgeship.models.kws_augment import fit_length

    root = shared / "data" / "speech_commands_dev"
    val = speaker_split(root)["validation"]
    items = [(c.label, fit_length(audio.read_audio(c.path), SR)) for c in val]
    noise = [audio.read_audio(f) for f in sorted((shared / "data" / "noise").rglob("*.wav"))]
    mixed = mixtures(items, noise, snrs, args.seed)
    t0 = time.time()
    rows = {}
    with Progress(console=Console(stderr=True), transient=args.json) as prog:
        for m in args.model or ["kws_dscnn_int8", "mlperf_kws_int8"]:
            det = kws.KeywordDetector(m, threads=1)
            truth = np.array([label_index(l, det.labels) for l, _ in items])
            is_kw = np.array([not det.labels[t].startswith("_") for t in truth])
            task = prog.add_task(Path(str(det.model.path)).name, total=len(mixed) * len(items))
            res = {}
            for snr, clips in mixed.items():
                pred = []
                for x in clips:
                    pred.append(int(np.argmax(det.classify(x))))
                    prog.advance(task)
                ok = np.array(pred) == truth
                unk = truth == det.labels.index("_unknown_")
                res["clean" if snr is None else f"{snr:g} dB"] = {
                    "accuracy": round(float(ok.mean()), 4), "keyword_recall": round(float(ok[is_kw].mean()), 4),
                    "unknown_recall": round(float(ok[unk].mean()), 4)}
            rows[m] = {"model_sha256": det.model.sha256, "by_snr": res}
    report = {"clips": len(items), "keyword_clips": int(sum(not l.startswith("_") for l, _ in items)),
              "split": "zoo DS-CNN validation speakers (edgeship.models.kws.speaker_split)",
              "snr_definition": "speech frames (within 20 dB of the loudest 10 ms frame) over the noise segment",
              "seed": args.seed, "models": rows, "compute_s": round(time.time() - t0, 1)}
    if publish(report, args.out, args.json):
        print(f"{report['clips']} validation clips ({report['keyword_clips']} keywords); "
              "accuracy / keyword recall / _unknown_ recall")
        for m, r in rows.items():
            print(f"  {m}: " + "; ".join(f"{k} {v['accuracy']:.3f}/{v['keyword_recall']:.3f}/{v['unknown_recall']:.3f}"
                                        for k, v in r["by_snr"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
