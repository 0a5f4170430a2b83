"""Checks on the data of a conversion that make a parity figure meaningless if they go unnoticed.

* :func:`shared_rows`: validation samples that are also calibration samples (hash-compared row by
  row). A quantized model is calibrated to the ranges of exactly those rows, so checking it on
  them overstates its accuracy on new data.
* :func:`constant_outputs`: source outputs that never change across the validation inputs (an
  untrained model printing 0.001 for every class, a constant head, inputs far out of range that
  saturate every unit). Float checks then pass with cosine 1.0 and an int8 file that rounds the
  constant to zero gets "cosine 0.000000": neither says anything about the conversion.

Example:
    >>> import numpy as np
    >>> rows = [{"x": np.full((1, 2), i, np.float32)} for i in range(4)]
    >>> shared_rows(rows[:3], rows[2:])
    1
    >>> constant_outputs([[np.full((1, 3), 0.001)], [np.full((1, 3), 0.001)]], ["probs"])
    ["output 'probs' is the same for every validation input (value 0.001, spread 0 across 2 inputs)"]
"""
from __future__ import annotations

import hashlib
from typing import List, Sequence

import numpy as np


def _row_hashes(samples: Sequence[dict]) -> List[str]:
    """One sha256 per row (a sample may carry a batch of rows)."""
    out = []
    for s in samples:
        names = sorted(s)
        n = int(np.shape(s[names[0]])[0]) if names else 0
        for i in range(n):
            h = hashlib.sha256()
            for name in names:
                a = np.ascontiguousarray(np.asarray(s[name])[i], dtype=np.float32)
                h.update(name.encode())
                h.update(a.tobytes())
            out.append(h.hexdigest())
    return out


def shared_rows(calibration: Sequence[dict], validation: Sequence[dict]) -> int:
    """How many validation rows are also calibration rows (compared by the hash of their values)."""
    cal = set(_row_hashes(calibration))
    return sum(1 for h in _row_hashes(validation) if h in cal)


def constant_outputs(reference: Sequence[Sequence[np.ndarray]], names: Sequence[str],
                     rel: float = 1e-6) -> List[str]:
    """A message for each source output that does not change across the validation inputs.

    Args:
        reference: source outputs per validation sample (``reference[sample][output]``).
        names: the output names, in order.
        rel: spread (largest std across inputs) at or below ``rel`` x the output's peak counts as none.
    """
    if len(reference) < 2:
        return []
    found = []
    for k, name in enumerate(names):
        try:
            rows = np.concatenate([np.asarray(r[k], np.float64).reshape(np.shape(r[k])[0] if np.ndim(r[k]) else 1, -1)
                                   for r in reference], axis=0)
        except ValueError:   # outputs of varying size (detectors): not a constant output
            continue
        if rows.shape[0] < 2:
            continue
        spread = float(rows.std(axis=0).max())
        peak = float(np.abs(rows).max())
        if spread <= rel * max(peak, 1e-30) or peak == 0.0:
            vals = np.unique(np.round(rows[0], 6))
            value = f"value {vals[0]:.4g}" if len(vals) == 1 else f"values {rows[0].min():.4g}..{rows[0].max():.4g}"
            found.append(f"output {name!r} is the same for every validation input ({value}, spread "
                         f"{spread:.3g} across {rows.shape[0]} inputs)")
    return found


CONSTANT_ADVICE = ("cosine and top-1 are meaningless for a constant output (a float copy matches it at cosine 1.0; "
                   "an int8 file that rounds it to zero reads cosine 0): check that the model is trained (an "
                   "untrained classifier prints the same score for every class) and that the inputs are in the "
                   "range the model expects (give real --validation/--calibration data)")

__all__ = ["shared_rows", "constant_outputs", "CONSTANT_ADVICE"]
