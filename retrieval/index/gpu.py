"""The GPU engine from Python: exact search, IVF-Flat, IVF-PQ and k-means on NVIDIA GPUs, and
moving an index between CPU and GPU in one call, both ways.

    from retrieval.index import gpu
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

from retrieval.index.checks import as_ids, as_matrix, check_metric, remove_ids
from retrieval.index.indexes import FlatIndex, IVFIndex

try:
    from retrieval.index import _engine_cuda as _cuda
except ImportError as exc:  # built without CUDA
    _cuda, _missing = None, str(exc)

PRECISIONS = ("f32", "f16", "bf16")
MAX_K = 256  # the most results per query the GPU kernels keep


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
    matrix = as_matrix(vectors, dim, "vectors")
    ids = np.arange(first_id, first_id + len(matrix), dtype=np.int64) if ids is None else as_ids(ids)
    if len(ids) != len(matrix):
        raise ValueError(f"got {len(matrix)} vectors but {len(ids)} ids")
    return matrix, ids


def _check_k(k: int) -> int:
    if not 1 <= int(k) <= MAX_K:
        raise ValueError(f"k must be between 1 and {MAX_K} on the GPU, got {k}")
    return int(k)


def _check_nprobe(nprobe: int) -> int:
    if int(nprobe) < 1:
        raise ValueError(f"nprobe must be at least 1, got {nprobe}")
    return int(nprobe)


class GpuFlatIndex:
    """Exact search on one GPU, with caller-chosen int64 ids."""

    def __init__(self, dim: int, *, metric: str = "ip", precision: str = "f32", device: int = 0):
        check_metric(metric)
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

    def __contains__(self, id_) -> bool:
        return int(id_) in self._native

    def add(self, vectors, ids=None) -> None:
        """Adds vectors (n, dim); ids default to len, len + 1, ... An existing id is replaced."""
        self._native.add(*_vectors_and_ids(vectors, ids, self.dim, len(self)))

    def remove(self, ids, *, missing_ok: bool = False) -> int:
        """Removes ids; an unknown id is a KeyError unless missing_ok. Returns how many went."""
        return remove_ids(self._native, ids, missing_ok)

    def search(self, queries, k: int = 10, *, filter=None):
        """(distances, ids), each (nq, k), best first; ids -1 where there are fewer than k.

        filter: an allow-list of ids; only those can come back."""
        allowed = None if filter is None else as_ids(filter, "filter")
        return self._native.search(as_matrix(queries, self.dim, "queries"), _check_k(k), allowed)

    def ids(self) -> np.ndarray:
        return self._native.ids()

    def vectors(self) -> np.ndarray:
        return self._native.vectors()

    def reset(self) -> None:
        self._native.reset()


class _GpuIvfIndex:
    """What both GPU IVF indexes offer: vectors in k-means cells, nprobe cells scanned per query."""

    dim = property(lambda self: self._native.dim)
    metric = property(lambda self: self._native.metric)
    nlist = property(lambda self: self._native.nlist)

    def __len__(self) -> int:
        return len(self._native)

    def add(self, vectors, ids=None) -> None:
        """Adds vectors (n, dim), each to its nearest cell (and encoded there, with PQ); ids
        (default len, len + 1, ...) must be new."""
        self._native.add(*_vectors_and_ids(vectors, ids, self.dim, len(self)))

    def search(self, queries, k: int = 10, *, nprobe: int = 8, filter=None):
        """(distances, ids), as GpuFlatIndex.search, within the nprobe nearest cells."""
        allowed = None if filter is None else as_ids(filter, "filter")
        return self._native.search(as_matrix(queries, self.dim, "queries"), _check_k(k), _check_nprobe(nprobe), allowed)

    def centroids(self) -> np.ndarray:
        return self._native.centroids()

    def entries(self):
        """(cells, ids, codes, originals or None) as retrieval.index.IVFIndex.entries gives them."""
        return self._native.entries()


class GpuIvfFlatIndex(_GpuIvfIndex):
    """IVF-Flat on one GPU: vectors in k-means cells, nprobe cells scanned per query."""

    def __init__(self, dim: int, centroids, *, metric: str = "ip", device: int = 0):
        check_metric(metric)
        _require()
        self._native = _cuda.IvfFlatIndex(int(dim), metric, as_matrix(centroids, int(dim), "centroids"), int(device))

    @classmethod
    def train(cls, vectors, nlist: int, *, metric: str = "ip", device: int = 0, iterations: int = 20, seed: int = 1234):
        """Cells from k-means on the GPU (spherical for cosine and inner product)."""
        matrix = as_matrix(vectors, np.asarray(vectors).shape[-1], "vectors")
        centroids = kmeans(matrix, nlist, iterations=iterations, spherical=metric != "l2", seed=seed, device=device)
        return cls(matrix.shape[1], centroids, metric=metric, device=device)


class GpuIvfPqIndex(_GpuIvfIndex):
    """IVF-PQ on one GPU: pq_m-byte codes of each vector's residual to its cell centroid, the
    same codes as the CPU's IVFIndex(pq_m=...). Each (query, probed cell) builds its lookup table
    in shared memory; rerank keeps the fp32 originals and re-scores the best candidates exactly."""

    def __init__(self, dim: int, centroids, codebooks, *, metric: str = "ip", rerank: bool = False, device: int = 0):
        check_metric(metric)
        _require()
        codebooks = np.ascontiguousarray(codebooks, dtype=np.float32)
        if codebooks.ndim != 3 or codebooks.shape[1] != 256 or codebooks.shape[0] * codebooks.shape[2] != int(dim):
            raise ValueError(f"codebooks must be (pq_m, 256, dim // pq_m) for dim {dim}, got shape {codebooks.shape}")
        self._native = _cuda.IvfPqIndex(
            int(dim),
            metric,
            as_matrix(centroids, int(dim), "centroids"),
            codebooks,
            codebooks.shape[0],
            bool(rerank),
            int(device),
        )

    @classmethod
    def train(
        cls,
        vectors,
        nlist: int,
        pq_m: int,
        *,
        metric: str = "ip",
        rerank: bool = False,
        device: int = 0,
        iterations: int = 20,
        seed: int = 1234,
    ):
        """Cells and codebooks from k-means on the GPU, as the CPU trains them: cells on a sample
        of up to 256 vectors per cell (spherical for cosine and inner product), then one codebook
        of 256 codewords per sub-space on the residuals to the cells."""
        matrix = as_matrix(vectors, np.asarray(vectors).shape[-1], "vectors")
        dim = matrix.shape[1]
        if pq_m < 1 or dim % pq_m:
            raise ValueError(f"pq_m must divide the dimension {dim}, got {pq_m}")
        if len(matrix) < max(int(nlist), 256):
            raise ValueError(
                f"training IVF{nlist},PQ{pq_m} needs at least {max(int(nlist), 256)} vectors, got {len(matrix)}"
            )
        if metric == "cosine":
            matrix = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
        sample = matrix[
            np.linspace(0, len(matrix), min(len(matrix), int(nlist) * 256), endpoint=False).astype(np.int64)
        ]
        centroids = kmeans(sample, nlist, iterations=iterations, spherical=metric != "l2", seed=seed, device=device)
        cells = GpuFlatIndex(dim, metric="l2" if metric == "l2" else "ip", device=device)
        cells.add(centroids)
        residuals = sample - centroids[cells.search(sample, 1)[1][:, 0]]
        sub = dim // pq_m
        codebooks = np.stack(
            [
                kmeans(
                    np.ascontiguousarray(residuals[:, m * sub : (m + 1) * sub]),
                    256,
                    iterations=iterations,
                    seed=seed + m + 1,
                    device=device,
                )
                for m in range(pq_m)
            ]
        )
        return cls(dim, centroids, codebooks, metric=metric, rerank=rerank, device=device)

    pq_m = property(lambda self: self._native.pq_m)
    rerank = property(lambda self: self._native.rerank)
    memory_bytes = property(lambda self: self._native.memory_bytes)

    def add_encoded(self, cells, ids, codes, originals=None) -> None:
        """Adds entries as retrieval.index.IVFIndex.entries gives them (originals with rerank)."""
        original_matrix = None if originals is None else as_matrix(originals, self.dim, "originals")
        self._native.add_encoded(np.asarray(cells), as_ids(ids), np.asarray(codes), original_matrix)

    def codebooks(self) -> np.ndarray:
        return self._native.codebooks()


def kmeans(
    vectors, k: int, *, iterations: int = 20, spherical: bool = False, seed: int = 1234, device: int = 0
) -> np.ndarray:
    """(k, dim) centroids by Lloyd's algorithm on the GPU; spherical keeps them unit length."""
    _require()
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError("vectors must be a 2-D array (n, dim)")
    return _cuda.kmeans(matrix, int(k), int(iterations), bool(spherical), int(seed), int(device))


def to_gpu(index, *, device: int = 0, precision: str = "f32"):
    """A CPU index copied to a GPU in one call, searched with the same API: FlatIndex ->
    GpuFlatIndex; IVFIndex -> GpuIvfFlatIndex or, with PQ, GpuIvfPqIndex holding the same
    centroids, codebooks and codes (precision applies to flat indexes)."""
    if isinstance(index, FlatIndex):
        gpu_index = GpuFlatIndex(index.dim, metric=index.metric, precision=precision, device=device)
        if len(index):
            gpu_index.add(index.vectors(), index.ids())
        return gpu_index
    if isinstance(index, IVFIndex):
        if not index.is_trained:
            raise ValueError("this IVF index is not trained yet: train it (or add to it) before moving it to the GPU")
        cells, ids, codes, originals = index.entries()
        if index.pq_m:
            gpu_index = GpuIvfPqIndex(
                index.dim, index.centroids(), index.codebooks(), metric=index.metric, rerank=index.rerank, device=device
            )
            gpu_index.add_encoded(cells, ids, codes, originals)
            return gpu_index
        gpu_index = GpuIvfFlatIndex(index.dim, index.centroids(), metric=index.metric, device=device)
        if len(ids):
            gpu_index.add(codes.view(np.float32), ids)
        return gpu_index
    raise TypeError(f"cannot move a {type(index).__name__} to the GPU: use a FlatIndex or an IVFIndex")


def to_cpu(gpu_index):
    """The GPU index back in the CPU engine, in one call: GpuFlatIndex -> FlatIndex (f16/bf16
    come back as stored), GpuIvfFlatIndex / GpuIvfPqIndex -> IVFIndex with the same cells and codes."""
    if isinstance(gpu_index, GpuFlatIndex):
        index = FlatIndex(gpu_index.dim, metric=gpu_index.metric)
        if len(gpu_index):
            index.add(gpu_index.vectors(), gpu_index.ids())
        return index
    if isinstance(gpu_index, _GpuIvfIndex):
        pq = isinstance(gpu_index, GpuIvfPqIndex)
        index = IVFIndex(
            gpu_index.dim,
            metric=gpu_index.metric,
            nlist=gpu_index.nlist,
            pq_m=gpu_index.pq_m if pq else 0,
            rerank=pq and gpu_index.rerank,
        )
        index.set_trained(gpu_index.centroids(), gpu_index.codebooks() if pq else None)
        index.add_encoded(*gpu_index.entries())
        return index
    raise TypeError(f"cannot move a {type(gpu_index).__name__} to the CPU")


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
            nq = len(as_matrix(queries, self.dim, "queries"))
            return np.full((nq, k), -np.inf if self.metric != "l2" else np.inf, np.float32), np.full(
                (nq, k), -1, np.int64
            )
        distances = np.concatenate([d for d, _ in results], axis=1)
        ids = np.concatenate([i for _, i in results], axis=1)
        order = np.argsort(distances if self.metric == "l2" else -distances, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(distances, order, axis=1), np.take_along_axis(ids, order, axis=1)
