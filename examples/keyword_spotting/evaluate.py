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
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    tmp = png.with_name(f".{png.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(png)   # atomic: never a half-written PNG
    return png


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


def false_alarms(det, path, *, resample=False, json_mode=False) -> Dict:
    """Stream every file through the detector; every event is a false accept (the audio has no keyword)."""
    from edgeship.audio import read_audio

    files = audio_files(path)
    events, seconds = [], 0.0
    with _progress(json_mode) as prog:
        task = prog.add_task("false alarms", total=len(files))
        for f in files:
            x = read_audio(f, sample_rate=det.sample_rate, resample=resample)
            seconds += x.size / det.sample_rate
            events += [{"file": str(f), **ev.to_dict()} for ev in det.detect(x)]
            prog.advance(task)
    hours = seconds / 3600.0
    return {"ok": True, "audio": str(path), "files": len(files), "hours": round(hours, 4),
            "false_accepts": len(events), "per_hour": len(events) / hours if hours else None,
            "config": det.config.to_dict(), "model": str(det.model.path), "model_sha256": det.model.sha256,
            "events": events[:1000]}


def print_evaluation(r: Dict) -> None:
    from rich.console import Console
    from rich.table import Table

    c = Console()
    c.print(f"[bold]accuracy {r['accuracy']:.2%}[/] on {r['n']} clips ({r['data']})")
    t = Table("class", "n", "recall")
    for l, v in r["per_class"].items():
        t.add_row(l, str(v["n"]), "-" if v["recall"] is None else f"{v['recall']:.1%}")
    c.print(t)
    cm = Table("true \\ pred", *[l[:6] for l in r["labels"]])
    for l, row in zip(r["labels"], r["confusion"]):
        cm.add_row(l, *[str(v) for v in row])
    c.print(cm)


def print_false_alarms(r: Dict) -> None:
    print(f"{r['false_accepts']} false accept(s) in {r['hours']:.3f} h of audio ({r['files']} file(s)): "
          f"{r['per_hour']:.2f} per hour at threshold {r['config']['threshold']}")
    for ev in r["events"][:20]:
        print(f"  {ev['file']}  {ev['time_s']:.2f} s  {ev['label']} ({ev['confidence']:.2f})")
    sys.stdout.flush()
