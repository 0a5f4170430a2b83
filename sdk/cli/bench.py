"""``edgeship bench``: time a model on this machine (table on stderr, or one JSON object).

Importing this module stays light: the runtime is imported when the command runs.
"""
from __future__ import annotations

from typing import Optional

import typer

from .console import console, emit_json, handle_errors, json_option, rich_progress


@handle_errors
def bench(
    model: str = typer.Argument(..., help="Path to a .tflite or .onnx model."),
    runs: int = typer.Option(100, "--runs", help="Timed predict calls (>= 1)."),
    warmup: int = typer.Option(10, "--warmup", help="Untimed calls before timing (>= 0)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Interpreter threads (default: runtime's)."),
    backend: str = typer.Option("auto", "--backend", help="auto | litert | tflite-runtime | onnxruntime."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random inputs."),
    json_: bool = json_option("Print one JSON object on stdout instead of a table."),
) -> None:
    """Load MODEL, then report init time, first inference, latency percentiles, throughput, peak RSS."""
    from ..benchmark import benchmark

    with rich_progress(enabled=not json_):
        result = benchmark(model, runs=runs, warmup=warmup, threads=threads, backend=backend, seed=seed)
    if json_:
        emit_json({"ok": True, **result.to_dict()})
    else:
        console().print(result_table(result))


def result_table(r):
    """A rich Table of one :class:`~edgeship.benchmark.BenchResult`."""
    from rich.table import Table

    t = Table(title=f"edgeship bench  {r.model}", show_header=True, header_style="bold")
    t.add_column("metric")
    t.add_column("value", justify="right")
    lat = r.latency_ms
    rows = [
        ("backend / format", f"{r.backend} / {r.format}"),
        ("threads", "runtime default" if r.threads is None else str(r.threads)),
        ("inputs", ", ".join(f"{i['name']} {i['shape']} {i['dtype']}"
                             + (f" (fed {i['fed_dtype']}, quantized by predict)"
                                if i.get("fed_dtype", i["dtype"]) != i["dtype"] else "")
                             + f" ({i['source']})" for i in r.inputs)),
        ("init (load)", "n/a (model given)" if r.init_ms is None else f"{r.init_ms:.2f} ms"),
        ("first inference", f"{r.first_inference_ms:.3f} ms"),
        (f"p50 / p90 / p99  ({r.runs} runs)", f"{lat.p50:.3f} / {lat.p90:.3f} / {lat.p99:.3f} ms"),
        ("mean ± std", f"{lat.mean:.3f} ± {lat.std:.3f} ms"),
        ("min / max", f"{lat.min:.3f} / {lat.max:.3f} ms"),
        ("throughput", f"{r.throughput_ips:,.1f} inferences/s (batch {r.batch})"),
        ("peak RSS delta", ("unknown" if r.peak_rss_delta_bytes is None
                            else f"{r.peak_rss_delta_bytes / 2**20:.1f} MiB") + f"  [{r.rss_method}]"),
        ("host", f"{r.host.get('cpu') or r.host.get('machine')}, {r.host.get('usable_cpus')} usable CPUs"),
    ]
    for k, v in rows:
        t.add_row(k, v)
    return t


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
