"""``edgeship deploy MODEL --target T -o DIR [--host user@addr]``: bundle for a target, optionally
copied to the device over SSH where ``edgeship bench`` runs and its JSON comes back.

Importing this module stays light: nothing heavy loads until the command runs.
Exit codes: 0 done, 1 the model is incompatible with the target, 2 user error / unreachable.
With ``--trusted-key PUB`` (repeatable) MODEL must be a bundle (folder or .zip) signed by one of
those keys; an unsigned, untrusted or changed bundle is refused before anything is written or
copied, as an ``IntegrityError`` with exit 2: like a bundle whose checksums fail anywhere in the
CLI, it is an input edgeship will not use, not a check the command was asked to run (exit 1).
The bundle deploy then writes is a new one for the target (unsigned: its manifest's ``source``
records the verified bundle, its manifest hash and the signing key's id); with ``--host`` that
freshly written bundle is what is copied.
"""
from __future__ import annotations

from typing import List, Optional

import typer

from .console import EXIT_FAILED_CHECK, console, emit_json, handle_errors, json_option
from .options import floats, label_names


@handle_errors
def deploy(
    model: str = typer.Argument(..., help="Path to a .tflite (or .onnx) model, or a bundle folder / .zip."),
    target: str = typer.Option(..., "--target", "-t", help="Target name (see `edgeship targets`)."),
    out: str = typer.Option(..., "--out", "-o", help="Bundle directory to write."),
    host: Optional[str] = typer.Option(None, "--host", help="user@address: copy over SSH, bench there."),
    port: int = typer.Option(22, "--port", help="SSH port."),
    identity: Optional[str] = typer.Option(None, "--identity", "-i", help="SSH private key file."),
    known_hosts: Optional[str] = typer.Option(None, "--known-hosts",
                                              help="known_hosts file for the device key (default ~/.ssh/known_hosts)."),
    remote_python: str = typer.Option("python3", "--remote-python", help="Python on the device."),
    remote_dir: Optional[str] = typer.Option(None, "--remote-dir", help="Folder on the device (default ~/edgeship_deploy/NAME)."),
    install: bool = typer.Option(True, "--install/--no-install", help="Install this edgeship (as a wheel) + the target's runtime into ~/.edgeship/venv on the device and bench with that venv's python; --no-install runs --remote-python's own edgeship."),
    runs: int = typer.Option(20, "--runs", help="Timed runs of the remote bench."),
    labels: Optional[str] = typer.Option(None, "--labels", help="Labels: a text file (one per line) or a comma list (embedded for android)."),
    mean: Optional[str] = typer.Option(None, "--mean", help="Input normalization mean(s), comma-separated."),
    std: Optional[str] = typer.Option(None, "--std", help="Input normalization std(s), comma-separated."),
    force: bool = typer.Option(False, "--force", help="Replace an existing bundle in DIR."),
    trusted_key: Optional[List[str]] = typer.Option(
        None, "--trusted-key", help="Ed25519 public key (.pub file or hex); repeatable. MODEL must then be a bundle "
                                    "signed by one of them, verified before anything is written or copied."),
    json_: bool = json_option(),
) -> None:
    """Write the deploy bundle for TARGET (files, manifest, README with the run command)."""
    from ..errors import IncompatibleTargetError
    from ..targets.deploy import deploy as run_deploy
    from ..targets.deploy import deploy_ssh

    try:
        result = run_deploy(model, target, out, labels=label_names(labels), mean=floats(mean, "--mean"),
                            std=floats(std, "--std"), overwrite=force, trusted_keys=trusted_key or None)
    except IncompatibleTargetError as exc:
        if json_:
            emit_json({"ok": False, "error": {"type": "IncompatibleTargetError", "message": str(exc)},
                       "check": exc.report})
        else:
            console().print(f"[bold red]incompatible:[/] {exc}")
        raise typer.Exit(EXIT_FAILED_CHECK)
    if host:
        result.remote = deploy_ssh(result.bundle_dir, host, port=port, identity=identity,
                                   known_hosts=known_hosts, python=remote_python, remote_dir=remote_dir,
                                   install=install, runs=runs)
    if json_:
        emit_json({"ok": True, **result.to_dict()})
        return
    c = console()
    c.print(f"[bold green]bundle[/] {result.bundle_dir}  (target {result.target})")
    for key, name in result.files.items():
        c.print(f"  {key}: {name}")
    c.print(f"run on the device: [bold]{result.run_command}[/]  (see README.md)")
    if result.remote:
        inst = result.remote.get("installed")
        if inst:
            c.print(f"installed {inst['wheel']} ({inst['origin']}) + {' '.join(inst['requirements'])} "
                    f"into {inst['venv']} on the device ({inst['seconds']:.1f} s)")
        lat = result.remote["bench"].get("latency_ms", {})
        c.print(f"[bold]remote bench[/] on {result.remote['host']}: p50 {lat.get('p50', float('nan')):.3f} ms, "
                f"p90 {lat.get('p90', float('nan')):.3f} ms  -> {result.bundle_dir}/remote/bench.json")


def register(app) -> None:
    app.command("deploy")(deploy)
