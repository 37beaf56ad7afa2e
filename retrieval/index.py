"""The engine's Python API: numpy in, numpy out, keyword arguments, one interface per index.

    from retrieval.index import index_factory, load, from_bytes
    idx = index_factory(384, "Flat", metric="cosine")
    idx.add(vectors, ids)
    distances, ids = idx.search(queries, k=10)

Distances follow the metric: inner product and cosine give similarities (higher is better),
``l2`` gives squared Euclidean distances (lower is better). Where fewer than k results
exist, the rest of the row holds id -1.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from retrieval import _engine
from retrieval._engine import IndexFormatError

__all__ = [
    "BM25Index",
    "FlatIndex",
    "IndexFormatError",
    "from_bytes",
    "index_factory",
    "load",
    "simd_level",
    "supported_simd_levels",
    "set_simd_level",
]

METRICS = ("ip", "l2", "cosine")

simd_level = _engine.simd_level
supported_simd_levels = _engine.supported_simd_levels
set_simd_level = _engine.set_simd_level


def _as_matrix(values, dim: int, what: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (n, {dim}), got shape {array.shape}")
    if array.shape[1] != dim:
        raise ValueError(f"{what} have dimension {array.shape[1]}, the index has dimension {dim}")
    if not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"{what} must be numeric, got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.float32)


def _as_ids(ids, what: str = "ids") -> np.ndarray:
    array = np.asarray(ids)
    if array.ndim == 0:
        array = array[None]
    if array.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{what} must be integers, got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.int64)


def _check_k(k: int) -> int:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool):
        raise TypeError(f"k must be an integer, got {type(k).__name__}")
    if k <= 0:
        raise ValueError(f"k must be at least 1, got {k}")
    return int(k)


class FlatIndex:
    """Exact search over float32 vectors with caller-chosen int64 ids."""

    def __init__(self, dim: int, *, metric: str = "ip", _native=None):
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}: use one of {', '.join(METRICS)}")
        self._native = _native if _native is not None else _engine.FlatIndex(int(dim), metric)
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

    def add(self, vectors, ids=None) -> None:
        """Adds vectors (n, dim); ids default to len(self), len(self)+1, ... An existing id is updated."""
        matrix = _as_matrix(vectors, self.dim, "vectors")
        if ids is None:
            start = int(self.ids().max()) + 1 if len(self) else 0
            ids = np.arange(start, start + len(matrix), dtype=np.int64)
        id_array = _as_ids(ids)
        if len(id_array) != len(matrix):
            raise ValueError(f"got {len(matrix)} vectors but {len(id_array)} ids")
        self._native.add(matrix, id_array)

    def remove(self, ids, *, missing_ok: bool = False) -> int:
        """Removes ids; an unknown id is a KeyError unless missing_ok. Returns how many went."""
        id_array = _as_ids(ids)
        if not missing_ok:
            unknown = [int(i) for i in id_array if int(i) not in self._native]
            if unknown:
                raise KeyError(f"ids not in the index: {unknown[:10]}")
        return self._native.remove(id_array)

    def search(self, queries, k: int = 10, *, filter=None, threads: int = 0):
        """Returns (distances, ids), each (n_queries, k); id -1 where fewer than k exist.

        filter: an allow-list of ids; only those can come back.
        """
        matrix = _as_matrix(queries, self.dim, "queries")
        allowed = None if filter is None else _as_ids(filter, "filter")
        return self._native.search(matrix, _check_k(k), allowed, int(threads))

    def reconstruct(self, id_) -> np.ndarray:
        """The stored vector of an id (normalized when the metric is cosine)."""
        return self._native.reconstruct(int(id_))

    def ids(self) -> np.ndarray:
        return self._native.ids()

    def to_bytes(self) -> bytes:
        return self._native.serialize(self.checkpoint)

    def save(self, path: str | os.PathLike) -> None:
        """Writes atomically: a temporary file, fsync, then rename over the target."""
        self._native.save(os.fspath(path), self.checkpoint)


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
        for id_ in _as_ids(ids):
            if self._native.remove(int(id_)):
                removed += 1
            elif not missing_ok:
                raise KeyError(f"id {int(id_)} is not in the index")
        return removed

    def search(self, queries: Sequence[Sequence[int]], k: int = 10, *, filter=None, threads: int = 0):
        """Top k per query (a list of token-id lists): (scores, ids), each (n_queries, k)."""
        token_lists = [_as_tokens(q).tolist() for q in queries]
        allowed = None if filter is None else _as_ids(filter, "filter")
        return self._native.search(token_lists, _check_k(k), allowed, int(threads))

    def scores(self, query: Sequence[int], ids) -> np.ndarray:
        """BM25 scores of the given documents for one query (0 where no token matches)."""
        return self._native.scores(_as_tokens(query).tolist(), _as_ids(ids))

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


def index_factory(dim: int, description: str = "Flat", *, metric: str = "ip"):
    """Builds an index from a short description. This build knows "Flat"."""
    kind = description.strip()
    if kind == "Flat":
        return FlatIndex(dim, metric=metric)
    raise ValueError(f"unknown index description {description!r}: this build supports 'Flat'")


def _wrap(native, checkpoint: int):
    if isinstance(native, _engine.FlatIndex):
        index = FlatIndex(native.dim, metric=native.metric, _native=native)
    else:
        index = BM25Index(_native=native)
    index.checkpoint = checkpoint
    return index


def load(path: str | os.PathLike):
    """Loads any index written by save(); a damaged or foreign file raises IndexFormatError."""
    native, checkpoint = _engine.load_file(os.fspath(path))
    return _wrap(native, checkpoint)


def from_bytes(blob: bytes):
    """Loads any index from to_bytes() output; damaged bytes raise IndexFormatError."""
    native, checkpoint = _engine.load_bytes(bytes(blob))
    return _wrap(native, checkpoint)
