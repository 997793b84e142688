"""Shared fixtures: where the real datasets live and how a test asks for one."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    """SHOPSEQ_DATA_DIR (relative paths are taken from the repo root), else ../shared/data."""
    return REPO_ROOT / os.environ.get("SHOPSEQ_DATA_DIR", str(REPO_ROOT.parent / "shared" / "data"))


def require_data(relpath: str) -> Path:
    """The real dataset file at `relpath` under the data root; skip (fail on CI) when missing."""
    root = data_root()
    path = root / relpath
    if path.exists():
        return path
    if os.environ.get("CI") == "true":
        pytest.fail(f"real dataset {relpath} missing in CI (SHOPSEQ_DATA_DIR={root})")
    pytest.skip(
        f"real dataset {relpath} not found under SHOPSEQ_DATA_DIR={root}; set it to run this test"
    )


@pytest.fixture
def data_dir() -> Path:
    """The folder holding the real datasets."""
    return data_root()


@pytest.fixture
def real_data() -> Callable[[str], Path]:
    """`real_data("amazon-beauty/Beauty.txt")` -> Path, skipping the test when it is missing."""
    return require_data
