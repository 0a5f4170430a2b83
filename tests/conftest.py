"""Shared fixtures. ../shared (or $EDGESHIP_SHARED) is optional: tests that need it skip with a reason."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# A private cache per test session: probe results and unpacked bundles never leak between runs.
os.environ.setdefault("EDGESHIP_CACHE", tempfile.mkdtemp(prefix="edgeship-test-cache-"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def shared_path() -> Path:
    """The shared data folder: $EDGESHIP_SHARED, else ../shared (resolved here only; helpers call this)."""
    return Path(os.environ.get("EDGESHIP_SHARED", REPO.parent / "shared"))


@pytest.fixture(autouse=True)
def forget_files(monkeypatch):
    """Each test starts as a new process would, as far as what edgeship learnt about model files
    goes (tests swap cache folders and count probes); call the fixture's value to forget again."""
    from edgeship import backends, probe, runtime

    def forget():
        for mod, name in ((runtime, "_AGAIN"), (probe, "_OK"), (probe, "_KNOWN"), (probe, "_RECORDS"),
                          (backends, "_DETAILS")):
            monkeypatch.setattr(mod, name, {})

    forget()
    return forget


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    p = shared_path()
    if not (p / "README.md").is_file():
        pytest.skip(f"../shared data folder not found at {p} (set EDGESHIP_SHARED to use it)")
    return p


@pytest.fixture(scope="session")
def weights() -> Path:
    return REPO / "models" / "weights"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
