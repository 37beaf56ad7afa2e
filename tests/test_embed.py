"""The embedding backends: OpenVINO against sentence-transformers on torch, and no wasted work."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import shared_path
from pdfgen import HANDBOOK_PAGES, HANDBOOK_TITLE, make_pdf
from retrieval.embed import Embedder
from retrieval.service import Docent, Source
from retrieval.settings import load_settings

pytest.importorskip("openvino", reason="OpenVINO is not installed")


def _texts() -> list[str]:
    try:
        corpus = shared_path("cranfield", "corpus.jsonl")
        return [json.loads(line)["text"] for line in corpus.read_text().splitlines()[:120]]
    except pytest.skip.Exception:
        return [line for page in HANDBOOK_PAGES for line in page] * 3


@pytest.fixture(scope="module")
def embedders(tmp_path_factory):
    cache = tmp_path_factory.mktemp("models")
    return Embedder(backend="torch"), Embedder(backend="openvino", cache_dir=cache), cache


def test_openvino_vectors_match_torch(embedders):
    reference, fast, _ = embedders
    texts = _texts()
    a, b = reference.embed(texts), fast.embed(texts)
    cosine = (a * b).sum(axis=1)
    assert fast.backend == "openvino" and reference.backend == "torch"
    assert cosine.mean() >= 0.995 and cosine.min() >= 0.99
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    # The same neighbours: each text's nearest other text agrees.
    sa, sb = a @ a.T, b @ b.T
    np.fill_diagonal(sa, -1)
    np.fill_diagonal(sb, -1)
    assert (sa.argmax(1) == sb.argmax(1)).mean() >= 0.95


def test_the_export_is_cached_and_reused_without_loading_torch(embedders):
    _, fast, cache = embedders
    exported = list(cache.rglob("model.xml"))
    assert len(exported) == 1
    stamp = exported[0].stat().st_mtime_ns
    again = Embedder(backend="openvino", cache_dir=cache)
    assert exported[0].stat().st_mtime_ns == stamp
    assert again.model is None and again.backend == "openvino"  # started from the export alone
    assert (again.dim, again.max_tokens) == (fast.dim, fast.max_tokens)
    assert again.count_tokens("harbor fees and mooring") == fast.count_tokens("harbor fees and mooring")
    np.testing.assert_allclose(again.embed(["harbor fees"]), fast.embed(["harbor fees"]), atol=1e-6)


def test_a_repeated_question_is_embedded_once(embedders):
    _, fast, _ = embedders
    first = fast.embed_query("What does a mooring permit cost?")
    first[:] = 0  # callers get a copy: the cache cannot be spoiled
    again = fast.embed_query("What does a mooring permit cost?")
    assert np.linalg.norm(again) == pytest.approx(1.0, abs=1e-5)


def test_identical_chunks_are_embedded_once(docent, tmp_path):
    class Counting:
        def __init__(self, inner):
            self.inner, self.embedded = inner, 0

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def embed(self, texts, **kwargs):
            self.embedded += len(texts)
            return self.inner.embed(texts, **kwargs)

    local = Docent(load_settings(home=str(tmp_path / "home")))
    local._embedder = counting = Counting(docent.embedder)
    pdf = make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE)  # the title is part of each indexed text
    first = local.ingest([Source("a.pdf", data=pdf)])[0]
    assert counting.embedded == first.chunks
    second = local.ingest([Source("copy-of-a.pdf", data=pdf)])[0]  # the same text under another name
    assert second.status == "added" and counting.embedded == first.chunks
    hits = local.search("fire drill", k=2, mode="vector")
    assert {h.source for h in hits} == {"a.pdf", "copy-of-a.pdf"}


def test_openvino_is_the_default_on_a_cpu(docent):
    assert docent.embedder.backend == "openvino"


def test_an_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="unknown embedding backend"):
        Embedder(backend="tpu")
