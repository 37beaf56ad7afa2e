"""The real data under ../shared/data (DOCENT_SHARED_DATA elsewhere); absent in a fresh clone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("DOCENT_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))


def shared_path(*parts: str) -> Path:
    """A file under ../shared/data, or a skip that says why."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared test data not found at {path} (a fresh clone has no ../shared)")
    return path
