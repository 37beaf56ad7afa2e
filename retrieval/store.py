"""A collection on disk: SQLite as the source of truth, native indexes derived from it.

Folder layout (one folder per collection under the data home):

    docent.sqlite3   documents, chunks (text, provenance, embedding, keyword terms), the term
                     vocabulary, and a change log of chunk additions and removals
    vectors.idx      vector index over chunk embeddings: exact (FlatIndex) while the collection
                     is small, an HNSW graph (HNSWIndex) from HNSW_FROM_CHUNKS chunks on
    keywords.idx     BM25 index over chunk term ids              (retrieval.index.BM25Index)
    files/           the ingested files, named by content hash, so a citation can open its page

Every write commits to SQLite first and logs each chunk it adds or removes. An index file
records (as its checkpoint) the last change it reflects; on open, and before each search, an
index that is behind replays the log from its checkpoint. A missing or damaged index file is
rebuilt from the database, so the indexes can always be thrown away. Index files are written
to a temporary name, flushed and renamed.

On a machine with a usable GPU, a collection also keeps an exact copy of its vectors in GPU
memory (retrieval.gpu.GpuFlatIndex), changed in the same hold as the CPU index, and answers
vector searches from it; the CPU index stays the one that is saved and rebuilt. A GPU error
turns the copy off (logged) and the CPU index answers from then on.

Concurrency: one writer at a time commits to SQLite; every other thread reads through its own
connection, so reads see the last commit and never wait on the writer (WAL mode). The native
indexes sit behind a read-write lock: searches share it, and the changes of one commit are
applied to both indexes in one exclusive hold, so a search sees a document whole or not at
all. Rebuilding an index happens beside the live one, which keeps serving until the swap.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import socket
import sqlite3
import threading
import time
import uuid
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ingest.models import Chunk, Document
from retrieval import gpu
from retrieval.index import BM25Index, FlatIndex, HNSWIndex, IndexFormatError, load
from retrieval.models import DocumentInfo
from retrieval.rwlock import ReadWriteLock

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DB_NAME = "docent.sqlite3"
VECTORS_FILE = "vectors.idx"
KEYWORDS_FILE = "keywords.idx"
ORIGINALS_DIR = "files"  # uploaded files by content hash
SAVE_EVERY_CHANGES = 5000  # chunk additions and removals between index file writes
SAVE_EVERY_SECONDS = 30.0
# Exact search up to this many chunks, HNSW from there on. Measured by bench/index_choice_bench.py
# (one query at the hybrid depth of 50, 384-d, one thread, HNSW as below): HNSW overtakes flat
# search at about 5,000 chunks (0.14 against 0.17 ms), but below 20,000 exact search costs under
# a millisecond, so approximating buys nothing a user would notice. At 20,000: 0.84 against
# 0.28 ms (3.1x) at recall@50 0.997; at 100,000: 6.7 against 0.5 ms (12.9x).
HNSW_FROM_CHUNKS = 20_000
HNSW_M = 32
HNSW_EF = 128  # beam width of an app search: recall@50 above 0.996 up to 100,000 chunks

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    kind TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    pages INTEGER NOT NULL,
    chunks INTEGER NOT NULL,
    warnings TEXT NOT NULL,
    added_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    page INTEGER,
    section TEXT,
    text TEXT NOT NULL,
    context TEXT NOT NULL,
    char_start INTEGER NOT NULL,
    char_end INTEGER NOT NULL,
    embedding BLOB NOT NULL,
    terms BLOB NOT NULL,
    text_hash TEXT NOT NULL  -- of the indexed text: the same text is never embedded twice
);
CREATE INDEX IF NOT EXISTS chunks_by_doc ON chunks(doc_id);
CREATE INDEX IF NOT EXISTS chunks_by_text ON chunks(text_hash);
CREATE TABLE IF NOT EXISTS terms (id INTEGER PRIMARY KEY, term TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS web_pages (
    url TEXT PRIMARY KEY,
    crawl_root TEXT NOT NULL,
    etag TEXT,
    last_modified TEXT,
    sitemap_lastmod TEXT,
    content_hash TEXT,
    fetched_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS staged_chunks (  -- a streamed document's chunks until its commit
    token TEXT NOT NULL,
    ordinal INTEGER NOT NULL,
    page INTEGER,
    section TEXT,
    text TEXT NOT NULL,
    context TEXT NOT NULL,
    char_start INTEGER NOT NULL,
    char_end INTEGER NOT NULL,
    embedding BLOB NOT NULL,
    terms BLOB NOT NULL,
    text_hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS staged_by_token ON staged_chunks(token);
CREATE TABLE IF NOT EXISTS staging (token TEXT PRIMARY KEY, pid INTEGER NOT NULL, host TEXT NOT NULL, started_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    chunk_id INTEGER NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('add', 'remove'))
);
"""


@dataclass
class PreparedDocument:
    """A document ready to store: its chunks, their embeddings and their keyword terms."""

    document: Document
    chunks: Sequence[Chunk]
    embeddings: np.ndarray
    terms: Sequence[Sequence[str]]
    original: bytes | None = None  # the file as uploaded, kept so a citation can open it

    def validate(self, dim: int) -> None:
        if len(self.chunks) != len(self.embeddings) or len(self.chunks) != len(self.terms):
            raise ValueError(f"{self.document.source}: chunks, embeddings and terms must have the same length")
        if self.embeddings.ndim != 2 or self.embeddings.shape[1] != dim:
            raise ValueError(f"{self.document.source}: embeddings must be (n, {dim}), got {self.embeddings.shape}")


class CollectionError(Exception):
    """A collection cannot be opened or used as asked; the message says why."""


class StorageFullError(CollectionError):
    """The disk (or the database's size limit) is full; nothing of the write was stored."""


class _Connection(sqlite3.Connection):
    """A connection that can be weakly referenced, so a closing collection finds its readers."""


def _connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30, factory=_Connection)
    if read_only:
        db.execute("PRAGMA query_only=ON")
    else:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA foreign_keys=ON")
    return db


class Collection:
    """Documents, chunks and their indexes in one folder. Thread-safe."""

    def __init__(self, folder: str | Path, *, model_name: str, dim: int, gpu_search: bool = True):
        self.folder = Path(folder)
        self.name = self.folder.name
        self.folder.mkdir(parents=True, exist_ok=True)
        self._write_lock = threading.RLock()  # the write connection, and the kept files
        self._indexes = ReadWriteLock()  # searches share the native indexes; applying changes excludes them
        self._catching_up = threading.Lock()  # one thread brings the indexes up to date at a time
        self._saving = threading.Lock()
        self._local = threading.local()  # each thread's read connection
        self._readers: weakref.WeakSet = weakref.WeakSet()
        self._closed = False
        try:
            self._db = _connect(self.folder / DB_NAME)
            self._migrate()
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise CollectionError(f"collection '{self.name}' at {self.folder}: the database cannot be opened ({exc})") from exc
        self._check_model(model_name, dim)
        self.model_name, self.dim = model_name, dim
        self._vectors = self._open_index(VECTORS_FILE)
        self._keywords = self._open_index(KEYWORDS_FILE)
        self._saved_checkpoint, self._saved_at = self._vectors.checkpoint, time.monotonic()
        self._gpu_search, self._gpu_vectors = gpu_search, None
        self._catch_up(save=True)
        if self._gpu_vectors is None:  # (a rebuild while catching up has made it already)
            self._gpu_vectors = self._gpu_copy(self._vectors)
        self._prune_originals()  # a process killed mid-write may have left a file no row names
        self._drop_dead_staging()

    def _reader(self) -> sqlite3.Connection:
        """This thread's read-only connection: it sees every committed write and never waits on one."""
        db = getattr(self._local, "db", None)
        if db is None:
            if self._closed:
                raise CollectionError(f"collection '{self.name}' is closed")
            db = _connect(self.folder / DB_NAME, read_only=True)
            self._local.db = db
            self._readers.add(db)
        return db

    @contextmanager
    def _snapshot(self):
        """A read transaction: every query inside sees the same committed state."""
        db = self._reader()
        db.execute("BEGIN")
        try:
            yield db
        finally:
            db.execute("COMMIT")

    # ---- opening and keeping the indexes in step with the database -------------------------

    def _migrate(self) -> None:
        """Brings a collection written by an earlier build up to the current tables."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(chunks)")}
        if columns and "text_hash" not in columns:  # added to embed identical chunks once
            with self._write():
                self._db.execute("ALTER TABLE chunks ADD COLUMN text_hash TEXT NOT NULL DEFAULT ''")
                rows = self._db.execute("SELECT id, context, text FROM chunks").fetchall()
                self._db.executemany(
                    "UPDATE chunks SET text_hash = ? WHERE id = ?",
                    [(text_hash(f"{context}\n{text}" if context else text), id_) for id_, context, text in rows],
                )

    def _check_model(self, model_name: str, dim: int) -> None:
        with self._write():
            meta = dict(self._db.execute("SELECT key, value FROM meta"))
            if not meta:
                self._db.executemany(
                    "INSERT INTO meta(key, value) VALUES (?, ?)",
                    [("schema_version", str(SCHEMA_VERSION)), ("model", model_name), ("dim", str(dim))],
                )
                return
        if int(meta.get("schema_version", 0)) > SCHEMA_VERSION:
            raise CollectionError(
                f"collection '{self.name}' was written by a newer Docent (schema {meta['schema_version']}); upgrade Docent"
            )
        if meta.get("model") != model_name or int(meta.get("dim", -1)) != dim:
            raise CollectionError(
                f"collection '{self.name}' was built with the embedding model {meta.get('model')} ({meta.get('dim')}-d), "
                f"but {model_name} ({dim}-d) is configured; use that model, or ingest into a new collection"
            )

    @staticmethod
    def _last_change(db: sqlite3.Connection) -> int:
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
        return int(row[0]) if row else 0

    def _open_index(self, file_name: str):
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
        return self._empty_index(file_name, checkpoint=-1)

    def _empty_index(self, file_name: str, checkpoint: int, chunks: int = 0):
        if file_name == VECTORS_FILE:
            index = HNSWIndex(self.dim, metric="ip", M=HNSW_M) if chunks >= HNSW_FROM_CHUNKS else FlatIndex(self.dim, metric="ip")
        else:
            index = BM25Index()
        index.checkpoint = checkpoint  # -1: must be rebuilt from the chunks table
        return index

    def _catch_up(self, *, save: bool) -> None:
        """Brings both indexes up to the database's last change (this process's or another's)."""
        last = self._last_change(self._reader())
        if self._vectors.checkpoint == last and self._keywords.checkpoint == last:
            return
        with self._catching_up:
            with self._snapshot() as db:
                last = self._last_change(db)
                first_logged = db.execute("SELECT min(seq) FROM changes").fetchone()[0]
                plan = {}
                for name in (VECTORS_FILE, KEYWORDS_FILE):
                    index = self._index(name)
                    # The log is replayable only if it still holds every change after the checkpoint
                    # (another process may have pruned it); otherwise rebuild from the chunks table.
                    if index.checkpoint == last:
                        continue
                    replayable = (
                        0 <= index.checkpoint < last and first_logged is not None and first_logged <= index.checkpoint + 1
                    )
                    if replayable:
                        changes = self._read_changes(db, index.checkpoint)
                        outgrown = isinstance(index, FlatIndex) and len(index) + len(changes[0]) >= HNSW_FROM_CHUNKS
                        if not outgrown:
                            plan[name] = changes
                            continue
                        log.info("collection '%s' has grown past %d chunks: moving its vectors to an HNSW index",
                                 self.name, HNSW_FROM_CHUNKS)
                    # Built beside the live index, which goes on answering searches meanwhile.
                    plan[name] = self._rebuild(db, name)
            if not plan:
                return
            vectors_rebuilt = not isinstance(plan.get(VECTORS_FILE, ()), tuple)
            gpu_rebuilt = self._gpu_copy(plan[VECTORS_FILE]) if vectors_rebuilt else None
            with self._indexes.write():  # one hold for all: a search sees a commit whole or not at all
                for name, change in plan.items():
                    if isinstance(change, tuple):
                        self._apply(self._index(name), change)
                    else:
                        self._set_index(name, change)
                    self._index(name).checkpoint = last
                if vectors_rebuilt:
                    self._gpu_vectors = gpu_rebuilt
                elif VECTORS_FILE in plan and self._gpu_vectors is not None:
                    try:
                        self._apply(self._gpu_vectors, plan[VECTORS_FILE])
                    except RuntimeError as exc:
                        self._stop_gpu_search(exc)
        if save:
            self._save_indexes()

    def _apply(self, index, change: tuple[list[tuple], list[int]]) -> None:
        added, removed = change
        self._add_rows(index, added)
        if removed:
            index.remove(removed, missing_ok=True)

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
                    part = ids[first:first + 4096]
                    copy.add(np.stack([index.reconstruct(int(i)) for i in part]), part)
            log.info("collection '%s' searches its %d vectors on GPU %d", self.name, len(copy), device)
            return copy
        except RuntimeError as exc:  # GpuUnavailable, GpuError (out of GPU memory names the sizes)
            self._stop_gpu_search(exc)
            return None

    def _stop_gpu_search(self, exc: Exception) -> None:
        log.warning("collection '%s' searches on the CPU from now on: the GPU failed (%s)", self.name, exc)
        self._gpu_search, self._gpu_vectors = False, None

    def _index(self, name: str):
        return self._vectors if name == VECTORS_FILE else self._keywords

    def _set_index(self, name: str, index) -> None:
        if name == VECTORS_FILE:
            self._vectors = index
        else:
            self._keywords = index

    def _rebuild(self, db: sqlite3.Connection, name: str):
        log.info("rebuilding %s of collection '%s' from the database", name, self.name)
        chunks = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        index = self._empty_index(name, checkpoint=0, chunks=chunks)
        self._add_rows(index, db.execute("SELECT id, embedding, terms FROM chunks ORDER BY id"))
        return index

    @staticmethod
    def _read_changes(db: sqlite3.Connection, checkpoint: int) -> tuple[list[tuple], list[int]]:
        """(rows to add, chunk ids to remove) since the checkpoint. A chunk added and removed
        since then is gone from the table, so it is neither added nor (harmlessly) found to remove."""
        added = db.execute(
            "SELECT id, embedding, terms FROM chunks WHERE id IN (SELECT chunk_id FROM changes WHERE seq > ? AND op = 'add')"
            " ORDER BY id",
            (checkpoint,),
        ).fetchall()
        removed = [r[0] for r in db.execute("SELECT chunk_id FROM changes WHERE seq > ? AND op = 'remove'", (checkpoint,))]
        return added, removed

    def _add_rows(self, index, rows: Iterable[tuple]) -> None:
        if not isinstance(index, BM25Index):
            batch_ids, batch_vectors = [], []
            for chunk_id, embedding, _ in rows:
                batch_ids.append(chunk_id)
                batch_vectors.append(np.frombuffer(embedding, dtype=np.float32))
                if len(batch_ids) == 4096:
                    index.add(np.stack(batch_vectors), batch_ids)
                    batch_ids, batch_vectors = [], []
            if batch_ids:
                index.add(np.stack(batch_vectors), batch_ids)
        else:
            for chunk_id, _, terms in rows:
                index.add(chunk_id, np.frombuffer(terms, dtype=np.uint32))

    def _save_if_due(self) -> None:
        """Writes the index files when enough has changed or enough time has passed.

        Saving after every document would rewrite the whole index each time (quadratic in a
        long crawl); between saves the database's change log holds what the files lack, and
        the next open replays it.
        """
        behind = self._vectors.checkpoint - self._saved_checkpoint
        if behind >= SAVE_EVERY_CHANGES or (behind > 0 and time.monotonic() - self._saved_at >= SAVE_EVERY_SECONDS):
            self._save_indexes()

    def _save_indexes(self) -> None:
        with self._saving:
            try:
                with self._indexes.read():  # searches go on; changes wait until the files are written
                    checkpoint = self._vectors.checkpoint
                    for name in (VECTORS_FILE, KEYWORDS_FILE):
                        self._index(name).save(self.folder / name)
            except OSError as exc:  # the database still has everything; the next open catches up
                log.warning("could not save the indexes of collection '%s': %s", self.name, exc)
                return
            # Both files now reflect every logged change up to the checkpoint. Another process
            # whose in-memory index is older finds the gap in the log and rebuilds from the chunks.
            try:
                with self._write():
                    self._db.execute("DELETE FROM changes WHERE seq <= ?", (checkpoint,))
            except sqlite3.OperationalError as exc:  # a full disk: the log is pruned next time
                log.warning("could not prune the change log of collection '%s': %s", self.name, exc)
            self._saved_checkpoint, self._saved_at = checkpoint, time.monotonic()

    # ---- writing ----------------------------------------------------------------------------

    @contextmanager
    def _write(self):
        with self._write_lock:
            if self._closed:
                raise CollectionError(f"collection '{self.name}' is closed")
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if _is_disk_full(exc):
                    raise StorageFullError(
                        f"collection '{self.name}': the disk is full ({exc}); nothing of this change was stored"
                    ) from exc
                raise

    def find_document(self, source: str) -> DocumentInfo | None:
        row = self._reader().execute(f"SELECT {_DOC_COLUMNS} FROM documents WHERE source = ?", (source,)).fetchone()
        return _document_info(row) if row else None

    def documents(self) -> list[DocumentInfo]:
        rows = self._reader().execute(f"SELECT {_DOC_COLUMNS} FROM documents ORDER BY added_at, id").fetchall()
        return [_document_info(r) for r in rows]

    def chunk_count(self) -> int:
        return self._reader().execute("SELECT count(*) FROM chunks").fetchone()[0]

    def write_document(
        self, document: Document, chunks: Sequence[Chunk], embeddings: np.ndarray, terms: Sequence[Sequence[str]]
    ) -> str:
        """Stores a document with its chunks, replacing any earlier version of the same source.

        Returns "added" or "replaced". The database commits first; the indexes follow.
        """
        return self.write_documents([PreparedDocument(document, chunks, embeddings, terms)])[0]

    def write_documents(self, items: Sequence["PreparedDocument"]) -> list[str]:
        """Stores many documents in one transaction (and one index update); all or nothing."""
        for item in items:
            item.validate(self.dim)
        statuses = []
        with self._write_keeping_files():
            for item in items:
                if item.original is not None:
                    self._keep_original(item.document.content_hash, item.original)
            term_ids = self._term_ids({t for item in items for chunk_terms in item.terms for t in chunk_terms})
            for item in items:
                statuses.append(self._insert(item, term_ids))
        self._after_write()
        return statuses

    @contextmanager
    def _write_keeping_files(self):
        """A write transaction in which original files may be kept. They are written inside the
        transaction that names them, whose lock also keeps another process's prune away until
        the rows are committed; the files of a write that fails are pruned."""
        with self._write_lock:
            try:
                with self._write():
                    yield
            except BaseException:
                self._prune_originals()
                raise

    def _after_write(self) -> None:
        """The indexes brought up to the commit, their files written when due, unused files deleted."""
        self._catch_up(save=False)
        self._save_if_due()
        self._prune_originals()

    def _insert(self, item: "PreparedDocument", term_ids: dict[str, int]) -> str:
        status, doc_id = self._insert_document(item.document, len(item.document.pages), len(item.chunks))
        for row in _chunk_rows(item.chunks, item.embeddings, item.terms, term_ids):
            cursor = self._db.execute(
                "INSERT INTO chunks(doc_id, ordinal, page, section, text, context, char_start, char_end, embedding, terms,"
                " text_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (doc_id, *row),
            )
            self._db.execute("INSERT INTO changes(chunk_id, op) VALUES (?, 'add')", (cursor.lastrowid,))
        return status

    def _insert_document(self, document: Document, pages: int, chunks: int) -> tuple[str, int]:
        """The documents row, replacing an earlier version: ("added" or "replaced", its id)."""
        status = "replaced" if self._delete_document(document.source) else "added"
        cursor = self._db.execute(
            "INSERT INTO documents(source, title, kind, content_hash, size_bytes, pages, chunks, warnings, added_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (document.source, document.title, document.kind, document.content_hash, document.size_bytes, pages, chunks,
             json.dumps(document.warnings), datetime.now(timezone.utc).isoformat(timespec="seconds")),
        )
        return status, cursor.lastrowid

    # ---- a document streamed in parts ------------------------------------------------------
    # A very large document is embedded a few pages at a time; its chunks wait in staged_chunks
    # (each part its own short write) and become the document in one transaction at the end, so
    # readers and a crash see it whole or not at all, as for any other document.

    def begin_staging(self) -> str:
        token = uuid.uuid4().hex
        with self._write():
            self._db.execute("INSERT INTO staging(token, pid, host, started_at) VALUES (?, ?, ?, ?)",
                             (token, os.getpid(), socket.gethostname(), datetime.now(timezone.utc).isoformat()))
        return token

    def stage(self, token: str, chunks: Sequence[Chunk], embeddings: np.ndarray, terms: Sequence[Sequence[str]]) -> None:
        if len(chunks) != len(embeddings) or len(chunks) != len(terms):
            raise ValueError("chunks, embeddings and terms must have the same length")
        if embeddings.ndim != 2 or embeddings.shape[1] != self.dim:
            raise ValueError(f"embeddings must be (n, {self.dim}), got {embeddings.shape}")
        with self._write():
            term_ids = self._term_ids({t for chunk_terms in terms for t in chunk_terms})
            self._db.executemany(
                "INSERT INTO staged_chunks(token, ordinal, page, section, text, context, char_start, char_end, embedding,"
                " terms, text_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(token, *row) for row in _chunk_rows(chunks, embeddings, terms, term_ids)],
            )

    def commit_staged(self, token: str, document: Document, *, pages: int, chunks: int, original: Path | bytes | None) -> str:
        """Makes the staged chunks the document (replacing an earlier version): "added" or "replaced"."""
        with self._write_keeping_files():
            (staged,) = self._db.execute("SELECT count(*) FROM staged_chunks WHERE token = ?", (token,)).fetchone()
            if staged != chunks:
                raise CollectionError(f"{document.source}: {staged} of its {chunks} staged chunks are left; add it again")
            if original is not None:
                self._keep_original(document.content_hash, original)
            status, doc_id = self._insert_document(document, pages, chunks)
            self._db.execute(
                "INSERT INTO chunks(doc_id, ordinal, page, section, text, context, char_start, char_end, embedding, terms,"
                " text_hash) SELECT ?, ordinal, page, section, text, context, char_start, char_end, embedding, terms,"
                " text_hash FROM staged_chunks WHERE token = ? ORDER BY ordinal",
                (doc_id, token),
            )
            self._db.execute("INSERT INTO changes(chunk_id, op) SELECT id, 'add' FROM chunks WHERE doc_id = ? ORDER BY id", (doc_id,))
            self._drop_staged(token)
        self._after_write()
        return status

    def abandon_staged(self, token: str) -> None:
        with self._write():
            self._drop_staged(token)

    def _drop_staged(self, token: str) -> None:
        self._db.execute("DELETE FROM staged_chunks WHERE token = ?", (token,))
        self._db.execute("DELETE FROM staging WHERE token = ?", (token,))

    def _drop_dead_staging(self) -> None:
        """Staged parts whose process is gone (killed mid-document) are dropped."""
        host, day_ago = socket.gethostname(), time.time() - 86400
        with self._write():
            for token, pid, their_host, started in self._db.execute("SELECT token, pid, host, started_at FROM staging").fetchall():
                alive = process_alive(pid) if their_host == host else datetime.fromisoformat(started).timestamp() > day_ago
                if not alive:
                    log.info("dropping the staged part of a document whose ingest ended with its process (%s)", token)
                    self._drop_staged(token)

    def remove_document(self, source: str) -> bool:
        """Removes a document and its chunks from the database and every index."""
        with self._write():
            removed = self._delete_document(source)
        if removed:
            self._after_write()
        return removed

    # ---- crawled pages ----------------------------------------------------------------------

    def web_pages(self, crawl_root: str) -> dict[str, dict]:
        """What is remembered of the pages a crawl from crawl_root stored: url -> fields."""
        rows = self._reader().execute(
            "SELECT url, etag, last_modified, sitemap_lastmod, content_hash, fetched_at FROM web_pages WHERE crawl_root = ?",
            (crawl_root,),
        ).fetchall()
        keys = ("url", "etag", "last_modified", "sitemap_lastmod", "content_hash", "fetched_at")
        return {r[0]: dict(zip(keys, r)) for r in rows}

    def remember_web_page(self, crawl_root: str, url: str, *, etag, last_modified, sitemap_lastmod, content_hash) -> None:
        """Records when and from where a page came, and what to send to ask only for changes."""
        with self._write():
            self._db.execute(
                "INSERT INTO web_pages(url, crawl_root, etag, last_modified, sitemap_lastmod, content_hash, fetched_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(url) DO UPDATE SET crawl_root = excluded.crawl_root,"
                " etag = excluded.etag, last_modified = excluded.last_modified, sitemap_lastmod = excluded.sitemap_lastmod,"
                " content_hash = excluded.content_hash, fetched_at = excluded.fetched_at",
                (url, crawl_root, etag, last_modified, sitemap_lastmod, content_hash,
                 datetime.now(timezone.utc).isoformat(timespec="seconds")),
            )

    # ---- original files ---------------------------------------------------------------------

    def _keep_original(self, content_hash: str, data: bytes | Path) -> None:
        """Called inside _write_keeping_files, whose _write turns a full disk into StorageFullError."""
        folder = self.folder / ORIGINALS_DIR
        folder.mkdir(exist_ok=True)
        target = folder / content_hash
        if not target.exists():
            tmp = target.with_suffix(".tmp")
            try:
                if isinstance(data, Path):
                    shutil.copyfile(data, tmp)  # a large file is copied, not read into memory
                else:
                    tmp.write_bytes(data)
                tmp.replace(target)
            except OSError:
                tmp.unlink(missing_ok=True)
                raise

    def _prune_originals(self) -> None:
        """Deletes kept files that no document refers to any more (removed or replaced)."""
        folder = self.folder / ORIGINALS_DIR
        if not folder.is_dir():
            return
        try:
            with self._write():  # not while any process's writer has kept a file it has yet to commit
                used = {row[0] for row in self._db.execute("SELECT content_hash FROM documents")}
                for path in folder.iterdir():
                    if path.name not in used:
                        path.unlink(missing_ok=True)
        except (StorageFullError, sqlite3.OperationalError) as exc:  # tried again after the next write
            log.warning("could not tidy the kept files of collection '%s': %s", self.name, exc)

    def original_file(self, source: str) -> Path | None:
        """The stored copy of a document's file, when it was kept."""
        document = self.find_document(source)
        if document is None:
            return None
        path = self.folder / ORIGINALS_DIR / document.content_hash
        return path if path.is_file() else None

    def _delete_document(self, source: str) -> bool:
        row = self._db.execute("SELECT id FROM documents WHERE source = ?", (source,)).fetchone()
        self._db.execute("DELETE FROM web_pages WHERE url = ?", (source,))
        if row is None:
            return False
        self._db.execute(
            "INSERT INTO changes(chunk_id, op) SELECT id, 'remove' FROM chunks WHERE doc_id = ? ORDER BY id", (row[0],)
        )
        self._db.execute("DELETE FROM documents WHERE id = ?", (row[0],))  # chunks go by cascade
        return True

    def _term_ids(self, terms: set[str]) -> dict[str, int]:
        self._db.executemany("INSERT OR IGNORE INTO terms(term) VALUES (?)", [(t,) for t in terms])
        return self._lookup_terms(self._db, terms)

    @staticmethod
    def _lookup_terms(db: sqlite3.Connection, terms: Iterable[str]) -> dict[str, int]:
        ids: dict[str, int] = {}
        unique = list(set(terms))
        for start in range(0, len(unique), 500):
            part = unique[start : start + 500]
            marks = ",".join("?" * len(part))
            ids.update(db.execute(f"SELECT term, id FROM terms WHERE term IN ({marks})", part))
        return ids

    def embeddings_for(self, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """Stored embeddings of chunks whose indexed text has these hashes (see text_hash)."""
        found: dict[str, np.ndarray] = {}
        unique = list(set(hashes))
        db = self._reader()
        for start in range(0, len(unique), 500):
            part = unique[start : start + 500]
            marks = ",".join("?" * len(part))
            for digest, blob in db.execute(
                f"SELECT text_hash, embedding FROM chunks WHERE text_hash IN ({marks}) GROUP BY text_hash", part
            ):
                found[digest] = np.frombuffer(blob, dtype=np.float32)
        return found

    # ---- reading ----------------------------------------------------------------------------

    def vector_search(self, query: np.ndarray, k: int, *, allowed: Sequence[int] | None = None) -> list[tuple[int, float]]:
        """(chunk id, cosine similarity) of the k nearest chunks, best first."""
        self._catch_up(save=False)
        with self._indexes.read():
            if len(self._vectors) == 0:
                return []
            scores, on_gpu = None, self._gpu_vectors if k <= gpu.MAX_K else None
            if on_gpu is not None:
                try:
                    scores, ids = on_gpu.search(query[None, :], k, filter=allowed)
                except RuntimeError as exc:
                    self._stop_gpu_search(exc)
            if scores is None:
                knobs = {"ef": max(HNSW_EF, k)} if isinstance(self._vectors, HNSWIndex) else {}
                scores, ids = self._vectors.search(query[None, :], k, filter=allowed, **knobs)
        return [(int(i), float(s)) for s, i in zip(scores[0], ids[0]) if i >= 0]

    def keyword_search(self, terms: Sequence[str], k: int, *, allowed: Sequence[int] | None = None) -> list[tuple[int, float]]:
        """(chunk id, BM25 score) of the k best keyword matches, best first."""
        self._catch_up(save=False)
        ids_by_term = self._lookup_terms(self._reader(), terms)
        tokens = [ids_by_term[t] for t in terms if t in ids_by_term]
        with self._indexes.read():
            if not tokens or len(self._keywords) == 0:
                return []
            scores, ids = self._keywords.search([tokens], k, filter=allowed)
        return [(int(i), float(s)) for s, i in zip(scores[0], ids[0]) if i >= 0]

    def chunk_ids_for_sources(self, sources: Sequence[str]) -> list[int]:
        """The chunk ids of the given documents (file names or URLs as stored); unknown ones add none."""
        marks = ",".join("?" * len(sources))
        rows = self._reader().execute(
            f"SELECT chunks.id FROM chunks JOIN documents ON documents.id = chunks.doc_id WHERE documents.source IN ({marks})",
            list(sources),
        ).fetchall()
        return [r[0] for r in rows]

    def similarities(self, query: np.ndarray, chunk_ids: Sequence[int]) -> dict[int, float]:
        """Cosine similarity between the query and each chunk (embeddings are unit length)."""
        with self._indexes.read():
            return {i: float(np.dot(self._vectors.reconstruct(i), query)) for i in chunk_ids if i in self._vectors}

    def chunk_rows(self, chunk_ids: Sequence[int]) -> dict[int, dict]:
        """Text and provenance of chunks, by id."""
        if not chunk_ids:
            return {}
        marks = ",".join("?" * len(chunk_ids))
        rows = self._reader().execute(
            "SELECT c.id, c.text, c.page, c.section, d.source, d.title FROM chunks c JOIN documents d ON d.id = c.doc_id"
            f" WHERE c.id IN ({marks})",
            list(chunk_ids),
        ).fetchall()
        return {r[0]: {"text": r[1], "page": r[2], "section": r[3], "source": r[4], "title": r[5]} for r in rows}

    def flush(self) -> None:
        """Writes the index files now if they are behind the database."""
        if self._vectors.checkpoint != self._saved_checkpoint:
            self._save_indexes()

    def close(self) -> None:
        with self._write_lock:
            if self._closed:
                return
            self.flush()
            self._closed = True
            self._gpu_vectors = None  # its GPU memory goes now, not when the object is collected
            self._db.close()
            for reader in list(self._readers):
                reader.close()


_DOC_COLUMNS = "id, source, title, kind, pages, chunks, size_bytes, added_at, content_hash, warnings"


def _chunk_rows(chunks: Sequence[Chunk], embeddings: np.ndarray, terms: Sequence[Sequence[str]], term_ids: dict[str, int]):
    """(ordinal, page, section, text, context, char_start, char_end, embedding, terms, text_hash) per chunk."""
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    for chunk, vector, chunk_terms in zip(chunks, embeddings, terms):
        token_ids = np.fromiter((term_ids[t] for t in chunk_terms), dtype=np.uint32, count=len(chunk_terms))
        yield (chunk.ordinal, chunk.page, chunk.section, chunk.text, chunk.context, chunk.char_start, chunk.char_end,
               vector.tobytes(), token_ids.tobytes(), text_hash(chunk.index_text))


def process_alive(pid: int) -> bool:
    """Whether a process of this machine is running (the caller knows it is of this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process, alive
        return True
    return True


def _is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(exc, sqlite3.OperationalError) and "full" in str(exc)  # SQLITE_FULL


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _document_info(row: tuple) -> DocumentInfo:
    *fields, warnings = row
    return DocumentInfo(*fields, warnings=json.loads(warnings))
