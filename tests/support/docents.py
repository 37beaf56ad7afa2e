"""A Docent for one test: its own data home, the session's loaded embedding model."""

from __future__ import annotations

from pathlib import Path

from retrieval.service import Docent
from retrieval.settings import load_settings


def docent_on(shared: Docent, home: Path, **settings) -> Docent:
    """A Docent on its own data home (and settings) that borrows shared's embedding model:
    loading it again would take seconds per test."""
    own = Docent(load_settings(home=str(home), **settings))
    own._embedder = shared.embedder
    return own
