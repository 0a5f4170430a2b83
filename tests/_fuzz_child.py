"""Fuzz driver run in its own process: mutate model files, load and run each, tally outcomes.

A crash of this process (segfault, abort) is exactly what the test guards against,
so the parent test asserts it exits 0 and reads the tally it prints.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    b = bytearray(data)
    kind = int(rng.integers(0, 6))
    if kind == 0:  # flip a few random bytes anywhere
        for _ in range(int(rng.integers(1, 9))):
            b[int(rng.integers(0, len(b)))] = int(rng.integers(0, 256))
    elif kind == 1:  # truncate
        b = b[: int(rng.integers(1, len(b)))]
    elif kind == 2:  # corrupt the structural end region (flatbuffer tables / protobuf tail)
        lo = max(0, len(b) - 4096)
        for _ in range(int(rng.integers(1, 17))):
            b[int(rng.integers(lo, len(b)))] = int(rng.integers(0, 256))
    elif kind == 3:  # corrupt the head (root offset, identifiers, first tables)
        for _ in range(int(rng.integers(1, 5))):
            b[int(rng.integers(0, min(256, len(b))))] = int(rng.integers(0, 256))
    elif kind == 4:  # overwrite a run with a large little-endian integer (offsets, sizes, dims)
        pos = int(rng.integers(0, len(b) - 4))
        b[pos:pos + 4] = int(rng.choice([0x7FFFFFFF, 0xFFFFFFFF, 0x10000, 4096, 0])).to_bytes(4, "little")
    else:  # insert or delete bytes in the middle
        pos = int(rng.integers(0, len(b)))
        if rng.random() < 0.5:
            b[pos:pos] = bytes(rng.integers(0, 256, int(rng.integers(1, 32)), dtype=np.uint8))
        else:
            del b[pos:pos + int(rng.integers(1, 32))]
    return bytes(b)


def main(sources, n: int, out_dir: str, seed: int) -> dict:
    import edgeship

    rng = np.random.default_rng(seed)
    tally = {"n": 0, "loaded_and_ran": 0, "errors": {}, "non_edgeship": []}
    out = Path(out_dir)
    for i in range(n):
        src = Path(sources[i % len(sources)])
        p = out / f"m{i}{src.suffix}"
        p.write_bytes(mutate(src.read_bytes(), rng))
        tally["n"] += 1
        try:
            m = edgeship.load(p)
            feeds = [rng.uniform(0, 1, size=tuple(d if d > 0 else 1 for d in s.shape)).astype(np.float32)
                     for s in m.inputs]
            m.predict(feeds)
            tally["loaded_and_ran"] += 1
        except edgeship.EdgeshipError as exc:
            name = type(exc).__name__
            tally["errors"][name] = tally["errors"].get(name, 0) + 1
        except Exception as exc:  # anything else is a bug: an unwrapped native or Python error
            tally["non_edgeship"].append(f"{p.name}: {type(exc).__name__}: {exc}"[:300])
    return tally


if __name__ == "__main__":
    srcs = sys.argv[1].split(",")
    print(json.dumps(main(srcs, int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))))
