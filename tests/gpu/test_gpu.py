"""The GPU engine against the CPU engine and numpy on the same data. These run where a CUDA GPU
is usable and are skipped, with the reason, elsewhere; the first test checks that reason."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.index import gpu
from retrieval.index import FlatIndex, IVFIndex

REASON = gpu.unavailable_reason()
needs_gpu = pytest.mark.skipif(REASON is not None, reason=f"no usable GPU: {REASON}")


def test_without_a_gpu_every_entry_point_says_why():
    if REASON is None:
        pytest.skip("a GPU is usable here")
    assert isinstance(REASON, str) and len(REASON) > 10
    for make in (
        lambda: gpu.GpuFlatIndex(8),
        lambda: gpu.kmeans(np.ones((4, 8), np.float32), 2),
        lambda: gpu.GpuIvfFlatIndex(8, np.ones((2, 8), np.float32)),
        lambda: gpu.GpuIvfPqIndex(8, np.ones((2, 8), np.float32), np.ones((2, 256, 4), np.float32)),
        lambda: gpu.to_gpu(FlatIndex(8)),
    ):
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
        scores = -((q**2).sum(1)[:, None] - 2 * q @ b.T + (b**2).sum(1)[None, :])
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
    with pytest.raises(ValueError, match="twice"):
        index.add(_data(2, 16), [5, 5])
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


@needs_gpu
@pytest.mark.parametrize("metric", ["ip", "l2", "cosine"])
def test_removing_replacing_and_filtering_match_the_cpu(metric):
    base, queries = _data(4000, 96), _data(64, 96, seed=8)
    ids = np.arange(4000) * 3
    index, cpu = gpu.GpuFlatIndex(96, metric=metric), FlatIndex(96, metric=metric)
    for target in (index, cpu):
        target.add(base, ids)
        assert target.remove(ids[::4]) == 1000
        target.add(base[1:3] * 2, ids[1:3])  # replaces
    assert len(index) == len(cpu) == 3000 and ids[0] not in index and ids[1] in index
    with pytest.raises(KeyError):
        index.remove([ids[0]])
    assert index.remove([ids[0]], missing_ok=True) == 0
    np.testing.assert_allclose(np.sort(index.ids()), np.sort(cpu.ids()))
    allowed = ids[::7]
    for flt in (None, allowed, ids[:1], np.array([-5, 10**12])):
        gpu_d, gpu_i = index.search(queries, 20, filter=flt)
        cpu_d, cpu_i = cpu.search(queries, 20, filter=flt)
        assert _recall(gpu_i, cpu_i) > 0.999 if (cpu_i >= 0).any() else (gpu_i == -1).all()
        if flt is not None:
            assert set(gpu_i[gpu_i >= 0].tolist()) <= set(np.asarray(flt).tolist())
        found = cpu_i >= 0
        np.testing.assert_array_equal(gpu_i >= 0, found)
        np.testing.assert_allclose(gpu_d[found], cpu_d[found], rtol=1e-4, atol=1e-3)


def _trained_cpu_ivf_pq(metric: str, rerank: bool) -> tuple[IVFIndex, np.ndarray, np.ndarray]:
    base, queries = _data(20000, 64), _data(200, 64, seed=9)
    cpu = IVFIndex(64, metric=metric, nlist=64, pq_m=16, rerank=rerank)
    cpu.add(base, np.arange(20000) + 5)
    return cpu, base, queries


@needs_gpu
@pytest.mark.parametrize("metric", ["ip", "l2", "cosine"])
@pytest.mark.parametrize("rerank", [False, True])
def test_ivf_pq_on_the_gpu_answers_as_the_cpu_with_the_same_codes(metric, rerank):
    cpu, base, queries = _trained_cpu_ivf_pq(metric, rerank)
    moved = gpu.to_gpu(cpu)
    assert isinstance(moved, gpu.GpuIvfPqIndex) and len(moved) == 20000 and moved.rerank == rerank
    for nprobe, k in ((4, 10), (64, 10), (16, 100)):
        cpu_d, cpu_i = cpu.search(queries, k, nprobe=nprobe)
        gpu_d, gpu_i = moved.search(queries, k, nprobe=nprobe)
        assert _recall(gpu_i, cpu_i) > 0.98  # the same codes and tables: equal up to near-ties
        np.testing.assert_allclose(gpu_d, cpu_d, rtol=1e-3, atol=2e-3)
    _, truth_i = _exact(base, queries, 10, metric)
    assert _recall(moved.search(queries, 10, nprobe=64)[1] - 5, truth_i) > (0.99 if rerank else 0.5)
    allowed = np.arange(5, 20005, 3)
    cpu_d, cpu_i = cpu.search(queries, 10, nprobe=8, filter=allowed)
    gpu_d, gpu_i = moved.search(queries, 10, nprobe=8, filter=allowed)
    assert _recall(gpu_i, cpu_i) > 0.98 and np.isin(gpu_i[gpu_i >= 0], allowed).all()
    back = gpu.to_cpu(moved)  # and back: the same entries, the same answers
    np.testing.assert_array_equal(np.sort(back.ids()), np.sort(cpu.ids()))
    np.testing.assert_array_equal(back.search(queries, 10, nprobe=8)[1], cpu.search(queries, 10, nprobe=8)[1])


@needs_gpu
@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_ivf_pq_trained_and_encoded_on_the_gpu(metric):
    base, queries = _data(20000, 64), _data(200, 64, seed=10)
    index = gpu.GpuIvfPqIndex.train(base, 64, 16, metric=metric, rerank=True)
    assert index.codebooks().shape == (16, 256, 4) and index.centroids().shape == (64, 64)
    index.add(base, np.arange(20000))
    _, truth_i = _exact(base, queries, 10, metric)
    assert _recall(index.search(queries, 10, nprobe=64)[1], truth_i) > 0.99  # every cell, re-ranked: exact
    assert 0.3 < _recall(index.search(queries, 10, nprobe=8)[1], truth_i) < 1.0
    plain = gpu.GpuIvfPqIndex(64, index.centroids(), index.codebooks(), metric=metric)
    plain.add(base, np.arange(20000))
    # Cells and codes made on the GPU are the CPU's for the same vectors (up to near-ties).
    cells, ids, codes, _ = plain.entries()
    on_cpu = IVFIndex(64, metric=metric, nlist=64, pq_m=16)
    on_cpu.set_trained(index.centroids(), index.codebooks())
    on_cpu.add(base, np.arange(20000))
    cpu_cells, cpu_ids, cpu_codes, _ = on_cpu.entries()
    gpu_order, cpu_order = np.argsort(ids), np.argsort(cpu_ids)
    same_cell = cells[gpu_order] == cpu_cells[cpu_order]
    assert same_cell.mean() > 0.99
    assert (codes[gpu_order][same_cell] == cpu_codes[cpu_order][same_cell]).mean() > 0.99
    assert len(gpu.to_cpu(plain)) == 20000


@needs_gpu
def test_ivf_pq_refuses_what_it_cannot_hold():
    with pytest.raises(ValueError, match="codebooks must be"):
        gpu.GpuIvfPqIndex(64, _data(4, 64), np.zeros((16, 256, 5), np.float32))
    with pytest.raises(RuntimeError, match="shared memory"):  # a lookup table of 8 MiB per block
        gpu.GpuIvfPqIndex(8192, _data(2, 8192), np.zeros((8192, 256, 1), np.float32))
    index = gpu.GpuIvfPqIndex(64, _data(4, 64), np.zeros((16, 256, 4), np.float32))
    index.add(_data(10, 64), np.arange(10))
    with pytest.raises(ValueError, match="already"):
        index.add(_data(1, 64), [3])
    with pytest.raises(ValueError, match="cell 9 does not exist"):
        index.add_encoded([9], [100], np.zeros((1, 16), np.uint8))
