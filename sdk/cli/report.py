"""``edgeship report``: the formats x targets benchmark report of one model.

The work is :func:`edgeship.converters.report.build_report`; this module parses options, shows
rich progress (on a copy of stderr taken before the converter chatter is sent to
``DIR/report.log``), prints the final table and maps the outcome to the exit status:
0 = at least one format passed parity and ran here, 1 = none did, 2 = user error.

Example:
    $ edgeship report model.keras --calibration calib.npz --validation val.npz --labels val_labels.npy \\
        --targets rpi4,mcu -o report/
"""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Iterator, List, Optional

import typer

from .console import EXIT_FAILED_CHECK, emit_json, handle_errors, json_option
from .options import class_indices


@contextlib.contextmanager
def terminal_progress(enabled: bool = True) -> Iterator[Optional[callable]]:
    """A progress callback drawing rich bars on the terminal's stderr, which keeps working while
    ``build_report`` points fds 1 and 2 at its log (it writes to a dup of fd 2 taken here)."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    sys.stderr.flush()
    stream = os.fdopen(os.dup(2), "w", buffering=1)
    con = Console(file=stream, force_terminal=stream.isatty() or None)
    bars = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=con, transient=True)
    tasks: dict = {}

    def update(description: str, done: int, total) -> None:
        if description not in tasks:
            tasks[description] = bars.add_task(description, total=total)
        bars.update(tasks[description], completed=done, total=total)

    try:
        with bars:
            yield update
    finally:
        stream.close()


def print_table(data: dict, paths: dict) -> None:
    """The report on stderr as two tables (measurements per format x runtime; target verdicts per
    format), full width even when stderr is not a terminal."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from ..converters.report_render import table

    header, rows = table(data, reason_chars=0)  # verdicts only: the reasons are in report.md
    con = Console(stderr=True)
    if not con.is_terminal:  # a pipe or a log: never cut the tables to 80 columns
        con = Console(stderr=True, width=1000)
    n_t = len(data["targets"])
    first_t = len(header) - 1 - n_t
    measure = [i for i in range(len(header)) if not first_t <= i < first_t + n_t]
    t = Table(title="every format x runtime, measured on this host", box=box.SIMPLE_HEAD, pad_edge=False)
    for i in measure:
        t.add_column(header[i], justify="left" if i < 2 or i == len(header) - 1 else "right", no_wrap=True)
    for cells in rows:
        t.add_row(*[f"[bold red]{cells[i]}[/]" if header[i] in ("parity", "status") and cells[i] not in
                    ("pass", "ok", "-") else cells[i] for i in measure])
    con.print(t)
    styles = {"ok": "green", "no": "red", "error": "dim"}
    t = Table(title="targets: verdict / estimated device latency (a model, not a measurement)",
              box=box.SIMPLE_HEAD, pad_edge=False)
    t.add_column("format", no_wrap=True)
    for name in data["targets"]:
        t.add_column(name, no_wrap=True)
    seen = set()
    for cells in rows:
        if cells[0] in seen:
            continue
        seen.add(cells[0])
        t.add_row(cells[0], *[f"[{styles.get(c.split(' ')[0], 'white')}]{c}[/]"
                              for c in cells[first_t:first_t + n_t]])
    con.print(t)
    src = data["source"]
    if src.get("accuracy") is not None:
        con.print(f"source accuracy: {src['accuracy']:.4f}")
    for n in data.get("notes", []) + data.get("skipped", []):
        con.print(f"[yellow]note:[/] {n}")
    if any(c.get("verdict") != "ok" for r in data["rows"] for c in r["targets"].values()):
        con.print("why a target says no: see report.md / report.html")
    con.print(f"report: {paths['md']}  {paths['html']}  {paths['json']}   log: {paths['log']}")
    con.print("[bold green]ok[/]" if data["ok"] else "[bold red]FAILED: no format passed parity and ran here[/]")


@handle_errors
def report_cmd(
    src: str = typer.Argument(..., help="Source model: .keras/.h5, SavedModel folder or .onnx."),
    out: Path = typer.Option(..., "-o", "--out", help="Report folder (new, empty, or an earlier report's)."),
    calibration: Optional[str] = typer.Option(None, "--calibration", help=".npy/.npz or folder of images/audio"),
    validation: Optional[str] = typer.Option(None, "--validation", help="held-out data (.npy/.npz/folder)"),
    labels: Optional[str] = typer.Option(None, "--labels",
                                         help="class indices of --validation: .npy or text/CSV (last field)"),
    evaluate: Optional[str] = typer.Option(
        None, "--evaluate", help="shell command run per format with {model} replaced by the model's path; its last "
                                 "stdout line is a JSON object with 'accuracy'"),
    targets: str = typer.Option("all", "--targets", help="all | comma-separated target names (rpi4,mcu,...)"),
    threads: Optional[str] = typer.Option(None, "--threads", help="thread counts to time, e.g. 1,4 (default: 1 and all)"),
    runs: int = typer.Option(50, "--runs", help="Timed calls per benchmark."),
    warmup: int = typer.Option(5, "--warmup", help="Untimed calls before timing."),
    preprocessing: Optional[str] = typer.Option(None, "--preprocessing", help="for folders: e.g. image_0_1, kws_mfcc"),
    seed: int = typer.Option(0, "--seed", help="Seed of converters, data split and benchmark inputs."),
    tolerance: List[str] = typer.Option([], "--tolerance", help="parity override, e.g. cosine_min=0.999 (repeatable)"),
    json_: bool = json_option(),
):
    """Convert SRC to every format, check each against every target, benchmark, and write the report."""
    from ..converters.report import build_report, shell_evaluator

    if labels is not None and validation is None and calibration is None:
        from ..errors import InputSpecError

        raise InputSpecError("--labels needs --validation (the labels are the classes of its samples)")
    from .convert import _parse_tolerance

    ev = shell_evaluator(evaluate) if evaluate is not None else None
    tol = _parse_tolerance(tolerance)
    with terminal_progress(enabled=not json_) as progress:
        res = build_report(src, out, calibration=calibration, validation=validation, labels=class_indices(labels),
                           evaluate=ev, targets=targets, threads=threads, progress=progress,
                           preprocessing=preprocessing, runs=runs, warmup=warmup, seed=seed,
                           tolerance=tol or None, command=["edgeship", *sys.argv[1:]])
    data = res.to_dict()
    paths = {k: (str(v) if isinstance(v, Path) else v) for k, v in res.paths.items()}
    paths["plots"] = {k: str(v) for k, v in res.paths["plots"].items()}
    if json_:
        emit_json({**data, "paths": paths})
    else:
        print_table(data, paths)
    if not data["ok"]:
        raise typer.Exit(EXIT_FAILED_CHECK)


def register(app: typer.Typer) -> None:
    app.command("report")(report_cmd)
