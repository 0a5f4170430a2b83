"""``edgeship inspect MODEL``: the model's facts as tables, or one JSON object."""
from __future__ import annotations

from pathlib import Path

import typer

from .console import console, emit_json, handle_errors, json_option


def human(n: float) -> str:
    """``1234567`` -> ``'1.23M'``.

    Example:
        >>> human(2240403), human(512)
        ('2.24M', '512')
    """
    for unit in ("", "K", "M", "G", "T"):
        if abs(n) < 1000:
            return f"{n:.3g}{unit}"
        n /= 1000
    return f"{n:.3g}P"


def _io_rows(table, kind: str, specs: list) -> None:
    for s in specs:
        q = s.get("quantization")
        qs = (f"scale {q['scale'][0]:.6g}, zp {q['zero_point'][0]}" + (" (per-channel)" if len(q["scale"]) > 1 else "")
              if q else "-")
        table.add_row(kind, s["name"], str(s["shape"]), s["dtype"], qs)


@handle_errors
def inspect_cmd(
    model: Path = typer.Argument(..., help="A .tflite or .onnx file."),
    ops: bool = typer.Option(False, "--ops", help="List every operator with its MACs."),
    json_: bool = json_option(),
):
    """Show format, I/O with quantization, operators, parameters, MACs, memory and minimum runtime."""
    from ..inspect import inspect_model

    info = inspect_model(model)
    if json_:
        emit_json(info)
        return
    _print(info, ops)


def _print(info: dict, ops: bool) -> None:
    from rich.table import Table

    c = console()
    c.print(f"[bold]{info['path']}[/]  {info['format']}  {human(info['bytes'])}B  quantization: "
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
            t.add_row(str(o["index"]), o["op"], str(o["output_shape"]), human(o["macs"] or 0))
        c.print(t)
    mem = info["memory"]
    c.print(f"params {human(info['params'])} ({human(info['weight_bytes'])}B)   MACs {human(info['macs_total'])}   "
            + (f"peak activations {human(mem['peak_activation_bytes'])}B   " if mem.get("peak_activation_bytes") else "")
            + f"min runtime {info['min_runtime_version']} ({info['min_runtime_version_source']})")
    if info.get("edgetpu_compiled"):
        c.print("[yellow]compiled for the Coral Edge TPU (edgetpu-custom-op): runs only with libedgetpu[/]")


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect_cmd)
