"""The CPU indexes: exact (Flat), HNSW graphs, IVF lists (whole or PQ), BM25 over token ids, and
k-means. Each wraps one native class of `_engine` and checks its inputs at the boundary."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from retrieval.index import _engine
from retrieval.index.checks import as_ids, as_matrix, check_k, check_metric, check_positive, remove_ids


class VectorIndex:
    """What every vector index offers; subclasses add their own knobs (``ef``, ``nprobe``)."""

    _native_class = None

    def __init__(self, native):
        self._native = native
        self.checkpoint = 0  # the database change this index reflects (see retrieval.store)

    @property
    def dim(self) -> int:
        return self._native.dim

    @property
    def metric(self) -> str:
        return self._native.metric

    def __len__(self) -> int:
        return len(self._native)

    def __contains__(self, id_) -> bool:
        return int(id_) in self._native

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim}, metric={self.metric!r}, size={len(self)})"

    def add(self, vectors, ids=None, *, threads: int = 0) -> None:
        """Adds vectors (n, dim); ids default to max id + 1, + 2, ... An existing id is updated."""
        matrix = as_matrix(vectors, self.dim, "vectors")
        if ids is None:
            start = int(self.ids().max()) + 1 if len(self) else 0
            ids = np.arange(start, start + len(matrix), dtype=np.int64)
        id_array = as_ids(ids)
        if len(id_array) != len(matrix):
            raise ValueError(f"got {len(matrix)} vectors but {len(id_array)} ids")
        self._add(matrix, id_array, int(threads))

    def _add(self, matrix, ids, threads: int) -> None:
        self._native.add(matrix, ids)

    def remove(self, ids, *, missing_ok: bool = False) -> int:
        """Removes ids; an unknown id is a KeyError unless missing_ok. Returns how many went."""
        return remove_ids(self._native, ids, missing_ok)

    def search(self, queries, k: int = 10, *, filter=None, threads: int = 0, **knobs):
        """Returns (distances, ids), each (n_queries, k); id -1 where fewer than k exist.

        filter: an allow-list of ids; only those can come back.
        """
        matrix = as_matrix(queries, self.dim, "queries")
        allowed = None if filter is None else as_ids(filter, "filter")
        return self._search(matrix, check_k(k), allowed, int(threads), **knobs)

    def range_search(self, queries, radius: float, *, threads: int = 0, **knobs):
        """Every stored vector within radius of each query: (lims, distances, ids), as in Faiss.

        The hits of query i are distances[lims[i]:lims[i+1]], best first. For ip and cosine the
        radius is a similarity (hits >= radius); for l2 a squared distance (hits <= radius).
        """
        matrix = as_matrix(queries, self.dim, "queries")
        radius = float(radius)
        if not np.isfinite(radius):
            raise ValueError(f"radius must be a finite number, got {radius}")
        return self._native.range_search(matrix, radius, threads=int(threads), **knobs)

    def reconstruct(self, id_) -> np.ndarray:
        """The stored vector of an id (normalized for cosine; decoded when stored compressed)."""
        return self._native.reconstruct(int(id_))

    def ids(self) -> np.ndarray:
        return self._native.ids()

    def to_bytes(self) -> bytes:
        return self._native.serialize(self.checkpoint)

    def save(self, path: str | os.PathLike) -> None:
        """Writes atomically: a temporary file, fsync, then rename over the target."""
        self._native.save(os.fspath(path), self.checkpoint)


class FlatIndex(VectorIndex):
    """Exact search over float32 vectors with caller-chosen int64 ids."""

    def __init__(self, dim: int, *, metric: str = "ip", _native=None):
        check_metric(metric)
        super().__init__(_native if _native is not None else _engine.FlatIndex(int(dim), metric))

    read_only = property(lambda self: self._native.read_only)

    def vectors(self) -> np.ndarray:
        """Every stored vector, (len, dim), row i belonging to ids()[i] (normalized for cosine)."""
        return self._native.vectors()

    def _search(self, matrix, k, allowed, threads):
        return self._native.search(matrix, k, allowed, threads)


class HNSWIndex(VectorIndex):
    """Approximate search on an HNSW graph; grows without a capacity, deletes reuse slots.

    storage: "f32", "f16" or "sq8" (int8, a quarter of the memory). rerank: keep fp32 originals
    and re-score the candidates exactly (useful with sq8). Search knob: ``ef`` (beam width,
    default 64): higher is slower and finds more of the true neighbours.
    """

    def __init__(
        self,
        dim: int,
        *,
        metric: str = "ip",
        M: int = 32,
        ef_construction: int = 200,
        storage: str = "f32",
        rerank: bool = False,
        seed: int = 100,
        _native=None,
    ):
        check_metric(metric)
        if _native is None:
            _native = _engine.HnswIndex(
                int(dim), metric, int(M), int(ef_construction), storage, bool(rerank), int(seed)
            )
        super().__init__(_native)

    M = property(lambda self: self._native.M)
    ef_construction = property(lambda self: self._native.ef_construction)
    storage = property(lambda self: self._native.storage)
    rerank = property(lambda self: self._native.rerank)
    read_only = property(lambda self: self._native.read_only)
    memory_bytes = property(lambda self: self._native.memory_bytes)

    def _add(self, matrix, ids, threads: int) -> None:
        self._native.add(matrix, ids, threads)

    def _search(self, matrix, k, allowed, threads, ef: int = 64):
        return self._native.search(matrix, k, check_positive(ef, "ef"), allowed, threads)

    def range_search(self, queries, radius: float, *, threads: int = 0, ef: int = 64):
        return super().range_search(queries, radius, threads=threads, ef=check_positive(ef, "ef"))


class IVFIndex(VectorIndex):
    """Inverted lists over k-means cells; a query scans the ``nprobe`` nearest cells (default 8).

    pq_m=0 keeps whole vectors in the lists; pq_m=m stores m-byte product-quantized codes of the
    residual to the cell centroid (dim must divide by m). rerank keeps fp32 originals and
    re-scores the best PQ candidates exactly. train() runs k-means once; without it, the first
    add() trains on its batch (which must hold at least nlist vectors, and 256 with PQ).
    """

    def __init__(
        self,
        dim: int,
        *,
        metric: str = "ip",
        nlist: int = 1024,
        pq_m: int = 0,
        rerank: bool = False,
        seed: int = 1234,
        _native=None,
    ):
        check_metric(metric)
        if _native is None:
            _native = _engine.IvfIndex(
                int(dim), metric, check_positive(nlist, "nlist"), int(pq_m), bool(rerank), int(seed)
            )
        super().__init__(_native)

    nlist = property(lambda self: self._native.nlist)
    pq_m = property(lambda self: self._native.pq_m)
    rerank = property(lambda self: self._native.rerank)
    is_trained = property(lambda self: self._native.is_trained)
    memory_bytes = property(lambda self: self._native.memory_bytes)

    def centroids(self) -> np.ndarray:
        return self._native.centroids()

    def codebooks(self) -> np.ndarray:
        """The PQ codebooks, (pq_m, 256, dim // pq_m); empty without PQ or before training."""
        return self._native.codebooks()

    def train(self, vectors, *, threads: int = 0) -> None:
        self._native.train(as_matrix(vectors, self.dim, "training vectors"), int(threads))

    def entries(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """Every entry as stored, cell after cell: (cells, ids, codes, originals). codes is
        (n, code size) bytes (pq_m bytes, or the fp32 vector's bytes without PQ); originals is
        (n, dim) with rerank, else None. With set_trained and add_encoded this moves an index
        (to the GPU and back) without encoding anything again."""
        return self._native.entries()

    def set_trained(self, centroids, codebooks=None) -> None:
        """Trains an untrained index with given centroids (nlist, dim) and, with PQ, codebooks."""
        codebooks = np.zeros(0, np.float32) if codebooks is None else np.ascontiguousarray(codebooks, dtype=np.float32)
        self._native.set_trained(as_matrix(centroids, self.dim, "centroids"), codebooks)

    def add_encoded(self, cells, ids, codes, originals=None) -> None:
        """Adds entries as entries() gives them; an id already present is replaced."""
        original_matrix = None if originals is None else as_matrix(originals, self.dim, "originals")
        self._native.add_encoded(np.asarray(cells), as_ids(ids), np.asarray(codes), original_matrix)

    def _add(self, matrix, ids, threads: int) -> None:
        self._native.add(matrix, ids, threads)

    def _search(self, matrix, k, allowed, threads, nprobe: int = 8):
        return self._native.search(matrix, k, check_positive(nprobe, "nprobe"), allowed, threads)

    def range_search(self, queries, radius: float, *, threads: int = 0, nprobe: int = 8):
        return super().range_search(queries, radius, threads=threads, nprobe=check_positive(nprobe, "nprobe"))


def kmeans(vectors, k: int, *, iterations: int = 20, spherical: bool = False, seed: int = 1234, threads: int = 0):
    """Lloyd's k-means: (centroids (k, dim), assignment (n,), objective).

    spherical=True keeps centroids at unit length and assigns by inner product (for cosine).
    """
    matrix = np.asarray(vectors)
    if matrix.ndim != 2:
        raise ValueError(f"vectors must be a 2-D array (n, dim), got shape {matrix.shape}")
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    return _engine.kmeans(
        matrix,
        check_positive(k, "k"),
        check_positive(iterations, "iterations"),
        bool(spherical),
        int(seed),
        int(threads),
    )


class BM25Index:
    """BM25 (Okapi, as rank_bm25.BM25Okapi) over token ids, with incremental add and remove."""

    def __init__(self, *, k1: float = 1.5, b: float = 0.75, epsilon: float = 0.25, _native=None):
        self._native = _native if _native is not None else _engine.BM25Index(k1, b, epsilon)
        self.checkpoint = 0

    def __len__(self) -> int:
        return len(self._native)

    def __contains__(self, id_) -> bool:
        return int(id_) in self._native

    @property
    def vocabulary_size(self) -> int:
        return self._native.vocabulary_size

    def add(self, id_: int, tokens: Sequence[int]) -> None:
        """Adds (or replaces) one document given as its token ids."""
        self._native.add(int(id_), _as_tokens(tokens))

    def remove(self, ids, *, missing_ok: bool = False) -> int:
        removed = 0
        for id_ in as_ids(ids):
            if self._native.remove(int(id_)):
                removed += 1
            elif not missing_ok:
                raise KeyError(f"id {int(id_)} is not in the index")
        return removed

    def search(
        self, queries: Sequence[Sequence[int]], k: int = 10, *, filter=None, threads: int = 0, exhaustive: bool = False
    ):
        """Top k per query (a list of token-id lists): (scores, ids), each (n_queries, k).
        Exact either way; exhaustive scores every posting instead of skipping those that cannot
        change the top k (the reference, for tests and benchmarks)."""
        token_lists = [_as_tokens(q).tolist() for q in queries]
        allowed = None if filter is None else as_ids(filter, "filter")
        return self._native.search(token_lists, check_k(k), allowed, int(threads), bool(exhaustive))

    def search_with_statistics(
        self,
        queries: Sequence[Sequence[int]],
        idfs: Sequence[Sequence[float]],
        avgdl: float,
        k: int = 10,
        *,
        filter=None,
        threads: int = 0,
        exhaustive: bool = False,
    ):
        """search() scored with statistics of a larger collection this index is a part of (a
        shard): idfs[q][i] is the idf of queries[q][i], avgdl the collection's mean length."""
        token_lists = [_as_tokens(q).tolist() for q in queries]
        idf_lists = [[float(x) for x in row] for row in idfs]
        allowed = None if filter is None else as_ids(filter, "filter")
        return self._native.search_with_statistics(
            token_lists, idf_lists, float(avgdl), check_k(k), allowed, int(threads), bool(exhaustive)
        )

    def statistics(self) -> dict:
        """{"documents", "total_length", "terms", "document_frequencies"}: what scoring a
        collection made of several indexes needs from each (terms and their dfs as arrays)."""
        return self._native.statistics()

    def scores(self, query: Sequence[int], ids) -> np.ndarray:
        """BM25 scores of the given documents for one query (0 where no token matches)."""
        return self._native.scores(_as_tokens(query).tolist(), as_ids(ids))

    def to_bytes(self) -> bytes:
        return self._native.serialize(self.checkpoint)

    def save(self, path: str | os.PathLike) -> None:
        self._native.save(os.fspath(path), self.checkpoint)


def _as_tokens(tokens) -> np.ndarray:
    array = np.asarray(tokens)
    if array.ndim != 1:
        raise ValueError(f"tokens must be a 1-D sequence of token ids, got shape {array.shape}")
    if array.size and (not np.issubdtype(array.dtype, np.integer) or array.min() < 0):
        raise ValueError("tokens must be non-negative integer token ids")
    return np.ascontiguousarray(array, dtype=np.uint32)
