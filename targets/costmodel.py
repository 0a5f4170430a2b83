"""Per-op latency model for CPU targets, calibrated against published anchors.

For each op::

    time = MACs / rate(op class, dtype) + bytes moved / bandwidth + fixed per-op overhead

* op classes: ``conv`` (CONV_2D, FULLY_CONNECTED, TRANSPOSE_CONV, BATCH_MATMUL, Conv, Gemm,
  MatMul), ``dw`` (DEPTHWISE_CONV_2D; grouped Conv), everything else only moves bytes;
* ``rate(conv, fp32) = R``; ``rate(conv, int8) = R * s8``; ``rate(dw, dt) = rate(conv, dt) * e``;
* bandwidth and per-op overhead are priors from the board's memory spec (not fitted: four
  anchors cannot pin six constants);
* ``R``, ``s8`` and ``e`` are fitted (relative least squares) to the anchors:
  XNNPACK end2end_bench on a Raspberry Pi 4, 4 threads, randomized weights
  (XNNPACK README): MobileNetV1 1.0 224 77 ms fp32 / 24 ms int8, MobileNetV2 46 / 17 ms.

:func:`leave_one_out` refits without each anchor in turn and reports the error on the one
left out; the estimate's uncertainty band is derived from it.

Example:
    >>> from edgeship.targets.costmodel import op_class
    >>> op_class("DEPTHWISE_CONV_2D"), op_class("CONV_2D"), op_class("ADD")
    ('dw', 'conv', 'other')
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional, Sequence

from edgeship.facts import ModelFacts

CONV_OPS = {"CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL", "CONV_3D",
            "Conv", "Gemm", "MatMul", "ConvTranspose", "QLinearConv", "QLinearMatMul", "MatMulInteger",
            "ConvInteger"}
DW_OPS = {"DEPTHWISE_CONV_2D"}
FREE_OPS = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity",
            "Shape"}   # views: no data moved in XNNPACK / ORT


def op_class(op: str) -> str:
    if op in DW_OPS:
        return "dw"
    if op in CONV_OPS:
        return "conv"
    return "free" if op in FREE_OPS else "other"


@dataclass(frozen=True)
class OpCost:
    index: int
    op: str
    cls: str
    dtype: str          # "fp32" | "int8" (compute type of the op)
    macs: int
    bytes: int
    count: int = 1      # ops this entry stands for (aggregated summaries)


@dataclass(frozen=True)
class CostParams:
    """Constants of the model for one device at its anchor thread count."""

    rate_fp32: float            # dense conv MAC/s, fp32
    int8_speedup: float         # dense int8 rate / fp32 rate
    dw_efficiency: float        # depthwise rate / dense rate
    bandwidth: float            # bytes/s effectively streamed
    overhead_s: float           # per executed op
    threads: int = 4            # threads the constants hold for
    parallel_fraction: float = 0.92   # Amdahl fraction of compute that scales with threads

    def rate(self, cls: str, dtype: str) -> float:
        r = self.rate_fp32 * (self.int8_speedup if dtype == "int8" else 1.0)
        return r * self.dw_efficiency if cls == "dw" else r


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= max(int(d), 1)
    return n


def op_costs(facts: ModelFacts) -> List[OpCost]:
    """MACs and bytes moved per op, from tensor shapes (batch/dynamic dims counted as 1)."""
    out: List[OpCost] = []
    T = facts.tensors
    for op in facts.ops:
        ins = [T[i] for i in op.inputs if 0 <= i < len(T)]
        outs = [T[i] for i in op.outputs if 0 <= i < len(T)]
        cls = op_class(op.op)
        data = ins[0] if ins else (outs[0] if outs else None)
        dtype = "int8" if data is not None and data.dtype in ("int8", "uint8", "int16") else "fp32"
        macs = 0
        if outs and len(ins) >= 2:
            n_out = _numel(outs[0].shape)
            w = ins[1].shape
            if op.op in ("CONV_2D", "TRANSPOSE_CONV") and len(w) == 4:
                macs = n_out * w[1] * w[2] * w[3]
                if op.op == "TRANSPOSE_CONV":   # inputs: (output_shape, weights, input)
                    macs = _numel(ins[2].shape) * w[0] * w[1] * w[2] if len(ins) > 2 else n_out * w[1] * w[2]
            elif op.op == "DEPTHWISE_CONV_2D" and len(w) == 4:
                macs = n_out * w[1] * w[2]
            elif op.op in ("FULLY_CONNECTED", "BATCH_MATMUL", "MatMul", "Gemm") and w:
                macs = n_out * max(int(w[-1] if op.op == "FULLY_CONNECTED" else w[-2]), 1)
            elif op.op == "Conv" and len(w) == 4:
                macs = n_out * w[1] * w[2] * w[3]
                if w[1] == 1 and len(ins[0].shape) == 4 and ins[0].shape[1] not in (-1, 1):
                    cls = "dw"
        if op.op in ("DEQUANTIZE", "DequantizeLinear") and ins and ins[0].is_const:
            cls = "free"     # fp16/int8 weights are dequantized once at load time, not per inference
        moved = sum(t.nbytes for t in ins + outs) if cls != "free" else 0
        out.append(OpCost(op.index, op.op, cls, dtype, int(macs), int(moved)))
    return out


def summarize(costs: Sequence[OpCost]) -> List[OpCost]:
    """Aggregate per (class, dtype): the model only needs sums, so anchors can be stored as data."""
    acc: Dict[tuple, List[int]] = {}
    for c in costs:
        a = acc.setdefault((c.cls, c.dtype), [0, 0, 0])
        a[0] += c.macs
        a[1] += c.bytes
        a[2] += c.count
    return [OpCost(-1, cls, cls, dt, m, b, n) for (cls, dt), (m, b, n) in sorted(acc.items())]


def thread_speedup(threads: int, parallel_fraction: float) -> float:
    threads = max(int(threads), 1)
    return 1.0 / ((1.0 - parallel_fraction) + parallel_fraction / threads)


def predict_seconds(costs: Sequence[OpCost], p: CostParams, threads: Optional[int] = None) -> Dict[str, float]:
    """Latency split into compute / memory / overhead seconds and the total."""
    compute = sum(c.macs / p.rate(c.cls, c.dtype) for c in costs if c.macs)
    memory = sum(c.bytes / p.bandwidth for c in costs)
    overhead = p.overhead_s * sum(c.count for c in costs if c.cls != "free")
    if threads is not None and threads != p.threads:
        scale = thread_speedup(p.threads, p.parallel_fraction) / thread_speedup(threads, p.parallel_fraction)
        compute *= scale
        memory *= max(scale ** 0.5, 1.0) if threads < p.threads else 1.0
    return {"compute_s": compute, "memory_s": memory, "overhead_s": overhead,
            "total_s": compute + memory + overhead}


# --------------------------------------------------------------------------- calibration

@dataclass(frozen=True)
class Anchor:
    name: str          # "mobilenet_v1" ...
    dtype: str         # "fp32" | "int8"
    ms: float          # published latency
    source: str = "XNNPACK README, end2end_bench, Raspberry Pi 4 (BCM2711), 4 threads"


PI4_ANCHORS = (
    Anchor("mobilenet_v1", "fp32", 77.0), Anchor("mobilenet_v1", "int8", 24.0),
    Anchor("mobilenet_v2", "fp32", 46.0), Anchor("mobilenet_v2", "int8", 17.0),
)


def fit(costs_by_anchor: Dict[Anchor, Sequence[OpCost]], prior: CostParams) -> CostParams:
    """Fit rate_fp32, int8_speedup and dw_efficiency to anchors (relative least squares).

    Bandwidth and overhead stay at the prior. For each dw_efficiency on a grid, the two
    inverse rates have closed forms; the grid point with the least relative error wins.
    """
    import numpy as np

    best = None
    for e in np.geomspace(0.03, 1.0, 300):
        rows = []
        for a, costs in costs_by_anchor.items():
            fixed = predict_seconds(costs, replace(prior, rate_fp32=1e30))["total_s"]
            work = sum((c.macs / e if c.cls == "dw" else c.macs) for c in costs if c.macs)
            rows.append((a.dtype, work, a.ms / 1e3 - fixed, a.ms / 1e3))
        inv = {}
        for dt in ("fp32", "int8"):
            sel = [(w, y, t) for d, w, y, t in rows if d == dt]
            if not sel:
                continue
            num = sum(w * y / t ** 2 for w, y, t in sel)
            den = sum(w * w / t ** 2 for w, y, t in sel)
            inv[dt] = max(num / den, 1e-15)
        if "fp32" not in inv or "int8" not in inv:
            raise ValueError("fitting needs at least one fp32 and one int8 anchor")
        err = sum(((inv[d] * w - y) / t) ** 2 for d, w, y, t in rows)
        if best is None or err < best[0]:
            best = (err, e, inv)
    _, e, inv = best
    return replace(prior, rate_fp32=float(1.0 / inv["fp32"]), int8_speedup=float(inv["fp32"] / inv["int8"]),
                   dw_efficiency=float(e))


@dataclass
class Calibration:
    params: CostParams
    rows: List[dict] = field(default_factory=list)     # per anchor: fit and leave-one-out predictions
    max_abs_loo_error: float = 0.0
    max_abs_fit_error: float = 0.0

    def to_dict(self) -> dict:
        return {"params": self.params.__dict__, "anchors": self.rows,
                "max_abs_fit_error": self.max_abs_fit_error, "max_abs_loo_error": self.max_abs_loo_error}


def leave_one_out(costs_by_anchor: Dict[Anchor, Sequence[OpCost]], prior: CostParams) -> Calibration:
    """Fit on all anchors, and refit without each one to measure the error on it."""
    full = fit(costs_by_anchor, prior)
    cal = Calibration(full)
    for a, costs in costs_by_anchor.items():
        rest = {k: v for k, v in costs_by_anchor.items() if k != a}
        try:
            loo_params = fit(rest, prior)
            loo_ms = predict_seconds(costs, loo_params)["total_s"] * 1e3
        except ValueError:     # the left-out anchor was the only one of its dtype
            loo_ms = float("nan")
        fit_ms = predict_seconds(costs, full)["total_s"] * 1e3
        cal.rows.append({"model": a.name, "dtype": a.dtype, "published_ms": a.ms,
                         "fit_ms": round(fit_ms, 2), "fit_error": round(fit_ms / a.ms - 1, 4),
                         "loo_ms": round(loo_ms, 2), "loo_error": round(loo_ms / a.ms - 1, 4),
                         "macs": sum(c.macs for c in costs), "source": a.source})
    cal.max_abs_fit_error = max(abs(r["fit_error"]) for r in cal.rows)
    cal.max_abs_loo_error = max(abs(r["loo_error"]) for r in cal.rows)
    return cal


__all__ = ["op_class", "OpCost", "CostParams", "op_costs", "summarize", "predict_seconds", "thread_speedup",
           "Anchor", "PI4_ANCHORS", "fit", "leave_one_out", "Calibration"]
