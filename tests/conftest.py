"""Shared fixtures: a made PDF and one Docent with the real model. Helpers are in support/;
the tests sit in folders that mirror the code (engine, ingest, retrieval, webapp, gpu)."""

from __future__ import annotations

import os
from pathlib import Path

# Ray's crash handler (absl's, installed in a process that starts Ray) can hang forever while it
# writes its stack trace, so a native crash in any later test stalled the run until CI's time
# ran out; without it the process dies at once, with Python's trace. Read when ray is imported.
os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")

import pytest

from support.pdfgen import HANDBOOK_PAGES, HANDBOOK_TITLE, make_pdf


def pytest_collection_modifyitems(config, items):
    """Tests marked slow run only when asked for (`pytest -m slow`); CI skips them."""
    if "slow" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with `pytest -m slow`")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def handbook_pdf(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pdfs") / "handbook.pdf"
    path.write_bytes(make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE))
    return path


@pytest.fixture(scope="session")
def docent_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="session")
def docent(docent_home):
    """One Docent with the real embedding model for the session (loading it takes seconds)."""
    from retrieval.service import Docent
    from retrieval.settings import load_settings

    return Docent(load_settings(home=str(docent_home)))


@pytest.fixture(scope="session")
def handbook_collection(docent, handbook_pdf):
    """The handbook ingested into collection 'handbook'."""
    from retrieval.service import Source

    outcome = docent.ingest([Source.from_path(handbook_pdf)], collection="handbook")[0]
    assert outcome.status == "added", outcome
    return "handbook"
