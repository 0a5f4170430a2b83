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
