"""Hardening of what load reads and trusts: private cache, probe child, zips, non-regular files (issue 11)."""
from __future__ import annotations

import io
import os
import struct
import tempfile
import threading
import zipfile
from pathlib import Path

import pytest

import edgeship
from edgeship.bundle import write_bundle, write_zip
from edgeship.errors import EdgeshipError, IntegrityError, ModelFormatError


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    """A fresh cache root for one test (created by edgeship itself, so private)."""
    root = tmp_path / "cache"
    monkeypatch.setenv("EDGESHIP_CACHE", str(root))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # where a failed unzip could leave things
    return root


@pytest.fixture()
def good_zip(weights, tmp_path):
    b = write_bundle(tmp_path / "good", {"tflite-int8": weights / "shapes_cnn_int8.tflite"}, labels=["a", "b", "c"])["_dir"]
    return write_zip(b, tmp_path / "good.zip")


# -- defect 10: the probe child must not import from the current folder -------------------------
def test_probe_child_does_not_import_from_current_folder(weights, tmp_path, cache, monkeypatch):
    evil = tmp_path / "cwd"
    evil.mkdir()
    (evil / "json.py").write_text("import pathlib\npathlib.Path(__file__).with_name('PWNED').write_text('x')\n"
                                  "raise ImportError('planted json.py ran')\n")
    monkeypatch.chdir(evil)
    m = edgeship.load(weights / "shapes_cnn_int8.tflite")  # verify="full" runs the probe child
    assert m.inputs and not (evil / "PWNED").exists()


# -- defect 6: the probe cache ---------------------------------------------------------------
def _count_probes(monkeypatch):
    import subprocess  # what edgeship.probe starts its child with

    calls = []
    real = subprocess.run

    def spy(*a, **k):
        calls.append(a[0])
        return real(*a, **k)

    monkeypatch.setattr(subprocess, "run", spy)
    return calls


def test_planted_or_stale_probe_marker_does_not_skip_the_probe(weights, cache, monkeypatch):
    from edgeship import probe as probe_mod
    from edgeship._io import atomic_write_json, sha256_file

    model = weights / "shapes_cnn_int8.tflite"
    sha = sha256_file(model)
    marker = probe_mod._marker(sha, "litert")
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_bytes(b"")  # an empty marker named after the file's hash
    calls = _count_probes(monkeypatch)
    edgeship.load(model, backend="litert")
    assert len(calls) == 1, "an empty marker skipped the isolation probe"
    edgeship.load(model, backend="litert")
    assert len(calls) == 1, "a real ok record must be reused"
    stale = dict(probe_mod._stamp(sha, "litert"), runtime_version="0.0.1")  # made by another runtime
    atomic_write_json(marker, stale)
    edgeship.load(model, backend="litert")
    assert len(calls) == 2
    assert oct(os.stat(cache).st_mode & 0o777) == "0o700" and oct(os.stat(marker.parent).st_mode & 0o777) == "0o700"


def _plant_bundle(weights, good_zip, root: Path) -> None:
    """What an attacker puts in a shared cache: another model under the good zip's hash."""
    from edgeship._io import sha256_file

    (root / "bundles").mkdir(parents=True)
    write_bundle(root / "bundles" / sha256_file(good_zip), {"tflite-int8": weights / "shapes_cnn_fp32.tflite"},
                 labels=["a", "b", "c"])


@pytest.mark.parametrize("how", ["world-writable", "other-owner"])
def test_cache_folder_others_control_is_not_trusted(weights, good_zip, tmp_path, monkeypatch, how):
    from edgeship._io import sha256_file

    root = tmp_path / "shared-cache"
    _plant_bundle(weights, good_zip, root)
    if how == "world-writable":
        os.chmod(root / "bundles", 0o777)
    else:
        if os.geteuid() != 0:
            pytest.skip("chown to another user needs root")
        for dirpath, dirnames, filenames in os.walk(root):
            for n in [dirpath, *(os.path.join(dirpath, f) for f in dirnames + filenames)]:
                os.chown(n, 65534, 65534)
    monkeypatch.setenv("EDGESHIP_CACHE", str(root))
    with pytest.warns(RuntimeWarning, match="not used"):
        m = edgeship.load(good_zip)
    assert m.sha256 == sha256_file(weights / "shapes_cnn_int8.tflite"), "the planted model was loaded"


# -- defect 7: zips ----------------------------------------------------------------------------
def _leftovers(cache: Path):
    found = list((cache / "bundles").glob("*")) if (cache / "bundles").exists() else []
    return found + list(Path(tempfile.gettempdir()).glob(".unzip.*"))


def _zip(members, path: Path, method=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as z:
        for name, data in members:
            z.writestr(name, data)
    return path


def test_zip_bomb_is_refused_before_extracting(tmp_path, cache):
    bomb = _zip([("manifest.json", "{}"), ("model.tflite", b"\0" * (64 << 20))], tmp_path / "bomb.zip")
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(IntegrityError, match="zip bomb"):
        edgeship.load(bomb)
    assert _leftovers(cache) == []


def test_zip_total_size_and_member_count_limits(tmp_path, cache, monkeypatch):
    from edgeship import bundle as bmod

    monkeypatch.setattr(bmod, "ZIP_MAX_BYTES", 1 << 20)
    big = _zip([("manifest.json", "{}"), ("a.bin", os.urandom(2 << 20))], tmp_path / "big.zip", zipfile.ZIP_STORED)
    with pytest.raises(IntegrityError, match="more than"):
        edgeship.load(big)
    monkeypatch.setattr(bmod, "ZIP_MAX_MEMBERS", 10)
    many = _zip([(f"f{i}.txt", "x") for i in range(11)], tmp_path / "many.zip")
    with pytest.raises(IntegrityError, match="members"):
        edgeship.load(many)
    assert _leftovers(cache) == []


def test_rejected_zip_leaves_nothing_behind(good_zip, tmp_path, cache):
    with zipfile.ZipFile(good_zip) as z:
        members = [(i.filename, z.read(i)) for i in z.infolist()]
    tampered = [(n, d + b"x" if n.endswith(".tflite") else d) for n, d in members]
    bad = _zip(tampered, tmp_path / "tampered.zip")
    with pytest.raises(IntegrityError, match="checksum"):
        edgeship.load(bad)
    assert _leftovers(cache) == []
    assert edgeship.load(good_zip).inputs  # and a good one is still cached and loads
    assert len(list((cache / "bundles").iterdir())) == 1
    assert os.stat(cache / "bundles").st_mode & 0o077 == 0


def _patch_all(data: bytes, sig: bytes, offset: int, fmt: str, value) -> bytes:
    """Set a field at ``offset`` in every local (PK\\3\\4) or central (PK\\1\\2) header."""
    b = bytearray(data)
    i = b.find(sig)
    while i >= 0:
        struct.pack_into(fmt, b, i + offset, value)
        i = b.find(sig, i + 4)
    return bytes(b)


def _variants(good: bytes):
    yield "unsupported method", _patch_all(_patch_all(good, b"PK\x03\x04", 8, "<H", 99), b"PK\x01\x02", 10, "<H", 99)
    yield "encrypted", _patch_all(_patch_all(good, b"PK\x03\x04", 6, "<H", 1), b"PK\x01\x02", 8, "<H", 1)
    yield "truncated", good[: len(good) // 2]
    yield "no central directory", good[: good.rfind(b"PK\x01\x02")]
    yield "size lie", _patch_all(good, b"PK\x01\x02", 24, "<I", 5)
    yield "symlink", _patch_all(good, b"PK\x01\x02", 38, "<I", 0o120777 << 16)
    stored = io.BytesIO()
    with zipfile.ZipFile(stored, "w", zipfile.ZIP_STORED) as z:
        z.writestr("manifest.json", "{" + " " * 64 + "}")
    s = bytearray(stored.getvalue())
    s[40] ^= 0xFF  # a data byte: bad CRC
    yield "bad crc", bytes(s)
    dup = io.BytesIO()
    with zipfile.ZipFile(dup, "w") as z:
        z.writestr("manifest.json", "{}")
        z.writestr("MANIFEST.json", "{}")
    yield "duplicate", dup.getvalue()


def test_every_zip_error_is_typed(good_zip, tmp_path, cache):
    good = good_zip.read_bytes()
    for what, data in _variants(good):
        p = tmp_path / f"{what.replace(' ', '_')}.zip"
        p.write_bytes(data)
        try:
            edgeship.load(p)
        except EdgeshipError:
            pass
        except Exception as exc:  # noqa: BLE001
            pytest.fail(f"{what}: untyped {type(exc).__name__}: {exc}")
        else:
            pytest.fail(f"{what}: a broken zip was accepted")
    assert _leftovers(cache) == []


# -- defect 11: non-regular files -------------------------------------------------------------
def _within(seconds, fn):
    out = {}

    def run():
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001
            out["exc"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still blocked after {seconds} s"
    return out.get("exc")


def test_fifo_and_device_files_are_refused(tmp_path):
    fifo = tmp_path / "model.tflite"
    os.mkfifo(fifo)
    exc = _within(20, lambda: edgeship.load(fifo))
    assert isinstance(exc, ModelFormatError) and "FIFO" in str(exc)
    exc = _within(20, lambda: edgeship.load("/dev/zero"))
    assert isinstance(exc, ModelFormatError) and "regular file" in str(exc)
