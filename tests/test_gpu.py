"""The GPU engine against the CPU engine and numpy on the same data. These run where a CUDA GPU
is usable and are skipped, with the reason, elsewhere; the first test checks that reason."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval import gpu
from retrieval.index import FlatIndex, IVFIndex

REASON = gpu.unavailable_reason()
needs_gpu = pytest.mark.skipif(REASON is not None, reason=f"no usable GPU: {REASON}")


def test_without_a_gpu_every_entry_point_says_why():
    if REASON is None:
        pytest.skip("a GPU is usable here")
    assert isinstance(REASON, str) and len(REASON) > 10
    for make in (lambda: gpu.GpuFlatIndex(8), lambda: gpu.kmeans(np.ones((4, 8), np.float32), 2),
                 lambda: gpu.GpuIvfFlatIndex(8, np.ones((2, 8), np.float32)), lambda: gpu.to_gpu(FlatIndex(8))):
        with pytest.raises(gpu.GpuUnavailable, match="GPU|CUDA|driver"):
            make()


def _data(n: int, dim: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def _exact(base: np.ndarray, queries: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """numpy's answer, in float64."""
    b, q = base.astype(np.float64), queries.astype(np.float64)
    if metric == "cosine":
        b, q = b / np.linalg.norm(b, axis=1, keepdims=True), q / np.linalg.norm(q, axis=1, keepdims=True)
    if metric == "l2":
        scores = -((q ** 2).sum(1)[:, None] - 2 * q @ b.T + (b ** 2).sum(1)[None, :])
    else:
        scores = q @ b.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    values = np.take_along_axis(scores, order, axis=1)
    return (-values if metric == "l2" else values), order


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


@needs_gpu
@pytest.mark.parametrize("metric", ["ip", "l2", "cosine"])
@pytest.mark.parametrize("k", [1, 10, 100, 256])
def test_exact_fp32_search_matches_numpy_and_the_cpu(metric, k):
    base, queries = _data(5000, 100), _data(300, 100, seed=1)  # 100: not a multiple of the tile depth
    index = gpu.GpuFlatIndex(100, metric=metric)
    index.add(base, np.arange(5000) * 7)
    distances, ids = index.search(queries, k)
    truth_d, truth_i = _exact(base, queries, k, metric)
    assert _recall(ids // 7, truth_i) > 0.999  # equal up to near-ties
    np.testing.assert_allclose(distances, truth_d, rtol=1e-4, atol=1e-3)
    cpu = FlatIndex(100, metric=metric)
    cpu.add(base, np.arange(5000) * 7)
    assert _recall(ids, cpu.search(queries, k)[1]) > 0.999


@needs_gpu
@pytest.mark.parametrize("precision", ["f16", "bf16"])
def test_tensor_core_search_is_exact_up_to_its_rounding(precision):
    base, queries = _data(20000, 384), _data(256, 384, seed=2)
    index = gpu.GpuFlatIndex(384, metric="cosine", precision=precision)
    index.add(base)
    distances, ids = index.search(queries, 10)
    truth_d, truth_i = _exact(base, queries, 10, "cosine")
    assert _recall(ids, truth_i) > (0.97 if precision == "f16" else 0.93)
    np.testing.assert_allclose(distances, truth_d, atol=2e-2 if precision == "f16" else 6e-2)


@needs_gpu
def test_fewer_vectors_than_k_and_empty_index():
    index = gpu.GpuFlatIndex(16)
    distances, ids = index.search(_data(3, 16), 5)
    assert (ids == -1).all()
    index.add(_data(3, 16), [10, 11, 12])
    distances, ids = index.search(_data(2, 16, seed=3), 5)
    assert sorted(ids[0][:3]) == [10, 11, 12] and (ids[:, 3:] == -1).all()


@needs_gpu
def test_bad_input_is_refused_with_a_clear_error():
    index = gpu.GpuFlatIndex(16)
    with pytest.raises(ValueError, match="dimension 8"):
        index.add(_data(4, 8))
    with pytest.raises(ValueError, match="k must be between 1 and 256"):
        index.search(_data(1, 16), 300)
    bad = _data(2, 16)
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        index.add(bad)
    index.add(_data(2, 16), [1, 2])
    with pytest.raises(ValueError, match="already"):
        index.add(_data(1, 16), [1])
    with pytest.raises(RuntimeError, match="no GPU 999"):
        gpu.GpuFlatIndex(16, device=999)


@needs_gpu
def test_running_out_of_gpu_memory_says_how_much_was_needed():
    index = gpu.GpuFlatIndex(4096)
    chunk = np.ones((65536, 4096), np.float32)  # 1 GiB a time: the index doubles until the GPU is full
    added = 0
    with pytest.raises(RuntimeError, match=r"out of GPU memory on device \d+: needed \d+ MiB, \d+ MiB free of \d+ MiB"):
        for _ in range(1024):
            index.add(chunk, np.arange(added, added + len(chunk)))
            added += len(chunk)
    assert len(index) == added  # what went in before stays, and still answers
    assert index.search(chunk[:1], 1)[1][0, 0] >= 0
    index.reset()


@needs_gpu
def test_moving_an_index_to_the_gpu_and_back():
    base, queries = _data(3000, 64), _data(50, 64, seed=4)
    cpu = FlatIndex(64, metric="l2")
    cpu.add(base, np.arange(3000) + 100)
    on_gpu = gpu.to_gpu(cpu)
    assert len(on_gpu) == 3000
    cpu_d, cpu_i = cpu.search(queries, 10)
    gpu_d, gpu_i = on_gpu.search(queries, 10)
    assert _recall(gpu_i, cpu_i) > 0.999
    np.testing.assert_allclose(gpu_d, cpu_d, rtol=1e-4, atol=1e-3)
    back = gpu.to_cpu(on_gpu)
    np.testing.assert_array_equal(back.ids(), cpu.ids())
    np.testing.assert_array_equal(back.vectors(), cpu.vectors())


@needs_gpu
def test_kmeans_on_the_gpu_is_as_good_as_on_the_cpu():
    from retrieval.index import kmeans as cpu_kmeans

    rng = np.random.default_rng(5)
    centers = rng.standard_normal((20, 32)).astype(np.float32) * 5
    data = (centers[rng.integers(0, 20, 20000)] + rng.standard_normal((20000, 32))).astype(np.float32)

    def inertia(c):
        return float(((data[:, None, :] - c[None]) ** 2).sum(-1).min(1).sum())

    on_gpu = gpu.kmeans(data, 20, iterations=25, seed=3)
    on_cpu = cpu_kmeans(data, 20, iterations=25, seed=3)
    assert on_gpu.shape == (20, 32)
    assert inertia(on_gpu) <= 1.05 * inertia(on_cpu)
    spherical = gpu.kmeans(data, 20, spherical=True)
    np.testing.assert_allclose(np.linalg.norm(spherical, axis=1), 1.0, rtol=1e-4)


@needs_gpu
@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_ivf_flat_on_the_gpu(metric):
    base, queries = _data(20000, 64), _data(200, 64, seed=6)
    index = gpu.GpuIvfFlatIndex.train(base, 64, metric=metric)
    index.add(base, np.arange(20000))
    truth_d, truth_i = _exact(base, queries, 10, metric)
    _, every_cell = index.search(queries, 10, nprobe=64)
    assert _recall(every_cell, truth_i) > 0.999  # all cells probed: exact
    _, some = index.search(queries, 10, nprobe=8)
    assert 0.3 < _recall(some, truth_i) < 1.0
    cpu = IVFIndex(64, metric=metric, nlist=64)
    cpu.add(base, np.arange(20000))
    moved = gpu.to_gpu(cpu)
    assert _recall(moved.search(queries, 10, nprobe=64)[1], truth_i) > 0.999


@needs_gpu
def test_an_index_sharded_over_devices_answers_like_one():
    base, queries = _data(10000, 48), _data(100, 48, seed=7)
    device = gpu.devices()[0]["id"]
    sharded = gpu.ShardedFlatIndex(48, devices=[device, device, device])
    sharded.add(base, np.arange(10000))
    assert [len(s) for s in sharded.shards] == [3334, 3333, 3333]
    _, truth_i = _exact(base, queries, 10, "ip")
    assert _recall(sharded.search(queries, 10)[1], truth_i) > 0.999
