"""The face unlock store: encryption, integrity, versions, keys, lockout, concurrency, SIGKILL safety.

None of these need the face models: templates are plain 128-d vectors here.
"""
from __future__ import annotations

import json
import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cryptography", reason="the face store needs cryptography (pip install 'edgeship[face]')")

from examples.face_unlock import store as sm  # noqa: E402
from examples.face_unlock.engine import decide  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MODEL = "int8:" + "ab" * 32


def emb(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return v / np.linalg.norm(v)


class Clock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


def _attempt(st, e, user=None, thr=0.5):
    def d(doc):
        r = decide(st.templates(doc, user), e, thr)
        return r["unlocked"], r
    return st.attempt(d, user)


def test_roundtrip_modes_and_no_plaintext(tmp_path):
    root = tmp_path / "s"
    st = sm.Store(root)
    assert st.enroll("ada", [emb(1), emb(2)], model_id=MODEL) == 2
    assert st.enroll("bob", [emb(3)], model_id=MODEL) == 1
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "key").stat().st_mode) == 0o600
    assert stat.S_IMODE((root / "store.bin").stat().st_mode) & 0o077 == 0
    raw = (root / "store.bin").read_bytes()
    assert raw.startswith(sm.MAGIC) and b"ada" not in raw and b"templates" not in raw
    st2 = sm.Store(root)
    users = {u["user"]: u for u in st2.users()}
    assert users["ada"]["templates"] == 2 and users["bob"]["templates"] == 1
    t = st2.templates(st2.load())
    np.testing.assert_allclose(t["ada"][1], emb(2), rtol=0, atol=1e-7)
    st2.remove("ada")
    assert [u["user"] for u in sm.Store(root).users()] == ["bob"]
    with pytest.raises(sm.UnknownUserError, match="no enrolled user 'ada'"):
        st2.remove("ada")
    assert not (root / "images").exists()  # nothing kept unless asked


def test_default_location_is_private_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert sm.default_store_dir() == tmp_path / "xdg" / "edgeship" / "face_unlock"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert sm.default_store_dir() == tmp_path / "home" / ".local" / "share" / "edgeship" / "face_unlock"


@pytest.mark.parametrize("how", ["flip", "truncate", "header", "magic", "empty"])
def test_corrupted_store_is_reported_never_reset(tmp_path, how):
    root = tmp_path / "s"
    sm.Store(root).enroll("ada", [emb(1)], model_id=MODEL)
    p = root / "store.bin"
    raw = bytearray(p.read_bytes())
    if how == "flip":
        raw[-5] ^= 0x01
    elif how == "truncate":
        raw = raw[:-20]
    elif how == "header":  # the header is authenticated data: changing it fails the tag
        raw = bytearray(bytes(raw).replace(b'"cipher": "AES-256-GCM"', b'"cipher": "AES-256-GCM", "x": 1'))
    elif how == "magic":
        raw[:5] = b"XXXXX"
    else:
        raw = bytearray()
    p.write_bytes(bytes(raw))
    with pytest.raises(sm.StoreCorruptError, match="integrity|damaged|truncated|not a face unlock store"):
        sm.Store(root).users()
    with pytest.raises(sm.StoreCorruptError):  # an enrolment does not overwrite the damaged store either
        sm.Store(root).enroll("bob", [emb(2)], model_id=MODEL)
    assert p.read_bytes() == bytes(raw)


def test_wrong_key_missing_key_and_loose_key_permissions(tmp_path):
    root = tmp_path / "s"
    sm.Store(root).enroll("ada", [emb(1)], model_id=MODEL)
    other = tmp_path / "other.key"
    fd = os.open(other, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, os.urandom(32))
    os.close(fd)
    with pytest.raises(sm.WrongKeyError, match="does not belong"):
        sm.Store(root, key_file=other).users()
    short = tmp_path / "short.key"
    fd = os.open(short, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"123")
    os.close(fd)
    with pytest.raises(sm.WrongKeyError, match="32-byte key"):
        sm.Store(root, key_file=short).users()
    with pytest.raises(sm.StoreError, match="key file .* is missing"):
        sm.Store(root, key_file=tmp_path / "nope.key").users()
    os.chmod(root / "key", 0o644)
    with pytest.raises(sm.StoreError, match="readable by others.*chmod 600"):
        sm.Store(root).users()
    os.chmod(root / "key", 0o600)
    assert sm.Store(root).users()[0]["user"] == "ada"


def test_key_file_elsewhere(tmp_path):
    kf = tmp_path / "keys" / "face.key"
    sm.Store(tmp_path / "s", key_file=kf).enroll("ada", [emb(1)], model_id=MODEL)
    assert not (tmp_path / "s" / "key").exists() and stat.S_IMODE(kf.stat().st_mode) == 0o600
    assert sm.Store(tmp_path / "s", key_file=kf).users()[0]["user"] == "ada"


def test_store_from_a_newer_version(tmp_path):
    root = tmp_path / "s"
    sm.Store(root).enroll("ada", [emb(1)], model_id=MODEL)
    p = root / "store.bin"
    raw = p.read_bytes()
    raw2 = raw.replace(b'"format_version": 1', b'"format_version": 2', 1)
    assert raw2 != raw
    p.write_bytes(raw2)
    with pytest.raises(sm.StoreVersionError, match="newer version.*format 2.*up to 1"):
        sm.Store(root).users()


def test_keyring_missing_is_a_clear_error(tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "keyring":
            raise ImportError("No module named 'keyring'")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(sm.MissingDependencyError, match="pip install keyring"):
        sm.Store(tmp_path / "s", use_keyring=True).enroll("ada", [emb(1)], model_id=MODEL)


def test_bad_input(tmp_path):
    st = sm.Store(tmp_path / "s")
    for bad in ("", " ", "*", "x" * 65, "a\nb"):
        with pytest.raises(sm.InputSpecError, match="user name"):
            st.enroll(bad, [emb(1)], model_id=MODEL)
    with pytest.raises(sm.InputSpecError, match="128-d"):
        st.enroll("ada", [np.zeros(64)], model_id=MODEL)
    with pytest.raises(sm.InputSpecError, match="NaN"):
        st.enroll("ada", [np.full(128, np.nan)], model_id=MODEL)
    with pytest.raises(sm.InputSpecError, match="at least one"):
        st.enroll("ada", [], model_id=MODEL)
    with pytest.raises(sm.InputSpecError, match="max_failures"):
        sm.Store(tmp_path / "s", max_failures=0)
    (tmp_path / "file").write_text("x")
    with pytest.raises(sm.StoreError, match="is a file"):
        sm.Store(tmp_path / "file").enroll("ada", [emb(1)], model_id=MODEL)
    st.enroll("ada", [emb(1)], model_id=MODEL)
    with pytest.raises(sm.StoreError, match="enrolled with model"):
        st.enroll("ada", [emb(2)], model_id="fp32:" + "cd" * 32)
    assert st.enroll("ada", [emb(2)], model_id="fp32:" + "cd" * 32, replace=True) == 1


def test_keep_images_encrypted(tmp_path):
    root = tmp_path / "s"
    data = b"\x89PNG fake image bytes that must not appear in clear" * 10
    sm.Store(root).enroll("ada", [emb(1)], model_id=MODEL, images=[data])
    files = list((root / "images").iterdir())
    assert len(files) == 1 and data[:30] not in files[0].read_bytes()
    st = sm.Store(root)
    name = st.load()["users"]["ada"]["images"][0]
    assert st.read_image(name) == data
    st.remove("ada")
    assert list((root / "images").iterdir()) == []


def test_lockout_after_consecutive_failures_and_persists_across_restarts(tmp_path):
    root = tmp_path / "s"
    clock = Clock()
    sm.Store(root).enroll("ada", [emb(1)], model_id=MODEL)
    stranger, ada = emb(99), emb(1)
    st = sm.Store(root, max_failures=3, lockout_s=30, clock=clock)
    for i in range(2):
        ok, r = _attempt(st, stranger, "ada")
        assert not ok and r["reason"] == "below threshold"
    ok, r = _attempt(st, ada, "ada")  # a success resets the count
    assert ok and r["user"] == "ada"
    for i in range(3):
        ok, r = _attempt(st, stranger, "ada")
    assert r.get("lockout_started") is True
    # a new process (a new Store object reading the file) is still locked, even for the right face
    st2 = sm.Store(root, max_failures=3, lockout_s=30, clock=clock)
    ok, r = _attempt(st2, ada, "ada")
    assert not ok and r["reason"] == "locked out" and 0 < r["locked_for_s"] <= 30
    assert sm.Store(root, clock=clock).users()[0]["locked"] is True
    clock.t += 31
    ok, r = _attempt(sm.Store(root, max_failures=3, lockout_s=30, clock=clock), ada, "ada")
    assert ok


def test_lockout_real_clock_short(tmp_path):
    root = tmp_path / "s"
    sm.Store(root).enroll("ada", [emb(1)], model_id=MODEL)
    st = sm.Store(root, max_failures=2, lockout_s=0.6)
    _attempt(st, emb(50), "ada")
    _attempt(st, emb(51), "ada")
    ok, r = _attempt(sm.Store(root, max_failures=2, lockout_s=0.6), emb(1), "ada")
    assert not ok and r["reason"] == "locked out"
    time.sleep(0.7)
    ok, r = _attempt(sm.Store(root, max_failures=2, lockout_s=0.6), emb(1), "ada")
    assert ok


def test_identification_has_its_own_counter(tmp_path):
    root = tmp_path / "s"
    clock = Clock()
    sm.Store(root).enroll("ada", [emb(1)], model_id=MODEL)
    st = sm.Store(root, max_failures=2, lockout_s=10, clock=clock)
    _attempt(st, emb(7))
    _attempt(st, emb(8))
    ok, r = _attempt(st, emb(1))
    assert not ok and r["reason"] == "locked out"
    ok, r = _attempt(st, emb(1), "ada")  # naming the user is a separate counter
    assert ok and r["user"] == "ada"


def test_attempt_errors(tmp_path):
    st = sm.Store(tmp_path / "s")
    st.enroll("ada", [emb(1)], model_id=MODEL)
    with pytest.raises(sm.UnknownUserError):
        _attempt(st, emb(1), "zed")
    st.remove("ada")
    with pytest.raises(sm.StoreError, match="no one is enrolled"):
        _attempt(st, emb(1))


_CHILD = textwrap.dedent("""
    import sys, numpy as np
    sys.path.insert(0, {repo!r})
    from examples.face_unlock.store import Store
    st = Store({root!r})
    for i in range({start}, {stop}):
        e = np.random.default_rng(i).normal(size=128).astype(np.float32)
        st.enroll("{prefix}%03d" % i, [e], model_id={model!r})
        print(i, flush=True)
""")


def _child(root, prefix, start, stop):
    code = _CHILD.format(repo=str(REPO), root=str(root), prefix=prefix, start=start, stop=stop, model=MODEL)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def test_two_processes_enrolling_at_once_lose_nothing(tmp_path):
    root = tmp_path / "s"
    a, b = _child(root, "a", 0, 12), _child(root, "b", 0, 12)
    assert a.wait(120) == 0 and b.wait(120) == 0
    names = {u["user"] for u in sm.Store(root).users()}
    assert names == {f"a{i:03d}" for i in range(12)} | {f"b{i:03d}" for i in range(12)}


def test_store_folder_made_by_another_process_meanwhile_is_used(tmp_path, monkeypatch):
    # the race the two-process test can hit: the folder is absent when checked, and another process
    # creates it before our mkdir; the enrol must go on in that folder, not fail with FileExistsError
    root = tmp_path / "s"
    real_mkdir = Path.mkdir

    def racing_mkdir(self, *a, **k):
        if self == root and not root.exists():
            real_mkdir(self, mode=0o700)  # the other process wins
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", racing_mkdir)
    assert sm.Store(root).enroll("ada", [emb(1)], model_id=MODEL) == 1
    monkeypatch.undo()
    assert [u["user"] for u in sm.Store(root).users()] == ["ada"]
    # a file put there meanwhile is still refused with the store's own error
    other = tmp_path / "f"

    def file_mkdir(self, *a, **k):
        if self == other and not other.exists():
            other.write_text("not a store")
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", file_mkdir)
    with pytest.raises(sm.StoreError, match="it is a file"):
        sm.Store(other).enroll("ada", [emb(1)], model_id=MODEL)


def test_sigkill_while_enrolling_keeps_earlier_enrolments(tmp_path):
    root = tmp_path / "s"
    rng = random.Random(7)
    done = set()
    start = 0
    for round_ in range(4):
        p = _child(root, "u", start, start + 400)
        # wait until it has enrolled at least one user, then kill it at a random moment
        first = p.stdout.readline()
        assert first.strip(), "child enrolled nothing"
        got = [int(first)]
        time.sleep(rng.uniform(0.0, 0.4))
        os.kill(p.pid, signal.SIGKILL)
        rest = p.stdout.read()
        p.wait()
        got += [int(x) for x in rest.split()]
        done |= set(got)
        names = {u["user"] for u in sm.Store(root).users()}  # loads: never damaged by the kill
        for i in done:
            assert f"u{i:03d}" in names, f"enrolment {i} lost after SIGKILL in round {round_}"
        start = max(done) + 1 if len(names) == len(done) else max(max(done), len(names)) + 1
    # the next write under the lock clears temporary files a killed writer left behind
    sm.Store(root).enroll("last", [emb(1)], model_id=MODEL)
    assert not list(root.glob(".store.bin.*.tmp"))


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "examples.face_unlock", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env=env)


def test_cli_users_remove_and_errors_without_models(tmp_path):
    root = tmp_path / "s"
    r = _cli("users", "--store", str(root), "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == {"ok": True, "store": str(root), "users": []}
    sm.Store(root).enroll("ada", [emb(1)], model_id=MODEL)
    r = _cli("users", "--store", str(root), "--json")
    out = json.loads(r.stdout)
    assert r.returncode == 0 and [u["user"] for u in out["users"]] == ["ada"] and out["users"][0]["locked"] is False
    r = _cli("remove", "--user", "zed", "--store", str(root), "--json")
    assert r.returncode == 2 and json.loads(r.stdout)["error"]["type"] == "UnknownUserError"
    r = _cli("remove", "--user", "ada", "--store", str(root), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["removed"] == "ada"
    sm.Store(root).enroll("bob", [emb(2)], model_id=MODEL)
    p = root / "store.bin"
    raw = bytearray(p.read_bytes())
    raw[-1] ^= 0xFF
    p.write_bytes(bytes(raw))
    r = _cli("users", "--store", str(root), "--json")
    assert r.returncode == 2 and json.loads(r.stdout)["error"]["type"] == "StoreCorruptError"
    assert len(r.stdout.strip().splitlines()) == 1
    r = _cli("users", "--store", str(root))
    assert r.returncode == 2 and "integrity" in r.stderr
    r = _cli("unlock", "--store", str(tmp_path / "empty"), "--image", "x.jpg", "--json")
    assert r.returncode == 2 and "nobody is enrolled" in json.loads(r.stdout)["error"]["message"]
    r = _cli("enroll", "--user", "x", "--store", str(root), "--json")
    assert r.returncode == 2 and "exactly one of --images" in json.loads(r.stdout)["error"]["message"]


def test_keyring_key_recorded_in_header(tmp_path, monkeypatch):
    import types

    vault = {}
    fake = types.ModuleType("keyring")
    fake.get_password = lambda service, account: vault.get((service, account))
    fake.set_password = lambda service, account, pw: vault.__setitem__((service, account), pw)
    monkeypatch.setitem(sys.modules, "keyring", fake)
    root = tmp_path / "s"
    sm.Store(root, use_keyring=True).enroll("ada", [emb(1)], model_id=MODEL)
    assert not (root / "key").exists() and len(vault) == 1
    assert sm.Store(root).users()[0]["user"] == "ada"  # the header says the key is in the keyring
    vault.clear()
    with pytest.raises(sm.StoreError, match="not in the OS keyring"):
        sm.Store(root).users()
