"""``edgeship bundle KEY=PATH ... -o DIR``: model files + a checked manifest.json."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..errors import ModelFormatError
from .console import console, emit_json, handle_errors, json_option
from .options import json_value, label_names


def _keyed_files(models: List[str]) -> dict:
    """KEY=PATH pairs, or bare paths keyed by format and quantization (``tflite-int8``, ``onnx-fp32``...)."""
    from ..bundle import default_key

    files = {}
    for item in models:
        key, sep, p = item.partition("=")
        if not sep:
            p, key = item, default_key(item)
        if key in files:
            raise ModelFormatError(f"two models would both be called {key!r}; name them with KEY=PATH")
        files[key] = p
    return files


@handle_errors
def bundle_cmd(
    models: List[str] = typer.Argument(..., help="Model files, as PATH or KEY=PATH (KEY: a target or variant name)."),
    out: Path = typer.Option(..., "-o", "--out", help="Bundle directory to write."),
    labels: Optional[str] = typer.Option(None, help="Labels: a text file (one per line) or a comma list."),
    preprocessing: Optional[str] = typer.Option(None, help="Preprocessing spec: a JSON file or JSON text."),
    postprocessing: Optional[str] = typer.Option(None, help="Postprocessing (e.g. a keyword detector's setting, "
                                                 "edgeship.kws.DetectorConfig.to_manifest): a JSON file or JSON text."),
    source: Optional[Path] = typer.Option(None, help="The source model the files were made from (hashed)."),
    default: Optional[str] = typer.Option(None, help="Key loaded by default."),
    zip_: bool = typer.Option(False, "--zip", help="Also write OUT.zip (the folder name + .zip)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing bundle at OUT."),
    sign: Optional[Path] = typer.Option(None, "--sign", help="Sign the manifest with this Ed25519 private key "
                                        "(edgeship keys new); the zip then carries the signature."),
    json_: bool = json_option(),
):
    """Write a bundle: model files + manifest.json (I/O, preprocessing, labels, sha256 of every file).

    Each file is checked against every target profile; the targets it passes are recorded, so
    ``edgeship.load(BUNDLE, target="rpi4")`` loads the file that serves the Raspberry Pi 4.
    """
    from ..bundle import write_bundle
    from ..targets.serving import bundle_targets

    files = _keyed_files(models)
    zip_path = out.with_name(out.name + ".zip") if zip_ else None  # release.v2 -> release.v2.zip
    manifest = write_bundle(out, files, labels=label_names(labels),
                            preprocessing=json_value(preprocessing, "--preprocessing"),
                            postprocessing=json_value(postprocessing, "--postprocessing"), source=source,
                            default=default, zip_path=zip_path, overwrite=force,
                            targets=bundle_targets(files))  # each file serves the targets whose check passes
    bundle_dir = manifest.pop("_dir")
    signature = None
    if sign is not None:
        from ..bundle import write_zip
        from ..signing import sign_bundle

        signature = str(sign_bundle(bundle_dir, sign))
        if zip_path is not None:
            write_zip(bundle_dir, zip_path)  # replaces the unsigned zip write_bundle just wrote
    if json_:
        emit_json({"ok": True, "bundle": bundle_dir, "zip": str(zip_path) if zip_path else None,
                   "signature": signature, "manifest": manifest})
        return
    c = console()
    c.print(f"[green]bundle written[/] {bundle_dir}" + (f" and {zip_path}" if zip_path else "")
            + (f", signed ({signature})" if signature else ""))
    for k, e in manifest["files"].items():
        c.print(f"  {k:20s} {e['path']:32s} {e['bytes']:>9d} B  {e['quantization']:8s} sha256 {e['sha256'][:12]}")
        c.print(f"  {'':20s} serves: {', '.join(t for t in e['targets'] if t != k) or 'no target'}")


def register(app: typer.Typer) -> None:
    app.command("bundle")(bundle_cmd)
