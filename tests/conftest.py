"""Shared fixtures: a made PDF and one Docent with the real model. Helpers are in support/;
the tests sit in folders that mirror the code (engine, ingest, retrieval, webapp, gpu)."""

from __future__ import annotations

from pathlib import Path

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
