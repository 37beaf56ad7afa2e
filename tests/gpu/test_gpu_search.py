"""The app's vector search on a GPU: a collection keeps an exact copy of its vectors on the GPU,
in step with every change, and falls back to its CPU index when the GPU fails.

Where no GPU is usable, the GPU is stood in for by the CPU engine behind GpuFlatIndex's API
(the GPU is the one thing outside this machine); the last test runs the real GpuFlatIndex and
is skipped, saying why, where there is no GPU.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from ingest.models import Chunk, Document, Page
from retrieval.index import gpu
from retrieval.index import FlatIndex
from retrieval.store import VECTORS_FILE, Collection, PreparedDocument

DIM = 16


class StandInGpu(FlatIndex):
    """GpuFlatIndex's API on the CPU engine; counts what the collection asks of it."""

    made: list["StandInGpu"] = []
    fail_after: int | None = None  # searches that work before one fails as a GPU fault would

    def __init__(self, dim: int, *, metric: str = "ip", precision: str = "f32", device: int = 0):
        super().__init__(dim, metric=metric)
        self.searches = 0
        StandInGpu.made.append(self)

    def search(self, queries, k: int = 10, *, filter=None):
        if StandInGpu.fail_after is not None and self.searches >= StandInGpu.fail_after:
            raise RuntimeError("launching the search kernel: an illegal memory access was encountered")
        self.searches += 1
        return super().search(queries, k, filter=filter)


@pytest.fixture
def stand_in_gpu(monkeypatch):
    StandInGpu.made, StandInGpu.fail_after = [], None
    monkeypatch.setattr(gpu, "available", lambda: True)
    monkeypatch.setattr(gpu, "devices", lambda: [{"id": 0, "free_memory": 1 << 30}, {"id": 1, "free_memory": 2 << 30}])
    monkeypatch.setattr(gpu, "GpuFlatIndex", StandInGpu)
    return StandInGpu


def _document(source: str, seed: int, chunks: int = 10) -> PreparedDocument:
    rng = np.random.default_rng(seed)
    text = f"{source} text"
    document = Document(
        source=source,
        title=source,
        kind="pdf",
        pages=[Page(1, text)],
        content_hash=f"{source}-{seed}",
        size_bytes=len(text),
    )
    parts = [
        Chunk(text=f"{text} {i}", context="", page=1, section=None, ordinal=i, char_start=0, char_end=len(text))
        for i in range(chunks)
    ]
    vectors = rng.standard_normal((chunks, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return PreparedDocument(document, parts, vectors, [["word"]] * chunks)


def _assert_same(found: list[tuple[int, float]], expected: list[tuple[int, float]]) -> None:
    assert [i for i, _ in found] == [i for i, _ in expected]
    np.testing.assert_allclose([s for _, s in found], [s for _, s in expected], rtol=1e-5, atol=1e-5)


def _same_answers(store: Collection, twin: Collection, queries: np.ndarray) -> None:
    for query in queries:
        _assert_same(store.vector_search(query, 15), twin.vector_search(query, 15))
        allowed = twin.chunk_ids_for_sources(["b.pdf"])
        _assert_same(store.vector_search(query, 5, allowed=allowed), twin.vector_search(query, 5, allowed=allowed))


def _queries(n: int = 8) -> np.ndarray:
    return np.random.default_rng(99).standard_normal((n, DIM)).astype(np.float32)


def test_a_collection_searches_its_gpu_copy_kept_in_step_with_every_change(tmp_path, stand_in_gpu):
    store = Collection(tmp_path / "gpu", model_name="m", dim=DIM)
    twin = Collection(tmp_path / "cpu", model_name="m", dim=DIM, gpu_search=False)
    assert len(stand_in_gpu.made) == 1  # the twin made none
    for target in (store, twin):
        target.write_documents([_document("a.pdf", 1), _document("b.pdf", 2)])
        target.write_documents([_document("a.pdf", 3, chunks=4)])  # replaced: 10 chunks out, 4 in
        target.remove_document("b.pdf")
        target.write_documents([_document("b.pdf", 4), _document("c.pdf", 5)])
    copy = stand_in_gpu.made[0]
    assert len(copy) == 24 and sorted(copy.ids()) == sorted(store.indexes.vectors.ids())
    _same_answers(store, twin, _queries())
    assert copy.searches == 16  # every search went to the GPU copy
    _assert_same(store.vector_search(_queries(1)[0], 300), twin.vector_search(_queries(1)[0], 300))
    assert copy.searches == 16  # more than the GPU's 256 results: the CPU index answers
    store.close()
    twin.close()

    # Reopened with a damaged index file: the CPU index is rebuilt from the database, and the
    # GPU copy with it (on the GPU with the most free memory).
    (tmp_path / "gpu" / VECTORS_FILE).write_bytes(b"not an index")
    reopened = Collection(tmp_path / "gpu", model_name="m", dim=DIM)
    twin = Collection(tmp_path / "cpu", model_name="m", dim=DIM, gpu_search=False)
    assert len(stand_in_gpu.made) == 2 and len(stand_in_gpu.made[1]) == 24
    _same_answers(reopened, twin, _queries())
    assert stand_in_gpu.made[1].searches == 16
    reopened.close()
    twin.close()


def test_a_gpu_fault_turns_gpu_search_off_and_the_cpu_answers(tmp_path, stand_in_gpu, caplog):
    store = Collection(tmp_path / "gpu", model_name="m", dim=DIM)
    twin = Collection(tmp_path / "cpu", model_name="m", dim=DIM, gpu_search=False)
    for target in (store, twin):
        target.write_documents([_document("a.pdf", 1), _document("b.pdf", 2)])
    stand_in_gpu.fail_after = 3
    with caplog.at_level(logging.WARNING, logger="retrieval.store.indexes"):
        _same_answers(store, twin, _queries())  # the fourth search fails on the GPU, and is answered all the same
    assert "searches on the CPU from now on" in caplog.text and "illegal memory access" in caplog.text
    assert stand_in_gpu.made[0].searches == 3
    for target in (store, twin):  # later changes need no GPU copy either
        target.write_documents([_document("c.pdf", 3)])
    _same_answers(store, twin, _queries(2))
    assert len(stand_in_gpu.made) == 1
    store.close()
    twin.close()


def test_no_room_on_the_gpu_leaves_the_collection_on_the_cpu(tmp_path, stand_in_gpu, monkeypatch, caplog):
    def out_of_memory(*args, **kwargs):
        raise RuntimeError(
            "growing the GPU index: out of GPU memory on device 1: needed 1536 MiB, 20 MiB free of 143771 MiB"
        )

    monkeypatch.setattr(gpu, "GpuFlatIndex", out_of_memory)
    with caplog.at_level(logging.WARNING, logger="retrieval.store.indexes"):
        store = Collection(tmp_path / "c", model_name="m", dim=DIM)
    assert "needed 1536 MiB" in caplog.text
    store.write_documents([_document("a.pdf", 1)])
    assert len(store.vector_search(_queries(1)[0], 5)) == 5
    store.close()


@pytest.mark.skipif(gpu.unavailable_reason() is not None, reason=f"no usable GPU: {gpu.unavailable_reason()}")
def test_on_a_real_gpu_a_collection_answers_as_on_the_cpu(tmp_path):
    check_a_collection_on_the_gpu(tmp_path)


def check_a_collection_on_the_gpu(tmp_path) -> None:
    """A collection's real GpuFlatIndex copy (tests/test_gpu_emulated.py runs it emulated)."""
    store = Collection(tmp_path / "gpu", model_name="m", dim=DIM)
    twin = Collection(tmp_path / "cpu", model_name="m", dim=DIM, gpu_search=False)
    for target in (store, twin):
        target.write_documents([_document("a.pdf", 1), _document("b.pdf", 2)])
        target.remove_document("a.pdf")
        target.write_documents([_document("a.pdf", 3), _document("c.pdf", 4)])
    assert isinstance(store.indexes.gpu_vectors, gpu.GpuFlatIndex) and len(store.indexes.gpu_vectors) == 30
    _same_answers(store, twin, _queries())
    store.close()
    twin.close()
