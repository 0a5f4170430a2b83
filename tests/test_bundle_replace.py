"""Issue 11 defects 3 and 4: bundle output never replaces what edgeship did not write."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from edgeship.bundle import write_bundle
from edgeship.cli import app
from edgeship.errors import ModelFormatError


def _model(weights):
    return {"tflite-int8": weights / "shapes_cnn_int8.tflite"}


def test_force_never_deletes_a_folder_that_merely_has_a_manifest(tmp_path, weights):
    ext = tmp_path / "extension"
    ext.mkdir()
    (ext / "manifest.json").write_text(json.dumps({"manifest_version": 3, "name": "my extension"}))
    (ext / "background.js").write_text("console.log('mine')\n")
    with pytest.raises(ModelFormatError, match="not an intact edgeship bundle"):
        write_bundle(ext, _model(weights), overwrite=True)
    assert (ext / "background.js").read_text() == "console.log('mine')\n"


def test_force_refuses_a_bundle_holding_unlisted_or_changed_files(tmp_path, weights):
    b = tmp_path / "b"
    write_bundle(b, _model(weights))
    (b / "notes.txt").write_text("my notes\n")
    with pytest.raises(ModelFormatError, match="not covered by the manifest: notes.txt"):
        write_bundle(b, _model(weights), overwrite=True)
    (b / "notes.txt").unlink()
    (b / "shapes_cnn_int8.tflite").write_bytes(b"changed")
    with pytest.raises(ModelFormatError, match="not an intact edgeship bundle"):
        write_bundle(b, _model(weights), overwrite=True)


def test_force_replaces_an_intact_bundle_and_spares_a_users_old_folder(tmp_path, weights):
    b = tmp_path / "b"
    write_bundle(b, _model(weights))
    mine = tmp_path / ".b.old"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine\n")
    write_bundle(b, {"tflite-fp32": weights / "shapes_cnn_fp32.tflite"}, overwrite=True)
    assert json.loads((b / "manifest.json").read_text())["default"] == "tflite-fp32"
    assert (mine / "keep.txt").read_text() == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".b.old", "b"]


def test_zip_name_keeps_every_suffix_and_never_overwrites_a_foreign_zip(tmp_path, weights):
    unrelated = tmp_path / "release.zip"
    unrelated.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip of the user's
    res = CliRunner().invoke(app, ["bundle", f"tflite-int8={weights / 'shapes_cnn_int8.tflite'}",
                                   "-o", str(tmp_path / "release.v2"), "--zip", "--json"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "release.v2.zip").is_file()
    assert unrelated.read_bytes() == b"PK\x05\x06" + b"\0" * 18
    with pytest.raises(ModelFormatError, match="already exists"):
        write_bundle(tmp_path / "other", _model(weights), zip_path=unrelated)
    with pytest.raises(ModelFormatError, match="not an edgeship bundle zip"):
        write_bundle(tmp_path / "other", _model(weights), zip_path=unrelated, overwrite=True)
    assert not (tmp_path / "other").exists()
    write_bundle(tmp_path / "release.v2", _model(weights), zip_path=tmp_path / "release.v2.zip", overwrite=True)
