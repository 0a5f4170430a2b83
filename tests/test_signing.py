"""Signed bundles: Ed25519 over the manifest; load(trusted_keys=...) refuses anything else (issue 11)."""
from __future__ import annotations

import json
import os
import stat
import zipfile

from pathlib import Path

import pytest

import edgeship
from edgeship.bundle import write_bundle, write_zip
from edgeship.errors import IntegrityError, ModelFormatError
from edgeship.signing import new_keypair, sign_bundle, verify_bundle_signature

pytest.importorskip("cryptography")


@pytest.fixture()
def keys(tmp_path):
    return new_keypair(tmp_path / "keys" / "release"), new_keypair(tmp_path / "keys" / "other")


@pytest.fixture()
def signed(weights, tmp_path, keys):
    (priv, _), _ = keys
    b = write_bundle(tmp_path / "b", {"tflite-int8": weights / "shapes_cnn_int8.tflite"}, labels=["a", "b", "c"])
    b = Path(b["_dir"])
    sign_bundle(b, priv)
    return b


def test_keypair_files(keys):
    (priv, pub), _ = keys
    assert stat.S_IMODE(os.stat(priv).st_mode) == 0o600
    assert pub.name == "release.pub" and b"PUBLIC KEY" in pub.read_bytes()
    with pytest.raises(ModelFormatError, match="already exists"):
        new_keypair(priv)  # never overwrites a key


def test_signed_bundle_loads_with_its_key_dir_and_zip(signed, keys, tmp_path):
    (_, pub), (_, other_pub) = keys
    assert edgeship.load(signed, trusted_keys=[pub]).inputs
    assert edgeship.load(signed, trusted_keys=[other_pub, pub]).inputs
    assert edgeship.load(signed, trusted_keys=str(pub)).inputs  # one key as a path
    z = write_zip(signed, tmp_path / "b.zip")
    with zipfile.ZipFile(z) as zf:
        assert "signature.json" in zf.namelist()
    assert edgeship.load(z, trusted_keys=[pub]).inputs
    assert edgeship.load(signed).inputs  # without trusted_keys a signature is simply not required


def test_untrusted_unsigned_and_single_files_are_refused(signed, keys, weights, tmp_path):
    (_, pub), (_, other_pub) = keys
    with pytest.raises(IntegrityError, match="not among the trusted keys"):
        edgeship.load(signed, trusted_keys=[other_pub])
    unsigned = write_bundle(tmp_path / "u", {"tflite-int8": weights / "shapes_cnn_int8.tflite"})["_dir"]
    with pytest.raises(IntegrityError, match="not signed"):
        edgeship.load(unsigned, trusted_keys=[pub])
    with pytest.raises(IntegrityError, match="single model file"):
        edgeship.load(weights / "shapes_cnn_int8.tflite", trusted_keys=[pub])
    with pytest.raises(IntegrityError, match="empty"):
        edgeship.load(signed, trusted_keys=[])


def test_tampering_is_refused(signed, keys, weights):
    (_, pub), _ = keys
    mpath = signed / "manifest.json"
    original = mpath.read_bytes()
    # 1. a changed manifest (here: the labels) breaks the signature
    m = json.loads(original)
    m["labels"] = ["x", "y", "z"]
    mpath.write_text(json.dumps(m, indent=2) + "\n")
    with pytest.raises(IntegrityError, match="changed after signing"):
        edgeship.load(signed, trusted_keys=[pub])
    mpath.write_bytes(original)
    # 2. a changed model file breaks its checksum
    f = signed / "shapes_cnn_int8.tflite"
    data = f.read_bytes()
    f.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(IntegrityError):
        edgeship.load(signed, trusted_keys=[pub])
    f.write_bytes(data)
    # 3. a model swapped in together with a re-hashed manifest: checksums hold, the signature does not
    (signed / "shapes_cnn_int8.tflite").write_bytes((weights / "shapes_cnn_fp32.tflite").read_bytes())
    from edgeship._io import sha256_file

    m = json.loads(original)
    m["files"]["tflite-int8"]["sha256"] = sha256_file(signed / "shapes_cnn_int8.tflite")
    mpath.write_text(json.dumps(m, indent=2) + "\n")
    with pytest.raises(IntegrityError, match="changed after signing"):
        edgeship.load(signed, trusted_keys=[pub])
    # 4. a forged signature file
    mpath.write_bytes(original)
    (signed / "shapes_cnn_int8.tflite").write_bytes(data)
    rec = json.loads((signed / "signature.json").read_text())
    rec["signature"] = "00" * 64
    (signed / "signature.json").write_text(json.dumps(rec))
    with pytest.raises(IntegrityError, match="does not match"):
        edgeship.load(signed, trusted_keys=[pub])
    (signed / "signature.json").write_text("{not json")
    with pytest.raises(IntegrityError, match="malformed"):
        verify_bundle_signature(signed, [pub])


def test_bad_key_inputs_are_typed(signed, tmp_path):
    (tmp_path / "junk.pub").write_text("hello")
    with pytest.raises(ModelFormatError, match="not an Ed25519 public key"):
        edgeship.load(signed, trusted_keys=[tmp_path / "junk.pub"])
    with pytest.raises(ModelFormatError, match="no such file"):
        edgeship.load(signed, trusted_keys=[tmp_path / "missing.pub"])
    with pytest.raises(ModelFormatError):
        sign_bundle(signed, tmp_path / "junk.pub")


def test_cli_keys_new_and_bundle_sign(weights, tmp_path):
    """`edgeship keys new` + `edgeship bundle --sign --zip`: the zip carries the signature."""
    import json as _json

    from typer.testing import CliRunner

    from edgeship.cli import app

    r = CliRunner().invoke(app, ["keys", "new", str(tmp_path / "k"), "--json"])
    assert r.exit_code == 0, r.output
    doc = _json.loads(r.stdout)
    assert doc["ok"] and len(doc["key_id"]) == 16
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    again = CliRunner().invoke(app, ["keys", "new", str(tmp_path / "k"), "--json"])
    assert again.exit_code == 2 and "already exists" in again.stdout
    r = CliRunner().invoke(app, ["bundle", f"tflite-int8={weights / 'shapes_cnn_int8.tflite'}", "-o",
                                 str(tmp_path / "sb"), "--zip", "--sign", str(tmp_path / "k"), "--json"])
    assert r.exit_code == 0, r.output
    assert _json.loads(r.stdout)["signature"].endswith("signature.json")
    m = edgeship.load(tmp_path / "sb.zip", trusted_keys=[tmp_path / "k.pub"])
    assert m.inputs
