"""``edgeship targets`` (the registry as a table) and ``edgeship check MODEL --target T``.

Importing this module stays light: target modules load when a command runs.
Exit codes: 0 compatible, 1 incompatible (a failed check), 2 user error.
"""
from __future__ import annotations

import typer

from .console import EXIT_FAILED_CHECK, console, emit_json, handle_errors, json_option


def _profile_dict(p) -> dict:
    return {
        "name": p.name, "title": p.title, "formats": sorted(p.formats), "quantizations": sorted(map(str, p.quantizations)),
        "io_dtypes": sorted(p.io_dtypes),
        "supported_ops": None if p.supported_ops is None else sorted(p.supported_ops),
        "op_limits": p.op_limits, "max_tensor_rank": p.max_tensor_rank,
        "static_shapes_required": p.static_shapes_required, "memory_limit_bytes": p.memory_limit_bytes,
        "runtimes": list(p.runtimes), "delegates": list(p.delegates),
        "device": {"cpu": p.device.cpu, "cores": p.device.cores, "clock_ghz": p.device.clock_ghz,
                   "ram_bytes": p.device.ram_bytes, "flash_bytes": p.device.flash_bytes,
                   "accelerator": p.device.accelerator},
        "install": list(p.install), "notes": list(p.notes),
    }


@handle_errors
def targets(json_: bool = json_option()) -> None:
    """List every target: formats, quantization modes, runtimes and device."""
    from ..targets import get_target, list_targets

    profiles = [get_target(n) for n in list_targets()]
    if json_:
        emit_json({"ok": True, "targets": [_profile_dict(p) for p in profiles]})
        return
    from rich.table import Table

    t = Table(title="edgeship targets", header_style="bold")
    for col in ("name", "device", "formats", "quantization", "ops", "runtime / delegates"):
        t.add_column(col)
    for p in profiles:
        dev = p.device.cpu + (f" + {p.device.accelerator}" if p.device.accelerator else "")
        ops = "all" if p.supported_ops is None else f"{len(p.supported_ops)} ops"
        t.add_row(p.name, f"{p.title}\n{dev}", ", ".join(sorted(p.formats)), ", ".join(sorted(map(str, p.quantizations))),
                  ops + (", static shapes" if p.static_shapes_required else ""),
                  ", ".join(p.runtimes) + (f" / {', '.join(p.delegates)}" if p.delegates else ""))
    console().print(t)


@handle_errors
def check(
    model: str = typer.Argument(..., help="Path to a .tflite or .onnx model."),
    target: str = typer.Option(..., "--target", "-t", help="Target name (see `edgeship targets`)."),
    json_: bool = json_option(),
) -> None:
    """Is MODEL compatible with TARGET? Blocking problems with fixes, op placement, CPU fallback."""
    from ..targets import check as check_model

    report = check_model(model, target)
    if json_:
        emit_json({"ok": True, **report.to_dict()})
    else:
        _print_report(report)
    if not report.compatible:
        raise typer.Exit(EXIT_FAILED_CHECK)


def _print_report(r) -> None:
    from rich.markup import escape

    c = console()
    verdict = "[bold green]compatible[/]" if r.compatible else "[bold red]NOT compatible[/]"
    c.print(f"{r.model} -> [bold]{r.target}[/]: {verdict}  ({r.format}, quantization {r.quantization})")
    counts = ", ".join(f"{n} on {k}" for k, n in sorted(r.placement_counts().items()))
    c.print(f"ops: {len(r.ops)} ({counts})")
    for p in r.problems:
        tag = "[red]blocking[/]" if p.blocking else "[yellow]warning[/]"
        c.print(f"  {tag} " + escape(f"[{p.kind}] {p.subject}: {p.message}\n      fix: {p.fix}"), highlight=False)
    if r.cpu_fallback:
        shown = ", ".join(r.cpu_fallback[:12]) + (" ..." if len(r.cpu_fallback) > 12 else "")
        c.print("falls back to CPU: " + escape(shown))
    if r.estimate:
        e = r.estimate
        c.print(f"estimate: {e['latency_ms']:.1f} ms ({e['low_ms']:.1f}-{e['high_ms']:.1f} ms, "
                f"+-{e['uncertainty']:.0%}) with {e['runtime']}, {e['threads']} threads")
    for n in r.notes:
        c.print("  note: " + escape(n), highlight=False)


def register(app: typer.Typer) -> None:
    app.command("targets")(targets)
    app.command("check")(check)
