"""The approximate indexes (HNSW, IVF), k-means and the factory, checked against exact search.

Synthetic clustered data stands in for embeddings here (fast and the same on every machine);
the real GloVe split in ../shared is used where present.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from retrieval.index import (
    FlatIndex,
    HNSWIndex,
    IndexFormatError,
    IVFIndex,
    from_bytes,
    index_factory,
    kmeans,
    load,
)

from support.shared_data import shared_path


def _clustered(n=4000, nq=100, dim=48, seed=0):
    """Points around 60 random centres: neighbourhoods like those of real embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((60, dim)).astype(np.float32) * 3
    base = centres[rng.integers(0, 60, n)] + rng.standard_normal((n, dim)).astype(np.float32)
    queries = centres[rng.integers(0, 60, nq)] + rng.standard_normal((nq, dim)).astype(np.float32)
    return base.astype(np.float32), queries.astype(np.float32)


def _exact(base, queries, k, metric, ids=None):
    flat = FlatIndex(base.shape[1], metric=metric)
    flat.add(base, ids)
    return flat.search(queries, k)


def _recall(found, truth):
    k = truth.shape[1]
    return np.mean([len(set(a[:k]) & set(b)) / k for a, b in zip(found, truth)])


@pytest.mark.parametrize("metric", ["ip", "l2", "cosine"])
@pytest.mark.parametrize("description", ["HNSW16", "HNSW16,SQfp16", "HNSW16,SQ8", "HNSW16,SQ8,Rerank"])
def test_hnsw_recall_against_exact_search(metric, description):
    base, queries = _clustered()
    ids = np.arange(len(base), dtype=np.int64) * 3 + 11
    _, truth = _exact(base, queries, 10, metric, ids)
    index = index_factory(base.shape[1], description, metric=metric)
    index.add(base, ids)
    distances, found = index.search(queries, k=10, ef=128)
    assert _recall(found, truth) >= (0.9 if "SQ8" in description and "Rerank" not in description else 0.97)
    # distances are real distances of the returned ids, best first
    exact_d, _ = _exact(base, queries, len(base), metric, ids)
    order = 1 if metric == "l2" else -1
    assert np.all(np.diff(distances, axis=1) * order >= -1e-3)
    if "Rerank" in description or description == "HNSW16":
        flat = FlatIndex(base.shape[1], metric=metric)
        flat.add(base, ids)
        v = flat.reconstruct(int(found[0, 0]))
        q = queries[0] / (np.linalg.norm(queries[0]) if metric == "cosine" else 1)
        expected = ((q - v) ** 2).sum() if metric == "l2" else q @ v
        assert distances[0, 0] == pytest.approx(expected, rel=1e-4, abs=1e-4)


def test_hnsw_higher_ef_finds_more():
    base, queries = _clustered(n=6000, dim=32, seed=3)
    _, truth = _exact(base, queries, 10, "l2")
    index = HNSWIndex(32, metric="l2", M=8, ef_construction=40)
    index.add(base)
    recalls = [_recall(index.search(queries, 10, ef=ef)[1], truth) for ef in (10, 40, 200)]
    assert recalls[0] < recalls[2] and recalls[2] > 0.98


def test_hnsw_grows_deletes_reuse_slots_and_updates():
    base, queries = _clustered(n=3000, seed=4)
    index = HNSWIndex(base.shape[1], metric="l2", M=12)
    for start in range(0, 3000, 250):  # many small adds: the index grows without a capacity
        index.add(base[start : start + 250], np.arange(start, start + 250))
    assert len(index) == 3000
    gone = np.arange(0, 3000, 2)
    assert index.remove(gone) == 1500 and len(index) == 1500
    kept = base[1::2]
    _, truth = _exact(kept, queries, 10, "l2", np.arange(1, 3000, 2))
    _, found = index.search(queries, 10, ef=100)
    assert not np.isin(found, gone).any()
    assert _recall(found, truth) > 0.95
    slots_before = index.memory_bytes
    index.add(base[gone] + 0.01, gone + 100000)  # new ids fill the freed slots
    assert len(index) == 3000 and index.memory_bytes <= slots_before + 1500 * 64
    # re-adding an id replaces its vector
    index.add(queries[:1], [7])
    d, i = index.search(queries[:1], 1, ef=100)
    assert i[0, 0] == 7 and d[0, 0] == pytest.approx(0, abs=1e-4)
    np.testing.assert_allclose(index.reconstruct(7), queries[0], rtol=1e-6)
    with pytest.raises(KeyError):
        index.remove([123456789])
    assert index.remove([123456789], missing_ok=True) == 0


@pytest.mark.parametrize("share", [0.5, 0.1, 0.01, 0.002])
def test_hnsw_filter_keeps_only_allowed_and_still_finds_k(share):
    base, queries = _clustered(n=5000, seed=5)
    ids = np.arange(len(base), dtype=np.int64)
    rng = np.random.default_rng(0)
    allowed = rng.choice(ids, max(10, int(len(ids) * share)), replace=False)
    index = HNSWIndex(base.shape[1], metric="ip", M=16)
    index.add(base, ids)
    _, truth = _exact(base[allowed], queries, 10, "ip", allowed)
    _, found = index.search(queries, 10, filter=allowed, ef=64)
    assert np.isin(found, allowed).all()  # never an id outside the filter, and no -1: k exist
    assert _recall(found, truth) > 0.9


def test_search_is_safe_while_another_thread_adds():
    base, queries = _clustered(n=6000, seed=6)
    index = HNSWIndex(base.shape[1], metric="l2", M=12, ef_construction=64)
    index.add(base[:1000], np.arange(1000))
    errors = []

    def writer():
        try:
            for start in range(1000, 6000, 500):
                index.add(base[start : start + 500], np.arange(start, start + 500), threads=2)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    seen = 0
    while thread.is_alive():
        d, i = index.search(queries, 5, ef=32)
        assert ((i >= 0) & (i < 6000)).all()
        seen += 1
    thread.join()
    assert not errors and seen > 0 and len(index) == 6000
    _, truth = _exact(base, queries, 10, "l2")
    assert _recall(index.search(queries, 10, ef=100)[1], truth) > 0.95


@pytest.mark.parametrize("description", ["Flat", "HNSW16", "HNSW16,SQ8,Rerank", "IVF32,Flat", "IVF32,PQ8,Rerank"])
def test_every_kind_saves_loads_maps_and_round_trips_bytes(tmp_path, description):
    base, queries = _clustered(n=2000, seed=7)
    index = index_factory(base.shape[1], description, metric="cosine")
    index.add(base, np.arange(2000) + 5)
    index.remove([5, 6])
    index.checkpoint = 42
    expected = index.search(queries, 10)
    path = tmp_path / "x.idx"
    index.save(path)
    for loaded in (load(path), load(path, mmap=True), from_bytes(index.to_bytes())):
        assert type(loaded) is type(index) and len(loaded) == 1998 and loaded.checkpoint == 42
        got = loaded.search(queries, 10)
        np.testing.assert_array_equal(got[1], expected[1])
        np.testing.assert_allclose(got[0], expected[0], rtol=1e-6)


@pytest.mark.parametrize("description", ["Flat", "HNSW16"])
def test_memory_mapped_flat_and_hnsw_are_read_only_and_search_the_file(tmp_path, description):
    base, queries = _clustered(n=1500, seed=8)
    index = index_factory(base.shape[1], description, metric="l2")
    index.add(base)
    index.save(tmp_path / "h.idx")
    mapped = load(tmp_path / "h.idx", mmap=True)
    assert mapped.read_only
    with pytest.raises(ValueError, match="read-only"):
        mapped.add(base[:1])
    with pytest.raises(ValueError, match="read-only"):
        mapped.remove([0])
    np.testing.assert_array_equal(mapped.search(queries, 5)[1], index.search(queries, 5)[1])


@pytest.mark.parametrize("description", ["HNSW8", "HNSW8,SQ8", "IVF8,PQ8"])
def test_damaged_files_of_new_kinds_are_refused(tmp_path, description):
    base, _ = _clustered(n=600, seed=9)
    index = index_factory(base.shape[1], description, metric="l2")
    index.add(base)
    blob = bytearray(index.to_bytes())
    rng = np.random.default_rng(1)
    for position in rng.integers(0, len(blob), 40):
        damaged = bytearray(blob)
        damaged[position] ^= 0x5A
        with pytest.raises(IndexFormatError):
            from_bytes(bytes(damaged))
    for cut in (0, 10, 40, len(blob) // 2, len(blob) - 1):
        with pytest.raises(IndexFormatError):
            from_bytes(bytes(blob[:cut]))
    path = tmp_path / "d.idx"
    path.write_bytes(bytes(blob[: len(blob) // 3]))
    with pytest.raises(IndexFormatError):
        load(path, mmap=True)


@pytest.mark.parametrize("description", ["HNSW8", "IVF4,Flat"])
def test_bad_input_is_refused_and_changes_nothing(description):
    base, queries = _clustered(n=500, dim=16, seed=10)
    index = index_factory(16, description, metric="l2")
    index.add(base)
    bad = base[:3].copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        index.add(bad, [9001, 9002, 9003])
    with pytest.raises(ValueError, match="dimension 17"):
        index.add(np.zeros((2, 17), np.float32))
    with pytest.raises(ValueError, match="k must be at least 1"):
        index.search(queries, 0)
    with pytest.raises(ValueError, match="dimension 15"):
        index.search(np.zeros((1, 15), np.float32), 3)
    with pytest.raises(ValueError, match="non-negative"):
        index.add(base[:1], [-4])
    assert len(index) == 500 and 9001 not in index
    d, i = index.search(queries[:2], 600)  # k above the collection: what there is, then -1
    assert (i[:, :500] >= 0).all() and (i[:, 500:] == -1).all()


@pytest.mark.parametrize("description", ["Flat", "HNSW16", "IVF16,Flat"])
@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_range_search_matches_exact(description, metric):
    base, queries = _clustered(n=2000, dim=24, seed=11)
    exact = FlatIndex(24, metric=metric)
    exact.add(base)
    d, _ = exact.search(queries, 30)
    radius = float(np.median(d[:, 20]))
    lims_e, dist_e, ids_e = exact.range_search(queries, radius)
    index = index_factory(24, description, metric=metric)
    index.add(base)
    knobs = {"ef": 64} if description.startswith("HNSW") else {"nprobe": 16} if description.startswith("IVF") else {}
    lims, dist, ids = index.range_search(queries, radius, **knobs)
    assert len(lims) == len(queries) + 1
    found = sum(
        len(set(ids[lims[q] : lims[q + 1]]) & set(ids_e[lims_e[q] : lims_e[q + 1]])) for q in range(len(queries))
    )
    assert found / len(ids_e) > (0.999 if description == "Flat" else 0.9)
    inside = dist <= radius + 1e-4 if metric == "l2" else dist >= radius - 1e-4
    assert inside.all()


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_ivf_flat_and_pq(metric):
    base, queries = _clustered(n=5000, dim=48, seed=12)
    _, truth = _exact(base, queries, 10, metric)
    flat = IVFIndex(48, metric=metric, nlist=32)
    with pytest.raises(ValueError, match="not trained"):
        flat.add(base[:10])
    flat.train(base)
    flat.add(base)
    assert flat.is_trained and flat.centroids().shape == (32, 48)
    assert _recall(flat.search(queries, 10, nprobe=32)[1], truth) > 0.999  # all cells: exact
    assert _recall(flat.search(queries, 10, nprobe=6)[1], truth) > 0.8
    pq = index_factory(48, "IVF32,PQ12", metric=metric)
    pq.add(base)  # trains on its first batch
    assert pq.memory_bytes < flat.memory_bytes / 4
    reranked = index_factory(48, "IVF32,PQ12,Rerank", metric=metric)
    reranked.add(base)
    r_pq = _recall(pq.search(queries, 10, nprobe=8)[1], truth)
    r_rr = _recall(reranked.search(queries, 10, nprobe=8)[1], truth)
    assert r_pq >= _faiss_ivfpq_recall(base, queries, truth, metric) - 0.05  # as good as Faiss's PQ
    assert r_rr > r_pq and r_rr > 0.8
    allowed = np.arange(0, 5000, 7)
    _, found = flat.search(queries, 10, nprobe=32, filter=allowed)
    assert np.isin(found[found >= 0], allowed).all()
    pq.remove(np.arange(100))
    assert len(pq) == 4900 and not np.isin(pq.search(queries, 10, nprobe=32)[1], np.arange(100)).any()


@pytest.mark.parametrize("description", ["IVF16,Flat", "IVF16,PQ12", "IVF16,PQ12,Rerank"])
@pytest.mark.parametrize("metric", ["ip", "l2", "cosine"])
def test_an_ivf_index_moves_by_its_entries_without_encoding_again(description, metric):
    # How an IVF index goes to the GPU and comes back (retrieval.index.gpu.to_gpu / to_cpu).
    base, queries = _clustered(n=3000, dim=48, seed=13)
    source = index_factory(48, description, metric=metric)
    source.add(base, np.arange(3000) * 2 + 1)
    copy = index_factory(48, description, metric=metric)
    copy.set_trained(source.centroids(), source.codebooks() if source.pq_m else None)
    cells, ids, codes, originals = source.entries()
    assert codes.shape == (3000, source.pq_m or 48 * 4) and (originals is None) == (not source.rerank)
    assert np.all(np.diff(cells.astype(np.int64)) >= 0)  # cell after cell
    copy.add_encoded(cells, ids, codes, originals)
    for nprobe in (3, 16):
        np.testing.assert_array_equal(
            copy.search(queries, 10, nprobe=nprobe)[1], source.search(queries, 10, nprobe=nprobe)[1]
        )
    with pytest.raises(ValueError, match="already trained"):
        copy.set_trained(source.centroids(), source.codebooks() if source.pq_m else None)
    with pytest.raises(ValueError, match="cell 16 does not exist"):
        copy.add_encoded([16], [7], codes[:1], None if originals is None else originals[:1])
    untrained = index_factory(48, description, metric=metric)
    with pytest.raises(ValueError, match="trained"):
        untrained.add_encoded(cells[:1], ids[:1], codes[:1], None if originals is None else originals[:1])
    with pytest.raises(ValueError, match="NaN"):
        untrained.set_trained(np.full((16, 48), np.nan, np.float32), source.codebooks() if source.pq_m else None)
    assert not untrained.is_trained and len(copy) == 3000


def _faiss_ivfpq_recall(base, queries, truth, metric):
    faiss = pytest.importorskip("faiss")
    if metric == "cosine":
        base = base / np.linalg.norm(base, axis=1, keepdims=True)
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    theirs = faiss.index_factory(
        base.shape[1], "IVF32,PQ12", faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    )
    theirs.cp.verbose = False
    theirs.train(base)
    theirs.add(base)
    theirs.nprobe = 8
    return _recall(theirs.search(queries, 10)[1], truth)


def test_kmeans_finds_separated_clusters_and_spherical_centroids_are_unit():
    rng = np.random.default_rng(13)
    centres = rng.standard_normal((8, 16)).astype(np.float32) * 10
    labels = rng.integers(0, 8, 4000)
    x = centres[labels] + rng.standard_normal((4000, 16)).astype(np.float32) * 0.1
    centroids, assignment, objective = kmeans(x, 8, iterations=25, seed=1)
    assert centroids.shape == (8, 16) and assignment.shape == (4000,)
    # every true cluster maps to exactly one centroid
    pairs = {(int(a), int(b)) for a, b in zip(labels, assignment)}
    assert len(pairs) == 8
    assert objective < 4000 * 16 * 0.1**2 * 1.5
    unit, _, _ = kmeans(x, 8, spherical=True, seed=1)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1, rtol=1e-5)
    with pytest.raises(ValueError, match="at least as many points"):
        kmeans(x[:5], 8)


def test_factory_strings():
    assert isinstance(index_factory(8, "Flat"), FlatIndex)
    h = index_factory(8, "HNSW24,SQ8,Rerank", metric="cosine")
    assert (h.M, h.storage, h.rerank, h.metric) == (24, "sq8", True, "cosine")
    assert index_factory(8, "HNSW32,SQfp16").storage == "f16"
    ivf = index_factory(8, "IVF64,PQ4")
    assert (ivf.nlist, ivf.pq_m) == (64, 4)
    for bad in ("", "HNSW", "HNSWx", "IVF64", "IVF64,PQ3", "LSH", "HNSW32,PQ8"):
        with pytest.raises(ValueError):
            index_factory(8, bad)


def test_hnsw_on_real_glove_vectors():
    folder = shared_path("glove-100k")
    base = np.load(folder / "glove50_base.npy")[:30000]
    queries = np.load(folder / "glove50_query.npy")[:200]
    _, truth = _exact(base, queries, 10, "cosine")
    index = index_factory(50, "HNSW16", metric="cosine")
    index.add(base)
    assert _recall(index.search(queries, 10, ef=200)[1], truth) > 0.97
