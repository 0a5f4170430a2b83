"""Deploy bundles per target, and a round trip over SSH that benchmarks on the device.

``deploy(model, target, out_dir)`` writes an edgeship bundle (``manifest.json`` with
checksums, see :mod:`edgeship.bundle`) holding the right files for the target and a
``README.md`` with the command that runs it there:

========  ==================================================================
android   ``assets/`` drop-in folder: model with TFLite metadata, fp16 variant
          for the GPU delegate (float models), labels, GPU compatibility report
ios       the .tflite for LiteRT on iOS (+ a Core ML .mlpackage when given)
mcu       model_data.cc/.h, op_resolver.h, exact TFLM arena and latency report
others    the model and the profile's install / run commands (rpi4, host, ...)
========  ==================================================================

``deploy_ssh(bundle_dir, host=...)`` copies a bundle over SFTP (asyncssh), installs a wheel of
the edgeship running here into a venv on the device (``~/.edgeship/venv``; edgeship is not on
any package index) with the target's runtime pip line, runs ``python -m edgeship bench MODEL
--json`` there and returns the parsed JSON (``--no-install``: use the device's edgeship as is).

A target's bundler is part of its profile (``TargetProfile.bundler``, next to its check, in the
target's own module); targets without one get the generic bundle (model + README).

Example:
    >>> from edgeship.targets import get_target
    >>> sorted(n for n in ("android", "ios", "mcu", "rpi4") if get_target(n).bundler is not None)
    ['android', 'ios', 'mcu']
"""
from __future__ import annotations

import json
import os
import re
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Union

from .._io import atomic_write_json, sha256_file
from ..errors import IncompatibleTargetError, InputSpecError, IntegrityError, ModelFormatError, TargetError
from .profile import Staged, TargetProfile

if TYPE_CHECKING:
    from .device_install import LocalWheel

PathLike = Union[str, os.PathLike]


# --- the generic bundler --------------------------------------------------------------
def bench_command(model_name: str, python: str = "python3") -> str:
    """The command that runs and times a bundled model on a device (one JSON object on stdout)."""
    return f"{python} -m edgeship bench {shlex.quote(model_name)} --json"


def _generic(model: Path, stage: Path, options: dict, profile: TargetProfile) -> Staged:
    target = profile.name
    run = bench_command(model.name)
    install = "\n".join(profile.install) or "pip install edgeship"
    readme = f"""# {model.name} on {profile.title}

Install the runtime on the device:

```sh
{install}
```

Run and time it there (one JSON object on stdout):

```sh
{run}
```

Or from Python: `import edgeship; m = edgeship.load("{model.name}"); m.predict(x)`.

edgeship is not on a package index: `edgeship deploy --target {target} --host user@device` builds a wheel
of the edgeship that wrote this bundle, installs it with the runtime line above into `~/.edgeship/venv`
on the device, copies the bundle and runs the command there.
""" + "".join(f"\n- {n}" for n in profile.notes) + ("\n" if profile.notes else "")
    return Staged(files={target: model}, readme=readme, run_command=run)


# --- deploy ----------------------------------------------------------------------------
@dataclass
class DeployResult:
    bundle_dir: Path
    target: str
    files: Dict[str, str]
    run_command: str
    remote: Optional[dict] = None

    def to_dict(self) -> dict:
        return {"bundle": str(self.bundle_dir), "target": self.target, "files": self.files,
                "run_command": self.run_command, "remote": self.remote}


def deploy(model: PathLike, target: str, out_dir: PathLike, *, labels: Optional[Sequence[str]] = None,
           mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None,
           image: bool = False, overwrite: bool = False, preprocessing: Optional[dict] = None,
           postprocessing: Optional[dict] = None, app_files: Optional[Dict[str, Union[str, bytes]]] = None,
           app_readme: str = "",
           app_run_command: Optional[str] = None, trusted_keys: Optional[Sequence] = None,
           **options) -> DeployResult:
    """Write the deploy bundle for ``target`` into ``out_dir``.

    ``model`` is a ``.tflite``/``.onnx`` file, or an edgeship bundle (folder or ``.zip``) whose
    default model is deployed (its labels, preprocessing and postprocessing are carried over unless given here;
    the output manifest's ``source`` names the bundle, its manifest hash and the signing key).

    ``trusted_keys`` (Ed25519 public keys, as :func:`edgeship.load` takes them): ``model`` must
    then be a bundle signed by one of them. Its checksums and signature are verified before
    anything else happens (no target check, no staging, nothing written at ``out_dir``); an
    unsigned, untrusted or changed bundle, or a single model file, raises
    :class:`~edgeship.errors.IntegrityError`. The verified model is copied and re-hashed
    against the signed manifest before it is used, so a file swapped after verification is caught.

    ``preprocessing`` and ``postprocessing`` are recorded in the manifest (e.g. a KWS front end's
    :meth:`~edgeship.audio.FrontEndSpec.to_dict` and detector setting's
    :meth:`~edgeship.kws.DetectorConfig.to_manifest`). An app adds its device entry point with
    ``app_files`` ({file name: path or bytes}, checksummed like every bundle file),
    ``app_readme`` (appended to the README) and ``app_run_command`` (what runs it there).

    Example:
        >>> # deploy("kws_int8.tflite", "mcu", "out/kws_mcu").files
    """
    model = Path(model)
    if trusted_keys is not None or _is_bundle(model):
        with tempfile.TemporaryDirectory(prefix="edgeship-deploy-src-") as tmp:
            copy, source = _verified_bundle_model(model, trusted_keys, Path(tmp))
            bundle_manifest = source.pop("_manifest")
            if labels is None and bundle_manifest.get("labels"):
                labels = bundle_manifest["labels"]
            if preprocessing is None and bundle_manifest.get("preprocessing"):
                preprocessing = bundle_manifest["preprocessing"]
            if postprocessing is None and bundle_manifest.get("postprocessing"):
                postprocessing = bundle_manifest["postprocessing"]
            return _deploy_model(copy, target, out_dir, labels=labels, mean=mean, std=std, image=image,
                                 overwrite=overwrite, preprocessing=preprocessing,
                                 postprocessing=postprocessing, app_files=app_files,
                                 app_readme=app_readme, app_run_command=app_run_command, source=source, **options)
    return _deploy_model(model, target, out_dir, labels=labels, mean=mean, std=std, image=image,
                         overwrite=overwrite, preprocessing=preprocessing, postprocessing=postprocessing,
                         app_files=app_files, app_readme=app_readme, app_run_command=app_run_command, source=model,
                         **options)


def _is_bundle(p: Path) -> bool:
    if p.is_dir():
        return True
    try:
        with open(p, "rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def _verified_bundle_model(bundle: Path, trusted_keys: Optional[Sequence], tmp: Path):
    """Verify a bundle (checksums, and the signature when ``trusted_keys`` is given), copy its
    default model into ``tmp`` and check the copy against the manifest; returns (copy, source dict)."""
    import hashlib
    import shutil

    from ..bundle import MANIFEST, resolve_bundle_file

    if trusted_keys is not None and isinstance(trusted_keys, (str, bytes, os.PathLike)):
        trusted_keys = [trusted_keys]
    if not bundle.exists():
        raise ModelFormatError(f"expected a model file or bundle, got {str(bundle)!r} (no such file)")
    if not _is_bundle(bundle):
        raise IntegrityError(f"{bundle.name} is a single model file, which carries no signature; trusted keys "
                             "require a signed bundle (edgeship bundle --sign KEY, or edgeship.signing.sign_bundle)")
    path, manifest = resolve_bundle_file(bundle, None)  # every checksum; a zip is unpacked privately
    key_id = None
    manifest_bytes = (Path(manifest["_dir"]) / MANIFEST).read_bytes()
    if trusted_keys is not None:
        from ..signing import verify_bundle_signature

        key_id = verify_bundle_signature(manifest["_dir"], trusted_keys, manifest, manifest_bytes)
    wanted = {e.get("sha256") for e in manifest["files"].values() if Path(manifest["_dir"]) / e["path"] == path}
    copy = tmp / path.name
    shutil.copyfile(path, copy)
    if sha256_file(copy) not in wanted:
        raise IntegrityError(f"{path.name} in bundle {bundle.name} changed after it was verified; deploy again")
    manifest_sha = hashlib.sha256(manifest_bytes).hexdigest()
    source = {"path": str(bundle), "bundle": manifest.get("name"), "model": path.name,
              "sha256": sha256_file(copy), "manifest_sha256": manifest_sha, "signed_by": key_id,
              "_manifest": manifest}
    return copy, source


def _deploy_model(model: Path, target: str, out_dir: PathLike, *, labels, mean, std, image, overwrite,
                  preprocessing, postprocessing, app_files, app_readme, app_run_command, source,
                  **options) -> DeployResult:
    from ..bundle import write_bundle
    from . import check, get_target

    if not model.is_file():
        raise ModelFormatError(f"expected a model file, got {str(model)!r} (not a file)")
    profile = get_target(target)  # TargetError listing the targets for an unknown name
    report = check(model, profile)
    if not report.compatible:
        msgs = "; ".join(f"{p.message} (fix: {p.fix})" for p in report.blocking)
        raise IncompatibleTargetError(f"{model.name} cannot be deployed to {target}: {msgs}", report=report.to_dict())
    opts = dict(options, labels=list(labels) if labels else None, mean=mean, std=std, image=image)
    with tempfile.TemporaryDirectory(prefix="edgeship-deploy-") as tmp:
        stage = Path(tmp)
        staged = (profile.bundler(model, stage, opts) if profile.bundler is not None
                  else _generic(model, stage, opts, profile))
        extra_files = dict(staged.extra_files)
        extra_files.update(app_files or {})
        if app_run_command:
            staged.run_command = app_run_command
        extra_files["README.md"] = (staged.readme + (f"\n{app_readme}" if app_readme else "")).encode("utf-8")
        if staged.subdir is not None:  # the drop-in folder lists its own checksums for app developers
            sums = {f"{staged.subdir.name}/{p.relative_to(staged.subdir).as_posix()}": sha256_file(p)
                    for p in sorted(staged.subdir.rglob("*")) if p.is_file()}
            atomic_write_json(staged.subdir / "SHA256SUMS.json", sums)
        manifest = write_bundle(out_dir, {k: str(v) for k, v in staged.files.items()}, labels=opts["labels"],
                           source=source, overwrite=overwrite, preprocessing=preprocessing,
                           postprocessing=postprocessing,
                           extra_dirs={staged.subdir.name: staged.subdir} if staged.subdir is not None else None,
                           extra={"target": target, "run_command": staged.run_command,
                                  "check": report.to_dict(), **staged.extra},
                           extra_files={k: (v if isinstance(v, bytes) else str(v)) for k, v in extra_files.items()},
                           targets={k: [target] for k in staged.files})
    return DeployResult(Path(manifest["_dir"]), target, {k: e["path"] for k, e in manifest["files"].items()},
                        staged.run_command)


# --- SSH ---------------------------------------------------------------------------------
_HOST_RE = re.compile(r"^(?:(?P<user>[A-Za-z0-9._-]+)@)?(?P<addr>[A-Za-z0-9.:_-]+|\[[0-9A-Fa-f:.]+\])$")


def parse_host(host: str):
    """``user@addr`` -> (user or None, addr)."""
    m = _HOST_RE.match(host or "")
    if not m:
        raise InputSpecError(f"--host must look like user@address (e.g. pi@192.168.1.20), got {host!r}")
    return m.group("user"), m.group("addr").strip("[]")


async def _run(conn, command: str, *, check: bool = True, timeout: float = 600):
    import asyncio

    try:
        res = await asyncio.wait_for(conn.run(command, check=False), timeout)
    except asyncio.TimeoutError:
        raise TargetError(f"remote command timed out after {timeout:.0f} s: {command}") from None
    if check and res.exit_status != 0:
        raise TargetError(f"remote command failed (exit {res.exit_status}): {command}\n"
                          f"{(res.stderr or '').strip()[-2000:]}")
    return res


def _last_json(text: str) -> dict:
    for line in reversed((text or "").strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    raise TargetError(f"remote bench printed no JSON object; its output ended with: {(text or '')[-500:]!r}")


REMOTE_HOME_DIR = ".edgeship"   # on the device: ~/.edgeship/venv and ~/.edgeship/wheels


@dataclass
class InstallPlan:
    """What ``deploy --host`` installs on the device: this edgeship's wheel and the pip arguments around it."""

    wheel: "LocalWheel"
    requirements: List[str]
    runtime_line: str
    target: str


def install_plan(manifest: dict, model_path: Path, key: Optional[str] = None) -> InstallPlan:
    """Build (or reuse) the wheel and pick the target profile's runtime line for the bundle's model."""
    from . import TARGETS, get_target
    from .device_install import device_requirements, local_wheel, model_format

    target = (manifest.get("extra") or {}).get("target")
    if target is None and key in TARGETS:
        target = key
    if target is None:
        raise TargetError("the bundle does not say which target it is for (manifest extra.target), so the device's "
                          "runtime is unknown; write it with `edgeship deploy --target`, or use --no-install")
    profile = get_target(target)
    fmt = model_format(model_path)
    wheel = local_wheel()
    reqs, line = device_requirements(profile, fmt, wheel.path)
    return InstallPlan(wheel, reqs, line, target)


async def _install_remote(conn, sftp_put, *, python: str, home: str, plan: InstallPlan, addr: str) -> dict:
    """Install a wheel of this edgeship + the target's runtime line into ``~/.edgeship/venv`` on the device.

    A venv, because Raspberry Pi OS Bookworm's system pip refuses to install (PEP 668);
    ``--system-site-packages`` so apt-installed numpy and friends are reused; ``python -s`` everywhere
    so an old ``pip install --user edgeship`` in ~/.local cannot shadow the venv's copy.
    """
    import time

    t0 = time.perf_counter()
    q = shlex.quote
    wheel, reqs, line = plan.wheel, plan.requirements, plan.runtime_line
    base = f"{home}/{REMOTE_HOME_DIR}"
    venv, rwheel = f"{base}/venv", f"{base}/wheels/{wheel.path.name}"
    vpy = f"{venv}/bin/python"
    await _run(conn, f"mkdir -p {q(base + '/wheels')}")
    await sftp_put(wheel.path, rwheel)
    # reuse the venv only when it was made from the same interpreter the user named
    marker = f"{venv}/edgeship-base-python"
    have = await _run(conn, f"test -x {q(vpy)} && cat {q(marker)}", check=False)
    created = False
    if have.exit_status != 0 or have.stdout.strip() != python:
        res = await _run(conn, f"{q(python)} -m venv --clear --system-site-packages {q(venv)}", check=False)
        if res.exit_status != 0:
            raise TargetError(f"could not create a venv on {addr} with {python} -m venv (on Debian / Raspberry Pi "
                              f"OS: sudo apt install python3-venv), or deploy with --no-install:\n"
                              f"{(res.stderr or res.stdout or '').strip()[-800:]}")
        await _run(conn, f"printf '%s\\n' {q(python)} > {q(marker)}")
        created = True
    commands = [f"{q(vpy)} -s -m pip install --disable-pip-version-check --no-deps --force-reinstall {q(rwheel)}",
                f"{q(vpy)} -s -m pip install --disable-pip-version-check " + " ".join(q(r) for r in reqs)]
    for cmd in commands:
        res = await _run(conn, cmd, check=False, timeout=1800)
        if res.exit_status != 0:
            raise TargetError(f"pip failed on {addr} (exit {res.exit_status}): {cmd}\n"
                              f"{(res.stderr or res.stdout or '').strip()[-1200:]}")
    probe = await _run(conn, f"{q(vpy)} -s -c 'import edgeship, os; print(edgeship.__version__); "
                             f"print(os.path.realpath(edgeship.__file__))'", check=False)
    lines = probe.stdout.strip().splitlines()
    real_venv = (await _run(conn, f"cd {q(venv)} && pwd -P")).stdout.strip()
    if probe.exit_status != 0 or len(lines) != 2 or not lines[1].startswith(real_venv + "/"):
        raise TargetError(f"after installing {wheel.path.name} on {addr}, {vpy} does not import edgeship from its "
                          f"venv ({real_venv}): {probe.stdout.strip()} {(probe.stderr or '').strip()[-500:]}")
    return {"python": vpy, "version": lines[0], "edgeship_file": lines[1], "install": {
        **wheel.to_dict(), "remote_wheel": rwheel, "venv": venv, "venv_created": created, "base_python": python,
        "target": plan.target, "requirements": reqs, "runtime_line": line, "commands": commands,
        "seconds": round(time.perf_counter() - t0, 3)}}


async def _deploy_ssh(bundle_dir: Path, model_name: str, *, user, addr, port, identity, known_hosts,
                      python, remote_dir, plan, runs, warmup, connect_timeout, verified_manifest=None):
    import asyncssh

    from .._version import __version__

    install = plan is not None
    kwargs = {"port": port, "username": user, "connect_timeout": connect_timeout}
    if identity is not None:
        kwargs["client_keys"] = [str(identity)]
    if known_hosts is not None:
        kwargs["known_hosts"] = str(known_hosts)
    try:
        conn = await asyncssh.connect(addr, **kwargs)
    except (OSError, asyncssh.Error) as exc:
        raise TargetError(f"cannot connect to {addr}:{port} over SSH: {exc}") from exc
    q = shlex.quote
    async with conn:
        home = (await _run(conn, f"{q(python)} -c 'import os; print(os.path.expanduser(\"~\"))'")).stdout.strip()
        if not home.startswith("/"):
            raise TargetError(f"remote python {python!r} gave no home folder (got {home!r})")
        rdir = remote_dir if remote_dir.startswith("/") else f"{home}/{remote_dir}"
        await _run(conn, f"mkdir -p {q(rdir)}")
        local_files = sorted(p for p in bundle_dir.rglob("*") if p.is_file() and "remote" not in p.relative_to(bundle_dir).parts)
        async with conn.start_sftp_client() as sftp:
            async def put(local: Path, remote: str) -> None:
                await sftp.makedirs(remote.rsplit("/", 1)[0], exist_ok=True)
                await sftp.put(str(local), remote)

            for p in local_files:
                await put(p, f"{rdir}/{p.relative_to(bundle_dir).as_posix()}")
            if install:
                got = await _install_remote(conn, put, python=python, home=home, plan=plan, addr=addr)
                run_python, remote_version, installed = got["python"], got["version"], got["install"]
                installed["edgeship_file"] = got["edgeship_file"]
        if not install:   # use whatever edgeship the named python has
            probe = await _run(conn, f"{q(python)} -c 'import edgeship; print(edgeship.__version__)'", check=False)
            if probe.exit_status != 0:
                raise TargetError(f"edgeship is not installed for {python} on {addr} and --no-install was given:\n"
                                  f"{(probe.stderr or '').strip()[-500:]}")
            run_python, remote_version, installed = python, probe.stdout.strip(), None
        # -s: a venv install must not be shadowed by an old `pip install --user edgeship` in ~/.local
        flag = " -s" if install else ""
        # verify the copy on the device: manifest checksums (edgeship reads the bundle)
        verify = await _run(conn, f"cd {q(rdir)} && {q(run_python)}{flag} -c 'from edgeship.bundle import read_bundle; "
                                  f"read_bundle(\".\"); print(\"ok\")'", check=False)
        if verify.exit_status != 0:
            raise TargetError(f"bundle copied to {addr}:{rdir} failed its checksum check there:\n"
                              f"{(verify.stderr or '').strip()[-800:]}")
        if verified_manifest is not None:  # the device holds the manifest whose signature was checked here
            got = await _run(conn, f"cd {q(rdir)} && {q(run_python)}{flag} -c 'import hashlib; "
                                   f"print(hashlib.sha256(open(\"manifest.json\", \"rb\").read()).hexdigest())'",
                             check=False)
            if got.stdout.strip() != verified_manifest:
                raise IntegrityError(f"the manifest copied to {addr}:{rdir} is not the one whose signature was "
                                     f"verified here (sha256 {got.stdout.strip()[:16]!r}, expected "
                                     f"{verified_manifest[:16]}...); the bundle changed during the copy")
        cmd = (f"cd {q(rdir)} && {q(run_python)}{flag} -m edgeship bench {q(model_name)} --json "
               f"--runs {int(runs)} --warmup {int(warmup)}")
        res = await _run(conn, cmd, check=False)
        bench = _last_json(res.stdout)
        if res.exit_status != 0 or not bench.get("ok", False):
            raise TargetError(f"remote bench failed (exit {res.exit_status}): {bench.get('error') or res.stderr[-800:]}")
    return {"host": addr, "port": port, "user": user, "remote_dir": rdir, "python": python,
            "run_python": run_python, "edgeship_version": remote_version, "local_edgeship_version": __version__,
            "installed": installed, "command": cmd, "files_copied": len(local_files), "bench": bench}


def deploy_ssh(bundle_dir: PathLike, host: str, *, port: int = 22, identity: Optional[PathLike] = None,
               known_hosts: Optional[PathLike] = None, python: str = "python3",
               remote_dir: Optional[str] = None, install: bool = True, runs: int = 20, warmup: int = 3,
               key: Optional[str] = None, connect_timeout: float = 20.0,
               trusted_keys: Optional[Sequence] = None) -> dict:
    """Copy a bundle to ``host`` over SSH, make sure edgeship runs there, bench the model, bring the JSON back.

    ``install=True``: a wheel of the edgeship running here (see :mod:`edgeship.targets.device_install`)
    is copied to ``~/.edgeship/wheels`` on the device and installed with ``--no-deps`` into
    ``~/.edgeship/venv`` (made with ``python -m venv --system-site-packages``), followed by
    edgeship's core requirements and the bundle target's runtime pip line; the bench then runs
    with that venv's python. The result's ``installed`` says exactly what was installed.
    ``install=False``: ``python`` must already import edgeship; it is used as it is.

    ``known_hosts``: file to verify the device's host key against (asyncssh's default,
    ``~/.ssh/known_hosts``, when None). The result is also written to
    ``<bundle>/remote/bench.json``.

    ``trusted_keys``: the bundle must be signed by one of these Ed25519 public keys; its checksums
    and signature are verified before any connection is made (IntegrityError otherwise), and the
    copy on the device must hold the very manifest that was verified (its sha256 is compared there).

    Example:
        >>> # deploy_ssh("out/kws_rpi4", "pi@192.168.1.20", identity="~/.ssh/id_ed25519")["bench"]["latency_ms"]
    """
    import asyncio

    from .._deps import require
    from ..bundle import resolve_bundle_file

    require("asyncssh", "deploy", "deploying over SSH")
    user, addr = parse_host(host)
    if not 0 < int(port) < 65536:
        raise InputSpecError(f"--port must be 1-65535, got {port}")
    if runs < 1 or warmup < 0:
        raise InputSpecError(f"runs must be >= 1 and warmup >= 0, got runs={runs} warmup={warmup}")
    bundle_dir = Path(bundle_dir)
    model_path, manifest = resolve_bundle_file(bundle_dir, key)
    verified_manifest = None
    if trusted_keys is not None:
        import hashlib

        from ..bundle import MANIFEST
        from ..signing import verify_bundle_signature

        if isinstance(trusted_keys, (str, bytes, os.PathLike)):
            trusted_keys = [trusted_keys]
        manifest_bytes = (Path(manifest["_dir"]) / MANIFEST).read_bytes()
        verify_bundle_signature(manifest["_dir"], trusted_keys, manifest, manifest_bytes)
        verified_manifest = hashlib.sha256(manifest_bytes).hexdigest()
    if identity is not None and not Path(identity).expanduser().is_file():
        raise InputSpecError(f"--identity {identity}: no such key file")
    identity = Path(identity).expanduser() if identity is not None else None
    if remote_dir is None:
        from ..bundle import safe_name

        name = manifest.get("name") or bundle_dir.resolve().name
        if not safe_name(name):  # read_bundle refuses such manifests; this guards the folder-name fallback
            raise IntegrityError(f"bundle name {name!r} is not one plain folder name; refusing to build a remote path "
                                 "from it (pass remote_dir=...)")
        remote_dir = f"edgeship_deploy/{name}"
    if (bundle_dir / "remote").is_symlink() or (bundle_dir / "remote" / "bench.json").is_symlink():
        raise IntegrityError(f"{bundle_dir}/remote is a symbolic link; refusing to write the device's results "
                             "through it")
    plan = install_plan(manifest, model_path, key) if install else None   # fails before any connection
    result = asyncio.run(_deploy_ssh(bundle_dir, model_path.name, user=user, addr=addr, port=int(port),
                                     identity=identity, known_hosts=known_hosts, python=python,
                                     remote_dir=remote_dir, plan=plan, runs=runs, warmup=warmup,
                                     connect_timeout=connect_timeout, verified_manifest=verified_manifest))
    atomic_write_json(bundle_dir / "remote" / "bench.json", result)
    return result


__all__ = ["bench_command", "Staged", "DeployResult", "deploy", "deploy_ssh", "parse_host",
           "InstallPlan", "install_plan"]
