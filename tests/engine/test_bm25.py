"""The native BM25 index against rank_bm25.BM25Okapi as the oracle, on real text."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

from support.shared_data import shared_path
from retrieval.index import BM25Index, from_bytes
from retrieval.keywords import keyword_terms

TOLERANCE = 1e-5

# Real prose for when ../shared is absent: the opening of the Zen of Python and friends.
FALLBACK_TEXTS = [
    "Beautiful is better than ugly. Explicit is better than implicit.",
    "Simple is better than complex. Complex is better than complicated.",
    "Flat is better than nested. Sparse is better than dense. Readability counts.",
    "Special cases aren't special enough to break the rules. Although practicality beats purity.",
    "Errors should never pass silently. Unless explicitly silenced.",
    "In the face of ambiguity, refuse the temptation to guess.",
    "There should be one and preferably only one obvious way to do it.",
    "Now is better than never. Although never is often better than right now.",
    "If the implementation is hard to explain, it's a bad idea.",
    "If the implementation is easy to explain, it may be a good idea.",
    "Namespaces are one honking great idea. Let's do more of those!",
] * 3


def _corpus():
    try:
        path = shared_path("cranfield", "corpus.jsonl")
    except pytest.skip.Exception:
        return [keyword_terms(t) for t in FALLBACK_TEXTS], ["better than", "idea implementation", "never right now"]
    docs = [json.loads(line) for line in path.read_text().splitlines()]
    queries = [json.loads(line)["text"] for line in shared_path("cranfield", "queries.jsonl").read_text().splitlines()]
    return [keyword_terms(d["title"] + " " + d["text"]) for d in docs[:800]], queries[:40]


def _vocabulary(token_lists):
    vocab = {}
    for tokens in token_lists:
        for t in tokens:
            vocab.setdefault(t, len(vocab))
    return vocab


@pytest.fixture(scope="module")
def corpus():
    docs, queries = _corpus()
    vocab = _vocabulary(docs)
    # Query words outside the corpus get ids of their own: they must score nothing.
    query_tokens = [keyword_terms(q) for q in queries]
    for tokens in query_tokens:
        for t in tokens:
            vocab.setdefault(t, len(vocab))
    return docs, query_tokens, vocab


def _ids(tokens, vocab):
    return [vocab[t] for t in tokens]


def _index(docs, vocab) -> BM25Index:
    index = BM25Index()
    for i, d in enumerate(docs):
        index.add(i, _ids(d, vocab))
    return index


def test_scores_equal_rank_bm25(corpus):
    docs, queries, vocab = corpus
    oracle = BM25Okapi([_ids(d, vocab) for d in docs])
    index = _index(docs, vocab)
    all_ids = np.arange(len(docs))
    for query in queries:
        q = _ids(query, vocab)
        expected = oracle.get_scores(q)
        np.testing.assert_allclose(index.scores(q, all_ids), expected, rtol=0, atol=TOLERANCE)
        scores, ids = index.search([q], k=10)
        hits = ids[0][ids[0] >= 0]
        np.testing.assert_allclose(scores[0][: len(hits)], expected[hits], rtol=0, atol=TOLERANCE)
        # The top 10 are the oracle's top 10 (by score: equal scores may come in any order).
        top = np.sort(expected)[::-1][: len(hits)]
        np.testing.assert_allclose(np.sort(scores[0][: len(hits)])[::-1], top, rtol=0, atol=TOLERANCE)


def test_repeated_query_tokens_count_each_time(corpus):
    docs, _, vocab = corpus
    oracle = BM25Okapi([_ids(d, vocab) for d in docs])
    index = _index(docs, vocab)
    q = _ids(docs[0][:2] * 3, vocab)
    np.testing.assert_allclose(index.scores(q, np.arange(len(docs))), oracle.get_scores(q), atol=TOLERANCE)


def test_incremental_add_and_remove_equal_a_rebuild(corpus):
    docs, queries, vocab = corpus
    index = _index(docs, vocab)
    removed = set(range(0, len(docs), 3))
    index.remove(sorted(removed))
    # Replacing a document (same id) counts as remove + add.
    index.add(1, _ids(docs[2], vocab))
    kept = [i for i in range(len(docs)) if i not in removed]
    oracle_docs = [docs[2] if i == 1 else docs[i] for i in kept]
    oracle = BM25Okapi([_ids(d, vocab) for d in oracle_docs])
    for query in queries[:10]:
        q = _ids(query, vocab)
        np.testing.assert_allclose(index.scores(q, kept), oracle.get_scores(q), atol=TOLERANCE)
    assert len(index) == len(kept)
    with pytest.raises(KeyError):
        index.remove([0])


def test_filter_and_round_trip(corpus):
    docs, queries, vocab = corpus
    index = _index(docs, vocab)
    q = [_ids(queries[0], vocab)]
    allowed = np.arange(0, len(docs), 2)
    _, ids = index.search(q, k=10, filter=allowed)
    assert set(ids[0][ids[0] >= 0]) <= set(allowed.tolist())
    copy = from_bytes(index.to_bytes())
    assert isinstance(copy, BM25Index) and len(copy) == len(index)
    for a, b in zip(index.search(q, k=10), copy.search(q, k=10)):
        np.testing.assert_allclose(a, b)


def test_bad_tokens_are_refused():
    index = BM25Index()
    with pytest.raises(ValueError, match="non-negative"):
        index.add(1, [-1, 2])
    with pytest.raises(ValueError, match="at least 1"):
        index.search([[1]], k=0)


def _statistics_of(parts: list[BM25Index]):
    """Collection-wide N, avgdl, df per term and mean idf, summed from the parts' statistics."""
    documents = sum(p.statistics()["documents"] for p in parts)
    length = sum(p.statistics()["total_length"] for p in parts)
    dfs: dict[int, int] = {}
    for part in parts:
        stats = part.statistics()
        for term, df in zip(stats["terms"].tolist(), stats["document_frequencies"].tolist()):
            dfs[term] = dfs.get(term, 0) + df
    values = np.array(list(dfs.values()), dtype=np.float64)
    mean_idf = float(np.mean(np.log(documents - values + 0.5) - np.log(values + 0.5)))
    return documents, length / documents, dfs, mean_idf


def _idf(term, documents, dfs, mean_idf):
    df = dfs[term]
    value = float(np.log(documents - df + 0.5) - np.log(df + 0.5))
    return value if value >= 0 else 0.25 * mean_idf


def test_parts_scored_with_collection_statistics_rank_as_one_index(corpus):
    """A collection split into parts (a sharded collection's shards): each part searched with
    the whole collection's idfs and mean length, the merged lists equal one index's search."""
    docs, queries, vocab = corpus
    whole = _index(docs, vocab)
    parts = [BM25Index(), BM25Index(), BM25Index()]
    for i, d in enumerate(docs):
        parts[i % 3].add(i, _ids(d, vocab))
    documents, avgdl, dfs, mean_idf = _statistics_of(parts)
    assert documents == len(whole)
    for tokens in queries:
        query = [t for t in _ids(tokens, vocab) if t in dfs]  # a term no document holds scores nothing
        if not query:
            continue
        idfs = [_idf(t, documents, dfs, mean_idf) for t in query]
        merged = []
        for part in parts:
            scores, ids = part.search_with_statistics([query], [idfs], avgdl, 10)
            merged += [(float(s), int(i)) for s, i in zip(scores[0], ids[0]) if i >= 0]
        merged = sorted(merged, key=lambda hit: (-hit[0], hit[1]))[:10]
        scores, ids = whole.search([query], 10)
        expected = [(float(s), int(i)) for s, i in zip(scores[0], ids[0]) if i >= 0]
        assert [s for s, _ in merged] == pytest.approx([s for s, _ in expected], abs=TOLERANCE)
        # Equal scores may come in either order; every score names the same documents.
        assert _by_score(merged) == _by_score(expected)


def _by_score(hits):
    groups: dict[float, set] = {}
    for score, id_ in hits:
        groups.setdefault(round(score, 4), set()).add(id_)
    last = min(groups)  # the lowest score's group may be cut by k differently: compare the rest
    return {score: ids for score, ids in groups.items() if score != last}


def test_collection_statistics_are_checked():
    index = BM25Index()
    index.add(1, [1, 2, 2])
    stats = index.statistics()
    assert (stats["documents"], stats["total_length"]) == (1, 3)
    assert stats["terms"].tolist() == [1, 2] and stats["document_frequencies"].tolist() == [1, 1]
    with pytest.raises(ValueError, match="1 tokens but 2 idfs"):
        index.search_with_statistics([[1]], [[0.5, 0.5]], 3.0, 5)
    with pytest.raises(ValueError, match="one idf list per query"):
        index.search_with_statistics([[1], [2]], [[0.5]], 3.0, 5)
    with pytest.raises(ValueError, match="avgdl must be positive"):
        index.search_with_statistics([[1]], [[0.5]], 0.0, 5)
    with pytest.raises(ValueError, match="finite"):
        index.search_with_statistics([[1]], [[float("nan")]], 3.0, 5)


# ---- the pruned search equals the exhaustive one ------------------------------------------------


def _same(index: BM25Index, queries, k: int, **options) -> None:
    """The pruned and the exhaustive search give the same top k: ids, scores to the bit, order."""
    pruned = index.search(queries, k, **options)
    exhaustive = index.search(queries, k, exhaustive=True, **options)
    np.testing.assert_array_equal(pruned[1], exhaustive[1])
    np.testing.assert_array_equal(pruned[0], exhaustive[0])


def test_pruned_search_equals_exhaustive_on_every_query_of_the_corpus(corpus):
    docs, queries, vocab = corpus
    index = _index(docs, vocab)
    query_ids = [_ids(q, vocab) for q in queries]
    for k in (1, 3, 10, 50):
        _same(index, query_ids, k)
    _same(index, query_ids, 10, filter=np.arange(0, len(docs), 3))


@pytest.mark.parametrize("seed", range(12))
def test_pruned_search_equals_exhaustive_on_random_collections(seed):
    """Zipf-distributed terms (a few very common, most rare), documents of varied length, many
    equal scores (duplicates and tiny documents), queries of 1 to 8 terms with repeats; then
    removals and re-adds, which leave the terms' bounds loose but valid."""
    rng = np.random.default_rng(seed)
    vocabulary = int(rng.integers(50, 3000))
    n_docs = int(rng.integers(200, 3000))
    index = BM25Index()
    documents = {}
    for id_ in range(n_docs):
        length = int(rng.integers(1, 120))
        tokens = (rng.zipf(1.3, size=length) - 1) % vocabulary
        if id_ % 17 == 0 and id_:
            tokens = documents[id_ - 1]  # a duplicate: ties that the smaller id must win
        documents[id_] = tokens
        index.add(id_, tokens)
    queries = [list((rng.zipf(1.2, size=int(rng.integers(1, 9))) - 1) % vocabulary) for _ in range(60)]
    for k in (1, 5, 10, 40):
        _same(index, queries, k)
    for id_ in rng.choice(n_docs, size=n_docs // 4, replace=False):
        index.remove(int(id_))
    for id_ in range(n_docs, n_docs + 100):
        index.add(id_, (rng.zipf(1.3, size=int(rng.integers(1, 60))) - 1) % vocabulary)
    _same(index, queries, 10)
    _same(index, queries, 10, filter=rng.choice(n_docs + 100, size=n_docs // 2, replace=False))
    # Saved and opened again (the postings rebuilt in bulk, the freed slots closed up): the same
    # top k, and adds and removes keep working on the copy.
    copy = from_bytes(index.to_bytes())
    for a, b in zip(index.search(queries, 10), copy.search(queries, 10)):
        np.testing.assert_array_equal(a, b)
    for id_ in range(n_docs, n_docs + 30):
        copy.remove(id_)
    for id_ in range(n_docs + 100, n_docs + 160):
        copy.add(id_, (rng.zipf(1.3, size=int(rng.integers(1, 60))) - 1) % vocabulary)
    _same(copy, queries, 10)
    idfs = [[float(rng.uniform(0.1, 5.0)) for _ in q] for q in queries]
    pruned = index.search_with_statistics(queries, idfs, 37.5, 10)
    exhaustive = index.search_with_statistics(queries, idfs, 37.5, 10, exhaustive=True)
    np.testing.assert_array_equal(pruned[1], exhaustive[1])
    np.testing.assert_array_equal(pruned[0], exhaustive[0])
