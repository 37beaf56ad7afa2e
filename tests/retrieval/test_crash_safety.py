"""A process killed with SIGKILL while it ingests loses nothing it committed and leaves no half
document: after a restart every document is whole, the indexes hold exactly the stored chunks,
and every kept file belongs to a document. A few kills here; `pytest -m slow` runs 25."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from retrieval.service import Docent
from retrieval.settings import load_settings

TESTS = Path(__file__).resolve().parents[1]


def _kill_while_ingesting(home: Path, start: int, rng: random.Random) -> tuple[dict[str, str], tuple[str, str] | None]:
    """Runs the child until it has committed a document, kills it at a random moment, and returns
    what it said it committed (source -> content hash, the last version wins) and the write it
    was in when killed (source, hash), which may or may not have committed."""
    # Only the tests folder added: an empty entry would put the working directory (a source
    # checkout, without the compiled engine) ahead of the installed package.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
    child = subprocess.Popen(
        [sys.executable, str(TESTS / "support" / "crash_child.py"), str(home), str(start)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    committed: dict[str, str] = {}
    lines: list[str] = []

    def read() -> None:
        for line in child.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + 240
    while not lines and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)
    while (
        not any(line.startswith("committed") for line in lines) and time.monotonic() < deadline and child.poll() is None
    ):
        time.sleep(0.05)
    assert lines, (
        f"the child committed nothing: {child.stderr.read()[-2000:] if child.poll() is not None else 'timeout'}"
    )
    time.sleep(rng.uniform(0.0, 2.5))  # anywhere in the next documents: parsing, embedding, commit, index save
    child.send_signal(signal.SIGKILL)
    child.wait()
    reader.join(timeout=10)
    in_flight = None
    for line in lines:
        kind, source, digest = line.split()
        assert kind in ("writing", "committed"), line
        if kind == "committed":
            committed[source], in_flight = digest, None
        else:
            in_flight = (source, digest)
    return committed, in_flight


def _check_consistent(docent: Docent, committed: dict[str, str], in_flight: tuple[str, str] | None) -> None:
    store = docent.collection("crash")
    documents = {d.source: d for d in store.documents()}
    for source, digest in committed.items():
        assert source in documents, f"{source} was committed and is gone"
        # The version last committed, unless the write in flight at the kill committed a newer one.
        allowed = {digest} | ({in_flight[1]} if in_flight and in_flight[0] == source else set())
        assert documents[source].content_hash in allowed, source
    unknown = set(documents) - set(committed) - ({in_flight[0]} if in_flight else set())
    assert not unknown, f"documents nobody wrote: {unknown}"
    database = sqlite3.connect(store.folder / "docent.sqlite3")
    try:
        for doc in documents.values():
            (count,) = database.execute("SELECT count(*) FROM chunks WHERE doc_id = ?", (doc.id,)).fetchone()
            assert count == doc.chunks > 0, f"{doc.source}: {count} chunks stored of {doc.chunks}"
        (orphans,) = database.execute(
            "SELECT count(*) FROM chunks WHERE doc_id NOT IN (SELECT id FROM documents)"
        ).fetchone()
        assert orphans == 0
        chunk_ids = {r[0] for r in database.execute("SELECT id FROM chunks")}
        hashes = {r[0] for r in database.execute("SELECT content_hash FROM documents")}
    finally:
        database.close()
    # The indexes hold exactly the stored chunks: every one is found, nothing else is.
    assert len(store.indexes.vectors) == len(chunk_ids) == len(store.indexes.keywords)
    assert all(i in store.indexes.vectors for i in chunk_ids)
    # Every kept file belongs to a document (a file kept for an uncommitted write is pruned).
    assert {p.name for p in (store.folder / "files").iterdir()} <= hashes
    # And search works: each committed document is found by words only it holds (its gauges are
    # numbered n * 97 + 0..9), and a search limited to it finds it. Not "ranked first by shared
    # words": that depends on the collection's statistics, so on where the kills fell (with two
    # documents, BM25 gives a word found in one of them an idf of 0).
    for source in list(committed)[-3:]:
        number = int(source.removeprefix("crash-").removesuffix(".pdf"))
        query = f"gauge {number * 97 + 1} gauge {number * 97 + 8}"
        hits = docent.search(query, k=10, mode="keyword", collection="crash")
        assert source in {h.source for h in hits}, (source, [h.source for h in hits])
        for mode in ("keyword", "vector"):
            limited = docent.search(query, k=3, mode=mode, collection="crash", sources=[source])
            assert limited and {h.source for h in limited} == {source}, (mode, source)


def _run(home: Path, kills: int, docent) -> None:
    rng = random.Random(kills)
    start, everything = 0, {}
    for _ in range(kills):
        committed, in_flight = _kill_while_ingesting(home, start, rng)
        everything.update(committed)
        start += 50  # new file numbers, and replacements of this round's files
        reopened = Docent(load_settings(home=str(home)))
        reopened._embedder = docent.embedder
        try:
            _check_consistent(reopened, everything, in_flight)
            if in_flight and reopened.collection("crash").find_document(in_flight[0]):
                stored = reopened.collection("crash").find_document(in_flight[0])
                everything[in_flight[0]] = stored.content_hash  # it did commit before the kill
        finally:
            reopened.close()


def test_sigkill_during_ingest_loses_nothing_committed(tmp_path, docent):
    _run(tmp_path / "home", 3, docent)


@pytest.mark.slow
def test_sigkill_during_ingest_25_times(tmp_path, docent):
    _run(tmp_path / "home", 25, docent)
