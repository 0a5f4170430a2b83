"""Mutations of bundle folders, manifests and bundle zips (shared by tests and bench/fuzz.py)."""
from __future__ import annotations

import json
import os
import random
import shutil
import struct
import zipfile
from pathlib import Path

from tests import _fuzz_tflite as ft

_ODD = [None, 0, -1, 1.5, 1e308, True, "", "..", "../x", "/etc/passwd", "a" * 5000, [], {}, [1, 2],
        {"path": "../../x"}, "manifest.json", ".hidden", "sub/../../x", "x\\y", "\u0000", 2 ** 70]


def _paths(obj, path=()):
    out = [path]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, path + (i,))
    return out


def mutate_manifest_text(text: str, rng: random.Random) -> str:
    """A structural change at a random place in the manifest's JSON, or damage to its text."""
    r = rng.random()
    if r < 0.15:
        b = bytearray(text.encode())
        for _ in range(rng.randint(1, 6)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return b.decode("utf-8", "replace") if rng.random() < 0.5 else b.decode("latin-1")
    if r < 0.2:
        return rng.choice(["", "[]", "null", "1", '"x"', "[" * 100000 + "]" * 100000, "{" * 5000, text[: len(text) // 2]])
    m = json.loads(text)
    path = rng.choice(_paths(m)[1:] or [()])
    parent, key = m, None
    for k in path[:-1]:
        parent = parent[k]
    key = path[-1] if path else None
    if key is None:
        return json.dumps(rng.choice(_ODD))
    if rng.random() < 0.25 and isinstance(parent, dict):
        del parent[key]
    else:
        parent[key] = rng.choice(_ODD)
    return json.dumps(m)


def _rehash(bundle: Path, key_file: str) -> None:
    from edgeship._io import sha256_file

    mp = bundle / "manifest.json"
    m = json.loads(mp.read_text())
    for e in m["files"].values():
        if e["path"] == key_file:
            e["sha256"] = sha256_file(bundle / key_file)
            e["bytes"] = (bundle / key_file).stat().st_size
    mp.write_text(json.dumps(m, indent=2))


def make_bundle_case(template: Path, dest: Path, kind: str, rng: random.Random, model_sites) -> str:
    """Copy the template bundle to ``dest`` and damage it; returns what was done."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(template, dest, symlinks=True)
    m = json.loads((dest / "manifest.json").read_text())
    model = next(iter(m["files"].values()))["path"]
    if kind == "manifest":
        mp = dest / "manifest.json"
        mp.write_bytes(mutate_manifest_text(mp.read_text(), rng).encode("utf-8", "surrogatepass"))
        return "manifest"
    r = rng.random()
    f = dest / model
    if r < 0.6:  # a mutated model whose checksum is updated: gets past the manifest to the loader
        data, what = ft.mutate(f.read_bytes(), model_sites, rng)
        f.write_bytes(data)
        _rehash(dest, model)
        return "model:" + what
    if r < 0.7:
        f.unlink()
        f.mkdir()
        return "model_is_folder"
    if r < 0.78:
        f.unlink()
        os.symlink(rng.choice(["/dev/zero", "/etc/hostname", "/nonexistent", str(dest / "loop")]), f)
        return "model_symlink"
    if r < 0.86:
        extra = dest / rng.choice(["extra.bin", "sub/x.bin", ".hidden"])
        extra.parent.mkdir(exist_ok=True)
        extra.write_bytes(b"x")
        return "unlisted_file"
    if r < 0.93:
        os.mkfifo(dest / "labels.txt.fifo") if rng.random() < 0.5 else (dest / "labels.txt").unlink()
        return "fifo_or_missing"
    (dest / "manifest.json").unlink()
    return "no_manifest"


def _patch(b: bytearray, sig: bytes, offset: int, fmt: str, value, every: bool) -> None:
    i = b.find(sig)
    while i >= 0 and i + offset + struct.calcsize(fmt) <= len(b):
        struct.pack_into(fmt, b, i + offset, value & ((1 << (8 * struct.calcsize(fmt))) - 1))
        if not every:
            return
        i = b.find(sig, i + 4)


_ZIP_FIELDS = [  # (signature, offset, format): sizes, offsets, counts, lengths, methods, flags
    (b"PK\x03\x04", 6, "<H"), (b"PK\x03\x04", 8, "<H"), (b"PK\x03\x04", 18, "<I"), (b"PK\x03\x04", 22, "<I"),
    (b"PK\x03\x04", 26, "<H"), (b"PK\x03\x04", 28, "<H"), (b"PK\x03\x04", 14, "<I"),
    (b"PK\x01\x02", 8, "<H"), (b"PK\x01\x02", 10, "<H"), (b"PK\x01\x02", 20, "<I"), (b"PK\x01\x02", 24, "<I"),
    (b"PK\x01\x02", 28, "<H"), (b"PK\x01\x02", 30, "<H"), (b"PK\x01\x02", 42, "<I"), (b"PK\x01\x02", 38, "<I"),
    (b"PK\x05\x06", 8, "<H"), (b"PK\x05\x06", 10, "<H"), (b"PK\x05\x06", 12, "<I"), (b"PK\x05\x06", 16, "<I"),
]
_ZIP_VALUES = (0, 1, 2, 8, 12, 14, 99, 0xFFFF, 0xFFFFFFFF, 0x7FFFFFFF, 1 << 20, 1 << 30, 0o120777 << 16)


def make_zip_case(template: Path, dest_zip: Path, work: Path, rng: random.Random, model_sites) -> str:
    """Zip the template (maybe with a re-hashed mutated model or renamed members) and damage the archive."""
    members = []
    for f in sorted(p for p in template.rglob("*") if p.is_file()):
        members.append((f.relative_to(template).as_posix(), f.read_bytes()))
    what = []
    if rng.random() < 0.3:
        case = work / "zb"
        shutil.rmtree(case, ignore_errors=True)
        what.append(make_bundle_case(template, case, "bundle", rng, model_sites))
        members = [(f.relative_to(case).as_posix(), f.read_bytes()) for f in sorted(case.rglob("*"))
                   if f.is_file() and not f.is_symlink()]
        shutil.rmtree(case, ignore_errors=True)
    if rng.random() < 0.2:
        i = rng.randrange(len(members))
        members[i] = (rng.choice(["../evil", "/abs", "a/../../b", ".git/config", members[0][0], "x\\y", "", "dir/"]),
                      members[i][1])
        what.append("name")
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", rng.choice([zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED])) as z:
        for n, d in members:
            try:
                z.writestr(n or "empty", d)
            except (ValueError, OSError):
                pass
    b = bytearray(buf.getvalue())
    for _ in range(rng.randint(0, 3)):
        sig, off, fmt = rng.choice(_ZIP_FIELDS)
        _patch(b, sig, off, fmt, rng.choice(_ZIP_VALUES), rng.random() < 0.5)
        what.append(f"field{off}")
    if rng.random() < 0.25:
        b = bytearray(ft.byte_flip(bytes(b), rng))
        what.append("bytes")
    if not b.startswith(b"PK\x03\x04"):
        b[:4] = b"PK\x03\x04"  # keep it a zip to the format sniffer
    dest_zip.write_bytes(bytes(b))
    return "+".join(what) or "plain"
