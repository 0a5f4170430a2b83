"""Compatibility checks of a model file against a :class:`TargetProfile`.

A check reads the model once into :class:`edgeship.facts.ModelFacts` (format-neutral:
tensors, ops, quantization mode, memory) and applies the profile's data to it:
format, quantization mode, input/output dtypes, dynamic shapes, tensor rank,
op support and op version limits, memory. Every blocking problem names the op
or tensor it concerns and a concrete fix.

Target modules with extra rules (Edge TPU partitioning, Pi latency estimates,
MCU arenas) call :func:`generic_check` first and add to the report it returns.

Conventions for target profiles (``targets/<name>.py``):

* ``formats`` / ``io_dtypes`` are plain string sets, ``quantizations`` a set of
  :class:`edgeship.facts.QuantMode`: formats ``tflite|onnx|coreml``; quantization modes
  as detected by :func:`edgeship.facts.quantization_mode`;
  dtypes as numpy names (``float32``, ``int8``, ``uint8`` ...).
* ``supported_ops`` is ``None`` (every op the runtime has) or a set of TFLite
  builtin names (``CONV_2D``) / ONNX op types (``Conv``).
* ``op_limits[op]`` may hold ``max_version`` (int), ``min_version`` (int) and
  ``note`` (str, shown with the problem).
* ``memory_limit_bytes`` is compared with parameters + peak activations.
* A checker is ``fn(model_path, profile) -> CheckReport``, carried by the profile
  (``register_target(profile, checker)``); without one :func:`generic_check` is used.

Example:
    >>> from edgeship.targets.rules import Problem
    >>> Problem("dynamic_shape", "input", "input has a dynamic dimension", "make input shape static").blocking
    True
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from edgeship.facts import ModelFacts, OpFact, QuantMode, read_facts


# --------------------------------------------------------------------------- report

@dataclass
class Problem:
    """One finding: ``kind`` (format, quantization, dtype, dynamic_shape, rank, unsupported_op,
    op_version, op_constraint, memory, runtime, partition, ...), ``subject`` (op or tensor name),
    a ``message`` saying what was expected and found, and a concrete ``fix``."""

    kind: str
    subject: str
    message: str
    fix: str
    blocking: bool = True


@dataclass
class OpPlacement:
    """Where one op runs: placement is ``cpu``, ``device`` (the target's accelerator/runtime),
    ``tpu`` (Edge TPU), ``gpu``/``npu`` (mobile delegates) or ``unsupported``."""

    index: int
    op: str
    placement: str
    version: int = 1
    reason: str = ""


@dataclass
class CheckReport:
    """Result of ``edgeship check MODEL --target T``."""

    target: str
    model: str
    format: str
    quantization: str
    compatible: bool = True
    problems: List[Problem] = field(default_factory=list)
    ops: List[OpPlacement] = field(default_factory=list)
    cpu_fallback: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    estimate: Optional[dict] = None
    memory: Dict[str, Optional[int]] = field(default_factory=dict)
    details: Dict[str, object] = field(default_factory=dict)   # target-specific facts (compiler log, ...)

    def add(self, problem: Problem) -> None:
        """Record a problem; a blocking one makes the report incompatible."""
        self.problems.append(problem)
        if problem.blocking:
            self.compatible = False

    @property
    def blocking(self) -> List[Problem]:
        return [p for p in self.problems if p.blocking]

    def placement_counts(self) -> Dict[str, int]:
        counts: Dict[str, int] = {}
        for op in self.ops:
            counts[op.placement] = counts.get(op.placement, 0) + 1
        return counts

    def to_dict(self) -> dict:
        d = asdict(self)
        d["placement_counts"] = self.placement_counts()
        return d


# --------------------------------------------------------------------------- generic check

def _quant_fix(profile) -> str:
    for q in (QuantMode.INT8, QuantMode.INT16X8, QuantMode.FP16, QuantMode.DYNAMIC, QuantMode.FP32):
        if q in profile.quantizations:
            return f"re-convert with --quantize {q}"
    return "re-convert with one of: --quantize " + ", ".join(sorted(map(str, profile.quantizations)))


def _io_fix(profile) -> str:
    for dt in ("int8", "uint8", "float32"):
        if dt in profile.io_dtypes:
            return dt
    return sorted(profile.io_dtypes)[0]


def new_report(facts: ModelFacts, profile) -> CheckReport:
    return CheckReport(target=profile.name, model=facts.path, format=facts.format,
                       quantization=facts.quantization,
                       memory={"params_bytes": facts.params_bytes,
                               "peak_activation_bytes": facts.peak_activation_bytes,
                               "file_bytes": facts.file_bytes,
                               "limit_bytes": profile.memory_limit_bytes})


def generic_check(model_path, profile, *, facts: Optional[ModelFacts] = None,
                  placement: str = "device") -> CheckReport:
    """Apply a profile's declarative rules to a model.

    Args:
        model_path: a .tflite or .onnx file.
        profile: the :class:`~edgeship.targets.profile.TargetProfile` to check against.
        facts: already-read :class:`ModelFacts` (read from ``model_path`` when None).
        placement: label for ops the target runs (``cpu`` for CPU-only targets).

    Returns:
        A :class:`CheckReport`; ``compatible`` is False when any blocking problem was found.

    Example:
        >>> from edgeship.targets import get_target
        >>> from edgeship.targets.rules import generic_check
        >>> report = generic_check("model.tflite", get_target("null"))  # doctest: +SKIP
    """
    facts = read_facts(facts or model_path)
    report = new_report(facts, profile)
    format_ok = _check_format(facts, profile, report)
    _check_quantization(facts, profile, report)
    _check_io(facts, profile, report)
    _check_shapes(facts, profile, report)
    _place_ops(facts, profile, report, placement, format_ok)
    _check_memory(facts, profile, report)
    if facts.subgraphs > 1:
        report.notes.append(f"model has {facts.subgraphs} subgraphs; only the main one was checked op by op")
    return report


def _check_format(facts: ModelFacts, profile, report: CheckReport) -> bool:
    if facts.format in profile.formats:
        return True
    report.add(Problem("format", Path(facts.path).name,
                       f"{profile.name} runs {'/'.join(sorted(profile.formats))} models; this is {facts.format}",
                       f"convert with `edgeship convert SOURCE --to {sorted(profile.formats)[0]}`"))
    return False


def _check_quantization(facts: ModelFacts, profile, report: CheckReport) -> None:
    if facts.quantization in profile.quantizations:
        return
    what = {QuantMode.FP32: "a float (unquantized) model",
            QuantMode.MIXED: "a partly quantized model (some ops float)",
            QuantMode.DYNAMIC: "dynamic-range quantized (float activations)"}.get(
                facts.quantization, f"quantized as {facts.quantization}")
    report.add(Problem("quantization", Path(facts.path).name,
                       f"{profile.name} accepts quantization {', '.join(sorted(map(str, profile.quantizations)))}; "
                       f"this is {what}", _quant_fix(profile)))


def _check_io(facts: ModelFacts, profile, report: CheckReport) -> None:
    for role, tensors in (("input", facts.inputs), ("output", facts.outputs)):
        for t in tensors:
            if profile.io_dtypes and t.dtype not in profile.io_dtypes:
                report.add(Problem("dtype", t.name,
                                   f"{role} {t.name!r} is {t.dtype}; {profile.name} accepts "
                                   f"{', '.join(sorted(profile.io_dtypes))}",
                                   _quant_fix(profile) + " --io-dtype " + _io_fix(profile)))


def _check_shapes(facts: ModelFacts, profile, report: CheckReport) -> None:
    if profile.static_shapes_required:
        for t in facts.inputs:
            if any(d < 0 for d in t.shape):
                report.add(Problem("dynamic_shape", t.name,
                                   f"input {t.name!r} has dynamic shape {list(t.shape)} (-1 = dynamic); "
                                   f"{profile.name} needs static shapes",
                                   "make input shape static: re-convert with --static-batch (Keras sources), "
                                   "or fix the dimension in the source model, so the input is "
                                   f"[{', '.join(str(d if d > 0 else 1) for d in t.shape)}]"))
    if profile.max_tensor_rank is not None:
        for t in facts.tensors:
            if len(t.shape) > profile.max_tensor_rank:
                report.add(Problem("rank", t.name,
                                   f"tensor {t.name!r} has rank {len(t.shape)} {list(t.shape)}; "
                                   f"{profile.name} supports rank <= {profile.max_tensor_rank}",
                                   f"reshape the model so tensors have at most {profile.max_tensor_rank} dimensions"))


def _place_ops(facts: ModelFacts, profile, report: CheckReport, placement: str, format_ok: bool) -> None:
    for op in facts.ops:
        if not format_ok:   # op names of another format mean nothing to this target
            report.ops.append(OpPlacement(op.index, op.op, "unsupported", op.version, f"{facts.format} not supported"))
            continue
        reason = op_problem(op, profile)
        if reason is not None and op.index in shape_ops(facts) and reason.kind == "unsupported_op":
            reason.fix = STATIC_BATCH_FIX
        if reason is None:
            report.ops.append(OpPlacement(op.index, op.op, placement, op.version))
        else:
            report.add(reason)
            report.ops.append(OpPlacement(op.index, op.op, "unsupported", op.version, reason.message))


def _check_memory(facts: ModelFacts, profile, report: CheckReport) -> None:
    limit = profile.memory_limit_bytes
    need = facts.params_bytes + (facts.peak_activation_bytes or 0)
    if limit is not None and need > limit:
        report.add(Problem("memory", Path(facts.path).name,
                           f"model needs ~{need / 1e6:.2f} MB (params {facts.params_bytes / 1e6:.2f} MB + "
                           f"activations {(facts.peak_activation_bytes or 0) / 1e6:.2f} MB); "
                           f"{profile.name} has {limit / 1e6:.2f} MB",
                           "re-convert with --quantize int8 or use a smaller model (fewer channels / lower resolution)"))


SHAPE_OPS = ("SHAPE", "Shape")
STATIC_BATCH_FIX = ("this op computes a tensor shape at run time because the model's batch is dynamic: re-convert "
                    "with --static-batch (Keras sources) or export the source with a fixed batch of 1; static "
                    "shapes let the converter fold SHAPE and the ops computing on its result into constants")


def shape_ops(facts: ModelFacts) -> set:
    """Indices of ops that only exist to compute shapes at run time: SHAPE and every op whose
    non-constant inputs all come from SHAPE (transitively), e.g. STRIDED_SLICE/PACK feeding a
    RESHAPE's new shape. A dynamic batch puts them there; a static batch folds them away."""
    if facts.format != "tflite":
        return set()
    shape_tensors: set = set()
    found: set = set()
    for op in facts.ops:   # execution order: producers come first
        live = [i for i in op.inputs if i >= 0 and not facts.tensors[i].is_const]
        if op.op in SHAPE_OPS or (live and all(i in shape_tensors for i in live)):
            found.add(op.index)
            shape_tensors.update(i for i in op.outputs if i >= 0)
    return found


def op_problem(op: OpFact, profile) -> Optional[Problem]:
    """The problem with one op under a profile's supported_ops / op_limits, or None."""
    if profile.supported_ops is not None and op.op not in profile.supported_ops:
        return Problem("unsupported_op", f"{op.op}#{op.index}",
                       f"op {op.op} (index {op.index}) is not supported by {profile.name}",
                       f"replace op {op.op} in the source model with supported ops, or pick a target that runs it")
    lim = profile.op_limits.get(op.op) or {}
    note = f" ({lim['note']})" if lim.get("note") else ""
    if lim.get("max_version") is not None and op.version > lim["max_version"]:
        return Problem("op_version", f"{op.op}#{op.index}",
                       f"op {op.op} (index {op.index}) is version {op.version}; {profile.name} supports "
                       f"up to version {lim['max_version']}{note}",
                       f"re-convert with an older converter / simpler options so {op.op} stays "
                       f"<= v{lim['max_version']}, or replace op {op.op}")
    if lim.get("min_version") is not None and op.version < lim["min_version"]:
        return Problem("op_version", f"{op.op}#{op.index}",
                       f"op {op.op} (index {op.index}) is version {op.version}; {profile.name} needs "
                       f">= {lim['min_version']}{note}", "re-convert with a current converter")
    return None


def which_path(name: str) -> Optional[str]:
    """shutil.which, kept here so tests can monkeypatch one place."""
    import shutil

    return shutil.which(name, path=os.environ.get("PATH"))


__all__ = ["Problem", "OpPlacement", "CheckReport", "generic_check", "op_problem", "new_report"]
