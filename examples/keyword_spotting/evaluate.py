"""``evaluate`` and ``false-alarms``: accuracy on a Speech Commands folder, false accepts per hour."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

AUDIO_SUFFIXES = (".wav", ".flac")


def _progress(json_mode: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.console import Console

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), transient=json_mode)


def dataset(root, labels: List[str], limit: Optional[int] = None) -> List[tuple]:
    """(path, true label) for a Speech Commands layout: ``<label>/*.wav|flac``.

    A folder named like one of ``labels`` keeps its name; any other folder counts as ``_unknown_``
    (an error when the model has no ``_unknown_`` class). ``limit`` caps the files per folder
    (sorted by name, for quick checks).
    """
    from edgeship.errors import InputSpecError

    root = Path(root)
    if not root.is_dir():
        raise InputSpecError(f"--data {root}: not a folder; expected <label>/*.wav|*.flac (Speech Commands layout)")
    items = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(f for f in d.iterdir() if f.suffix.lower() in AUDIO_SUFFIXES)
        if not files:
            continue
        label = d.name if d.name in labels else "_unknown_"
        if label not in labels:
            raise InputSpecError(f"folder {d.name!r} is not one of the model's labels {labels} and the model has "
                                 "no _unknown_ class to count it as")
        items += [(f, label) for f in files[:limit]]
    if not items:
        raise InputSpecError(f"--data {root}: no <label>/*.wav or *.flac files found")
    return items


def evaluate(det, root, *, limit=None, resample=False, json_mode=False) -> Dict:
    """Accuracy, per-class recall and the confusion matrix of ``det``'s model on a folder."""
    from edgeship.audio import read_audio

    labels = det.labels
    items = dataset(root, labels, limit)
    idx = {l: i for i, l in enumerate(labels)}
    conf = np.zeros((len(labels), len(labels)), np.int64)
    with _progress(json_mode) as prog:
        task = prog.add_task("evaluate", total=len(items))
        for path, label in items:
            x = read_audio(path, sample_rate=det.sample_rate, resample=resample)
            if x.size > det.spec.clip_samples:   # long clips: the first clip, as the reference does
                x = x[:det.spec.clip_samples]
            conf[idx[label], int(np.argmax(det.classify(x)))] += 1
            prog.advance(task)
    n = int(conf.sum())
    per_class = {l: {"n": int(conf[i].sum()),
                     "recall": (float(conf[i, i] / conf[i].sum()) if conf[i].sum() else None)}
                 for i, l in enumerate(labels)}
    return {"ok": True, "data": str(root), "model": str(det.model.path), "model_sha256": det.model.sha256,
            "n": n, "accuracy": float(np.trace(conf) / n), "per_class": per_class, "labels": labels,
            "confusion": conf.tolist(), "confusion_axes": "rows: true label, columns: predicted label"}


def plot_confusion(result: Dict, png) -> Path:
    """Write the confusion matrix as a PNG (matplotlib, Agg)."""
    from edgeship._deps import require

    mpl = require("matplotlib", "dev", "--plot")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    labels, conf = result["labels"], np.asarray(result["confusion"])
    rows = conf / np.maximum(conf.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(8, 7))
    ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if conf[i, j]:
                ax.text(j, i, str(conf[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if rows[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{Path(result['model']).name}: accuracy {result['accuracy']:.1%} on {result['n']} clips")
    fig.tight_layout()
    return _save(fig, png)


def audio_files(path) -> List[Path]:
    """A file, or every .wav/.flac below a folder (sorted)."""
    from edgeship.errors import InputSpecError

    p = Path(path)
    if p.is_file():
        return [p]
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES)
        if files:
            return files
        raise InputSpecError(f"--audio {p}: no .wav or .flac files in this folder")
    raise InputSpecError(f"--audio {p}: no such file or folder")


SWEEP_THRESHOLDS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.98)
KEYWORD_PAD_S = 0.5   # silence around each keyword clip of --keywords (a 1 s clip: 11 windows see it)


def false_alarms(det, path, *, resample=False, json_mode=False, keywords=None, limit=None,
                 thresholds=None) -> Dict:
    """Stream every file through the detector; every event is a false accept (the audio has no keyword).

    The window posteriors of each file are computed once; the detector's setting, and each of
    ``thresholds`` (a sweep, same smoothing and refractory period), are replayed on them. With
    ``keywords`` (a Speech Commands folder; only folders named like one of the model's keywords are
    read, at most ``limit`` files each) every clip is streamed with silence around it, and recall
    is the share of clips with an event of their own label.
    """
    from dataclasses import replace

    from edgeship.audio import read_audio, read_audio_blocks
    from edgeship.errors import InputSpecError

    files = audio_files(path)
    kw_items = []
    if keywords is not None:
        kw_items = [(f, l) for f, l in dataset(keywords, det.labels, limit) if not l.startswith("_")]
        if not kw_items:
            raise InputSpecError(f"--keywords {keywords}: no folder named like one of the model's keywords "
                                 f"({', '.join(l for l in det.labels if not l.startswith('_'))})")
    pad = np.zeros(int(KEYWORD_PAD_S * det.sample_rate), np.float32)
    streams, kw_streams = [], []
    with _progress(json_mode) as prog:
        task = prog.add_task("false alarms", total=len(files))
        samples = [0]   # of every file, counted as the blocks pass

        def counted(blocks):
            for b in blocks:
                samples[0] += b.size
                yield b

        for f in files:   # block by block: hours-long recordings in constant memory
            blocks = read_audio_blocks(f, 10 * det.sample_rate, sample_rate=det.sample_rate, resample=resample)
            streams.append((f, det.window_posteriors(counted(blocks))))
            prog.advance(task)
        seconds = samples[0] / det.sample_rate
        if kw_items:
            task = prog.add_task("keywords", total=len(kw_items))
            for f, label in kw_items:
                x = read_audio(f, sample_rate=det.sample_rate, resample=resample)
                kw_streams.append((label, det.window_posteriors(np.concatenate([pad, x, pad]))))
                prog.advance(task)

    def measure(cfg) -> dict:
        fa = [(f, ev) for f, post in streams for ev in det.events(*post, config=cfg)]
        row = {"threshold": cfg.threshold, "false_accepts": len(fa), "per_hour": len(fa) / hours if hours else None}
        if kw_streams:
            hit = [any(ev.label == label for ev in det.events(*post, config=cfg)) for label, post in kw_streams]
            row["recall"] = float(np.mean(hit))
        return row, fa

    hours = seconds / 3600.0
    row, fa = measure(det.config)
    out = {"ok": True, "audio": str(path), "files": len(files), "hours": round(hours, 4),
           "false_accepts": row["false_accepts"], "per_hour": row["per_hour"],
           "config": det.config.to_dict(), "config_from": det.info.config_from, "model": str(det.model.path),
           "model_sha256": det.model.sha256,
           "events": [{"file": str(f), **ev.to_dict()} for f, ev in fa[:1000]]}
    if kw_streams:
        out.update(keywords=str(keywords), keyword_clips=len(kw_streams), recall=row["recall"],
                   keyword_padding_s=KEYWORD_PAD_S)
    if thresholds:
        out["sweep"] = [measure(replace(det.config, threshold=float(t)))[0] for t in thresholds]
    return out


def best_in_sweep(result: Dict, max_per_hour: float) -> Optional[Dict]:
    """The sweep row to pick under ``max_per_hour``: with ``--keywords`` the highest recall (then
    fewer false accepts, then the higher threshold); without, the lowest threshold (the most
    permissive one within the limit). None when no row is within the limit. Chosen on the same
    audio it is measured on: check it on other recordings before trusting the figure.
    """
    fit = [r for r in result.get("sweep", []) if r["per_hour"] is not None and r["per_hour"] <= max_per_hour]
    if not fit:
        return None
    if "recall" in result:
        return max(fit, key=lambda r: (r["recall"], -r["per_hour"], r["threshold"]))
    return min(fit, key=lambda r: r["threshold"])


def plot_false_alarms(result: Dict, png) -> Path:
    """False accepts per hour against recall (with ``--keywords``) or against the threshold, as a PNG."""
    from edgeship._deps import require

    mpl = require("matplotlib", "dev", "--plot")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    rows, cfg = result["sweep"], result["config"]
    fig, ax = plt.subplots(figsize=(7, 5))
    fa = [r["per_hour"] for r in rows]
    if "recall" in result:
        ax.plot(fa, [r["recall"] for r in rows], "o-")
        points: Dict[tuple, list] = {}   # thresholds that land on the same point share one label
        for r in rows:
            points.setdefault((r["per_hour"], r["recall"]), []).append(r["threshold"])
        for (x, y), ts in points.items():
            ax.annotate(f"{ts[0]:g}" if len(ts) == 1 else f"{ts[0]:g}..{ts[-1]:g}", (x, y),
                        textcoords="offset points", xytext=(4, -10), fontsize=8)
        ax.plot([result["per_hour"]], [result["recall"]], "r*", markersize=14,
                label=f"setting: threshold {cfg['threshold']:g}, smoothing {cfg['smoothing']}")
        ax.set_xlabel("false accepts per hour (--audio)")
        ax.set_ylabel(f"keyword recall ({result['keyword_clips']} clips of --keywords)")
        ax.set_ylim(0, 1.02)
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlim(left=0)
    else:
        ax.plot([r["threshold"] for r in rows], fa, "o-")
        ax.plot([cfg["threshold"]], [result["per_hour"]], "r*", markersize=14,
                label=f"setting: threshold {cfg['threshold']:g}, smoothing {cfg['smoothing']}")
        ax.set_xlabel("threshold")
        ax.set_ylabel("false accepts per hour (--audio)")
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(f"{Path(result['model']).name}: {result['hours']:.2f} h of audio without keywords")
    fig.tight_layout()
    return _save(fig, png)


def _save(fig, png) -> Path:
    """Write a figure atomically (never a half-written PNG) and close it."""
    import matplotlib.pyplot as plt

    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    tmp = png.with_name(f".{png.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(png)
    return png


def print_evaluation(r: Dict) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    c = Console()
    if not c.is_terminal:  # a pipe or a log: never cut the confusion matrix to 80 columns
        c = Console(width=1000)
    c.print(f"[bold]accuracy {r['accuracy']:.2%}[/] on {r['n']} clips ({r['data']})")
    t = Table("class", "n", "recall")
    for l, v in r["per_class"].items():
        t.add_row(l, str(v["n"]), "-" if v["recall"] is None else f"{v['recall']:.1%}")
    c.print(t)
    cm = Table("true \\ pred", *r["labels"], box=box.SIMPLE_HEAD, padding=(0, 1))
    for col in cm.columns[1:]:
        col.justify = "right"
    for l, row in zip(r["labels"], r["confusion"]):
        cm.add_row(l, *[str(v) if v else "[dim].[/]" for v in row])
    c.print(cm)


def print_false_alarms(r: Dict) -> None:
    print(f"{r['false_accepts']} false accept(s) in {r['hours']:.3f} h of audio ({r['files']} file(s)): "
          f"{r['per_hour']:.2f} per hour at threshold {r['config']['threshold']}, smoothing "
          f"{r['config']['smoothing']} ({r['config_from']})"
          + (f"; keyword recall {r['recall']:.1%} of {r['keyword_clips']} clips" if "recall" in r else ""))
    for row in r.get("sweep", []):
        print(f"  threshold {row['threshold']:<5g} {row['per_hour']:8.2f} per hour"
              + (f"   recall {row['recall']:.1%}" if "recall" in row else ""))
    if "best_in_sweep" in r:
        b, limit = r["best_in_sweep"], r["max_per_hour"]
        if b is None:
            print(f"no threshold of the sweep stays within {limit:g} per hour at smoothing {r['config']['smoothing']}")
        else:
            print(f"within {limit:g} per hour: threshold {b['threshold']:g} ({b['per_hour']:.2f} per hour"
                  + (f", recall {b['recall']:.1%}" if "recall" in b else ", the lowest within the limit")
                  + f"); chosen on this audio. Record it: deploy --threshold {b['threshold']:g}")
    if r.get("plot"):
        print(f"plot: {r['plot']}")
    for ev in r["events"][:20]:
        print(f"  {ev['file']}  {ev['time_s']:.2f} s  {ev['label']} ({ev['confidence']:.2f})")
    sys.stdout.flush()
