"""The GPU engine from Python: exact search, IVF-Flat and k-means on NVIDIA GPUs, and moving an
index between CPU and GPU in one call.

    from retrieval import gpu
    gpu.unavailable_reason()                      # None when a GPU can be used, else why not
    g = gpu.to_gpu(flat_index, precision="f16")   # a retrieval.index.FlatIndex, copied to GPU 0
    distances, ids = g.search(queries, k=10)      # the same API and results as on the CPU
    flat_index = gpu.to_cpu(g)
    shards = gpu.ShardedFlatIndex(384, devices=[0, 1])   # one index spread over several GPUs

Exact search computes the query-by-vector products tile by tile, on the tensor cores for f16
and bf16 (fp32 accumulation) or the CUDA cores for f32, and reduces every tile to its best k in
shared memory, so the full distance matrix is never written (native/cuda/). k is at most 256.
The module is built when the package's build finds a CUDA compiler; without one, or without a
GPU, every constructor raises GpuUnavailable naming the reason.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from retrieval.index import FlatIndex, IVFIndex, _as_ids, _as_matrix, _check_metric

try:
    from retrieval import _engine_cuda as _cuda
except ImportError as exc:  # built without CUDA
    _cuda, _missing = None, str(exc)

PRECISIONS = ("f32", "f16", "bf16")


class GpuUnavailable(RuntimeError):
    """No GPU can be used here; the message says why."""


def unavailable_reason() -> str | None:
    if _cuda is None:
        return "this build of Docent has no GPU engine (no CUDA compiler was found when it was built)"
    return _cuda.unavailable_reason() or None


def available() -> bool:
    return unavailable_reason() is None


def devices() -> list[dict]:
    """Each usable GPU: id, name, total_memory, free_memory, compute_capability."""
    return [] if _cuda is None else _cuda.devices()


def _require() -> None:
    reason = unavailable_reason()
    if reason is not None:
        raise GpuUnavailable(reason)


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")


def _vectors_and_ids(vectors, ids, dim: int, first_id: int) -> tuple[np.ndarray, np.ndarray]:
    """The vectors as float32 (n, dim) and their ids (by default first_id, first_id + 1, ...)."""
    matrix = _as_matrix(vectors, dim, "vectors")
    ids = np.arange(first_id, first_id + len(matrix), dtype=np.int64) if ids is None else _as_ids(ids)
    if len(ids) != len(matrix):
        raise ValueError(f"got {len(matrix)} vectors but {len(ids)} ids")
    return matrix, ids


def _check_k(k: int) -> int:
    if not 1 <= int(k) <= 256:
        raise ValueError(f"k must be between 1 and 256 on the GPU, got {k}")
    return int(k)


class GpuFlatIndex:
    """Exact search on one GPU, with caller-chosen int64 ids."""

    def __init__(self, dim: int, *, metric: str = "ip", precision: str = "f32", device: int = 0):
        _check_metric(metric)
        _check_precision(precision)
        _require()
        self.precision = precision
        self._native = _cuda.FlatIndex(int(dim), metric, precision, int(device))

    dim = property(lambda self: self._native.dim)
    metric = property(lambda self: self._native.metric)
    device = property(lambda self: self._native.device)
    memory_bytes = property(lambda self: self._native.memory_bytes)

    def __len__(self) -> int:
        return len(self._native)

    def add(self, vectors, ids=None) -> None:
        self._native.add(*_vectors_and_ids(vectors, ids, self.dim, len(self)))

    def search(self, queries, k: int = 10):
        """(distances, ids), each (nq, k), best first; ids -1 where there are fewer than k."""
        return self._native.search(_as_matrix(queries, self.dim, "queries"), _check_k(k))

    def ids(self) -> np.ndarray:
        return self._native.ids()

    def vectors(self) -> np.ndarray:
        return self._native.vectors()

    def reset(self) -> None:
        self._native.reset()


class GpuIvfFlatIndex:
    """IVF-Flat on one GPU: vectors in k-means cells, nprobe cells scanned per query."""

    def __init__(self, dim: int, centroids, *, metric: str = "ip", device: int = 0):
        _check_metric(metric)
        _require()
        self._native = _cuda.IvfFlatIndex(int(dim), metric, _as_matrix(centroids, int(dim), "centroids"), int(device))

    @classmethod
    def train(cls, vectors, nlist: int, *, metric: str = "ip", device: int = 0, iterations: int = 20, seed: int = 1234):
        """Cells from k-means on the GPU (spherical for cosine and inner product)."""
        matrix = _as_matrix(vectors, np.asarray(vectors).shape[-1], "vectors")
        centroids = kmeans(matrix, nlist, iterations=iterations, spherical=metric != "l2", seed=seed, device=device)
        return cls(matrix.shape[1], centroids, metric=metric, device=device)

    dim = property(lambda self: self._native.dim)
    nlist = property(lambda self: self._native.nlist)

    def __len__(self) -> int:
        return len(self._native)

    def add(self, vectors, ids=None) -> None:
        self._native.add(*_vectors_and_ids(vectors, ids, self.dim, len(self)))

    def search(self, queries, k: int = 10, *, nprobe: int = 8):
        return self._native.search(_as_matrix(queries, self.dim, "queries"), _check_k(k), int(nprobe))


def kmeans(vectors, k: int, *, iterations: int = 20, spherical: bool = False, seed: int = 1234, device: int = 0) -> np.ndarray:
    """(k, dim) centroids by Lloyd's algorithm on the GPU; spherical keeps them unit length."""
    _require()
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError("vectors must be a 2-D array (n, dim)")
    return _cuda.kmeans(matrix, int(k), int(iterations), bool(spherical), int(seed), int(device))


def to_gpu(index, *, device: int = 0, precision: str = "f32"):
    """A CPU index copied to a GPU in one call: FlatIndex -> GpuFlatIndex, IVFIndex with flat
    cells -> GpuIvfFlatIndex (same centroids and vectors)."""
    if isinstance(index, FlatIndex):
        gpu_index = GpuFlatIndex(index.dim, metric=index.metric, precision=precision, device=device)
        if len(index):
            gpu_index.add(index.vectors(), index.ids())
        return gpu_index
    if isinstance(index, IVFIndex):
        gpu_index = GpuIvfFlatIndex(index.dim, index.centroids(), metric=index.metric, device=device)
        ids = index.ids()
        if len(ids):
            gpu_index.add(np.stack([index.reconstruct(int(i)) for i in ids]), ids)
        return gpu_index
    raise TypeError(f"cannot move a {type(index).__name__} to the GPU: use a FlatIndex or an IVFIndex")


def to_cpu(gpu_index: GpuFlatIndex) -> FlatIndex:
    """The GPU index's vectors and ids in a CPU FlatIndex (f16/bf16 come back as stored)."""
    index = FlatIndex(gpu_index.dim, metric=gpu_index.metric)
    if len(gpu_index):
        index.add(gpu_index.vectors(), gpu_index.ids())
    return index


class ShardedFlatIndex:
    """One exact index spread over several GPUs: adds go to the shard with the fewest vectors,
    a search asks every shard and merges their lists. The same device may be named twice
    (how it is tested on one GPU)."""

    def __init__(self, dim: int, *, devices: Sequence[int] = (0,), metric: str = "ip", precision: str = "f32"):
        if not devices:
            raise ValueError("name at least one device")
        self.metric = metric
        self.shards = [GpuFlatIndex(dim, metric=metric, precision=precision, device=d) for d in devices]

    dim = property(lambda self: self.shards[0].dim)

    def __len__(self) -> int:
        return sum(len(s) for s in self.shards)

    def add(self, vectors, ids=None) -> None:
        matrix, ids = _vectors_and_ids(vectors, ids, self.dim, len(self))
        # Contiguous parts, each to the emptiest shard, keep the shards balanced.
        parts = np.array_split(np.arange(len(matrix)), len(self.shards))
        for part in parts:
            if len(part):
                min(self.shards, key=len).add(matrix[part], ids[part])

    def search(self, queries, k: int = 10):
        k = _check_k(k)
        results = [s.search(queries, k) for s in self.shards if len(s)]
        if not results:
            nq = len(_as_matrix(queries, self.dim, "queries"))
            return np.full((nq, k), -np.inf if self.metric != "l2" else np.inf, np.float32), np.full((nq, k), -1, np.int64)
        distances = np.concatenate([d for d, _ in results], axis=1)
        ids = np.concatenate([i for _, i in results], axis=1)
        order = np.argsort(distances if self.metric == "l2" else -distances, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(distances, order, axis=1), np.take_along_axis(ids, order, axis=1)
