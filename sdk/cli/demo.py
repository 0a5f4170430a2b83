"""``edgeship demo``: the main job, end to end, on the model edgeship ships.

It uses converters, targets and the model zoo, so it lives in the CLI layer (the top of the
import graph), not in the light core.

Source model (Keras ``shapes_cnn``) → every TFLite/ONNX format with a parity
report against the source → target checks → benchmarks → a verified bundle,
then one readable summary (and ``report.json`` + ``latency.png`` in the output
folder). Runs offline on a fresh clone: the data is synthetic and seeded.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer

from .._io import atomic_write_json, to_jsonable
from .console import EXIT_FAILED_CHECK, console, emit_json, handle_errors, json_option, rich_progress

DEMO_TARGETS = ("host", "rpi4", "edgetpu", "android", "mcu")


def _convert_all(src: Path, out: Path, c, log: List[str]):
    """Every applicable format from the Keras source, with parity; None when [convert] is missing."""
    from .._deps import available

    if not available("tensorflow"):
        log.append("converters unavailable (pip install 'edgeship[convert]'): using the shipped TFLite files")
        return None
    from edgeship.converters import convert

    from edgeship.models.shapes import make_dataset

    calib, _ = make_dataset(200, seed=7)          # calibration images
    val_x, val_y = make_dataset(300, seed=11)     # held-out validation images + labels
    from edgeship.errors import ParityError

    from .._io import stdout_to_stderr

    c.print("[bold]1/5 convert[/] shapes_cnn.keras (batch fixed to 1) → every format, each checked against the source "
            f"(converter log: {out / 'convert.log'})")
    try:
        with stdout_to_stderr(out / "convert.log"):  # converter chatter goes to the log, not the summary
            # static batch 1: the Edge TPU and microcontrollers need static shapes
            return convert(str(src), all_formats=True, calibration=calib, validation=val_x, labels=val_y,
                           out=str(out / "models"), static_batch=True).to_dict()
    except ParityError as exc:  # the report is still complete; failed files were renamed *.rejected
        log.append(f"parity failed: {exc}")
        return exc.report


def _outputs_from_result(result: dict) -> List[dict]:
    return [dict(o) for o in result["outputs"]]


def _shipped_outputs() -> List[dict]:
    from edgeship import models

    return [{"path": str(models.path(n)), "format": "tflite", "quantization": q, "parity": None}
            for n, q in (("shapes_cnn_fp32", "fp32"), ("shapes_cnn_int8", "int8"))]


def _check_targets(model_path: str, log: List[str]) -> List[dict]:
    from edgeship import targets

    rows = []
    for t in DEMO_TARGETS:
        try:
            rep = targets.check(model_path, t)
        except Exception as exc:  # a target that cannot judge this model says so in the table
            rows.append({"target": t, "compatible": False, "problems": [str(exc)]})
            continue
        d = rep.to_dict()
        placed = [o.get("placement") for o in d.get("ops") or [] if isinstance(o, dict)]
        rows.append({"target": t, "compatible": bool(d.get("compatible")),
                     "problems": [p.get("message", str(p)) if isinstance(p, dict) else str(p) for p in d.get("problems", [])],
                     "estimate": d.get("estimate"),
                     "on_accelerator": (f"{placed.count('tpu')}/{len(placed)} ops on the TPU"
                                        if "tpu" in placed or t == "edgetpu" else None)})
    return rows


def _plot(rows: List[dict], path: Path) -> Optional[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    names = [Path(r["path"]).name for r in rows if r.get("bench")]
    p50 = [r["bench"]["latency_ms"]["p50"] for r in rows if r.get("bench")]
    if not names:
        return None
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(names)))
    ax.barh(names, p50, color="#3b7dd8")
    ax.set_xlabel("p50 latency on this host, 1 thread (ms)")
    ax.set_title("edgeship demo: shapes_cnn in every format")
    for i, v in enumerate(p50):
        ax.text(v, i, f" {v:.3f}", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


@handle_errors
def demo_cmd(
    out: Path = typer.Option(Path("demo_out"), "-o", "--out", help="Folder for models, bundle and report."),
    runs: int = typer.Option(50, help="Timed runs per model in the benchmark."),
    json_: bool = json_option(),
):
    """Run the main job on the shipped model: convert, check parity, check targets, benchmark, bundle."""
    from rich.table import Table

    from edgeship import models

    from ..benchmark import benchmark
    from ..bundle import write_bundle
    from ..inspect import inspect_model

    c = console()
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    log: List[str] = []
    src = models.path("shapes_cnn_keras")
    with rich_progress(enabled=not json_):
        result = _convert_all(src, out, c, log)
    rows = _outputs_from_result(result) if result is not None else _shipped_outputs()
    c.print("[bold]2/5 inspect[/] and [bold]3/5 benchmark[/] each output (1 thread)")
    for r in rows:
        info = inspect_model(r["path"]) if r["path"].endswith((".tflite", ".onnx")) and r.get("shipped", True) else None
        r["bytes"] = info["bytes"] if info else r.get("bytes")
        r["macs"] = info["macs_total"] if info else None
        if info:
            r["bench"] = benchmark(r["path"], runs=runs, warmup=5, threads=1).to_dict()
    int8 = next((r for r in rows if r["path"].endswith(".tflite") and r.get("quantization") == "int8"), rows[0])
    c.print(f"[bold]4/5 check targets[/] for {Path(int8['path']).name}")
    target_rows = _check_targets(int8["path"], log)
    c.print("[bold]5/5 bundle[/] every output with manifest, labels and preprocessing")
    from edgeship.models.shapes import LABELS, PREPROCESSING

    files = {}
    for r in rows:
        if r["path"].endswith((".tflite", ".onnx")) and r.get("shipped", True):
            key = f"{Path(r['path']).suffix[1:]}-{r['quantization']}"
            files.setdefault(key, r["path"])
    default = next((k for k in files if k.startswith("tflite-int8")), next(iter(files)))
    manifest = write_bundle(out / "bundle", files, labels=LABELS, preprocessing=PREPROCESSING, source=src,
                          default=default, zip_path=out / "bundle.zip", overwrite=True,
                          extra={"parity": [{"file": Path(r["path"]).name, "parity": r.get("parity")} for r in rows]})
    plot = _plot(rows, out / "latency.png")
    report = {"ok": all((r.get("parity") or {}).get("passed", True) for r in rows),
              "source": str(src), "conversion_report": (result or {}).get("report"),
              "outputs": rows, "targets": target_rows, "bundle": manifest["_dir"], "zip": str(out / "bundle.zip"),
              "plot": plot, "notes": log, "seconds": round(time.perf_counter() - t0, 1)}
    atomic_write_json(out / "report.json", to_jsonable(report))
    if json_:
        emit_json(report)
    else:
        _print_summary(c, report, Table)
    if not report["ok"]:
        raise typer.Exit(EXIT_FAILED_CHECK)


def _fmt(x, spec="{:.4f}"):
    return "-" if x is None else spec.format(x)


def _estimate(e) -> str:
    """One line from a target's latency estimate (rpi: one figure; mcu: one per board)."""
    if not isinstance(e, dict):
        return "-"
    if isinstance(e.get("latency_ms"), (int, float)):
        return f"{e['latency_ms']:.2f} ms ({e.get('low_ms', 0):.2f}-{e.get('high_ms', 0):.2f})"
    boards = e.get("latency_ms") or []
    if boards and isinstance(boards, list):
        b = boards[0]
        return f"{b['ms']:.0f} ms on {b['board']} ({b['low_ms']:.0f}-{b['high_ms']:.0f})"
    return "-"


def _print_summary(c, report: dict, Table) -> None:
    t = Table(title="every output checked against the Keras source; speed on this host, 1 thread")
    for col in ("output", "KB", "max|err|", "cosine", "top-1", "acc src→out", "p50 ms", "ok"):
        t.add_column(col, justify="left" if col == "output" else "right")
    for r in report["outputs"]:
        p = r.get("parity") or {}
        acc = (f"{p['accuracy_source']:.3f}→{p['accuracy_output']:.3f}"
               if p.get("accuracy_source") is not None and p.get("accuracy_output") is not None else "-")
        b = (r.get("bench") or {}).get("latency_ms", {})
        name = r.get("exporter") or f"{r.get('format')}-{r.get('quantization')}"
        t.add_row(name, _fmt((r.get("bytes") or 0) / 1024, "{:.1f}"), _fmt(p.get("max_abs")),
                  _fmt(p.get("cosine")), _fmt(p.get("top1_agreement"), "{:.3f}"), acc, _fmt(b.get("p50"), "{:.3f}"),
                  "[green]yes[/]" if p.get("passed", True) else "[red]NO[/]")
    c.print(t)
    if report["targets"]:
        t = Table(title="target checks of the int8 TFLite (estimates are models, not measurements)")
        for col in ("target", "ok", "estimate", "first problem"):
            t.add_column(col)
        for r in report["targets"]:
            t.add_row(r["target"], "[green]yes[/]" if r["compatible"] else "[red]no[/]",
                      r.get("on_accelerator") or _estimate(r.get("estimate")),
                      (r["problems"][0] if r["problems"] else "")[:70])
        c.print(t)
    for n in report["notes"]:
        c.print(f"[yellow]note:[/] {n}")
    c.print(f"bundle: {report['bundle']} (+ {report['zip']})   report: {Path(report['bundle']).parent / 'report.json'}"
            + (f"   plot: {report['plot']}" if report["plot"] else "") + f"   [{report['seconds']} s]")
    c.print("[bold green]demo passed[/]" if report["ok"] else "[bold red]demo FAILED: an output is out of tolerance[/]")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_cmd)
