"""``edgeship report``: one model in every format, checked, benchmarked and judged per target.

:func:`build_report` converts a source model to every applicable format (TFLite fp32 / fp16 /
dynamic / int8 / int16x8, ONNX fp32 / dynamic / int8), each checked against the source by
:func:`edgeship.converters.convert`; checks every file against every requested target
(:func:`edgeship.targets.check`: verdict, first blocking reason, device latency estimate where
the target has one); benchmarks every file with every installed runtime that runs it, at one
thread and at all usable threads (:func:`edgeship.benchmark.benchmark`); and measures the task
accuracy of every format and of the source (top-1 against ``labels``, or a user ``evaluate``).
It writes into ``out_dir``::

    report.md      one row per format x runtime (the table people read)
    report.json    the same rows + versions, sha256 of source/data/files, command line, seeds
    report.html    one self-contained page (inline CSS, plots as base64 PNG, no JS, no URLs)
    plots/         accuracy_latency_size.png, targets_grid.png
    models/        the converted files (+ edgeship-convert.json)
    report.log     converter / TensorFlow chatter (fds 1 and 2 point here while it runs)

A format whose conversion fails or whose parity check fails is a row that says so, not a crash.
``ok`` (and the CLI's exit status 0) means: at least one format passed its parity check and ran
on at least one runtime here; otherwise ``ok`` is False (exit 1). Bad input (no such source,
unknown target, bad data) raises an :class:`~edgeship.errors.EdgeshipError` (exit 2).

Reproducible: the converters are seeded (``seed``), so two runs give byte-identical files and
identical parity / accuracy figures; only timings, memory and the ``run`` section differ.
Paths in the report are relative to ``out_dir``.

Example:
    >>> from edgeship.converters.report import build_report            # doctest: +SKIP
    >>> res = build_report("kws.keras", "out/", calibration=x[:200], validation=x[200:],
    ...                    labels=y[200:], targets="rpi4,mcu", runs=20)  # doctest: +SKIP
    >>> res.rows[0]["format"], res.rows[0]["runtime"], res.paths["html"]  # doctest: +SKIP
    ('tflite-fp32', 'litert', PosixPath('out/report.html'))
"""
from __future__ import annotations

import math
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from edgeship.errors import ConversionError, EdgeshipError, InputSpecError, ParityError, TargetError

GENERATOR = "edgeship report"
DEFAULT_RUNS = 50
DEFAULT_WARMUP = 5
EVALUATE_TIMEOUT_S = 900
# Targets that are not devices: "null" is the test target (accepts everything).
NOT_DEVICES = ("null",)
OUR_FILES = ("report.md", "report.json", "report.html", "report.log", "plots", "models")


@dataclass
class ReportResult:
    """What :func:`build_report` produced: ``rows`` (one dict per format x runtime, as in
    report.json), ``paths`` (``md``, ``json``, ``html``, ``log``, ``plots``: {name: Path}) and
    :meth:`to_dict` (== the content of report.json)."""

    rows: List[dict]
    paths: Dict[str, Any]
    data: dict = field(repr=False)

    @property
    def ok(self) -> bool:
        return bool(self.data["ok"])

    def to_dict(self) -> dict:
        return self.data


# --------------------------------------------------------------------------- arguments


def parse_targets(targets: Union[str, Sequence[str], None]) -> List[str]:
    """``"all"`` (every registered device target), ``"rpi4,mcu"`` or a list of names.

    Example:
        >>> parse_targets("rpi4, mcu")
        ['rpi4', 'mcu']
        >>> "null" in parse_targets("all"), "rpi4" in parse_targets("all")
        (False, True)
    """
    from edgeship import targets as T

    if targets is None or (isinstance(targets, str) and targets.strip().lower() in ("", "all")):
        return [t for t in T.list_targets() if t not in NOT_DEVICES]
    names = [t.strip() for t in (targets.split(",") if isinstance(targets, str) else targets) if str(t).strip()]
    if not names:
        raise TargetError("--targets is empty; give 'all' or names like rpi4,mcu")
    for n in names:
        T.get_target(n)  # TargetError listing the known names
    return list(dict.fromkeys(names))


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def parse_threads(threads: Union[None, int, str, Sequence[int]]) -> List[int]:
    """Thread counts to benchmark: None -> 1 and every usable CPU; an int, ``"1,4"`` or a list.

    Example:
        >>> parse_threads("1,4"), parse_threads(2)
        ([1, 4], [2])
    """
    if threads is None:
        return sorted({1, usable_cpus()})
    if isinstance(threads, str):
        items = [t for t in threads.split(",") if t.strip()]
    elif isinstance(threads, (int, np.integer)) and not isinstance(threads, bool):
        items = [threads]
    else:
        items = list(threads)
    out = []
    for t in items:
        try:
            v = int(str(t).strip())
        except ValueError:
            v = 0
        if v < 1 or isinstance(t, bool):
            raise InputSpecError(f"--threads takes integers >= 1 like 1,4; got {threads!r}")
        out.append(v)
    if not out:
        raise InputSpecError(f"--threads takes integers >= 1 like 1,4; got {threads!r}")
    return list(dict.fromkeys(out))


def shell_evaluator(command: str, timeout: float = EVALUATE_TIMEOUT_S) -> Callable[[Any], dict]:
    """An ``evaluate`` callable from a shell command (``edgeship report --evaluate CMD``).

    ``{model}`` in ``command`` is replaced by the (shell-quoted) path of the model under test;
    the command runs through ``/bin/sh`` from the current directory and must print a JSON object
    with a numeric ``accuracy`` as the last non-empty line of stdout (other keys are kept, e.g.
    ``{"accuracy": 0.93, "f1": 0.91}``); a non-zero exit status or any other output is an error
    recorded on that row.

    Example:
        >>> ev = shell_evaluator('echo \\'{"accuracy": 0.5}\\' # {model}')
        >>> ev("m.tflite")
        {'accuracy': 0.5}
    """
    if "{model}" not in command:
        raise InputSpecError(f"--evaluate must contain {{model}} where the model's path goes, e.g. "
                             f"'python eval.py --model {{model}}'; got {command!r}")

    def run(model) -> dict:
        import json

        cmd = command.replace("{model}", shlex.quote(str(model)))
        try:
            proc = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise EdgeshipError(f"--evaluate command timed out after {timeout:.0f} s: {cmd}") from None
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
            raise EdgeshipError(f"--evaluate command exited {proc.returncode}: {tail[0][:200]}")
        lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
        try:
            obj = json.loads(lines[-1]) if lines else None
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            raise EdgeshipError(f"--evaluate command must print a JSON object like {{\"accuracy\": 0.93}} as its "
                                f"last line; got {(lines[-1] if lines else '(nothing)')[:200]!r}")
        return obj

    return run


def _evaluate(evaluate: Optional[Callable], model) -> Optional[dict]:
    """``evaluate(model)`` checked: a dict with a finite numeric ``accuracy``, or {"error": ...}."""
    if evaluate is None:
        return None
    try:
        res = evaluate(model)
    except Exception as exc:  # a user's evaluator failing on one format is that row's result
        return {"error": f"{type(exc).__name__}: {exc}"}
    if not isinstance(res, dict) or not isinstance(res.get("accuracy"), (int, float, np.number)) \
            or not math.isfinite(float(res["accuracy"])):
        return {"error": f"evaluate must return a dict with a finite numeric 'accuracy'; got {res!r}"[:300]}
    return {k: (float(v) if isinstance(v, (np.number,)) else v) for k, v in res.items()}


# --------------------------------------------------------------------------- output folder


def _prepare_out(out: Path) -> None:
    """Create ``out``; refuse a non-empty folder that an earlier ``edgeship report`` did not write,
    and remove (only) the model files an earlier report in it listed."""
    import json

    out.mkdir(parents=True, exist_ok=True)
    entries = [p.name for p in out.iterdir()]
    if not entries:
        return
    prev = out / "report.json"
    try:
        old = json.loads(prev.read_text()) if prev.is_file() else None
    except (OSError, ValueError):
        old = None
    if not isinstance(old, dict) or old.get("generator") != GENERATOR:
        raise EdgeshipError(f"output folder '{out}' is not empty and holds no earlier edgeship report "
                            f"({', '.join(sorted(entries)[:5])}...); give a new or empty folder")
    strangers = sorted(set(entries) - set(OUR_FILES))
    if strangers:
        raise EdgeshipError(f"output folder '{out}' holds files edgeship report did not write "
                            f"({', '.join(strangers[:5])}); move them or give another folder")
    for rel in old.get("files", []):
        p = (out / rel).resolve()
        if out.resolve() in p.parents and p.is_file():
            p.unlink()


# --------------------------------------------------------------------------- steps


def _rel(path: Union[str, Path], root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def _labels_sha(labels) -> Optional[str]:
    from edgeship._io import sha256_bytes

    if labels is None:
        return None
    a = np.ascontiguousarray(np.asarray(labels).reshape(-1).astype(np.int64))
    return sha256_bytes(a.tobytes())


def _target_cell(model_path: str, target: str) -> dict:
    """Verdict, first blocking reason and latency estimate of one file on one target."""
    from edgeship import targets as T

    try:
        rep = T.check(model_path, target)
    except EdgeshipError as exc:
        return {"verdict": "error", "reason": f"{type(exc).__name__}: {exc}", "estimate_ms": None,
                "estimate": None}
    blocking = [p for p in rep.problems if p.blocking]
    warn = [p for p in rep.problems if not p.blocking]
    est_ms, est_text = _estimate(rep.estimate)
    reason = blocking[0].message if blocking else (warn[0].message if warn else "")
    cell = {"verdict": "ok" if rep.compatible else "no", "reason": reason, "estimate_ms": est_ms,
            "estimate": est_text}
    if isinstance(rep.estimate, dict) and rep.estimate.get("lower_bound"):
        cell["estimate_lower_bound"] = True   # e.g. an int8-calibrated MCU figure for a float model
    counts = rep.placement_counts()
    if "tpu" in counts:
        cell["on_accelerator"] = f"{counts['tpu']}/{sum(counts.values())} ops on the TPU"
    return cell


def _estimate(e) -> tuple:
    """(milliseconds, short text) from a target's estimate: rpi has one figure, mcu one per board
    (the first board is shown; every board is in the target's own report)."""
    if not isinstance(e, dict):
        return None, None
    v = e.get("latency_ms")
    if isinstance(v, (int, float)):
        return float(v), f"{v:.3g} ms ({e.get('low_ms', 0):.3g}-{e.get('high_ms', 0):.3g})"
    if isinstance(v, list) and v and isinstance(v[0], dict) and isinstance(v[0].get("ms"), (int, float)):
        b = v[0]
        at_least = "≥" if e.get("lower_bound") else ""   # int8-calibrated figure for a float model
        return float(b["ms"]), f"{at_least}{b['ms']:.3g} ms on {b['board']}"
    return None, None


def _bench_one(path: str, backend: str, threads: List[int], runs: int, warmup: int, seed: int) -> List[dict]:
    """Seeded random inputs in each input's real range (edgeship.benchmark.random_inputs)."""
    from edgeship.benchmark import benchmark

    out = []
    for t in threads:
        try:
            r = benchmark(path, backend=backend, threads=t, runs=runs, warmup=warmup, seed=seed,
                          progress=lambda *a: None)
        except Exception as exc:  # one runtime failing on one file is that cell's result
            out.append({"threads": t, "error": f"{type(exc).__name__}: {exc}"[:400]})
            continue
        lat = r.latency_ms
        out.append({"threads": t, "p50_ms": lat.p50, "p99_ms": lat.p99, "mean_ms": lat.mean,
                    "init_ms": r.init_ms, "peak_rss_bytes": r.peak_rss_delta_bytes, "rss_method": r.rss_method})
    return out


def _runtime_versions(backends: Sequence[str]) -> dict:
    from importlib import metadata

    from edgeship.benchmark import _BACKEND_DIST

    vers = {}
    for b in backends:
        dist = _BACKEND_DIST.get(b, b)
        try:
            vers[b] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            vers[b] = None
    return vers


def _library_versions() -> dict:
    """Versions of every library that shaped the report (edgeship._io.versions + plotting/CLI)."""
    from importlib import metadata

    from edgeship._io import versions

    out = versions()
    for dist in ("matplotlib", "rich", "typer", "onnxruntime", "ai-edge-litert", "tflite-runtime"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


# --------------------------------------------------------------------------- the report


def build_report(src: Any, out_dir: Union[str, os.PathLike], *, calibration: Any = None, validation: Any = None,
                 labels: Any = None, evaluate: Optional[Callable[[Any], dict]] = None,
                 targets: Union[str, Sequence[str], None] = "all", threads: Union[None, int, str, Sequence[int]] = None,
                 progress: Optional[Callable[[str, int, Optional[int]], None]] = None, preprocessing: Any = None,
                 runs: Optional[int] = None, warmup: Optional[int] = None, seed: int = 0,
                 static_batch: Optional[bool] = None, command: Optional[Sequence[str]] = None,
                 log: bool = True, plots: bool = True, tolerance: Optional[dict] = None) -> ReportResult:
    """Convert ``src`` to every format, check, benchmark and judge it; write the report files.

    Args:
        src: what :func:`edgeship.converters.convert` accepts (.keras/.h5, SavedModel, .onnx, a
            Keras model...).
        out_dir: folder for the report (created; a non-empty folder must hold an earlier report).
        calibration / validation / preprocessing: as for :func:`~edgeship.converters.convert`
            (arrays, a .npy/.npz file, a folder, a reader). Without validation, parity uses
            samples held out of the calibration data.
        labels: class indices of the validation samples -> top-1 accuracy of the source and of
            every format (on the converter's parity run).
        evaluate: optional ``evaluate(model) -> {"accuracy": float, ...}``, called with ``src`` as
            given and with the path (str) of every converted file; its ``accuracy`` becomes the
            row's accuracy (top-1 from ``labels`` is still recorded as ``top1``). See
            :func:`shell_evaluator` for the CLI's ``--evaluate CMD``.
        targets: "all" (every device target), "rpi4,mcu" or a list.
        threads: thread counts to benchmark; None = 1 and all usable CPUs.
        progress: an :data:`edgeship.progress.ProgressCallback`; it also receives the progress of
            the converter and parity runs. While the report runs, fds 1 and 2 point at
            ``report.log`` (``log=True``): a callback that draws on the terminal must write to a
            stream opened before (``edgeship.cli.report`` keeps a dup of stderr).
        runs / warmup: timed / untimed calls per benchmark (default 50 / 5).
        seed: seed of the converters, data split and benchmark inputs.
        static_batch: fix a Keras source's batch to 1 (Edge TPU and MCU need static shapes);
            default: True for Keras sources with a dynamic batch, as those targets require it.
        command: the command line to record (default ``sys.argv``).
        log: send fd-level stdout/stderr to ``out_dir/report.log`` while running.
        plots: draw the PNG plots (needs matplotlib; skipped with a note when missing).
        tolerance: parity tolerance overrides, as for :func:`~edgeship.converters.convert`.

    Returns:
        :class:`ReportResult`.

    Raises:
        EdgeshipError: bad source, data, targets, threads or output folder (before any work
            where possible). Per-format conversion, parity, target and benchmark failures do not
            raise: they are rows.
    """
    from edgeship._io import atomic_write_json, sha256_file, stdout_to_stderr, to_jsonable
    from edgeship.progress import reporting

    t_start = time.time()
    out = Path(out_dir)
    target_names = parse_targets(targets)
    thread_list = parse_threads(threads)
    runs = DEFAULT_RUNS if runs is None else runs
    warmup = DEFAULT_WARMUP if warmup is None else warmup
    for name, v in (("runs", runs), ("warmup", warmup)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < (1 if name == "runs" else 0):
            raise InputSpecError(f"{name} must be an integer >= {1 if name == 'runs' else 0}; got {v!r}")
    if evaluate is not None and not callable(evaluate):
        raise InputSpecError(f"evaluate must be a callable model -> {{'accuracy': float}}; got {type(evaluate).__name__}")
    if isinstance(src, (str, os.PathLike)) and not Path(src).exists():
        raise ConversionError(f"source model '{src}' does not exist (expected .keras/.h5, a SavedModel folder "
                              f"or .onnx)")
    _prepare_out(out)
    (out / "plots").mkdir(exist_ok=True)
    log_path = out / "report.log"
    steps = ["convert", "check targets", "benchmark"] + (["evaluate"] if evaluate else []) + ["write"]

    def step(i: int) -> None:
        if progress is not None:
            progress(f"report: {steps[i]}", i, len(steps))

    with reporting(progress) if progress is not None else _nullcontext(), \
            (stdout_to_stderr(log_path) if log else _nullcontext()):
        step(0)
        conv = _convert(src, out, calibration, validation, labels, preprocessing, seed, static_batch, tolerance)
        formats = _format_records(conv, out)
        step(1)
        _check_targets(formats, target_names, progress)
        step(2)
        from edgeship.backends import available_backends

        backends_used = sorted({b for f in formats for b in available_backends(f["file_format"] or "")})
        _benchmark(formats, thread_list, runs, warmup, seed, progress)
        src_eval = None
        if evaluate is not None:
            step(3)
            src_eval = _evaluate(evaluate, src)
            for i, f in enumerate(formats):
                if f.get("path_abs") and Path(f["path_abs"]).is_file():
                    f["evaluation"] = _evaluate(evaluate, f["path_abs"])
                if progress is not None:
                    progress("evaluate formats", i + 1, len(formats))
        step(len(steps) - 1)
    for f in formats:  # every row carries its format's figures
        f["accuracy"] = _accuracy(f)
    rows = [_row(f, r) for f in formats for r in (f["runtimes"] or [None])]
    source = dict(conv["source"])
    if source.get("path") and Path(source["path"]).is_file():
        source["file_sha256"] = sha256_file(source["path"])
        source["bytes"] = Path(source["path"]).stat().st_size
    par0 = next((f["parity"] for f in formats if f.get("parity")), {}) or {}
    source["top1"] = par0.get("accuracy_source")
    source["evaluation"] = src_eval
    source["accuracy"] = (src_eval or {}).get("accuracy") if evaluate is not None else source["top1"]
    ok_formats = [f["format"] for f in formats if f["status"] == "ok"
                  and any(b.get("p50_ms") is not None for r in f["runtimes"] for b in r["bench"])]
    files = sorted({f["file"] for f in formats if f.get("file")} | {_rel(conv["report"], out)})
    data = {
        "generator": GENERATOR,
        "ok": bool(ok_formats),
        "ok_rule": "ok when at least one format passed its parity check and ran on a runtime here",
        "source": source,
        "calibration": conv.get("calibration"),
        "validation": conv.get("validation"),
        "labels": None if labels is None else {"count": int(np.asarray(labels).size), "sha256": _labels_sha(labels)},
        "accuracy_metric": ("evaluate" if evaluate is not None else "top1" if labels is not None else None),
        "targets": target_names,
        "threads": thread_list,
        "runs": runs,
        "warmup": warmup,
        "seed": seed,
        "tolerance": tolerance,
        "static_batch": conv["static_batch"],
        "formats": [{k: v for k, v in f.items() if k not in ("path_abs", "runtimes")} for f in formats],
        "rows": rows,
        "skipped": conv.get("skipped", []),
        "files": files,
        "versions": {**_library_versions(), "runtimes": _runtime_versions(backends_used)},
        "command": list(sys.argv if command is None else command),
        "run": {"started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_start)),
                "seconds": None, "host": _host()},
    }
    paths = {"md": out / "report.md", "json": out / "report.json", "html": out / "report.html",
             "log": log_path if log else None, "plots": {}}
    from edgeship.converters import report_render as R

    if plots:
        paths["plots"] = R.write_plots(data, out / "plots", data.setdefault("notes", []))
    data["plots"] = {k: _rel(p, out) for k, p in paths["plots"].items()}
    data["run"]["seconds"] = round(time.time() - t_start, 1)
    data = to_jsonable(data)
    atomic_write_json(paths["json"], data)
    from edgeship._io import atomic_write_text

    atomic_write_text(paths["md"], R.markdown(data))
    atomic_write_text(paths["html"], R.html(data, paths["plots"]))
    if progress is not None:
        progress(f"report: {steps[-1]}", len(steps), len(steps))
    return ReportResult(data["rows"], paths, data)


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _host() -> dict:
    from edgeship.benchmark import host_info

    return host_info()


def _convert(src, out: Path, calibration, validation, labels, preprocessing, seed, static_batch, tolerance) -> dict:
    """``convert(all_formats=True, keep_going=True)``: a parity failure or one exporter's failure
    stays in the result; an error about the source or the data propagates (a user error)."""
    from edgeship.converters import convert

    if static_batch is None:
        static_batch = _wants_static_batch(src)
    try:
        res = convert(src, all_formats=True, keep_going=True, calibration=calibration, validation=validation,
                      labels=labels, preprocessing=preprocessing, out=str(out / "models"), seed=seed,
                      static_batch=static_batch, tolerance=tolerance).to_dict()
    except ParityError as exc:
        if exc.report is None:
            raise
        res = exc.report
    res["static_batch"] = bool(static_batch)
    return res


def _wants_static_batch(src) -> bool:
    """A Keras source with a dynamic batch: fix it to 1 (what Edge TPU / MCU need; the host
    benchmark runs batch 1 anyway)."""
    from edgeship.converters.sources import load_source

    s = load_source(src)
    return s.kind == "keras" and any(d is None or d < 0 for spec in s.inputs for d in spec.shape[:1])


def _format_records(conv: dict, out: Path) -> List[dict]:
    """One record per exporter: written (ok or parity failed) or failed to convert."""
    from edgeship._io import sha256_file

    recs = []
    for o in conv.get("outputs", []):
        p = o.get("parity") or {}
        path = Path(o["path"])
        recs.append({
            "format": o["exporter"], "file_format": o["format"], "quantization": str(o["quantization"]),
            "file": _rel(path, out), "path_abs": str(path), "bytes": int(o["bytes"]),
            "sha256": sha256_file(path) if path.is_file() else None,
            "status": "ok" if p.get("passed") else "parity failed",
            "error": None if p.get("passed") else "; ".join(p.get("failures") or ["out of tolerance"]),
            "parity": {k: p.get(k) for k in ("passed", "cosine", "max_abs", "mean_abs", "top1_agreement",
                                              "accuracy_source", "accuracy_output", "n_samples", "failures")},
            "notes": list(o.get("notes") or []),
        })
    for f in conv.get("failed", []):
        recs.append({"format": f["exporter"], "file_format": f["format"], "quantization": f["quantization"],
                     "file": None, "path_abs": None, "bytes": None, "sha256": None, "status": "conversion failed",
                     "error": f["error"], "parity": None, "notes": []})
    return recs


def _check_targets(formats: List[dict], target_names: List[str], progress) -> None:
    n, done = len(formats) * len(target_names), 0
    for f in formats:
        f["targets"] = {}
        for t in target_names:
            if f["path_abs"] and Path(f["path_abs"]).is_file():
                f["targets"][t] = _target_cell(f["path_abs"], t)
            else:
                f["targets"][t] = {"verdict": "error", "reason": "no file (conversion failed)",
                                   "estimate_ms": None, "estimate": None}
            done += 1
            if progress is not None:
                progress("check targets", done, n)


def _benchmark(formats: List[dict], threads: List[int], runs: int, warmup: int, seed: int, progress) -> None:
    from edgeship.backends import available_backends

    jobs = [(f, b) for f in formats if f["path_abs"] and Path(f["path_abs"]).is_file()
            for b in available_backends(f["file_format"])]
    for f in formats:
        f["runtimes"] = []
    for i, (f, b) in enumerate(jobs):
        f["runtimes"].append({"runtime": b, "bench": _bench_one(f["path_abs"], b, threads, runs, warmup, seed)})
        if progress is not None:
            progress("benchmark", i + 1, len(jobs))


def _accuracy(f: dict) -> Optional[float]:
    ev = f.get("evaluation")
    if ev is not None:
        return ev.get("accuracy")
    return (f.get("parity") or {}).get("accuracy_output")


def _row(f: dict, runtime: Optional[dict]) -> dict:
    """One row of report.json / report.md: a format on one runtime (runtime None: nothing ran it)."""
    bench = runtime["bench"] if runtime else []
    peaks = [b["peak_rss_bytes"] for b in bench if b.get("peak_rss_bytes") is not None]
    errors = [f"{b['threads']} thread(s): {b['error']}" for b in bench if b.get("error")]
    status = f["status"]
    if status == "ok" and runtime is None:
        status, errors = "not run", ["no installed runtime runs this format"]
    elif status == "ok" and errors:
        status = "bench failed"
    par = f.get("parity") or {}
    return {
        "format": f["format"], "runtime": runtime["runtime"] if runtime else None, "file": f["file"],
        "file_format": f["file_format"], "quantization": f["quantization"], "bytes": f["bytes"],
        "sha256": f["sha256"], "status": status,
        "error": f["error"] or ("; ".join(errors) if errors else None),
        "accuracy": f["accuracy"], "top1": par.get("accuracy_output"),
        "evaluation": f.get("evaluation"),
        "parity_passed": par.get("passed"), "cosine": par.get("cosine"), "max_abs": par.get("max_abs"),
        "top1_agreement": par.get("top1_agreement"),
        "latency": [{k: b.get(k) for k in ("threads", "p50_ms", "p99_ms", "mean_ms", "init_ms", "error")}
                    for b in bench],
        "peak_rss_bytes": max(peaks) if peaks else None,
        "targets": f["targets"],
    }


__all__ = ["build_report", "ReportResult", "parse_targets", "parse_threads", "shell_evaluator", "GENERATOR"]
