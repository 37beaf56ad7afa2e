"""A sharded collection on a two-node Ray cluster answers as one collection on one machine:
the same hits for vector, keyword and hybrid search (BM25 scored with collection-wide
statistics), filters by source across shards, a partial answer marked as such when a shard
stalls, and a killed shard actor restarted from its files."""

from __future__ import annotations

import os
import signal
import time

import pytest
import ray

from retrieval.search import search
from support.docstrings import QUERIES, docstring_documents
from support.ray_settings import RAY_SETTINGS

pytestmark = pytest.mark.ray

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def collections(docent, ray_cluster):
    """The same documents in a single collection and in a sharded one (two shards)."""
    sharded_docent = docent.variant(ray_address=ray_cluster.address, **RAY_SETTINGS)
    documents = docstring_documents()
    for outcome in docent.ingest_documents(documents, collection="stdlib"):
        assert outcome.status == "added", outcome
    for outcome in sharded_docent.ingest_documents(documents, collection="stdlib-sharded"):
        assert outcome.status == "added", outcome
    single, sharded = docent.collection("stdlib"), sharded_docent.collection("stdlib-sharded")
    assert sharded.chunk_count() == single.chunk_count() > 150
    sizes = [s["chunks"] for s in sharded_docent.cluster_status()["shards"] if s["collection"] == "stdlib-sharded"]
    assert len(sizes) == 2 and min(sizes) > 0, sizes  # both shards hold documents
    return docent, single, sharded


def _key(hit):
    return hit.source, hit.page, hit.text


def _same_hits(one, other):
    """Equal scores in the same places; hits of equal score may come in either order."""
    assert [h.score for h in one] == pytest.approx([h.score for h in other], abs=TOLERANCE)
    groups_one, groups_other = {}, {}
    for hits, groups in ((one, groups_one), (other, groups_other)):
        for hit in hits:
            groups.setdefault(round(hit.score, 4), set()).add(_key(hit))
    lowest = min(groups_one, default=None)  # k may cut the last group of equals differently
    groups_one.pop(lowest, None)
    groups_other.pop(lowest, None)
    assert groups_one == groups_other


@pytest.mark.parametrize("mode", ["vector", "keyword", "hybrid"])
def test_sharded_search_equals_one_collection(collections, mode):
    docent, single, sharded = collections
    for query in QUERIES:
        vector = docent.embedder.embed_query(query)
        expected = search(single, query, query_vector=vector, k=10, mode=mode, fusion="leaders")
        found = search(sharded, query, query_vector=vector, k=10, mode=mode, fusion="leaders")
        assert found.missing_shards == ()
        assert expected, query
        _same_hits(found, expected)
        if mode == "vector":  # exact search: the very same passages, in the same order
            assert [_key(h) for h in found] == [_key(h) for h in expected]


def test_filters_by_source_work_across_shards(collections):
    docent, single, sharded = collections
    from retrieval.distributed.router import shard_of

    candidates = ["json.txt", "csv.txt", "pickle.txt", "sqlite3.txt", "shutil.txt", "gzip.txt", "zipfile.txt"]
    sources = [s for shard in (0, 1) for s in [c for c in candidates if shard_of(c, 2) == shard][:2]]
    assert len(sources) == 4  # two documents of each shard: the filter spans both
    query = "serialize objects and write them to a file"
    vector = docent.embedder.embed_query(query)
    expected = search(single, query, query_vector=vector, k=8, sources=sources)
    found = search(sharded, query, query_vector=vector, k=8, sources=sources)
    assert {h.source for h in found} <= set(sources) and len({h.source for h in found}) > 1
    _same_hits(found, expected)
    assert search(sharded, query, query_vector=vector, k=8, sources=["no-such-file.txt"]) == []


def _shard_pid(sharded, shard: int) -> int:
    return ray.get(sharded.shards[shard].status.remote(), timeout=30)["pid"]


def test_a_stalled_shard_gives_a_partial_answer_marked_as_such(collections):
    docent, single, sharded = collections
    query = "priority queue with a heap"
    vector = docent.embedder.embed_query(query)
    whole = search(sharded, query, query_vector=vector, k=10)
    pid = _shard_pid(sharded, 1)
    timeout, sharded.timeout = sharded.timeout, 2.0
    os.kill(pid, signal.SIGSTOP)  # the shard's process stops answering, as on a stuck node
    try:
        started = time.monotonic()
        partial = search(sharded, query, query_vector=vector, k=10)
        waited = time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)
        sharded.timeout = timeout
    assert partial.missing_shards == (1,)
    assert waited < 15  # the shard's time-out, not a hang
    from retrieval.distributed.router import shard_of

    assert partial and all(shard_of(h.source, 2) == 0 for h in partial)
    assert {_key(h) for h in partial} <= {_key(h) for h in whole} | {_key(h) for h in partial}
    again = search(sharded, query, query_vector=vector, k=10)  # answering again: whole
    assert again.missing_shards == ()
    _same_hits(again, whole)


def test_a_killed_shard_actor_is_restarted_from_its_files(collections):
    docent, single, sharded = collections
    query = "run a child process and capture its output"
    vector = docent.embedder.embed_query(query)
    before = search(sharded, query, query_vector=vector, k=10)
    pid = _shard_pid(sharded, 0)
    os.kill(pid, signal.SIGKILL)
    # The call is retried on the restarted actor; a busy machine may take longer than a search's
    # time-out to start it and open its folder, which would leave the shard out instead.
    timeout, sharded.timeout = sharded.timeout, 120.0
    try:
        after = search(sharded, query, query_vector=vector, k=10)
    finally:
        sharded.timeout = timeout
    assert after.missing_shards == ()
    _same_hits(after, before)
    assert _shard_pid(sharded, 0) != pid
    assert sharded.chunk_count() == single.chunk_count()


def test_keyword_ranking_on_cranfield_equals_one_collection(docent, ray_cluster, tmp_path):
    """BM25 over three shards scores with collection-wide statistics: all 225 Cranfield queries
    rank the 1,400 abstracts as one collection does."""
    import json

    import numpy as np

    from ingest.models import Chunk, Document, Page
    from retrieval.keywords import keyword_terms
    from retrieval.store import Collection, PreparedDocument
    from support.shared_data import shared_path

    corpus = [json.loads(line) for line in shared_path("cranfield", "corpus.jsonl").read_text().splitlines()]
    queries = [json.loads(line)["text"] for line in shared_path("cranfield", "queries.jsonl").read_text().splitlines()]
    dim = docent.model_identity()[1]
    unit = np.zeros((1, dim), np.float32)
    unit[0, 0] = 1.0  # keyword search only: the vectors play no part
    prepared = []
    for entry in corpus:
        text = f"{entry['title']}\n{entry['text']}"
        chunk = Chunk(text, "", None, None, 0, 0, len(text))
        document = Document(f"cranfield-{entry['_id']}", entry["title"], "text", f"h{entry['_id']}", [Page(1, text)])
        prepared.append(PreparedDocument(document, [chunk], unit, [keyword_terms(text)]))
    model_name = docent.model_identity()[0]
    single = Collection(tmp_path / "single", model_name=model_name, dim=dim)
    single.write_documents(prepared)
    on_ray = docent.variant(ray_address=ray_cluster.address, **{**RAY_SETTINGS, "ray_shards": 3})
    sharded = on_ray.collection("cranfield-sharded")
    sharded.write_documents(prepared)
    for query in queries:
        expected = search(single, query, query_vector=None, k=10, mode="keyword")
        found = search(sharded, query, query_vector=None, k=10, mode="keyword")
        _same_hits(found, expected)
    single.close()
