"""The native flat index against numpy brute force and Faiss, and its file format's defences."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from retrieval import index as engine
from retrieval.index import FlatIndex, IndexFormatError, from_bytes, index_factory, load

faiss = pytest.importorskip("faiss")


def _data(n=3000, nq=40, dim=67, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, dim)).astype(np.float32), rng.standard_normal((nq, dim)).astype(np.float32)


def _brute_force(base, queries, k, metric):
    if metric == "cosine":
        base = base / np.linalg.norm(base, axis=1, keepdims=True)
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    if metric == "l2":
        scores = ((queries[:, None, :].astype(np.float64) - base[None].astype(np.float64)) ** 2).sum(-1)
        order = np.argsort(scores, axis=1, kind="stable")[:, :k]
    else:
        scores = queries.astype(np.float64) @ base.T.astype(np.float64)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), order


@pytest.mark.parametrize("level", engine.supported_simd_levels())
@pytest.mark.parametrize("metric", ["ip", "l2", "cosine"])
def test_flat_search_equals_numpy_brute_force_on_every_simd_level(level, metric):
    base, queries = _data()
    ids = np.arange(len(base), dtype=np.int64) * 7 + 1000
    index = index_factory(base.shape[1], "Flat", metric=metric)
    index.add(base, ids)
    previous = engine.simd_level()
    engine.set_simd_level(level)
    try:
        distances, found = index.search(queries, k=10)
    finally:
        engine.set_simd_level(previous)
    expected_scores, expected_rows = _brute_force(base, queries, 10, metric)
    assert (found == ids[expected_rows]).mean() > 0.999  # float32 vs float64: ties at the edge may swap
    np.testing.assert_allclose(distances, expected_scores, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_flat_search_equals_faiss(metric):
    base, queries = _data(n=5000, dim=384, seed=1)
    ours = FlatIndex(384, metric=metric)
    ours.add(base)
    theirs = faiss.IndexFlatIP(384) if metric == "ip" else faiss.IndexFlatL2(384)
    theirs.add(base)
    d1, i1 = ours.search(queries, k=20)
    d2, i2 = theirs.search(queries, 20)
    # Faiss computes L2 as |x|^2 + |y|^2 - 2xy, we compute (x - y)^2: near-ties may swap
    # places, so compare the neighbour sets and the distances rank by rank.
    overlap = np.mean([len(set(a) & set(b)) / len(a) for a, b in zip(i1, i2)])
    assert overlap > 0.995
    np.testing.assert_allclose(d1, d2, rtol=1e-4, atol=1e-2)


def test_ids_are_the_callers_and_remove_and_update_work():
    index = FlatIndex(3, metric="l2")
    index.add(np.eye(3, dtype=np.float32), [10, 20, 30])
    assert len(index) == 3 and 20 in index
    _, ids = index.search([[0, 1, 0]], k=1)
    assert ids[0, 0] == 20
    assert index.remove([20]) == 1
    _, ids = index.search([[0, 1, 0]], k=3)
    assert 20 not in ids[0] and ids[0, 2] == -1  # fewer than k left: -1 fills the row
    index.add([[0, 0.9, 0]], [30])  # re-adding an id updates its vector
    assert len(index) == 2
    np.testing.assert_allclose(index.reconstruct(30), [0, 0.9, 0])
    with pytest.raises(KeyError, match="999"):
        index.remove([999])
    assert index.remove([999], missing_ok=True) == 0


def test_filter_returns_only_allowed_ids():
    base, queries = _data(n=1000, dim=16)
    index = FlatIndex(16)
    index.add(base)
    allowed = np.array([3, 500, 999, 123456])  # an unknown id in a filter is harmless
    _, ids = index.search(queries, k=5, filter=allowed)
    assert set(ids[:, :3].ravel()) <= {3, 500, 999}
    assert (ids[:, 3:] == -1).all()


def test_k_larger_than_the_collection_returns_what_there_is():
    index = FlatIndex(4)
    index.add(np.ones((2, 4), dtype=np.float32), [1, 2])
    distances, ids = index.search(np.ones((1, 4)), k=5)
    assert sorted(ids[0, :2]) == [1, 2] and (ids[0, 2:] == -1).all()
    assert np.isinf(distances[0, 2:]).all()


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda ix: ix.add(np.ones((2, 5), dtype=np.float32)), ValueError, "dimension 5"),
        (lambda ix: ix.search(np.ones((1, 3)), k=1), ValueError, "dimension 3"),
        (lambda ix: ix.add(np.array([[1, np.nan, 0, 0]], dtype=np.float32)), ValueError, "NaN"),
        (lambda ix: ix.add(np.array([[1, np.inf, 0, 0]], dtype=np.float32)), ValueError, "infinite"),
        (lambda ix: ix.search(np.ones((1, 4)), k=0), ValueError, "at least 1"),
        (lambda ix: ix.add(np.ones((2, 4)), ids=[1]), ValueError, "2 vectors but 1 ids"),
        (lambda ix: ix.add(np.zeros((1, 4))), ValueError, "zero length"),
    ],
)
def test_bad_input_gets_a_clear_error_and_changes_nothing(call, error, message):
    index = FlatIndex(4, metric="cosine")
    index.add(np.ones((1, 4), dtype=np.float32), [7])
    with pytest.raises(error, match=message):
        call(index)
    assert len(index) == 1


def test_save_load_and_bytes_round_trip(tmp_path):
    base, queries = _data(n=500, dim=32)
    index = FlatIndex(32, metric="cosine")
    index.add(base, np.arange(500) * 3)
    index.checkpoint = 17
    index.save(tmp_path / "v.idx")
    for copy in (load(tmp_path / "v.idx"), from_bytes(index.to_bytes())):
        assert copy.metric == "cosine" and copy.dim == 32 and copy.checkpoint == 17
        for a, b in zip(index.search(queries, k=5), copy.search(queries, k=5)):
            np.testing.assert_array_equal(a, b)
    assert not (tmp_path / "v.idx.tmp").exists()


def test_truncated_damaged_and_foreign_files_are_refused(tmp_path):
    index = FlatIndex(8)
    index.add(np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32))
    blob = index.to_bytes()
    with pytest.raises(IndexFormatError, match="truncated"):
        from_bytes(blob[: len(blob) // 2])
    damaged = bytearray(blob)
    damaged[len(blob) // 2] ^= 0xFF
    with pytest.raises(IndexFormatError, match="checksum"):
        from_bytes(bytes(damaged))
    with pytest.raises(IndexFormatError, match="not a Docent index"):
        from_bytes(b"PK\x03\x04 a zip file, not an index" * 4)
    newer = bytearray(blob)
    newer[8] = 99  # format version
    with pytest.raises(IndexFormatError, match="version 99"):
        from_bytes(bytes(newer))
    (tmp_path / "empty.idx").write_bytes(b"")
    with pytest.raises(IndexFormatError):
        load(tmp_path / "empty.idx")
    with pytest.raises(RuntimeError, match="cannot open"):
        load(tmp_path / "missing.idx")


def test_checksum_is_xxh64():
    xxhash = pytest.importorskip("xxhash")
    from retrieval.index import _engine

    for size in (0, 1, 3, 4, 7, 8, 31, 32, 33, 100, 1000):
        data = bytes(range(256)) * 4
        assert _engine.xxh64(data[:size]) == xxhash.xxh64_intdigest(data[:size])


def test_search_releases_the_gil():
    base, queries = _data(n=60000, nq=200, dim=128)
    index = FlatIndex(128)
    index.add(base)
    ticks = 0
    done = threading.Event()

    def count():
        nonlocal ticks
        while not done.is_set():
            ticks += 1

    started = threading.Event()
    worker = threading.Thread(target=lambda: (started.set(), index.search(queries, k=10, threads=1), done.set()))
    counter = threading.Thread(target=count)
    counter.start()
    worker.start()
    worker.join()
    done.set()
    counter.join()
    # Had the search held the GIL, the counting thread could only run between the
    # interpreter's switch intervals before and after it; released, it counts throughout.
    assert ticks > 10_000


def test_concurrent_searches_agree_with_a_single_thread():
    base, queries = _data(n=4000, nq=64, dim=48)
    index = FlatIndex(48)
    index.add(base)
    expected = index.search(queries, k=10, threads=1)
    results = [None] * 4

    def run(slot):
        results[slot] = index.search(queries, k=10)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for distances, ids in results:
        np.testing.assert_array_equal(ids, expected[1])


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_batched_exact_search_stays_exact_when_scores_nearly_tie(metric):
    """The AVX-512 BF16 batch path scores in bf16 and re-scores everything within its error
    bound in fp32: with thousands of rows a hair apart, the result must still be the exact one."""
    rng = np.random.default_rng(7)
    direction = rng.standard_normal(384).astype(np.float32)
    base = (direction + rng.standard_normal((6000, 384)).astype(np.float32) * 1e-3).astype(np.float32)
    queries = (direction + rng.standard_normal((64, 384)).astype(np.float32) * 1e-3).astype(np.float32)
    index = FlatIndex(384, metric=metric)
    index.add(base)
    _, found = index.search(queries, k=10)
    _, expected = _brute_force(base, queries, 10, metric)
    assert (found == expected).mean() > 0.99  # float32 against float64 may swap true near-ties only
    previous = engine.simd_level()
    engine.set_simd_level("generic")
    try:
        _, generic = index.search(queries, k=10)
    finally:
        engine.set_simd_level(previous)
    assert (found == generic).mean() > 0.99
