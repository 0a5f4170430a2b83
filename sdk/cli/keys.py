"""``edgeship keys new PATH``: an Ed25519 key pair for signed bundles (``bundle --sign``, ``load(trusted_keys=)``)."""
from __future__ import annotations

from pathlib import Path

import typer

from .console import console, emit_json, handle_errors, json_option

keys_app = typer.Typer(help="Keys for signed bundles.", no_args_is_help=True)


@handle_errors
def new_cmd(
    path: Path = typer.Argument(..., help="Private key file to create (mode 0600); the public key goes to PATH.pub."),
    json_: bool = json_option(),
):
    """Create an Ed25519 key pair; never overwrites an existing key."""
    from ..signing import new_keypair, public_key_id

    priv, pub = new_keypair(path)
    kid = public_key_id(pub)
    if json_:
        emit_json({"ok": True, "private_key": str(priv), "public_key": str(pub), "key_id": kid})
        return
    console().print(f"[green]key pair written[/] {priv} (private, 0600) and {pub} (public); key id {kid}\n"
                    f"sign: edgeship bundle ... --sign {priv}    verify: edgeship.load(bundle, trusted_keys=['{pub}'])")


keys_app.command("new")(new_cmd)


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
