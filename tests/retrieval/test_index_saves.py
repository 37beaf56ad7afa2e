"""When a collection writes its index files: often enough that a crash leaves little to replay,
seldom enough that a long ingest does not spend its time rewriting a large index."""

from __future__ import annotations

import numpy as np
import pytest

import retrieval.store.indexes as indexes_module
from ingest.models import Chunk, Document, Page
from retrieval.index import load
from retrieval.store import Collection, PreparedDocument

CHUNKS_PER_DOCUMENT = 10


def document(number: int, rng) -> PreparedDocument:
    texts = [f"entry {number}.{j} of the register" for j in range(CHUNKS_PER_DOCUMENT)]
    chunks = [Chunk(t, "Register", 1, None, j, 0, len(t)) for j, t in enumerate(texts)]
    doc = Document(f"register-{number}.txt", "Register", "text", f"{number:064x}", [Page(1, " ".join(texts))])
    vectors = rng.standard_normal((len(chunks), 4)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return PreparedDocument(doc, chunks, vectors, [t.split() for t in texts])


@pytest.fixture
def saves(monkeypatch):
    """The collection's size at each index save."""
    sizes = []
    real_save = indexes_module.DerivedIndexes.save

    def counting_save(self):
        sizes.append(len(self.vectors))
        real_save(self)

    monkeypatch.setattr(indexes_module.DerivedIndexes, "save", counting_save)
    return sizes


def test_saves_grow_apart_with_the_collection(tmp_path, monkeypatch, saves):
    monkeypatch.setattr(indexes_module, "SAVE_EVERY_CHANGES", CHUNKS_PER_DOCUMENT)
    monkeypatch.setattr(indexes_module, "SAVE_SHARE", 0.5)
    monkeypatch.setattr(indexes_module, "SAVE_EVERY_SECONDS", 1e9)
    collection = Collection(tmp_path / "c", model_name="m", dim=4)
    saves.clear()  # opening an empty collection writes its empty files
    rng = np.random.default_rng(0)
    for number in range(10):
        collection.write_documents([document(number, rng)])
    # Each save waits for half as many changes as the collection holds: a fixed cadence would
    # have rewritten the files after every document.
    assert saves == [10, 20, 40, 80]
    # What the files lack is in the change log: a reopened collection replays it.
    assert load(tmp_path / "c" / "vectors.idx").checkpoint < collection.indexes.vectors.checkpoint
    reopened = Collection(tmp_path / "c", model_name="m", dim=4)
    assert len(reopened.indexes.vectors) == 100 and len(reopened.indexes.keywords) == 100
    reopened.close()
    collection.close()
    assert saves[-1] == 100  # closing writes what is left


def test_saves_wait_for_many_times_their_own_time(tmp_path, monkeypatch, saves):
    monkeypatch.setattr(indexes_module, "SAVE_EVERY_CHANGES", 10**9)
    monkeypatch.setattr(indexes_module, "SAVE_EVERY_SECONDS", 0.0)
    monkeypatch.setattr(indexes_module, "SAVE_DUTY", 1e9)
    collection = Collection(tmp_path / "c", model_name="m", dim=4)
    rng = np.random.default_rng(0)
    for number in range(5):
        collection.write_documents([document(number, rng)])
    # With no time floor every write would save; the first save's own time holds the rest off.
    assert saves == [0]
    collection.close()
    assert saves == [0, 50]
