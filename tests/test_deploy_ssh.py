"""`edgeship deploy --host`: a real SSH round trip against an asyncssh server on 127.0.0.1."""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("asyncssh", reason="asyncssh (edgeship[deploy]) not installed")

from typer.testing import CliRunner  # noqa: E402

from edgeship.cli import app  # noqa: E402
from edgeship.errors import InputSpecError, TargetError  # noqa: E402
from edgeship.targets.deploy import deploy, deploy_ssh, parse_host  # noqa: E402
from tests._deploy_helpers import start_server  # noqa: E402
from tests._mcu_helpers import tiny_models  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv, stop = start_server(tmp_path_factory.mktemp("ssh"))
    yield srv
    stop()


@pytest.fixture(scope="module")
def model():
    return tiny_models()["float"]


def _sha(p: Path) -> str:
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


def test_cli_deploy_round_trip_over_ssh(server, model, tmp_path):
    out = tmp_path / "bundle"
    res = CliRunner().invoke(app, [
        "deploy", str(model), "--target", "host", "-o", str(out),
        "--host", f"{server.user}@127.0.0.1", "--port", str(server.port),
        "--identity", str(server.identity), "--known-hosts", str(server.known_hosts),
        "--remote-python", sys.executable, "--remote-dir", "deploy_test", "--runs", "3", "--no-install", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    assert doc["ok"] and doc["target"] == "host"
    remote = doc["remote"]
    bench = remote["bench"]
    # --no-install: the named python's own edgeship ran (tests/test_deploy_install.py covers installing)
    assert remote["installed"] is None and remote["run_python"] == sys.executable
    # the JSON came from `edgeship bench` run on the far side of the SSH connection
    assert bench["ok"] is True and bench["runs"] == 3
    assert bench["sha256"] == _sha(model)
    assert bench["latency_ms"]["p50"] > 0
    assert remote["remote_dir"] == str(server.home / "deploy_test")
    assert any(c.endswith("-m edgeship bench tiny_float.tflite --json --runs 3 --warmup 3") for c in server.commands)
    # the bundle arrived intact and was checked there; the result is kept locally
    for name in ("manifest.json", "README.md", "tiny_float.tflite"):
        assert _sha(server.home / "deploy_test" / name) == _sha(out / name)
    saved = json.loads((out / "remote" / "bench.json").read_text())
    assert saved["bench"]["sha256"] == bench["sha256"]
    from edgeship.bundle import read_bundle

    read_bundle(out)  # remote/ does not break the bundle's own checksums


def test_host_key_mismatch_is_refused(server, model, tmp_path):
    import asyncssh

    bundle = deploy(model, "host", tmp_path / "b").bundle_dir
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    bad_known = tmp_path / "known_hosts"
    bad_known.write_text(f"[127.0.0.1]:{server.port} {other}\n")
    with pytest.raises(TargetError, match="cannot connect"):
        deploy_ssh(bundle, f"{server.user}@127.0.0.1", port=server.port, identity=server.identity,
                   known_hosts=bad_known, python=sys.executable)
    assert not (bundle / "remote" / "bench.json").exists()


def test_unknown_client_key_is_refused(server, model, tmp_path):
    import asyncssh

    bundle = deploy(model, "host", tmp_path / "b").bundle_dir
    key = tmp_path / "other_key"
    key.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
    key.chmod(0o600)
    with pytest.raises(TargetError, match="cannot connect"):
        deploy_ssh(bundle, f"{server.user}@127.0.0.1", port=server.port, identity=key,
                   known_hosts=server.known_hosts, python=sys.executable)


def test_missing_remote_edgeship_with_no_install(server, model, tmp_path):
    base_python = Path(sys.base_prefix) / "bin" / "python3"
    if not base_python.is_file():
        pytest.skip("no base interpreter without edgeship to play the bare device")
    bundle = deploy(model, "host", tmp_path / "b").bundle_dir
    with pytest.raises(TargetError, match="not installed.*--no-install"):
        deploy_ssh(bundle, f"{server.user}@127.0.0.1", port=server.port, identity=server.identity,
                   known_hosts=server.known_hosts, python=str(base_python), install=False)


def test_parse_host_and_inputs(model, tmp_path):
    assert parse_host("pi@192.168.1.20") == ("pi", "192.168.1.20")
    assert parse_host("raspberrypi.local") == (None, "raspberrypi.local")
    for bad in ("", "pi@", "a b@host", "pi@host;rm -rf"):
        with pytest.raises(InputSpecError, match="user@address"):
            parse_host(bad)
    bundle = deploy(model, "host", tmp_path / "b").bundle_dir
    with pytest.raises(InputSpecError, match="--port"):
        deploy_ssh(bundle, "pi@127.0.0.1", port=70000)
    with pytest.raises(InputSpecError, match="--identity"):
        deploy_ssh(bundle, "pi@127.0.0.1", identity=tmp_path / "nope")


def _rename_manifest(bundle: Path, name: str) -> None:
    """A crafted bundle: the manifest's name changed, every file checksum still correct."""
    m = json.loads((bundle / "manifest.json").read_text())
    m["name"] = name
    (bundle / "manifest.json").write_text(json.dumps(m))


def test_bundle_name_cannot_traverse_on_the_device(server, model, tmp_path):
    """Issue 11, defect 1: a bundle named '../.ssh' must never become a remote folder."""
    from edgeship.bundle import read_bundle
    from edgeship.errors import IntegrityError

    bundle = deploy(model, "host", tmp_path / "b").bundle_dir
    (bundle / "authorized_keys").write_text("ssh-ed25519 AAAA attacker\n")
    _rename_manifest(bundle, "../.ssh")
    with pytest.raises(IntegrityError, match="plain folder name"):
        read_bundle(bundle)
    n_commands = len(server.commands)
    with pytest.raises(IntegrityError, match="plain folder name"):
        deploy_ssh(bundle, f"{server.user}@127.0.0.1", port=server.port, identity=server.identity,
                   known_hosts=server.known_hosts, python=sys.executable, install=False)
    assert len(server.commands) == n_commands  # refused before connecting
    assert not (server.home / ".ssh" / "authorized_keys").exists()
    for bad in ("..", "a/b", ".hidden", "x\ny"):
        _rename_manifest(bundle, bad)
        with pytest.raises(IntegrityError):
            read_bundle(bundle)


def test_results_are_not_written_through_a_symlink_in_the_bundle(server, model, tmp_path):
    """Issue 11, defect 11: a 'remote' symlink inside the bundle must not redirect bench.json."""
    from edgeship.errors import IntegrityError

    bundle = deploy(model, "host", tmp_path / "b").bundle_dir
    target = tmp_path / "elsewhere"
    target.mkdir()
    (bundle / "remote").symlink_to(target)
    with pytest.raises(IntegrityError, match="symbolic link"):
        deploy_ssh(bundle, f"{server.user}@127.0.0.1", port=server.port, identity=server.identity,
                   known_hosts=server.known_hosts, python=sys.executable, install=False)
    assert list(target.iterdir()) == []


def test_write_bundle_refuses_an_unsafe_name(model, tmp_path):
    from edgeship.bundle import write_bundle

    with pytest.raises(InputSpecError, match="plain folder name"):
        write_bundle(tmp_path / "ok", {"m": model}, name="../.ssh")
