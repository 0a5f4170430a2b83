"""``edgeship convert``: convert, quantize and check a model from the command line.

Importing this module is light (typer only); TensorFlow/ONNX load when the command runs.
Converter chatter (Python and C level) goes to stderr, so ``--json`` stays one object.

Example:
    $ edgeship convert model.keras --to tflite --quantize int8 --calibration calib.npz -o out/ --json
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import ConversionError, ParityError
from ..facts import QuantMode
from .console import EXIT_FAILED_CHECK, console, emit_json, handle_errors, json_option, rich_progress
from .options import class_indices


def _parse_tolerance(items: List[str], per_output: Optional[dict] = None) -> dict:
    """``key=value`` items; ``OUTPUT:key=value`` ones go into ``per_output[OUTPUT]`` when given."""
    tol = {}
    for it in items or []:
        key, sep, val = it.partition("=")
        if not sep:
            raise ConversionError(f"--tolerance takes key=value or OUTPUT:key=value (e.g. cosine_min=0.999, "
                                  f"boxes:rel_max_abs=0.5), got {it!r}")
        output, colon, key = key.strip().rpartition(":")
        if colon and (per_output is None or not output):
            raise ConversionError(f"--tolerance {it!r}: expected OUTPUT:key=value with an output name")
        try:
            value = None if val.strip().lower() == "none" else float(val)
        except ValueError:
            raise ConversionError(f"--tolerance {key}: expected a number or 'none', got {val!r}") from None
        (per_output.setdefault(output, {}) if colon else tol)[key.strip()] = value
    return tol


def _table(result: dict):
    """One combined parity table, narrow enough for an 80-column terminal."""
    from rich.table import Table

    t = Table(title="parity against the source", show_lines=False, pad_edge=False)
    for col in ("output", "KiB", "max-abs", "cosine", "top-1", "acc src>out", "ms", "ok"):
        t.add_column(col, no_wrap=True)
    for o in result["outputs"]:
        p = o["parity"]
        acc = (f"{p['accuracy_source']:.0%}>{p['accuracy_output']:.0%}" if p.get("accuracy_output") is not None
               else "-")
        t.add_row(o["exporter"], f"{o['bytes'] / 1024:.1f}", f"{p['max_abs']:.3g}", f"{p['cosine']:.5f}",
                  "-" if p.get("top1_agreement") is None else f"{p['top1_agreement']:.0%}", acc,
                  "-" if p.get("latency_ms") is None else f"{p['latency_ms']:.2f}",
                  "[green]yes[/]" if p["passed"] else "[bold red]NO[/]")
        rows = p.get("outputs") or []
        for r in rows if len(rows) > 1 else []:  # models with several outputs: one row each
            t.add_row(f"  {r['name']} ({r['kind']})", "", f"{r['max_abs']:.3g}", f"{r['cosine']:.5f}", "", "", "",
                      "[green]yes[/]" if r["passed"] else "[bold red]NO[/]")
    return t


LOG_NAME = "edgeship-convert.log"


def _log_path(out: str, all_formats: bool) -> Path:
    """The converter log: beside the report (the -o folder, or the -o file's folder), created now."""
    from ..converters import FILE_SUFFIX

    o = Path(out)
    folder = o.parent if not all_formats and o.suffix.lower() in FILE_SUFFIX.values() else o
    folder.mkdir(parents=True, exist_ok=True)
    return folder / LOG_NAME


@handle_errors
def convert_cmd(
    src: str = typer.Argument(..., help="Keras .keras/.h5, SavedModel dir, .onnx file, float .tflite file"),
    to: str = typer.Option("tflite", "--to", help="tflite | onnx"),
    quantize: Optional[str] = typer.Option(None, "--quantize",
                                           help=" | ".join(m.value for m in QuantMode.requestable())),
    calibration: Optional[str] = typer.Option(None, "--calibration", help=".npy/.npz or folder of images/audio"),
    validation: Optional[str] = typer.Option(None, "--validation", help="held-out data (.npy/.npz/folder)"),
    labels: Optional[str] = typer.Option(None, "--labels", help="class indices: .npy or text/CSV (last field)"),
    accuracy_budget: Optional[float] = typer.Option(None, "--accuracy-budget",
                                                    help="max drop of accuracy / top-1 agreement (0.02 = 2 %)"),
    out: str = typer.Option(..., "-o", "--out", help="output file, or folder with --all"),
    all_formats: bool = typer.Option(False, "--all", help="every applicable format into the -o folder"),
    io_dtype: Optional[str] = typer.Option(None, "--io-dtype",
                                           help="full-int8 TFLite I/O: int8 (default) | uint8 | float32"),
    per_channel: bool = typer.Option(True, "--per-channel/--per-tensor", help="weight quantization granularity"),
    keep_float: List[str] = typer.Option([], "--keep-float", help="layer to keep in float (repeatable)"),
    ranges_from: Optional[str] = typer.Option(None, "--ranges-from", help="int8 .tflite of the same network: "
                                              "reuse its activation ranges (and input scale/zero point)"),
    tolerance: List[str] = typer.Option([], "--tolerance", help="override, e.g. cosine_min=0.999, or for one "
                                        "output: boxes:rel_max_abs=0.5 (repeatable)"),
    preprocessing: Optional[str] = typer.Option(None, "--preprocessing", help="for folders: a name (image_0_1, "
                                                "kws_mfcc) or an image spec FILE.json (edgeship.preprocessing)"),
    max_calibration: Optional[int] = typer.Option(None, "--max-calibration", help="use at most N samples"),
    seed: int = typer.Option(0, "--seed"),
    debug_layers: bool = typer.Option(False, "--debug-layers", help="rank int8 layers by error, plot png"),
    static_batch: bool = typer.Option(False, "--static-batch",
                                      help="fix a Keras model's batch dimension to 1 (Edge TPU, MCU)"),
    dynamic_batch: bool = typer.Option(False, "--dynamic-batch",
                                       help="export with a dynamic batch dimension (PyTorch, Keras, ONNX)"),
    json_: bool = json_option(),
):
    """Convert SRC to TFLite/ONNX, quantize it, and check every output against SRC."""
    from .._io import stdout_to_stderr
    from ..converters import convert

    per_output: dict = {}
    kwargs = dict(to=to, quantize=quantize, calibration=calibration, validation=validation,
                  labels=class_indices(labels), accuracy_budget=accuracy_budget,
                  tolerance=_parse_tolerance(tolerance, per_output), output_tolerances=per_output or None,
                  out=out, all_formats=all_formats,
                  preprocessing=preprocessing, max_calibration=max_calibration, seed=seed,
                  debug_layers=debug_layers, per_channel=per_channel, static_batch=static_batch,
                  dynamic_batch=dynamic_batch)
    if io_dtype is not None:  # only when asked: exporters have their own default
        kwargs["io_dtype"] = io_dtype
    if keep_float:
        kwargs["keep_float_ops"] = list(keep_float)
    if ranges_from is not None:
        kwargs["ranges_from"] = ranges_from
    log = _log_path(out, all_formats)
    term = os.fdopen(os.dup(2), "w", encoding="utf-8", errors="replace")  # the terminal, for progress bars
    try:
        # TensorFlow/absl/onnxruntime/tf2onnx chatter (C++ and Python, stdout and stderr) goes to
        # the log next to the outputs; the progress bars stay on the terminal
        with stdout_to_stderr(log), rich_progress(enabled=not json_, file=term):
            result = convert(src, **kwargs).to_dict()
        failed = None
    except ParityError as exc:
        result, failed = exc.report, exc
        if result is None:
            raise
    finally:
        term.close()
    result["log"] = str(log)
    if json_:
        emit_json(result)
    else:
        con = console()
        con.print(_table(result))
        for o in result["outputs"]:
            for n in o["notes"]:
                con.print(f"  {Path(o['path']).name}: {n}")
        for n in result.get("skipped", []):
            con.print(f"  [yellow]{n}[/]")
        from rich.markup import escape

        if result["validation"].get("inputs"):
            con.print(f"parity inputs: {escape(result['validation']['inputs'])}"
                      + (" [yellow](random: worth less than real data)[/]" if result["validation"].get("random")
                         else ""), markup=True, highlight=False)
        for w in result.get("warnings", []):
            con.print(f"[yellow]warning:[/] {escape(w)}", highlight=False)
        for o in result["outputs"]:
            if o.get("next_step"):
                con.print(f"[bold]next step[/] for {Path(o['path']).name}: {escape(o['next_step']['text'])}",
                          highlight=False)
        con.print(f"report: {result['report']}")
        con.print(f"converter log: {log}")
    if failed is not None:
        if not json_:
            console().print(f"[bold red]ParityError:[/] {failed}")
        raise typer.Exit(EXIT_FAILED_CHECK)


def register(app) -> None:
    app.command("convert")(convert_cmd)
