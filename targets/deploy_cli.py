"""``edgeship deploy MODEL --target T -o DIR [--host user@addr]``: bundle for a target, optionally
copied to the device over SSH where ``edgeship bench`` runs and its JSON comes back.

Importing this module stays light: nothing heavy loads until the command runs.
Exit codes: 0 done, 1 the model is incompatible with the target, 2 user error / unreachable.
"""
from __future__ import annotations

from typing import List, Optional

import typer

from edgeship._cli_util import console, emit_json, handle_errors


def _floats(text: Optional[str], what: str) -> Optional[List[float]]:
    from edgeship.errors import InputSpecError

    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputSpecError(f"{what} must be comma-separated numbers like 127.5,127.5,127.5; got {text!r}") from None


def _labels(path: Optional[str]) -> Optional[List[str]]:
    from pathlib import Path

    from edgeship.errors import InputSpecError

    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        raise InputSpecError(f"--labels {path}: no such file (expected one label per line)")
    labels = [l.strip() for l in p.read_text(encoding="utf-8").splitlines() if l.strip()]
    if not labels:
        raise InputSpecError(f"--labels {path} holds no labels")
    return labels


@handle_errors()
def deploy(
    model: str = typer.Argument(..., help="Path to a .tflite (or .onnx) model."),
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
    labels: Optional[str] = typer.Option(None, "--labels", help="Labels file, one per line (embedded for android)."),
    mean: Optional[str] = typer.Option(None, "--mean", help="Input normalization mean(s), comma-separated."),
    std: Optional[str] = typer.Option(None, "--std", help="Input normalization std(s), comma-separated."),
    force: bool = typer.Option(False, "--force", help="Replace an existing bundle in DIR."),
    json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Write the deploy bundle for TARGET (files, manifest, README with the run command)."""
    from edgeship.errors import IncompatibleTargetError
    from edgeship.targets.deploy import deploy as run_deploy
    from edgeship.targets.deploy import deploy_ssh

    try:
        result = run_deploy(model, target, out, labels=_labels(labels), mean=_floats(mean, "--mean"),
                            std=_floats(std, "--std"), overwrite=force)
    except IncompatibleTargetError as exc:
        if json:
            emit_json({"ok": False, "error": {"type": "IncompatibleTargetError", "message": str(exc)},
                       "check": exc.report})
        else:
            console().print(f"[bold red]incompatible:[/] {exc}")
        raise typer.Exit(1)
    if host:
        result.remote = deploy_ssh(result.bundle_dir, host, port=port, identity=identity,
                                   known_hosts=known_hosts, python=remote_python, remote_dir=remote_dir,
                                   install=install, runs=runs)
    if json:
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
