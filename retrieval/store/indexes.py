"""The native indexes a collection derives from its database, kept in step with it.

    vectors.idx   exact (FlatIndex) while the collection is small, an HNSW graph (HNSWIndex)
                  from HNSW_FROM_CHUNKS chunks on
    keywords.idx  BM25 over chunk term ids (BM25Index)

Each index file records (as its checkpoint) the last database change it reflects; on open, and
before each search, an index that is behind replays the change log from its checkpoint, or is
rebuilt from the chunks table when the log no longer reaches back that far. A missing or
damaged file is rebuilt, so the files can always be thrown away. Files are written to a
temporary name, flushed and renamed (by the engine), when the changes they lack reach
SAVE_EVERY_CHANGES or a SAVE_SHARE of the collection, or SAVE_EVERY_SECONDS have passed (and at
least SAVE_DUTY times the last save's own time). A save writes the whole index, so a fixed
cadence would make a long ingest quadratic; this one keeps saving to a bounded share of the
ingest's time, and what a crash leaves to replay to a bounded share of the collection.

On a machine with a usable GPU an exact copy of the vectors lives in GPU memory
(retrieval.index.gpu.GpuFlatIndex), changed in the same hold as the CPU index, and answers
vector searches; the CPU index stays the one that is saved and rebuilt. A GPU error turns the
copy off (logged) and the CPU index answers from then on.

Concurrency: searches share a read-write lock; the changes of one commit are applied to every
index in one exclusive hold, so a search sees a document whole or not at all. A rebuild happens
beside the live index, which keeps serving until the swap.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from retrieval.index import BM25Index, FlatIndex, HNSWIndex, IndexFormatError, gpu, load
from retrieval.store.rwlock import ReadWriteLock

log = logging.getLogger(__name__)

VECTORS_FILE = "vectors.idx"
KEYWORDS_FILE = "keywords.idx"
SAVE_EVERY_CHANGES = 5000  # chunk additions and removals between index file writes, at least
SAVE_SHARE = 0.1  # ... or this share of the collection's chunks, if more
SAVE_EVERY_SECONDS = 30.0
SAVE_DUTY = 10  # the time between saves, at least this many times the last save's own time
# Exact search up to this many chunks, HNSW from there on. Measured by bench/index_choice_bench.py
# (one query at the hybrid depth of 50, 384-d, one thread, HNSW as below): HNSW overtakes flat
# search at about 5,000 chunks (0.14 against 0.17 ms), but below 20,000 exact search costs under
# a millisecond, so approximating buys nothing a user would notice. At 20,000: 0.84 against
# 0.28 ms (3.1x) at recall@50 0.997; at 100,000: 6.7 against 0.5 ms (12.9x).
HNSW_FROM_CHUNKS = 20_000
HNSW_M = 32
# The beam of an app search. Measured on a real collection asked real questions
# (bench/hnsw_ef_bench.py: 24,218 chunks of 38 PDFs, 600 TAT-QA and 41 FinanceBench questions),
# recall@50 against exact search is 0.94 at ef 128 (18% of the questions under 0.9; a small
# document among large ones lost its passages altogether), 0.990 at 384, in 0.45 ms of one core
# (exact search: 1.6 ms). Passages asked with passages (bench/ann_data.py) reach 0.996 at 128.
HNSW_EF = 384

Change = tuple[list[tuple], list[int]]  # (rows to add: (chunk id, embedding, terms), chunk ids to remove)


def last_change(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
    return int(row[0]) if row else 0


class DerivedIndexes:
    """A collection's vector and keyword indexes (and GPU copy), caught up from its database.

    reader gives this thread's read connection; snapshot opens a read transaction on it;
    prune_log(checkpoint) deletes the logged changes that the saved files now hold.
    """

    def __init__(
        self,
        folder: Path,
        *,
        name: str,
        dim: int,
        gpu_search: bool,
        reader: Callable[[], sqlite3.Connection],
        snapshot: Callable[[], AbstractContextManager[sqlite3.Connection]],
        prune_log: Callable[[int], None],
    ):
        self.folder, self.name, self.dim = folder, name, dim
        self._reader, self._snapshot, self._prune_log = reader, snapshot, prune_log
        self._lock = ReadWriteLock()  # searches share the indexes; applying changes excludes them
        self._catching_up = threading.Lock()  # one thread brings the indexes up to date at a time
        self._saving = threading.Lock()
        self.vectors = self._open(VECTORS_FILE)
        self.keywords = self._open(KEYWORDS_FILE)
        self._saved_checkpoint, self._saved_at = self.vectors.checkpoint, time.monotonic()
        self._save_seconds = 0.0  # how long the last save took
        self._gpu_search, self.gpu_vectors = gpu_search, None
        self.catch_up(save=True)
        if self.gpu_vectors is None:  # (a rebuild while catching up has made it already)
            self.gpu_vectors = self._gpu_copy(self.vectors)

    # ---- opening -------------------------------------------------------------------------------

    def _open(self, file_name: str):
        path = self.folder / file_name
        if path.exists():
            try:
                index = load(path)
                expected = (FlatIndex, HNSWIndex) if file_name == VECTORS_FILE else (BM25Index,)
                if isinstance(index, expected) and (isinstance(index, BM25Index) or index.dim == self.dim):
                    return index
                log.warning("%s holds the wrong kind of index; rebuilding it from the database", path)
            except (IndexFormatError, OSError) as exc:
                log.warning("%s cannot be used (%s); rebuilding it from the database", path, exc)
        return self._empty(file_name, checkpoint=-1)

    def _empty(self, file_name: str, checkpoint: int, chunks: int = 0):
        if file_name == VECTORS_FILE:
            if chunks >= HNSW_FROM_CHUNKS:
                index = HNSWIndex(self.dim, metric="ip", M=HNSW_M)
            else:
                index = FlatIndex(self.dim, metric="ip")
        else:
            index = BM25Index()
        index.checkpoint = checkpoint  # -1: must be rebuilt from the chunks table
        return index

    # ---- keeping in step with the database -----------------------------------------------------

    def lag(self) -> int:
        """Database changes the in-memory indexes do not reflect yet (0: in step)."""
        return max(0, last_change(self._reader()) - min(self.vectors.checkpoint, self.keywords.checkpoint))

    def catch_up(self, *, save: bool) -> None:
        """Brings both indexes up to the database's last change (this process's or another's)."""
        last = last_change(self._reader())
        if self.vectors.checkpoint == last and self.keywords.checkpoint == last:
            return
        with self._catching_up:
            with self._snapshot() as db:
                last = last_change(db)
                plan = self._plan(db, last)
            if not plan:
                return
            vectors_rebuilt = not isinstance(plan.get(VECTORS_FILE, ()), tuple)
            gpu_rebuilt = self._gpu_copy(plan[VECTORS_FILE]) if vectors_rebuilt else None
            with self._lock.write():  # one hold for all: a search sees a commit whole or not at all
                for name, change in plan.items():
                    if isinstance(change, tuple):
                        _apply(self._index(name), change)
                    else:
                        self._set_index(name, change)
                    self._index(name).checkpoint = last
                if vectors_rebuilt:
                    self.gpu_vectors = gpu_rebuilt
                elif VECTORS_FILE in plan and self.gpu_vectors is not None:
                    try:
                        _apply(self.gpu_vectors, plan[VECTORS_FILE])
                    except RuntimeError as exc:
                        self._stop_gpu_search(exc)
        if save:
            self.save()

    def _plan(self, db: sqlite3.Connection, last: int) -> dict:
        """Per index file that is behind: the changes to replay (a tuple), or a rebuilt index."""
        first_logged = db.execute("SELECT min(seq) FROM changes").fetchone()[0]
        plan = {}
        for name in (VECTORS_FILE, KEYWORDS_FILE):
            index = self._index(name)
            if index.checkpoint == last:
                continue
            # The log is replayable only if it still holds every change after the checkpoint
            # (another process may have pruned it); otherwise rebuild from the chunks table.
            replayable = (
                0 <= index.checkpoint < last and first_logged is not None and first_logged <= index.checkpoint + 1
            )
            if replayable:
                changes = _read_changes(db, index.checkpoint)
                outgrown = isinstance(index, FlatIndex) and len(index) + len(changes[0]) >= HNSW_FROM_CHUNKS
                if not outgrown:
                    plan[name] = changes
                    continue
                log.info(
                    "collection '%s' has grown past %d chunks: moving its vectors to an HNSW index",
                    self.name,
                    HNSW_FROM_CHUNKS,
                )
            # Built beside the live index, which goes on answering searches meanwhile.
            plan[name] = self._rebuild(db, name)
        return plan

    def _index(self, name: str):
        return self.vectors if name == VECTORS_FILE else self.keywords

    def _set_index(self, name: str, index) -> None:
        if name == VECTORS_FILE:
            self.vectors = index
        else:
            self.keywords = index

    def _rebuild(self, db: sqlite3.Connection, name: str):
        log.info("rebuilding %s of collection '%s' from the database", name, self.name)
        chunks = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        index = self._empty(name, checkpoint=0, chunks=chunks)
        _add_rows(index, db.execute("SELECT id, embedding, terms FROM chunks ORDER BY id"))
        return index

    # ---- the GPU copy --------------------------------------------------------------------------

    def _gpu_copy(self, index) -> gpu.GpuFlatIndex | None:
        """An exact copy of the vector index on the GPU with the most free memory; None without
        a usable GPU or when searching there is off (or has failed)."""
        if not self._gpu_search or not gpu.available():
            return None
        try:
            device = max(gpu.devices(), key=lambda d: d["free_memory"])["id"]
            copy = gpu.GpuFlatIndex(self.dim, metric="ip", device=device)
            ids = index.ids()
            if isinstance(index, FlatIndex):
                copy.add(index.vectors(), ids)
            else:
                for first in range(0, len(ids), 4096):
                    part = ids[first : first + 4096]
                    copy.add(np.stack([index.reconstruct(int(i)) for i in part]), part)
            log.info("collection '%s' searches its %d vectors on GPU %d", self.name, len(copy), device)
            return copy
        except RuntimeError as exc:  # GpuUnavailable, GpuError (out of GPU memory names the sizes)
            self._stop_gpu_search(exc)
            return None

    def _stop_gpu_search(self, exc: Exception) -> None:
        log.warning("collection '%s' searches on the CPU from now on: the GPU failed (%s)", self.name, exc)
        self._gpu_search, self.gpu_vectors = False, None

    # ---- saving --------------------------------------------------------------------------------

    def save_if_due(self) -> None:
        """Writes the index files when enough has changed or enough time has passed.

        Saving after every document would rewrite the whole index each time (quadratic in a
        long crawl), and so would saving every fixed number of changes as the collection grows
        (at a million chunks each save writes gigabytes); between saves the database's change
        log holds what the files lack, and the next open replays it.
        """
        behind = self.vectors.checkpoint - self._saved_checkpoint
        if behind <= 0:
            return
        enough_changes = max(SAVE_EVERY_CHANGES, SAVE_SHARE * len(self.vectors))
        long_enough = max(SAVE_EVERY_SECONDS, SAVE_DUTY * self._save_seconds)
        if behind >= enough_changes or time.monotonic() - self._saved_at >= long_enough:
            self.save()

    def flush(self) -> None:
        """Writes the index files now if they are behind the database."""
        if self.vectors.checkpoint != self._saved_checkpoint:
            self.save()

    def save(self) -> None:
        with self._saving:
            started = time.monotonic()
            try:
                with self._lock.read():  # searches go on; changes wait until the files are written
                    checkpoint = self.vectors.checkpoint
                    for name in (VECTORS_FILE, KEYWORDS_FILE):
                        self._index(name).save(self.folder / name)
            except OSError as exc:  # the database still has everything; the next open catches up
                log.warning("could not save the indexes of collection '%s': %s", self.name, exc)
                return
            # Both files now reflect every logged change up to the checkpoint. Another process
            # whose in-memory index is older finds the gap in the log and rebuilds from the chunks.
            self._prune_log(checkpoint)
            self._saved_checkpoint, self._saved_at = checkpoint, time.monotonic()
            self._save_seconds = self._saved_at - started

    def close(self) -> None:
        self.flush()
        self.gpu_vectors = None  # its GPU memory goes now, not when the object is collected

    # ---- searching -----------------------------------------------------------------------------

    def vector_search(self, query: np.ndarray, k: int, allowed: Sequence[int] | None) -> list[tuple[int, float]]:
        """(chunk id, cosine similarity) of the k nearest chunks, best first."""
        self.catch_up(save=False)
        with self._lock.read():
            if len(self.vectors) == 0:
                return []
            scores, on_gpu = None, self.gpu_vectors if k <= gpu.MAX_K else None
            if on_gpu is not None:
                try:
                    scores, ids = on_gpu.search(query[None, :], k, filter=allowed)
                except RuntimeError as exc:
                    self._stop_gpu_search(exc)
            if scores is None:
                knobs = {"ef": max(HNSW_EF, k)} if isinstance(self.vectors, HNSWIndex) else {}
                scores, ids = self.vectors.search(query[None, :], k, filter=allowed, **knobs)
        return [(int(i), float(s)) for s, i in zip(scores[0], ids[0]) if i >= 0]

    def keyword_search(
        self,
        tokens: Sequence[int],
        k: int,
        allowed: Sequence[int] | None,
        scoring: tuple[Sequence[float], float] | None = None,
    ) -> list[tuple[int, float]]:
        """(chunk id, BM25 score) of the k best matches of the query's term ids, best first.
        scoring: (each token's idf, the average length) of a larger collection this one is a
        shard of, to score as that collection would; None: this collection's own."""
        self.catch_up(save=False)
        with self._lock.read():
            if not tokens or len(self.keywords) == 0:
                return []
            if scoring is None:
                scores, ids = self.keywords.search([tokens], k, filter=allowed)
            else:
                idfs, avgdl = scoring
                scores, ids = self.keywords.search_with_statistics([tokens], [idfs], avgdl, k, filter=allowed)
        return [(int(i), float(s)) for s, i in zip(scores[0], ids[0]) if i >= 0]

    def keyword_statistics(self) -> tuple[int, dict]:
        """(the change the keyword index reflects, its statistics: BM25Index.statistics())."""
        self.catch_up(save=False)
        with self._lock.read():
            return self.keywords.checkpoint, self.keywords.statistics()

    def similarities(self, query: np.ndarray, chunk_ids: Sequence[int]) -> dict[int, float]:
        """Cosine similarity between the query and each chunk (embeddings are unit length)."""
        with self._lock.read():
            return {i: float(np.dot(self.vectors.reconstruct(i), query)) for i in chunk_ids if i in self.vectors}


def _apply(index, change: Change) -> None:
    added, removed = change
    _add_rows(index, added)
    if removed:
        index.remove(removed, missing_ok=True)


def _read_changes(db: sqlite3.Connection, checkpoint: int) -> Change:
    """(rows to add, chunk ids to remove) since the checkpoint. A chunk added and removed
    since then is gone from the table, so it is neither added nor (harmlessly) found to remove."""
    added = db.execute(
        "SELECT id, embedding, terms FROM chunks"
        " WHERE id IN (SELECT chunk_id FROM changes WHERE seq > ? AND op = 'add')"
        " ORDER BY id",
        (checkpoint,),
    ).fetchall()
    removed = [r[0] for r in db.execute("SELECT chunk_id FROM changes WHERE seq > ? AND op = 'remove'", (checkpoint,))]
    return added, removed


def _add_rows(index, rows: Iterable[tuple]) -> None:
    if isinstance(index, BM25Index):
        for chunk_id, _, terms in rows:
            index.add(chunk_id, np.frombuffer(terms, dtype=np.uint32))
        return
    batch_ids, batch_vectors = [], []
    for chunk_id, embedding, _ in rows:
        batch_ids.append(chunk_id)
        batch_vectors.append(np.frombuffer(embedding, dtype=np.float32))
        if len(batch_ids) == 4096:
            index.add(np.stack(batch_vectors), batch_ids)
            batch_ids, batch_vectors = [], []
    if batch_ids:
        index.add(np.stack(batch_vectors), batch_ids)
