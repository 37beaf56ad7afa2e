"""A very large PDF is read, embedded and staged a few pages at a time, and appears whole in one
commit: the same document and chunks as the one-piece path, nothing of it before the end."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading

import pytest

import ingest.pipeline as pipeline
from support.pdfgen import make_pdf
from retrieval.service import Docent, Source
from retrieval.store import Collection
from retrieval.settings import load_settings

PAGES = 40


def _long_pdf(pages: int = PAGES, version: int = 0) -> bytes:
    return make_pdf(
        [
            [f"Section {p} of the long manual, revision {version}."]
            + [f"Clause {p}.{s}: the pump {p * 13 + s} runs at {s + p + version} litres a minute." for s in range(8)]
            for p in range(1, pages + 1)
        ],
        title="Long manual",
    )


@pytest.fixture()
def own(docent, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "STREAM_FROM_PAGES", 10)
    monkeypatch.setattr(pipeline, "PAGES_PER_PART", 7)
    instance = Docent(load_settings(home=str(tmp_path / "home")))
    instance._embedder = docent.embedder
    yield instance
    instance.close()


def _chunks(instance: Docent, collection: str) -> list[tuple]:
    db = sqlite3.connect(instance.collection(collection).folder / "docent.sqlite3")
    try:
        return db.execute(
            "SELECT ordinal, page, section, text, context, char_start, char_end, text_hash FROM chunks ORDER BY ordinal"
        ).fetchall()
    finally:
        db.close()


def test_a_streamed_pdf_is_stored_exactly_as_one_read_whole(own, monkeypatch, tmp_path):
    path = tmp_path / "long.pdf"
    path.write_bytes(_long_pdf())
    streamed = own.ingest([Source.from_path(path)], collection="streamed")[0]
    assert streamed.status == "added" and streamed.pages == PAGES
    monkeypatch.setattr(pipeline, "STREAM_FROM_PAGES", 10_000)
    whole = own.ingest([Source.from_path(path)], collection="whole")[0]
    assert (streamed.chunks, streamed.pages, streamed.title) == (whole.chunks, whole.pages, whole.title)
    assert _chunks(own, "streamed") == _chunks(own, "whole")
    a, b = own.documents(collection="streamed")[0], own.documents(collection="whole")[0]
    assert (a.pages, a.chunks, a.content_hash, a.size_bytes) == (b.pages, b.chunks, b.content_hash, b.size_bytes)
    hits = own.search("pump 494 litres a minute", k=3, collection="streamed")
    assert hits[0].page == 38  # 38 * 13 = 494
    assert own.collection("streamed").original_file(str(path)) is not None  # kept for its citations
    assert own.ingest([Source.from_path(path)], collection="streamed")[0].status == "unchanged"


def test_parts_are_staged_as_they_go_and_the_document_appears_only_at_the_end(own):
    store = own.collection("c")
    seen = []

    def progress(stage, done, total):
        staged = store._db.execute("SELECT max(page), count(*) FROM staged_chunks").fetchone()
        seen.append((stage, done, total, staged[0], len(store.documents())))

    own.ingest([Source("long.pdf", data=_long_pdf())], collection="c", progress=progress)
    parts = [s for s in seen if s[0] == "pages"]
    assert [s[1] for s in parts] == [7, 14, 21, 28, 35, 40] and all(s[2] == PAGES for s in parts)
    assert all(staged_to == done for _, done, _, staged_to, _ in parts)  # nothing read ahead of its part
    assert all(documents == 0 for *_, documents in parts)  # invisible until the commit
    assert [d.source for d in store.documents()] == ["long.pdf"]
    assert store._db.execute("SELECT count(*) FROM staged_chunks").fetchone() == (0,)


def test_a_cancelled_or_replaced_stream_leaves_no_trace(own):
    store = own.collection("c")
    assert own.ingest([Source("long.pdf", data=_long_pdf())], collection="c")[0].status == "added"
    before = _chunks(own, "c")
    cancel = threading.Event()

    def progress(stage, done, total):
        if done >= 14:
            cancel.set()

    assert (
        own.ingest([Source("long.pdf", data=_long_pdf(version=1))], collection="c", progress=progress, cancel=cancel)
        == []
    )
    assert _chunks(own, "c") == before  # the old version, whole
    assert store._db.execute("SELECT count(*) FROM staged_chunks").fetchone() == (0,)
    replaced = own.ingest([Source("long.pdf", data=_long_pdf(version=1))], collection="c")[0]
    assert replaced.status == "replaced" and len(_chunks(own, "c")) == replaced.chunks


def test_the_staged_part_of_a_killed_ingest_is_dropped_on_open(own):
    store = own.collection("c")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store._db.execute(
        "INSERT INTO staging(token, pid, host, started_at) VALUES ('t1', ?, ?, '2026-01-01T00:00:00')",
        (dead.pid, __import__("socket").gethostname()),
    )
    store._db.execute(
        "INSERT INTO staged_chunks(token, ordinal, page, section, text, context, char_start, char_end,"
        " embedding, terms, text_hash) VALUES ('t1', 0, 1, NULL, 'x', '', 0, 1, x'00', x'', 'h')"
    )
    folder = store.folder
    own.close()
    reopened = Collection(folder, model_name=own.embedder.name, dim=own.embedder.dim)
    assert reopened._db.execute("SELECT count(*) FROM staged_chunks").fetchone() == (0,)
    assert reopened._db.execute("SELECT count(*) FROM staging").fetchone() == (0,)
    reopened.close()


def test_a_large_scan_without_text_fails_with_the_reason(own):
    from support.pdfgen import make_pdf as blank

    outcome = own.ingest([Source("scan.pdf", data=blank([[" "]] * 12))], collection="c")[0]
    assert outcome.status == "failed" and "no text layer" in outcome.error
    assert own.collection("c")._db.execute("SELECT count(*) FROM staged_chunks").fetchone() == (0,)


def _long_text(version: int = 0) -> bytes:
    return "\n\n".join(
        f"Clause {n}: the pump {n * 13} runs at {n % 40 + version} litres a minute, checked weekly." for n in range(400)
    ).encode()


def test_a_document_of_many_passages_is_staged_in_parts_and_stored_as_one_read_whole(own, monkeypatch):
    """A text file that makes many passages (a 10 MB line makes 28,000): embedded and staged a
    part at a time so its vectors and terms are never all held, and stored exactly as before."""
    monkeypatch.setattr(pipeline, "STAGE_FROM_CHUNKS", 10_000)
    whole = own.ingest([Source("clauses.txt", data=_long_text())], collection="whole")[0]
    monkeypatch.setattr(pipeline, "STAGE_FROM_CHUNKS", 5)
    monkeypatch.setattr(pipeline, "CHUNKS_PER_PART", 4)
    store, seen = own.collection("staged"), []

    def progress(stage, done, total):
        if stage == "embedding":
            seen.append((done, total, store._db.execute("SELECT count(*) FROM staged_chunks").fetchone()[0]))

    staged = own.ingest([Source("clauses.txt", data=_long_text())], collection="staged", progress=progress)[0]
    assert whole.chunks > 5 and (staged.status, staged.chunks) == ("added", whole.chunks)
    assert _chunks(own, "staged") == _chunks(own, "whole")
    assert max(s[2] for s in seen) >= 4 and seen[-1][:2] == (whole.chunks, whole.chunks)  # counted across parts
    assert "pump 2587 runs" in own.search("pump 2587 litres", k=1, collection="staged")[0].text

    cancel = threading.Event()

    def cancelling(stage, done, total):
        if done >= 8:
            cancel.set()

    before = _chunks(own, "staged")
    replaced = own.ingest(
        [Source("clauses.txt", data=_long_text(version=1))], collection="staged", progress=cancelling, cancel=cancel
    )
    assert replaced == [] and _chunks(own, "staged") == before  # the old version, whole
    assert store._db.execute("SELECT count(*) FROM staged_chunks").fetchone() == (0,)
