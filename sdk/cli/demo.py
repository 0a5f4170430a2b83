"""``edgeship demo``: both example apps end to end, on real data shipped with the repository.

It uses converters, targets, the model zoo and the example apps, so it lives in the CLI layer
(the top of the import graph), not in the light core. Run from a source checkout (``make demo``):

1. **Keyword spotting** (:mod:`edgeship.cli.demo_kws`): the zoo DS-CNN (``kws_dscnn_keras``)
   through ``edgeship report`` with its real top-1 accuracy in every format on 72 shipped Speech
   Commands clips of speakers it never trained on; then the app's ``listen --wav`` on a stream of
   keywords at known times over real background noise (found / missed / false alarms); then
   ``edgeship deploy`` of the int8 file for rpi4, edgetpu, android and mcu (local folders: there
   is no device here).
2. **Face unlock** (:mod:`edgeship.cli.demo_face`): the app enrols two people from real ORL photos
   and unlocks with their other photos (accepted) and with other people's (rejected), int8 model.
3. A summary on the terminal and ``OUT/summary.json``; everything written under ``OUT``.

Exit status: 0 when every step did what it should (report ok, every deploy target written, every
face decision right), 1 otherwise (the summary says which), 2 on a user error.
"""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import List

import numpy as np
import typer

from .._io import atomic_write_json, to_jsonable
from .console import EXIT_FAILED_CHECK, console, emit_json, handle_errors, json_option

SUMMARY = "summary.json"


def repo_root() -> Path:
    """The source checkout edgeship runs from (the apps and the sample data live there)."""
    import edgeship

    from ..errors import InputSpecError

    root = Path(edgeship.__file__).resolve().parents[1]
    if not (root / "examples" / "keyword_spotting").is_dir() or not (root / "examples" / "face_unlock").is_dir():
        raise InputSpecError(f"edgeship demo runs the example apps of a source checkout, and {root} is not one "
                             f"(no examples/). Clone the repository and run `make demo` there")
    return root


def _step(c, i: int, n: int, text: str) -> None:
    c.print(f"[bold cyan]{i}/{n}[/] {text}")


@handle_errors
def demo_cmd(
    out: Path = typer.Option(Path("demo_out"), "-o", "--out", help="Folder for everything the demo writes."),
    runs: int = typer.Option(20, help="Timed runs per format and runtime in the KWS report."),
    json_: bool = json_option(),
):
    """Both apps end to end on real data: KWS report + listen + deploy, face enrol + unlock."""
    from ..errors import InputSpecError
    from . import demo_face, demo_kws
    from .report import terminal_progress

    if runs < 1:
        raise InputSpecError(f"--runs must be >= 1, got {runs}")
    c = console()
    quiet = json_
    if quiet:
        c.quiet = True
    t0 = time.perf_counter()
    cpu0 = os.times()
    load0 = round(os.getloadavg()[0], 1) if hasattr(os, "getloadavg") else None
    repo = repo_root()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    demo_face.faces_dir(repo)  # both data folders checked before any work
    timings = {}

    n = 6
    _step(c, 1, n, "[bold]keyword spotting: edgeship report[/] of the zoo DS-CNN (kws_dscnn_keras) in every format, "
                   "real accuracy on 72 shipped Speech Commands clips (speakers it never trained on)")
    t = time.perf_counter()
    clips, wavs, y, labels = demo_kws.load_clips(repo)
    with terminal_progress(enabled=not quiet) as progress:
        rep = demo_kws.run_report(repo, out / "kws" / "report", wavs, y, clips, runs=runs, progress=progress)
    timings["kws_report"] = round(time.perf_counter() - t, 1)
    data = rep["data"]
    if not quiet:
        from .report import print_table

        print_table(data, rep["paths"])

    _step(c, 2, n, "[bold]keyword spotting: listen --wav[/] on a stream of keywords at known times over real "
                   "background noise")
    t = time.perf_counter()
    truth = demo_kws.build_stream(clips, wavs, labels, out / "kws" / "stream.wav")
    heard = demo_kws.run_listen(repo, Path(truth["wav"]))
    score = demo_kws.score_listen(truth["words"], heard["events"])
    listen = {"stream": {k: v for k, v in truth.items() if k != "words"}, "command": heard["command"],
              "model": heard["start"].get("model"), "settings": heard["start"].get("config"),
              "settings_from": heard["start"].get("config_from"),
              "end": heard["end"], **score}
    listen["plot"] = _listen_plot(truth, heard["events"], score, out / "kws" / "listen.png")
    timings["kws_listen"] = round(time.perf_counter() - t, 1)

    _step(c, 3, n, "[bold]keyword spotting: edgeship deploy[/] of the int8 TFLite for "
                   f"{', '.join(demo_kws.DEPLOY_TARGETS)} (local bundle folders; no device is attached here)")
    t = time.perf_counter()
    int8 = demo_kws.int8_model(data, out / "kws" / "report")
    if int8 is None:
        deploys = [{"target": tg, "deployed": False, "reason": "the report has no int8 TFLite that passed parity"}
                   for tg in demo_kws.DEPLOY_TARGETS]
    else:
        deploys = demo_kws.run_deploy(int8, out / "kws" / "deploy", labels)
    timings["kws_deploy"] = round(time.perf_counter() - t, 1)

    _step(c, 4, n, "[bold]face unlock: face models[/] (dlib's CC0 ResNet descriptor → int8 TFLite; converted "
                   "on first use, then cached; converter log: face_models.log)")
    t = time.perf_counter()
    from .._io import stdout_to_stderr

    with terminal_progress(enabled=not quiet), stdout_to_stderr(out / "face_models.log"):
        models = demo_face.prepare_models()   # converter chatter to the log, not the summary
    timings["face_models"] = round(time.perf_counter() - t, 1)

    _step(c, 5, n, "[bold]face unlock: enroll + unlock[/] on real ORL photos (AT&T Laboratories Cambridge), "
                   "int8 model")
    t = time.perf_counter()
    with terminal_progress(enabled=not quiet) as progress:
        done = [0]

        def tick():
            done[0] += 1
            if progress:
                progress("face unlock commands", done[0], demo_face.n_steps())

        face = demo_face.run_face(repo, out / "face", on_step=tick)
    face["models"] = models
    timings["face_unlock"] = round(time.perf_counter() - t, 1)

    _step(c, 6, n, "[bold]summary[/]")
    cpu1 = os.times()
    summary = {
        "ok": bool(data["ok"] and all(d["deployed"] for d in deploys) and face["all_correct"]),
        "ok_rule": "the KWS report is ok, every deploy target got a bundle, every face decision was right",
        "keyword_spotting": {
            "model": demo_kws.ZOO_SOURCE, "data": demo_kws.kws_files_note(),
            "clips": len(clips), "speakers": sorted({c_.speaker for c_ in clips if not c_.speaker.startswith("file:")}),
            "report": {"ok": data["ok"], "source_accuracy": data["source"].get("accuracy"),
                       "paths": rep["paths"], "targets": data["targets"],
                       "rows": [_row(r) for r in data["rows"]]},
            "listen": listen, "deploy": deploys},
        "face_unlock": face,
        "out": str(out), "seconds": round(time.perf_counter() - t0, 1),
        "cpu_seconds": round((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
                             + (cpu1.children_user - cpu0.children_user)
                             + (cpu1.children_system - cpu0.children_system), 1),
        "step_seconds": timings, "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "load_average_at_start": load0},
        "shared_evaluations": "not run: the demo uses only what the repository ships",
    }
    atomic_write_json(out / SUMMARY, to_jsonable(summary))
    if json_:
        emit_json(summary)
    else:
        _print_summary(c, summary)
    if not summary["ok"]:
        raise typer.Exit(EXIT_FAILED_CHECK)


def _row(r: dict) -> dict:
    lat = {b["threads"]: b.get("p50_ms") for b in r.get("latency") or []}
    return {"format": r["format"], "runtime": r.get("runtime"), "bytes": r.get("bytes"), "accuracy": r.get("accuracy"),
            "parity_passed": r.get("parity_passed"), "p50_ms_1_thread": lat.get(1), "status": r.get("status"),
            "targets": {t: v.get("verdict") for t, v in (r.get("targets") or {}).items()}}


def _listen_plot(truth: dict, events: List[dict], score: dict, path: Path):
    """The stream's envelope with every word (truth) and every detection on one time axis."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    from edgeship.audio import read_audio

    x = read_audio(truth["wav"])
    hop = 160
    rms = np.sqrt(np.mean(x[: x.size // hop * hop].reshape(-1, hop) ** 2, axis=1))
    env = np.maximum(20 * np.log10(np.maximum(rms, 1e-6)) + 60, 0)   # dB above -60 dBFS
    tt = np.arange(env.size) * hop / 16000
    fig, ax = plt.subplots(figsize=(12, 3.4))
    ax.fill_between(tt, 0, env, color="#9fb6d6", lw=0)
    top = float(env.max()) * 1.05
    for w in score["words"]:
        colour = "#2a9d3c" if w["detected"] else ("#d62728" if w["keyword"] else "#888888")
        ax.axvline(w["time_s"], color=colour, lw=1.2, alpha=0.8)
        ax.text(w["time_s"], top * 1.02, w["label"] if w["keyword"] else f"({w['word']})", rotation=90, fontsize=7,
                ha="center", va="bottom", color=colour)
    for e in events:
        ax.plot(e["time_s"], top * 0.9, marker="v", color="black", ms=5)
    ax.set_ylim(0, top * 1.45)
    ax.set_xlim(0, tt[-1] if tt.size else 1)
    ax.set_xlabel("time in the stream (s)")
    ax.set_ylabel("level (dB)")
    ax.set_title(f"listen --wav: {score['found']}/{score['keywords']} keywords found (green; missed: red), "
                 f"{len(score['false_alarms'])} false alarm(s); ▼ = detection; grey = unknown word", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def _print_summary(c, s: dict) -> None:
    from rich.table import Table

    k, f = s["keyword_spotting"], s["face_unlock"]
    li = k["listen"]
    t = Table(title="edgeship demo: what happened", show_lines=False)
    t.add_column("app / step")
    t.add_column("outcome")
    rep = k["report"]
    best = [r for r in rep["rows"] if r["accuracy"] is not None]
    acc = ", ".join(sorted({f"{r['format']} {r['accuracy']:.3f}" for r in best}))
    t.add_row("KWS report", f"{len({r['format'] for r in rep['rows']})} formats, source accuracy "
                            f"{_fmt(rep['source_accuracy'])} on {k['clips']} clips; {acc}")
    t.add_row("KWS listen --wav", f"{li['found']}/{li['keywords']} keywords found, {len(li['missed'])} missed, "
                                  f"{len(li['false_alarms'])} false alarm(s) in {li['stream']['seconds']:.0f} s "
                                  f"(+{li['unknown_words']} unknown words that must not fire)")
    if li["missed"]:
        t.add_row("", "missed: " + ", ".join(li["missed"]))
    if li["false_alarms"]:
        t.add_row("", "false alarms: " + ", ".join(li["false_alarms"]))
    for d in k["deploy"]:
        if d["deployed"]:
            arena = (d.get("memory") or {}).get("tflm_arena_bytes")
            extra = [x for x in (d.get("estimate"), _placement(d.get("placement")),
                                 arena and f"TFLM arena {arena / 1024:.1f} KiB, measured") if x]
            t.add_row(f"KWS deploy {d['target']}", f"[green]bundle[/] {d['bundle']}"
                      + (f" ({'; '.join(extra)})" if extra else "") + "".join(f"\n  note: {n}" for n in d["notes"] if _no_device(n)))
        else:
            t.add_row(f"KWS deploy {d['target']}", f"[red]not deployed[/]: {d['reason'][:160]}")
    t.add_row("face enroll", ", ".join(f"{e['user']} ({len(e['images'])} photos)" for e in f["enrolled"]))
    for tr in f["tries"]:
        mark = "[green]right[/]" if tr["correct"] else "[bold red]WRONG[/]"
        t.add_row("face unlock", f"{tr['image']} claims {tr['claims']}: {tr['outcome']} "
                                 f"(distance {_fmt(tr['score'], '{:.3f}')} vs {_fmt(tr['threshold'], '{:.3f}')}) {mark}")
    c.print(t)
    r = k["report"]["paths"]
    c.print(f"[bold]where everything is[/] (under {s['out']}):\n"
            f"  KWS report   {r.get('md')}  {r.get('html')}  {r.get('json')}\n"
            f"  KWS plots    {'  '.join(r.get('plots', {}).values())}\n"
            f"  listen       {li['stream']['wav']}  {li.get('plot') or ''}\n"
            f"  deploy       {Path(s['out']) / 'kws' / 'deploy'}/<target>\n"
            f"  face store   {f['store']} (encrypted)\n"
            f"  summary      {Path(s['out']) / SUMMARY}")
    c.print(f"data: {k['data']}; faces: AT&T Laboratories Cambridge (examples/face_unlock/sample_faces/README.md)")
    c.print(f"[{s['seconds']} s wall, {s['cpu_seconds']} s CPU]  " +
            ("[bold green]demo passed[/]" if s["ok"] else "[bold red]demo FAILED[/]: " + s["ok_rule"] + " - not all held"))


def _no_device(note: str) -> bool:
    """The notes that say what this machine lacks (compiler, runtime, device); the rest are in the bundle."""
    return any(w in note for w in ("not found", "not on PATH", "not installed"))


def _placement(p) -> str:
    if not isinstance(p, dict) or not p or set(p) <= {"cpu"}:
        return ""
    return ", ".join(f"{n} ops on {k}" for k, n in sorted(p.items()))


def _fmt(x, spec="{:.4f}"):
    return "-" if x is None else spec.format(x)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_cmd)
