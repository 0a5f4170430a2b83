"""Refresh README.md's demo block and ``docs/demo_*.png`` from a finished ``edgeship demo`` run.

Everything comes from the demo's own output (``DEMO_OUT/summary.json``, the KWS report's
``report.json`` and PNGs), nothing is typed by hand: the block between
``<!-- demo-table:start -->`` and ``<!-- demo-table:end -->`` in README.md is replaced, and the
plots are copied to ``docs/``.

Usage::

    make readme-figures                       # runs the demo, then this
    python bench/readme_figures.py demo_out   # from an existing demo run
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from edgeship.converters.report_render import estimate_text

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- demo-table:start -->", "<!-- demo-table:end -->"
TARGETS = ("rpi4", "edgetpu", "android", "mcu")


def _num(x, spec):
    return "-" if x is None else format(x, spec)


def _cell(t: dict) -> str:
    if not t:
        return "-"
    if t.get("verdict") != "ok":
        return "no"
    est = estimate_text(t)
    if not est:
        return "ok"
    return f"ok, {est}" if est.startswith("≥") else f"ok, ~{est}"


def block(summary: dict, report: dict) -> str:
    """The Markdown that goes between the markers."""
    k, f = summary["keyword_spotting"], summary["face_unlock"]
    li = k["listen"]
    lines = [START, "",
             f"Figures from the last demo run ({report['run']['started_utc']}, "
             f"{summary['host']['cpus']} CPUs; `bench/readme_figures.py` writes this block from `demo_out/`).",
             "",
             f"**Keyword spotting**: the zoo DS-CNN (`{k['model']}`) in every format, accuracy = top-1 on the "
             f"{k['clips']} shipped Speech Commands clips ({len(k['speakers'])} speakers the model never trained on; "
             f"source {_num(k['report']['source_accuracy'], '.3f')}); latency on this host, 1 thread; target columns: "
             f"verdict and estimated device latency (a model, not a measurement).", "",
             "| format | runtime | KiB | accuracy | parity | p50 ms | " + " | ".join(TARGETS) + " |",
             "|---|---|---:|---:|---|---:|" + "---|" * len(TARGETS)]
    for r in report["rows"]:
        lat = {b["threads"]: b.get("p50_ms") for b in r.get("latency") or []}
        lines.append(f"| {r['format']} | {r.get('runtime') or '-'} | {_num((r.get('bytes') or 0) / 1024, '.1f')} | "
                     f"{_num(r.get('accuracy'), '.3f')} | "
                     f"{'-' if r.get('parity_passed') is None else ('pass' if r['parity_passed'] else 'FAIL')} | "
                     f"{_num(lat.get(1), '.3f')} | " + " | ".join(_cell((r.get('targets') or {}).get(t) or {})
                                                               for t in TARGETS) + " |")
    deployed = [d["target"] for d in k["deploy"] if d["deployed"]]
    lines += ["",
              f"`listen --wav` on an {li['stream']['seconds']:.0f} s stream (real background noise, keywords at "
              f"{li['stream']['snr_db']:.0f} dB): **{li['found']}/{li['keywords']} keywords found**, "
              f"{len(li['missed'])} missed, {len(li['false_alarms'])} false alarm(s) "
              f"({li['unknown_words']} unknown words in the stream); detector threshold "
              f"{li['settings']['threshold']:g}, smoothing {li['settings']['smoothing']} "
              f"({li.get('settings_from') or 'the model default'}). "
              f"`edgeship deploy` of the int8 file: bundles for {', '.join(deployed) or 'none'} "
              f"(local folders; no device attached).", "",
              f"**Face unlock** (int8 model, real ORL photos): {f['accepted']}/{f['genuine']} unlocks by enrolled people "
              f"accepted, {f['rejected']}/{f['impostor']} by other people rejected (threshold "
              f"{_num(f['threshold'], '.3f')}).", "",
              f"The demo took {summary['seconds']:.0f} s wall clock, {summary['cpu_seconds']:.0f} s of CPU "
              f"(load average {summary['host'].get('load_average_at_start', '?')} on "
              f"{summary['host']['cpus']} CPUs when it started).", "",
              "![listen --wav on the demo stream](docs/demo_listen.png)", "",
              "More in `demo_out/`: the full report (`kws/report/report.html`, "
              "[targets x formats grid](docs/demo_targets.png)), the deploy bundles, `summary.json`.", "",
              END]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("demo_out", type=Path, nargs="?", default=ROOT / "demo_out")
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    a = ap.parse_args(argv)
    summary_path = a.demo_out / "summary.json"
    if not summary_path.is_file():
        print(f"no {summary_path}: run `edgeship demo --out {a.demo_out}` first", file=sys.stderr)
        return 2
    summary = json.loads(summary_path.read_text())

    def find(p: str) -> Path:  # the summary's paths are relative to where the demo ran
        q = Path(p)
        return q if q.is_absolute() or q.exists() else a.demo_out.resolve().parent / q

    paths = summary["keyword_spotting"]["report"]["paths"]
    report = json.loads(find(paths["json"]).read_text())
    text = a.readme.read_text(encoding="utf-8")
    if START not in text or END not in text:
        print(f"{a.readme} has no {START} ... {END} block", file=sys.stderr)
        return 2
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = head + block(summary, report) + tail
    docs = a.readme.parent / "docs"
    docs.mkdir(exist_ok=True)
    shutil.copyfile(find(summary["keyword_spotting"]["listen"]["plot"]), docs / "demo_listen.png")
    shutil.copyfile(find(paths["plots"]["targets_grid"]), docs / "demo_targets.png")
    tmp = a.readme.with_suffix(".md.tmp")
    tmp.write_text(new, encoding="utf-8")
    tmp.replace(a.readme)
    print(f"updated {a.readme} and {docs}/demo_listen.png, demo_targets.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
