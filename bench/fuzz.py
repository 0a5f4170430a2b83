"""Long fuzzing run: ``make fuzz`` (50,000 mutants per format by default).

Usage: python bench/fuzz.py [--n 50000] [--formats tflite,onnx,bundle,zip,manifest] [--seed S]
                            [--workers 2] [--out fuzz_out] [--json]

Each format's tally (cases, refused by type, loaded and ran, untyped errors, crashes with the
saved crashing input, hangs, seconds) is printed; exit 1 when any crash, hang or untyped error
was found. The shared data folder's MLPerf KWS model joins the TFLite sources when present.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main(argv=None) -> int:
    from tests import _fuzz_harness as h

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50000)
    ap.add_argument("--formats", default=",".join(h.FORMATS))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="fuzz_out")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    a = ap.parse_args(argv)
    formats = [f for f in a.formats.split(",") if f]
    unknown = [f for f in formats if f not in h.FORMATS]
    if unknown or a.n < 1:
        print(f"unknown formats {unknown} (expected {h.FORMATS}) or --n < 1", file=sys.stderr)
        return 2
    out = Path(a.out).resolve()
    shared = Path(os.environ.get("EDGESHIP_SHARED", REPO.parent / "shared"))
    srcs = h.prepare(out / "sources", REPO, shared if shared.is_dir() else None)
    results = {}
    for fmt in formats:
        t = h.run(fmt, a.n, seed=a.seed, work=out / fmt, repo=REPO, workers=a.workers,
                  crash_dir=out / "crashes", deadline_s=24 * 3600, **srcs[fmt])
        results[fmt] = t
        if not a.json:
            rate = t["done"] / max(t["seconds"], 1e-9)
            print(f"{fmt:9s} cases {t['done']:6d}  ran {t['ran']:6d}  refused {json.dumps(t['errors'])}  "
                  f"untyped {len(t['untyped'])}  crashes {len(t['crashes'])}  contained-by-probe "
                  f"{len(t['contained_by_probe'])}  hangs {len(t['hangs'])}  {t['seconds']:.0f} s ({rate:.0f}/s)",
                  flush=True)
            for rec in t["crashes"] + t["hangs"] + t["untyped"][:20] + t["contained_by_probe"][:20]:
                print("   ", rec)
    bad = any(t["crashes"] or t["hangs"] or t["untyped"] or t.get("harness_errors") for t in results.values())
    summary = {"n_per_format": a.n, "seed": a.seed, "formats": {
        f: {k: t[k] for k in ("done", "ran", "errors", "seconds", "restarts", "kinds")}
        | {"untyped": t["untyped"], "crashes": t["crashes"], "hangs": t["hangs"],
           "contained_by_probe": t["contained_by_probe"], "harness_errors": t.get("harness_errors", [])}
        for f, t in results.items()}}
    (out / "fuzz_summary.json").write_text(json.dumps(summary, indent=2))
    if a.json:
        print(json.dumps(summary))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
