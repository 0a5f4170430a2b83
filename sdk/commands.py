"""CLI commands of the runtime core: ``inspect`` and ``bundle``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from ._cli_util import console, emit_json, handle_errors
from .errors import ModelFormatError


def _human(n: float) -> str:
    for unit in ("", "K", "M", "G", "T"):
        if abs(n) < 1000:
            return f"{n:.3g}{unit}"
        n /= 1000
    return f"{n:.3g}P"


def _io_rows(table, kind: str, specs: list) -> None:
    for s in specs:
        q = s.get("quantization")
        qs = f"scale {q['scale'][0]:.6g}, zp {q['zero_point'][0]}" + (" (per-channel)" if len(q["scale"]) > 1 else "") if q else "-"
        table.add_row(kind, s["name"], str(s["shape"]), s["dtype"], qs)


@handle_errors()
def inspect_cmd(
    model: Path = typer.Argument(..., help="A .tflite or .onnx file."),
    json_: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    ops: bool = typer.Option(False, "--ops", help="List every operator with its MACs."),
):
    """Show format, I/O with quantization, operators, parameters, MACs, memory and minimum runtime."""
    from rich.table import Table

    from .inspect import inspect_model

    info = inspect_model(model)
    if json_:
        emit_json(info)
        return
    c = console()
    c.print(f"[bold]{info['path']}[/]  {info['format']}  {_human(info['bytes'])}B  quantization: "
            f"[cyan]{info['quantization']}[/]  sha256 {info['sha256'][:12]}")
    t = Table(title="inputs / outputs")
    for col in ("", "name", "shape", "dtype", "quantization"):
        t.add_column(col)
    _io_rows(t, "in", info["inputs"])
    _io_rows(t, "out", info["outputs"])
    c.print(t)
    t = Table(title="operators")
    t.add_column("op")
    t.add_column("version", justify="right")
    t.add_column("count", justify="right")
    for o in info["operators"]:
        t.add_row(o["op"], str(o.get("version", "-")), str(o["count"]))
    c.print(t)
    if ops:
        t = Table(title="per-op cost")
        for col in ("#", "op", "output shape", "MACs"):
            t.add_column(col)
        for o in info["ops"]:
            t.add_row(str(o["index"]), o["op"], str(o["output_shape"]), _human(o["macs"] or 0))
        c.print(t)
    mem = info["memory"]
    c.print(f"params {_human(info['params'])} ({_human(info['weight_bytes'])}B)   MACs {_human(info['macs_total'])}   "
            + (f"peak activations {_human(mem['activations_peak_bytes'])}B   " if "activations_peak_bytes" in mem else "")
            + f"min runtime {info['min_runtime_version']} ({info['min_runtime_version_source']})")
    if info.get("edgetpu_compiled"):
        c.print("[yellow]compiled for the Coral Edge TPU (edgetpu-custom-op): runs only with libedgetpu[/]")


def _parse_models(models: List[str]) -> dict:
    """KEY=PATH pairs, or bare paths keyed by format and quantization (tflite-int8, onnx-float...)."""
    from .inspect import inspect_model

    files = {}
    for item in models:
        key, sep, p = item.partition("=")
        if not sep:
            p = item
            info = inspect_model(p)
            key = f"{info['format']}-{info['quantization'].split()[0]}".replace("float32", "fp32")
        if key in files:
            raise ModelFormatError(f"two models would both be called {key!r}; name them with KEY=PATH")
        files[key] = p
    return files


@handle_errors()
def bundle_cmd(
    models: List[str] = typer.Argument(..., help="Model files, as PATH or KEY=PATH (KEY: a target or variant name)."),
    out: Path = typer.Option(..., "-o", "--out", help="Bundle directory to write."),
    labels: Optional[str] = typer.Option(None, help="Labels: a text file (one per line) or a comma list."),
    preprocessing: Optional[str] = typer.Option(None, help="Preprocessing spec: a JSON file or JSON text."),
    source: Optional[Path] = typer.Option(None, help="The source model the files were made from (hashed)."),
    default: Optional[str] = typer.Option(None, help="Key loaded by default."),
    zip_: bool = typer.Option(False, "--zip", help="Also write OUT.zip."),
    force: bool = typer.Option(False, "--force", help="Replace an existing bundle at OUT."),
    json_: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
):
    """Write a bundle: model files + manifest.json (I/O, preprocessing, labels, sha256 of every file)."""
    from .bundle import write_bundle

    files = _parse_models(models)
    lab = None
    if labels:
        lp = Path(labels)
        lab = [x.strip() for x in (lp.read_text().splitlines() if lp.is_file() else labels.split(",")) if x.strip()]
    pre = None
    if preprocessing:
        pp = Path(preprocessing)
        try:
            pre = json.loads(pp.read_text() if pp.is_file() else preprocessing)
        except ValueError as exc:
            raise ModelFormatError(f"--preprocessing must be JSON (text or a file); {exc}") from exc
    zip_path = out.with_suffix(".zip") if zip_ else None
    d = write_bundle(out, files, labels=lab, preprocessing=pre, source=source, default=default,
                     zip_path=zip_path, overwrite=force)
    from .bundle import read_bundle

    manifest = read_bundle(d)
    manifest.pop("_dir", None)
    result = {"ok": True, "bundle": str(d), "zip": str(zip_path) if zip_path else None, "manifest": manifest}
    if json_:
        emit_json(result)
    else:
        c = console()
        c.print(f"[green]bundle written[/] {d}" + (f" and {zip_path}" if zip_path else ""))
        for k, e in manifest["files"].items():
            c.print(f"  {k:20s} {e['path']:32s} {e['bytes']:>9d} B  sha256 {e['sha256'][:12]}")


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect_cmd)
    app.command("bundle")(bundle_cmd)
