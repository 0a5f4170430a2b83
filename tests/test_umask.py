"""Files and bundles edgeship writes for a user follow the user's umask; private records stay 0600."""
from __future__ import annotations

import os
import stat

import pytest

from edgeship._io import atomic_write_bytes
from edgeship.bundle import write_bundle, write_zip


@pytest.fixture()
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(p):
    return stat.S_IMODE(os.stat(p).st_mode)


def test_outputs_follow_the_umask_and_private_records_do_not(tmp_path, weights, umask_022):
    assert _mode(atomic_write_bytes(tmp_path / "out.bin", b"x")) == 0o644
    assert _mode(atomic_write_bytes(tmp_path / "key.bin", b"x", private=True)) == 0o600
    m = write_bundle(tmp_path / "b", {"tflite-int8": weights / "shapes_cnn_int8.tflite"})
    assert _mode(m["_dir"]) == 0o755
    assert _mode(os.path.join(m["_dir"], "manifest.json")) == 0o644
    assert _mode(write_zip(m["_dir"], tmp_path / "b.zip")) == 0o644
    os.umask(0o077)
    assert _mode(atomic_write_bytes(tmp_path / "strict.bin", b"x")) == 0o600
