"""Many readers beside one writer on the real engine; a full disk; a cancelled ingest."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from ingest.models import Chunk, Document, Page
from support.pdfgen import HANDBOOK_PAGES, make_pdf
from retrieval.service import Source
from retrieval.store import Collection, PreparedDocument, StorageFullError

DIM = 16
CHUNKS_PER_DOCUMENT = 12


def _document(source: str, version: int, rng: np.random.Generator) -> PreparedDocument:
    """A document whose every chunk holds the word 'zebra', with random unit embeddings."""
    text = f"zebra crossing rules, version {version}"
    document = Document(
        source=source,
        title=source,
        kind="pdf",
        pages=[Page(1, text)],
        content_hash=f"{source}-{version}",
        size_bytes=len(text),
    )
    chunks = [
        Chunk(text=f"{text} part {i}", context="", page=1, section=None, ordinal=i, char_start=0, char_end=len(text))
        for i in range(CHUNKS_PER_DOCUMENT)
    ]
    vectors = rng.standard_normal((CHUNKS_PER_DOCUMENT, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return PreparedDocument(document, chunks, vectors, [["zebra", f"part{i}"] for i in range(CHUNKS_PER_DOCUMENT)])


def test_readers_never_see_half_a_document_while_one_writer_replaces_it(tmp_path):
    store = Collection(tmp_path / "c", model_name="m", dim=DIM)
    rng = np.random.default_rng(0)
    store.write_documents([_document("a.pdf", 0, rng), _document("b.pdf", 0, rng)])
    stop, seen, errors = threading.Event(), [], []

    def read() -> None:
        query = np.ones(DIM, dtype=np.float32) / np.sqrt(DIM)
        try:
            while not stop.is_set():
                by_keyword = store.keyword_search(["zebra"], 100)
                by_vector = store.vector_search(query, 100)
                rows = store.chunk_rows([i for i, _ in by_keyword])
                per_document: dict[str, int] = {}
                for row in rows.values():
                    per_document[row["source"]] = per_document.get(row["source"], 0) + 1
                seen.append((len(by_keyword), len(by_vector)))
                # Both documents always whole: every chunk of each, never some of one version.
                assert len(by_keyword) == len(by_vector) == 2 * CHUNKS_PER_DOCUMENT, (len(by_keyword), len(by_vector))
                assert all(count == CHUNKS_PER_DOCUMENT for count in per_document.values() if rows), per_document
        except Exception as exc:  # reported in the main thread
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(4)]
    for thread in readers:
        thread.start()
    try:
        for version in range(1, 60):
            store.write_documents([_document("a.pdf", version, rng)])
    finally:
        stop.set()
        for thread in readers:
            thread.join()
    assert not errors, errors[0]
    assert len(seen) > 20  # the readers did run alongside the writer
    assert [d.source for d in store.documents()] == ["b.pdf", "a.pdf"]
    store.close()


def test_a_full_disk_fails_the_write_with_a_clear_error_and_keeps_the_collection(tmp_path):
    store = Collection(tmp_path / "c", model_name="m", dim=DIM)
    rng = np.random.default_rng(1)
    store.write_documents([_document("kept.pdf", 0, rng)])
    before = store.keyword_search(["zebra"], 100)
    # SQLite's own page limit gives the very error a full disk does (SQLITE_FULL).
    (pages,) = store._db.execute("PRAGMA page_count").fetchone()
    store._db.execute(f"PRAGMA max_page_count = {pages}")
    big = _document("big.pdf", 0, rng)
    big.chunks = [Chunk(**{**c.__dict__, "text": c.text + " filler" * 4000}) for c in big.chunks]
    with pytest.raises(StorageFullError, match="disk is full.*nothing of this change was stored"):
        store.write_documents([big])
    assert [d.source for d in store.documents()] == ["kept.pdf"]
    assert store.keyword_search(["zebra"], 100) == before
    store._db.execute("PRAGMA max_page_count = 1073741823")
    assert store.write_documents([big]) == ["added"]  # room again: the same write now goes in
    store.close()


def test_an_ingest_with_a_full_disk_reports_it_per_file(docent, tmp_path):
    from retrieval.service import Docent
    from retrieval.settings import load_settings

    own = Docent(load_settings(home=str(tmp_path / "home")))
    own._embedder = docent.embedder
    store = own.collection("full")
    (pages,) = store._db.execute("PRAGMA page_count").fetchone()
    store._db.execute(f"PRAGMA max_page_count = {pages}")
    outcome = own.ingest([Source("handbook.pdf", data=make_pdf(HANDBOOK_PAGES))], collection="full")[0]
    assert outcome.status == "failed" and "disk is full" in outcome.error
    assert own.documents(collection="full") == []
    assert not any((store.folder / "files").glob("*"))  # the kept copy went with the failed write
    own.close()


def test_cancelling_an_ingest_keeps_finished_files_and_nothing_of_the_current_one(docent, tmp_path):
    from retrieval.service import Docent
    from retrieval.settings import load_settings

    own = Docent(load_settings(home=str(tmp_path / "home")))
    own._embedder = docent.embedder
    cancel = threading.Event()
    files = [
        Source(f"{n}.pdf", data=make_pdf([[f"{line} ({n})" for line in page] for page in HANDBOOK_PAGES]))
        for n in ("one", "two", "three")
    ]

    def progress(stage, done, total):
        if own.documents(collection="c"):
            cancel.set()  # the first file is in: stop during the second

    outcomes = own.ingest(files, collection="c", progress=progress, cancel=cancel)
    assert [o.source for o in outcomes] == ["one.pdf"]
    assert [d.source for d in own.documents(collection="c")] == ["one.pdf"]
    assert {h.source for h in own.search("mooring permit", k=20, mode="keyword", collection="c")} == {"one.pdf"}
    own.close()
