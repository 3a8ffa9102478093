"""Shared fixtures. Real Gaia fields and member lists live in ../shared/data beside the repository;
tests that need them skip, saying why, where that folder is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real-data test: {SHARED_DATA} is absent (CI has it beside the repository)")
    return SHARED_DATA
