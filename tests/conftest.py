"""Test-session setup shared by every test module: quiet TensorFlow, the Keras 2 API, data-path fixtures."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def repo_root() -> pathlib.Path:
    """The repository root."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    """``../shared/data``; tests that need it skip with a clear reason when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA} (../shared/data is absent in this checkout)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def export(tmp_path_factory):
    """One exported test model (``serving.testing.cached_export``) shared by the serving and load tests."""
    from serving.testing import cached_export

    return cached_export(tmp_path_factory.getbasetemp() / "serving-export")
