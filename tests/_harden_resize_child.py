"""Child for tests/test_harden_runtime.py: a failed resize under an address-space limit.

Prints one JSON line: what each call raised or whether its result matched the reference.
Run as ``python -m tests._harden_resize_child MODEL LIMIT_BYTES HUGE_BATCH``.
"""
from __future__ import annotations

import json
import resource
import sys

import numpy as np


def main(model: str, limit: int, huge: int) -> dict:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import edgeship

    m = edgeship.load(model, verify="none")
    m.max_batch = 1 << 40  # no chunking: force the one huge resize that cannot be allocated
    shape = tuple(d if d > 0 else 1 for d in m.inputs[0].shape)[1:]
    rng = np.random.default_rng(0)
    small = {b: rng.uniform(0, 1, (b,) + shape).astype(np.float32) for b in (1, 2, 5)}
    ref = {b: m.predict(x) for b, x in small.items()}
    out = []
    for b in (huge, 1, 2, huge, huge, 5, 1, 2):
        try:
            if b == huge:
                m.predict(np.zeros((b,) + shape, np.float32))
                out.append("huge ok")
            else:
                out.append("same" if np.array_equal(m.predict(small[b]), ref[b]) else "DIFFERENT")
        except edgeship.EdgeshipError as exc:
            out.append(type(exc).__name__)
        except Exception as exc:  # the defect: untyped errors after a failed resize
            out.append(f"untyped {type(exc).__name__}: {exc}"[:200])
    return {"calls": out}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
