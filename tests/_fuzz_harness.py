"""Fuzzing at scale: many mutated files per child process, each case under a time limit, every
child under a 2 GB address-space limit; a child that dies is restarted after the case that
killed it, whose input is saved (shared by tests/test_fuzz_scale.py and bench/fuzz.py).

Formats: ``tflite``, ``onnx`` (model files: targets.check + write_bundle + load + predict +
inspect_model), ``bundle``
(folders), ``zip`` (bundle zips), ``manifest`` (bundle folders with a damaged manifest):
read_bundle + load + predict. Files are loaded with ``verify="structure"`` so that the
pure-Python checks face every mutant in-process; a mutant that still crashes a child is then
loaded the product's default way (``verify="full"``, the isolation probe) in a fresh child, and
counts as a crash only if that crashes or escapes untyped too.

Child protocol (stdout): ``S i`` before case i, ``R i outcome`` after, ``DONE`` at the end.
Run a child by hand: ``python -m tests._fuzz_harness child JOB_JSON``.
"""
from __future__ import annotations

import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

FORMATS = ("tflite", "onnx", "bundle", "zip", "manifest")
ADDRESS_LIMIT = 2 << 30
CASE_SECONDS = 20


def _rng(seed: int, fmt: str, i: int) -> random.Random:
    return random.Random(f"{seed}:{fmt}:{i}")


class CaseMaker:
    """Deterministic mutant number ``i`` of a format (same bytes in any process)."""

    def __init__(self, job: dict):
        from tests import _fuzz_tflite as ft

        self.job = job
        self.fmt = job["fmt"]
        self.work = Path(job["work"])
        self.sources = [Path(s) for s in job["sources"]]
        self.data = [s.read_bytes() for s in self.sources]
        self.template = Path(job["template"]) if job.get("template") else None
        self.tfl_sites = [ft.sites(d) if self.fmt != "onnx" else None for d in self.data]
        if self.template is not None:
            m = json.loads((self.template / "manifest.json").read_text())
            model = self.template / next(iter(m["files"].values()))["path"]
            self.bundle_sites = ft.sites(model.read_bytes())

    def make(self, i: int) -> tuple:
        """Write case ``i`` under the work folder; returns (path, what was done)."""
        rng = _rng(self.job["seed"], self.fmt, i)
        case = self.work / f"case{i}"
        if self.fmt in ("tflite", "onnx"):
            k = i % len(self.data)
            if self.fmt == "tflite":
                from tests import _fuzz_tflite as ft

                data, what = ft.mutate(self.data[k], self.tfl_sites[k], rng)
            else:
                from tests import _fuzz_onnx as fo
                from tests import _fuzz_tflite as ft

                if rng.random() < 0.25:
                    data, what = ft.byte_flip(self.data[k], rng), "byte_flip"
                else:
                    data, what = fo.mutate(self.data[k], rng)
            p = case.with_suffix("." + self.fmt)
            p.write_bytes(data)
            return p, what
        from tests import _fuzz_bundle as fb

        if self.fmt == "zip":
            p = case.with_suffix(".zip")
            return p, fb.make_zip_case(self.template, p, self.work, rng, self.bundle_sites)
        return case, fb.make_bundle_case(self.template, case, self.fmt, rng, self.bundle_sites)


def _exercise(p: Path, fmt: str, verify: str) -> str:
    import numpy as np

    import edgeship
    from edgeship.bundle import read_bundle
    from edgeship.inspect import inspect_model

    if fmt in ("bundle", "zip", "manifest"):
        read_bundle(p)
    else:  # `edgeship check` and `edgeship bundle` read the file on their own: typed errors only
        from edgeship.bundle import write_bundle
        from edgeship.targets import check

        for step in (lambda: check(p, "rpi4"), lambda: write_bundle(p.with_suffix(".bundle"), {"m": p})):
            try:
                step()
            except edgeship.EdgeshipError:
                pass
        _remove(p.with_suffix(".bundle"))
    m = edgeship.load(p, verify=verify)
    if fmt in ("tflite", "onnx"):
        inspect_model(p)
    feeds = []
    for s in m.inputs:
        shape = tuple(d if d > 0 else 1 for d in s.shape)
        if int(np.prod(shape, dtype=np.float64)) > 1 << 22:
            return "loaded_big_input"  # the harness, not the model, would need the memory
        feeds.append(np.random.default_rng(0).uniform(0, 1, shape).astype(np.float32))
    m.predict(feeds)
    return "ran"


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        try:
            p.unlink()
        except OSError:
            pass


def child(job: dict) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_LIMIT, ADDRESS_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    import edgeship

    maker = CaseMaker(job)
    verify = job.get("verify", "structure")
    out = sys.stdout
    for i in range(job["start"], job["stop"]):
        try:
            p, what = maker.make(i)
        except Exception as exc:  # noqa: BLE001 - a harness bug, reported and skipped
            out.write(f"S {i} harness\nR {i} H:{type(exc).__name__}:{exc}\n".replace("\n\n", "\n"))
            out.flush()
            continue
        out.write(f"S {i} {what}\n")
        out.flush()
        signal.alarm(job.get("case_seconds", CASE_SECONDS))  # a hang ends the child with SIGALRM
        try:
            outcome = _exercise(p, job["fmt"], verify)
        except edgeship.EdgeshipError as exc:
            outcome = "E:" + type(exc).__name__
        except RecursionError as exc:
            outcome = f"X:RecursionError:{exc}"[:300]
        except BaseException as exc:  # noqa: BLE001 - anything else is what we hunt
            outcome = f"X:{type(exc).__name__}:{exc}".replace("\n", " ")[:300]
        signal.alarm(0)
        out.write(f"R {i} {outcome}\n")
        out.flush()
        _remove(p)
        if i % 200 == 0:  # unpacked zips accumulate in the cache
            shutil.rmtree(Path(os.environ["EDGESHIP_CACHE"]) / "bundles", ignore_errors=True)
    out.write("DONE\n")
    out.flush()


def _spawn(job: dict, repo: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(repo), TF_CPP_MIN_LOG_LEVEL="3", PYTHONFAULTHANDLER="0",
               OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "tests._fuzz_harness", "child", json.dumps(job)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=repo)


def _signame(rc: int) -> str:
    if rc < 0:
        try:
            return signal.Signals(-rc).name
        except ValueError:
            return f"signal {-rc}"
    return f"exit {rc}"


def run(fmt: str, n: int, *, seed: int, sources: List[str], template: Optional[str], work: Path, repo: Path,
        workers: int = 2, per_child: int = 100000, crash_dir: Optional[Path] = None,
        deadline_s: float = 3600) -> Dict:
    """Run ``n`` mutants of ``fmt`` over ``workers`` child processes; returns a tally."""
    work.mkdir(parents=True, exist_ok=True)
    crash_dir = crash_dir or work / "crashes"
    tally = {"format": fmt, "n": n, "done": 0, "ran": 0, "errors": {}, "untyped": [], "crashes": [],
             "contained_by_probe": [], "hangs": [], "restarts": 0, "kinds": {}}
    bounds = [(n * w // workers, n * (w + 1) // workers) for w in range(workers)]
    pending = [(lo, hi) for lo, hi in bounds if hi > lo]
    t0 = time.monotonic()

    def job_for(lo, hi, wdir):
        return {"fmt": fmt, "seed": seed, "start": lo, "stop": min(hi, lo + per_child), "sources": sources,
                "template": template, "work": str(wdir)}

    import queue
    import threading

    lines: "queue.Queue" = queue.Queue()

    def start(lo, hi, wdir):
        os.environ["EDGESHIP_CACHE"] = str(wdir / "cache")
        r = [_spawn(job_for(lo, hi, wdir), repo), lo, hi, wdir, None]

        def pump(r=r):
            for line in r[0].stdout:
                lines.put((r, line))
            lines.put((r, ""))

        threading.Thread(target=pump, daemon=True).start()
        return r

    running = []
    for k, (lo, hi) in enumerate(pending):
        wdir = work / f"w{k}"
        wdir.mkdir(exist_ok=True)
        running.append(start(lo, hi, wdir))
    while running:
        if time.monotonic() - t0 > deadline_s:
            for r in running:
                r[0].kill()
            tally["stopped_at_deadline"] = True
            break
        try:
            r, line = lines.get(timeout=5)
        except queue.Empty:
            continue
        if line.startswith("S "):
            _, i, what = line.rstrip("\n").split(" ", 2)
            r[4] = (int(i), what)
            kind = what.split(":")[0].split("+")[0]
            tally["kinds"][kind] = tally["kinds"].get(kind, 0) + 1
            continue
        if line.startswith("R "):
            _, i, outcome = line.rstrip("\n").split(" ", 2)
            r[1], r[4] = int(i) + 1, None
            tally["done"] += 1
            if outcome in ("ran", "loaded_big_input"):
                tally["ran"] += 1
            elif outcome.startswith("E:"):
                tally["errors"][outcome[2:]] = tally["errors"].get(outcome[2:], 0) + 1
            elif outcome.startswith("H:"):
                tally.setdefault("harness_errors", []).append(f"#{i}: {outcome[2:]}"[:300])
            else:
                tally["untyped"].append(f"{fmt} #{i}: {outcome}")
                _save(fmt, seed, int(i), sources, template, crash_dir, repo)
            continue
        if line.startswith("DONE") or line == "":
            if line.startswith("DONE"):
                continue  # the EOF that follows ends this child
            r[0].wait()
            running.remove(r)
            if r[4] is not None:  # died inside a case
                i, what = r[4]
                tally["done"] += 1
                rc = r[0].returncode
                saved = _save(fmt, seed, i, sources, template, crash_dir, repo)
                verdict = _recheck(fmt, seed, i, sources, template, work / "recheck", repo)
                rec = f"{fmt} #{i} ({what}): {_signame(rc)}; with verify='full': {verdict}; input {saved}"
                if rc == -signal.SIGALRM:
                    tally["hangs"].append(rec)
                elif verdict.startswith("E:"):
                    tally["contained_by_probe"].append(rec)
                else:
                    tally["crashes"].append(rec)
                r[1] = i + 1
                tally["restarts"] += 1
            elif r[0].returncode != 0:  # died outside any case: a harness failure, do not loop
                tally.setdefault("harness_errors", []).append(f"child died outside a case ({_signame(r[0].returncode)})")
                if len(tally["harness_errors"]) > 5:
                    continue
            if r[1] < r[2]:  # restart after a crash, or continue with the next slice
                running.append(start(r[1], r[2], r[3]))
    tally["seconds"] = round(time.monotonic() - t0, 1)
    return tally


def _save(fmt, seed, i, sources, template, crash_dir: Path, repo: Path) -> str:
    crash_dir.mkdir(parents=True, exist_ok=True)
    wdir = crash_dir / f"{fmt}-{seed}-{i}"
    shutil.rmtree(wdir, ignore_errors=True)
    wdir.mkdir()
    job = {"fmt": fmt, "seed": seed, "sources": sources, "template": template, "work": str(wdir)}
    try:
        p, _ = CaseMaker(job).make(i)
        return str(p)
    except Exception as exc:  # noqa: BLE001
        return f"(could not regenerate: {exc})"


def _recheck(fmt, seed, i, sources, template, wdir: Path, repo: Path) -> str:
    """Case ``i`` through the product's default path (verify='full') in a fresh child."""
    shutil.rmtree(wdir, ignore_errors=True)
    wdir.mkdir(parents=True)
    job = {"fmt": fmt, "seed": seed, "start": i, "stop": i + 1, "sources": sources, "template": template,
           "work": str(wdir), "verify": "full", "case_seconds": 300}
    os.environ["EDGESHIP_CACHE"] = str(wdir / "cache")
    proc = _spawn(job, repo)
    out, _ = proc.communicate(timeout=600)
    for line in out.splitlines():
        if line.startswith("R "):
            return line.split(" ", 2)[2]
    return f"crashed again ({_signame(proc.returncode)})"


def prepare(work: Path, repo: Path, shared: Optional[Path] = None) -> Dict[str, dict]:
    """Source files and the bundle template, built once in the parent."""
    work.mkdir(parents=True, exist_ok=True)
    weights = repo / "models" / "weights"
    tfl = [str(weights / "shapes_cnn_int8.tflite"), str(weights / "shapes_cnn_fp32.tflite"),
           str(weights / "kws_dscnn_int8.tflite")]  # + RESHAPE, SHAPE, STRIDED_SLICE, PACK, AVERAGE_POOL
    if shared is not None and (shared / "models/mlperf_tiny_kws/kws_ref_model.tflite").is_file():
        tfl.append(str(shared / "models/mlperf_tiny_kws/kws_ref_model.tflite"))
    from tests._onnx_models import dense_relu, two_inputs

    onnx_src = [str(dense_relu(work / "dense.onnx", batch="N", n_in=16, n_out=8)[0]), str(two_inputs(work / "add2.onnx"))]
    from edgeship.bundle import write_bundle

    template = work / "template"
    if not template.exists():
        write_bundle(template, {"tflite-int8": weights / "shapes_cnn_int8.tflite"}, labels=["a", "b", "c"],
                     extra_files={"README.md": b"# readme\n"})
    out = {"tflite": {"sources": tfl, "template": None}, "onnx": {"sources": onnx_src, "template": None}}
    for f in ("bundle", "zip", "manifest"):
        out[f] = {"sources": [], "template": str(template)}
    return out


if __name__ == "__main__":
    if sys.argv[1] == "child":
        child(json.loads(sys.argv[2]))
