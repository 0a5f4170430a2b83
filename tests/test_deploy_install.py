"""`edgeship deploy --host` installs the edgeship that runs here (a wheel), not a package-index release.

The "device" is this machine behind a real asyncssh server (tests/_deploy_helpers.py). Its
Python is the base interpreter, which has no edgeship. The device already "has" numpy, typer,
rich and ai-edge-litert: a folder of links to this venv's packages minus edgeship, put on the
device's PYTHONPATH, so pip finds every requirement satisfied without a network. What is left
for deploy to do is the part under test: build the wheel from this source tree, copy it over
SFTP, make ~/.edgeship/venv on the device, pip-install the wheel there, and bench with it.

Set EDGESHIP_TEST_NETWORK=1 to also run the install into a truly bare venv (pip downloads
numpy/typer/rich/ai-edge-litert from the configured index).
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("asyncssh", reason="asyncssh (edgeship[deploy]) not installed")

from typer.testing import CliRunner  # noqa: E402

import edgeship  # noqa: E402
from edgeship.cli import app  # noqa: E402
from edgeship.errors import TargetError  # noqa: E402
from edgeship.targets import get_target  # noqa: E402
from edgeship.targets.deploy import deploy, deploy_ssh  # noqa: E402
from edgeship.targets.device_install import core_requirements, find_source_tree, local_wheel, runtime_line  # noqa: E402
from tests._deploy_helpers import start_server  # noqa: E402
from tests._mcu_helpers import tiny_models  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BASE_PYTHON = Path(sys.base_prefix) / "bin" / "python3"
# Not linked into the device's package folder: edgeship itself and pip's own tooling.
_NOT_DEPS = ("edgeship", "__editable__", "pip", "setuptools", "_distutils_hack", "wheel", "pkg_resources",
             "__pycache__", "distutils-precedence")


def _sha(p: Path) -> str:
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


def _site_packages() -> Path:
    import numpy

    return Path(numpy.__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    """(server, env of the device's commands, its base python) with the deps but no edgeship."""
    if not BASE_PYTHON.is_file() or Path(sys.prefix) == Path(sys.base_prefix):
        pytest.skip("needs a venv on top of a base interpreter to play the bare device")
    tmp = tmp_path_factory.mktemp("device")
    deps = tmp / "deps"
    deps.mkdir()
    for entry in _site_packages().iterdir():
        if not entry.name.startswith(_NOT_DEPS) and not entry.name.endswith(".pth"):
            (deps / entry.name).symlink_to(entry)
    env = {"PYTHONPATH": str(deps), "PIP_NO_INDEX": "1", "PIP_NO_CACHE_DIR": "1"}
    bare = subprocess.run([str(BASE_PYTHON), "-c", "import edgeship"], env=dict(os.environ, **env),
                          capture_output=True, text=True)
    assert bare.returncode != 0, "the device python must not have edgeship before deploy installs it"
    srv, stop = start_server(tmp / "ssh", env=env)
    yield srv, env
    stop()


@pytest.fixture(scope="module")
def model():
    return tiny_models()["float"]


@pytest.mark.slow
def test_deploy_installs_this_edgeship_as_a_wheel(device, model, tmp_path, monkeypatch):
    server, env = device
    monkeypatch.setenv("EDGESHIP_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "bundle"
    res = CliRunner().invoke(app, [
        "deploy", str(model), "--target", "host", "-o", str(out),
        "--host", f"{server.user}@127.0.0.1", "--port", str(server.port),
        "--identity", str(server.identity), "--known-hosts", str(server.known_hosts),
        "--remote-python", str(BASE_PYTHON), "--remote-dir", "inst", "--runs", "3", "--json"])
    assert res.exit_code == 0, res.output
    remote = json.loads(res.stdout.strip().splitlines()[-1])["remote"]
    inst = remote["installed"]
    venv = server.home / ".edgeship" / "venv"
    # the wheel was built from this source tree, and the device got exactly those bytes
    assert inst["origin"] == "source-build" and inst["source"] == str(REPO)
    assert inst["wheel"] == f"edgeship-{edgeship.__version__}-py3-none-any.whl"
    local = tmp_path / "cache" / "wheels"
    (built,) = list(local.glob("*/edgeship-*.whl"))
    assert _sha(server.home / ".edgeship" / "wheels" / inst["wheel"]) == _sha(built) == inst["wheel_sha256"]
    # installed into a venv made from the named python, with the host profile's runtime line
    assert inst["venv"] == str(venv) and inst["venv_created"] and inst["base_python"] == str(BASE_PYTHON)
    assert inst["requirements"] == ["numpy>=1.24", "typer>=0.12", "rich>=13", "ai-edge-litert==2.3.0"]
    assert inst["runtime_line"].startswith("pip install ai-edge-litert==2.3.0")
    assert any("--no-deps --force-reinstall" in c and c.endswith(inst["wheel"]) for c in server.commands)
    # the bench ran with the venv's python, which imported the installed copy of this source
    assert remote["python"] == str(BASE_PYTHON) and remote["run_python"] == str(venv / "bin" / "python")
    installed_init = Path(inst["edgeship_file"])
    assert installed_init.is_relative_to(venv.resolve()) and "site-packages" in installed_init.parts
    assert installed_init.read_bytes() == (REPO / "sdk" / "__init__.py").read_bytes()
    assert remote["edgeship_version"] == edgeship.__version__
    bench = remote["bench"]
    assert bench["ok"] and bench["runs"] == 3 and bench["sha256"] == _sha(model)
    assert any(c.startswith(f"cd {server.home / 'inst'} && {venv}/bin/python -s -m edgeship bench")
               for c in server.commands)
    # the device's own python is untouched: still no edgeship outside the venv
    assert subprocess.run([str(BASE_PYTHON), "-c", "import edgeship"], env=dict(os.environ, **env),
                          capture_output=True).returncode != 0

    # a second deploy reuses the cached wheel and the venv, and still reports what it installed
    bundle = deploy(model, "host", tmp_path / "b2").bundle_dir
    again = deploy_ssh(bundle, f"{server.user}@127.0.0.1", port=server.port, identity=server.identity,
                       known_hosts=server.known_hosts, python=str(BASE_PYTHON), runs=2)
    assert again["installed"]["origin"] == "source-cache" and not again["installed"]["venv_created"]
    assert again["installed"]["wheel_sha256"] == inst["wheel_sha256"] and again["bench"]["runs"] == 2

    # --no-install uses the named python as it is: the bare one has no edgeship
    with pytest.raises(TargetError, match="not installed.*--no-install"):
        deploy_ssh(bundle, f"{server.user}@127.0.0.1", port=server.port, identity=server.identity,
                   known_hosts=server.known_hosts, python=str(BASE_PYTHON), install=False)


def test_target_without_a_runtime_line_is_refused_before_connecting(model, tmp_path):
    bundle = deploy(model, "null", tmp_path / "b").bundle_dir
    # port 9 on 127.0.0.1 answers nothing: the error must come before any connection attempt
    with pytest.raises(TargetError, match="'null' names no pip line that installs a tflite runtime"):
        deploy_ssh(bundle, "pi@127.0.0.1", port=9, python="python3")


def test_runtime_lines_come_from_the_target_profile(tmp_path):
    assert runtime_line(get_target("rpi4"), "tflite")[1] == ["ai-edge-litert==1.4.0"]
    assert runtime_line(get_target("rpi5"), "onnx")[1] == ["onnxruntime==1.31.1"]
    assert runtime_line(get_target("host"), "tflite")[1] == ["ai-edge-litert==2.3.0"]
    assert runtime_line(get_target("edgetpu"), "tflite") is None   # libedgetpu comes from apt


def test_wheel_is_cached_by_source_hash_and_holds_only_core_requirements(tmp_path):
    first = local_wheel(tmp_path)
    again = local_wheel(tmp_path)
    assert find_source_tree() is not None and first.origin == "source-build"
    assert again.origin == "source-cache" and again.path == first.path and again.sha256 == first.sha256
    reqs = core_requirements(first.path)
    assert reqs == ["numpy>=1.24", "typer>=0.12", "rich>=13"]   # runtimes and extras come from elsewhere
    with zipfile.ZipFile(first.path) as z:
        names = set(z.namelist())
    assert {"edgeship/__init__.py", "edgeship/targets/device_install.py", "edgeship/models/registry.py"} <= names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def _contents(path):
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist() if not n.endswith("/RECORD")}


@pytest.mark.slow
def test_an_installed_edgeship_ships_its_wheel_or_repacks_it(tmp_path):
    import shutil

    built = local_wheel(tmp_path / "cache").path
    wheel = tmp_path / "dl" / built.name
    wheel.parent.mkdir()
    shutil.copy(built, wheel)
    site = tmp_path / "site"
    res = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                          "--no-compile", "--target", str(site), str(wheel)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    # a python whose edgeship is that installed copy, not this source tree
    probe = ("import json, edgeship; from edgeship.targets.device_install import local_wheel; "
             "w = local_wheel(); print(json.dumps(dict(w.to_dict(), path=str(w.path), file=edgeship.__file__)))")
    env = dict(os.environ, PYTHONPATH=str(site), EDGESHIP_CACHE=str(tmp_path / "cache2"))

    def run():
        out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout.strip().splitlines()[-1])

    got = run()
    assert got["file"] == str(site / "edgeship" / "__init__.py")
    assert got["origin"] == "installed-wheel" and got["path"] == str(wheel)   # pip recorded where it came from
    wheel.unlink()
    got = run()
    assert got["origin"] == "repacked" and got["wheel"] == built.name
    assert _contents(got["path"]) == _contents(built)
    with zipfile.ZipFile(got["path"]) as z:   # a fresh RECORD that pip accepts
        assert "edgeship/__init__.py,sha256=" in z.read(f"edgeship-{edgeship.__version__}.dist-info/RECORD").decode()
    check = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                            "--target", str(tmp_path / "site2"), got["path"]], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert (tmp_path / "site2" / "edgeship" / "__init__.py").read_bytes() == (REPO / "sdk" / "__init__.py").read_bytes()


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("EDGESHIP_TEST_NETWORK") != "1",
                    reason="set EDGESHIP_TEST_NETWORK=1 to pip-install the device's requirements from the index")
def test_deploy_into_a_bare_device_over_the_network(model, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGESHIP_CACHE", str(tmp_path / "cache"))
    python = "/usr/bin/python3" if Path("/usr/bin/python3").is_file() else str(BASE_PYTHON)
    server, stop = start_server(tmp_path / "ssh")
    try:
        bundle = deploy(model, "host", tmp_path / "b").bundle_dir
        got = deploy_ssh(bundle, f"{server.user}@127.0.0.1", port=server.port, identity=server.identity,
                         known_hosts=server.known_hosts, python=python, runs=3)
    finally:
        stop()
    assert got["installed"]["venv_created"] and got["bench"]["ok"] and got["bench"]["backend"] == "litert"
    print(f"bare-device install took {got['installed']['seconds']:.1f} s")


def test_docstring_example():
    import doctest

    from edgeship.targets import device_install

    result = doctest.testmod(device_install, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
