"""Cortex-M latency estimate: MACs scaled linearly from the MLPerf Tiny keyword-spotting
DS-CNN results (see :data:`LATENCY_REFERENCES`); a first-order estimate, not a measurement.

Example:
    >>> round(estimate_latency(DSCNN_MACS)[0].ms, 1)
    182.0
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple

from ..errors import InputSpecError
from ._mcu_types import PathOrBytes

# --- latency calibration -------------------------------------------------------
# MLPerf Tiny keyword spotting, DS-CNN int8 (kws_ref_model.tflite). Its MAC count
# is what edgeship.inspect reports for that file (its macs_total: conv, depthwise and FC
# MACs plus the average pool and softmax element operations).
DSCNN_MACS = 2_664_780


@dataclass(frozen=True)
class LatencyReference:
    board: str
    core: str
    latency_ms: float
    basis: str


LATENCY_REFERENCES: Tuple[LatencyReference, ...] = (
    LatencyReference("NUCLEO-L4R5ZI", "Cortex-M4F @ 120 MHz", 182.0,
                     "MLPerf Tiny KWS DS-CNN, reference submission"),
    LatencyReference("NUCLEO-H7A3ZI-Q (STM32H7A3)", "Cortex-M7 @ 280 MHz", 16.8,
                     "MLPerf Tiny KWS DS-CNN, optimised submission"),
)
# MAC-linear scaling ignores the op mix (depthwise and FC layers do fewer MACs
# per cycle than 1x1 convs, memory-bound layers scale with bytes not MACs), so
# the estimate is given with a factor-of-two band.
LATENCY_BAND = (0.5, 2.0)


@dataclass(frozen=True)
class LatencyEstimate:
    board: str
    core: str
    ms: float
    low_ms: float
    high_ms: float
    basis: str


def count_macs(model: PathOrBytes) -> int:
    """MACs of one inference, from :func:`edgeship.facts.read_facts` (the ``inspect`` figure)."""
    from ..facts import read_facts

    if isinstance(model, (bytes, bytearray, memoryview)):
        return read_facts(Path("model.tflite"), data=bytes(model)).macs_total
    return read_facts(model).macs_total


def estimate_latency(macs: int) -> List[LatencyEstimate]:
    """Cortex-M latency from MACs, scaled linearly from the MLPerf Tiny DS-CNN results.

    Example:
        >>> round(estimate_latency(DSCNN_MACS)[0].ms, 1)
        182.0
    """
    if macs < 0:
        raise InputSpecError(f"MAC count must be >= 0, got {macs}")
    ratio = macs / DSCNN_MACS
    return [LatencyEstimate(r.board, r.core, r.latency_ms * ratio, r.latency_ms * ratio * LATENCY_BAND[0],
                            r.latency_ms * ratio * LATENCY_BAND[1],
                            f"{r.basis}: {r.latency_ms} ms for {DSCNN_MACS} MACs, scaled linearly")
            for r in LATENCY_REFERENCES]
