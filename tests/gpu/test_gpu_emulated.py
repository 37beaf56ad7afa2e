"""The Python GPU API (retrieval.index.gpu) on the GPU engine's own kernels and host code, built on the
CPU emulation of CUDA in native/tests/cuda_emulation (fibers per GPU thread, device memory on
the heap): moving indexes to the GPU and back, the same answers as the CPU engine, training on
the GPU, sharding, and a collection searching its GPU copy. It runs everywhere, no GPU needed;
the emulation is slow, so the data are small. tests/test_gpu.py runs the real thing on a GPU.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from retrieval.index import gpu
from retrieval.index import FlatIndex, IVFIndex

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def emulated_gpu():
    """retrieval.index.gpu running on the emulated engine (built once into build/cuda-emulation)."""
    if shutil.which("cmake") is None:
        pytest.skip("cmake is needed to build the emulated GPU engine")
    pybind11 = pytest.importorskip("pybind11")
    build = ROOT / "build" / "cuda-emulation"
    configure = [
        "cmake",
        "-S",
        str(ROOT / "native"),
        "-B",
        str(build),
        "-DCMAKE_BUILD_TYPE=Release",
        "-DDOCENT_PYTHON=ON",
        "-DDOCENT_CUDA=OFF",
        "-DDOCENT_CUDA_EMULATION=ON",
        f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
        f"-DPython_EXECUTABLE={sys.executable}",
    ]
    for command in (
        configure,
        ["cmake", "--build", str(build), "--parallel", "2", "--target", "_engine_cuda_emulated"],
    ):
        done = subprocess.run(command, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    path = next((build / "emulated").glob("_engine_cuda*.so"))
    spec = importlib.util.spec_from_file_location("_engine_cuda", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gpu, "_cuda", module)
        assert gpu.unavailable_reason() is None and gpu.devices()[0]["name"] == "CPU emulation"
        yield module


def _data(n: int, dim: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def _recall(found: np.ndarray, expected: np.ndarray) -> float:
    return float(
        np.mean([len(set(f[f >= 0]) & set(e[e >= 0])) / max(1, (e >= 0).sum()) for f, e in zip(found, expected)])
    )


@pytest.mark.parametrize("metric", ["ip", "l2", "cosine"])
def test_a_flat_index_moves_to_the_gpu_and_back_and_answers_the_same(emulated_gpu, metric):
    base, queries = _data(1200, 40, 1), _data(8, 40, 2)
    cpu = FlatIndex(40, metric=metric)
    cpu.add(base, np.arange(1200) * 3 + 1)
    expected_d, expected_i = cpu.search(queries, 10)
    for precision in gpu.PRECISIONS:
        on_gpu = gpu.to_gpu(cpu, precision=precision)
        assert len(on_gpu) == 1200 and on_gpu.precision == precision
        found_d, found_i = on_gpu.search(queries, 10)
        if precision == "f32":
            np.testing.assert_array_equal(found_i, expected_i)
            np.testing.assert_allclose(found_d, expected_d, rtol=1e-4, atol=1e-4)
        else:
            assert _recall(found_i, expected_i) >= 0.9
    back = gpu.to_cpu(gpu.to_gpu(cpu))
    np.testing.assert_array_equal(back.ids(), cpu.ids())
    np.testing.assert_allclose(back.vectors(), cpu.vectors(), rtol=1e-6, atol=1e-7)  # cosine: normalized again


def test_removing_replacing_and_filtering_on_the_gpu(emulated_gpu):
    base, queries = _data(800, 24, 3), _data(6, 24, 4)
    ids = np.arange(800) * 2
    cpu, on_gpu = FlatIndex(24, metric="cosine"), gpu.GpuFlatIndex(24, metric="cosine")
    for index in (cpu, on_gpu):
        index.add(base, ids)
        assert index.remove(ids[::5]) == 160
        index.add(base[:2] * -1, ids[1:3])
    assert len(on_gpu) == 640 and ids[0] not in on_gpu and ids[1] in on_gpu
    with pytest.raises(KeyError, match="not in the index"):
        on_gpu.remove([ids[0]])
    for allowed in (None, ids[::3], np.array([ids[0], 10**9])):
        expected_d, expected_i = cpu.search(queries, 12, filter=allowed)
        found_d, found_i = on_gpu.search(queries, 12, filter=allowed)
        np.testing.assert_array_equal(found_i, expected_i)
        np.testing.assert_allclose(found_d[found_i >= 0], expected_d[expected_i >= 0], rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="k must be between 1 and 256"):
        on_gpu.search(queries, 257)
    with pytest.raises(ValueError, match="dimension 8"):
        on_gpu.add(_data(2, 8, 5))


@pytest.mark.parametrize("pq_m, rerank", [(0, False), (8, False), (8, True)])
@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_an_ivf_index_moves_to_the_gpu_and_back_and_answers_the_same(emulated_gpu, pq_m, rerank, metric):
    base, queries = _data(1500, 32, 6), _data(6, 32, 7)
    cpu = IVFIndex(32, metric=metric, nlist=8, pq_m=pq_m, rerank=rerank)
    cpu.add(base, np.arange(1500) + 100)
    on_gpu = gpu.to_gpu(cpu)
    assert isinstance(on_gpu, gpu.GpuIvfPqIndex if pq_m else gpu.GpuIvfFlatIndex) and len(on_gpu) == 1500
    for nprobe in (1, 3, 8):
        expected_d, expected_i = cpu.search(queries, 10, nprobe=nprobe)
        found_d, found_i = on_gpu.search(queries, 10, nprobe=nprobe)
        assert _recall(found_i, expected_i) >= 0.95
        np.testing.assert_allclose(np.sort(found_d, axis=1), np.sort(expected_d, axis=1), rtol=1e-3, atol=1e-3)
    allowed = np.arange(100, 1600, 4)
    expected_d, expected_i = cpu.search(queries, 10, nprobe=3, filter=allowed)
    found_d, found_i = on_gpu.search(queries, 10, nprobe=3, filter=allowed)
    assert _recall(found_i, expected_i) >= 0.95 and np.isin(found_i[found_i >= 0], allowed).all()
    assert (on_gpu.search(queries, 10, filter=[7])[1] == -1).all()  # an id that is not stored
    back = gpu.to_cpu(on_gpu)
    assert (back.pq_m, back.rerank, back.nlist) == (pq_m, rerank, 8)
    np.testing.assert_array_equal(back.search(queries, 10, nprobe=3)[1], cpu.search(queries, 10, nprobe=3)[1])


def test_ivf_pq_trained_and_encoded_on_the_gpu(emulated_gpu):
    base, queries = _data(600, 16, 8), _data(5, 16, 9)
    index = gpu.GpuIvfPqIndex.train(base, 4, 4, metric="l2", rerank=True, iterations=2)
    assert index.codebooks().shape == (4, 256, 4) and index.centroids().shape == (4, 16)
    index.add(base)
    exact = FlatIndex(16, metric="l2")
    exact.add(base)
    _, truth = exact.search(queries, 5)
    assert _recall(index.search(queries, 5, nprobe=4)[1], truth) >= 0.99  # every cell, re-ranked: exact
    with pytest.raises(ValueError, match="already in the GPU index"):
        index.add(base[:1], [0])


def test_an_index_sharded_over_devices_answers_like_one(emulated_gpu):
    base, queries = _data(900, 16, 10), _data(5, 16, 11)
    sharded = gpu.ShardedFlatIndex(16, devices=[0, 0, 0], metric="l2")
    sharded.add(base)
    assert [len(s) for s in sharded.shards] == [300, 300, 300]
    exact = FlatIndex(16, metric="l2")
    exact.add(base)
    np.testing.assert_array_equal(sharded.search(queries, 7)[1], exact.search(queries, 7)[1])


def test_a_collection_searches_its_copy_on_the_gpu(emulated_gpu, tmp_path):
    from test_gpu_search import check_a_collection_on_the_gpu  # beside this file, in tests/gpu

    check_a_collection_on_the_gpu(tmp_path)


@pytest.mark.parametrize(
    "name", ["test_fewer_vectors_than_k_and_empty_index", "test_bad_input_is_refused_with_a_clear_error"]
)
def test_the_small_real_gpu_tests_pass_on_the_emulation(emulated_gpu, name):
    import test_gpu

    getattr(test_gpu, name)()  # their data are small enough to emulate
