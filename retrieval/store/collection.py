"""A collection on disk: SQLite as the source of truth, native indexes derived from it.

Folder layout (one folder per collection under the data home):

    docent.sqlite3   documents, chunks (text, provenance, embedding, keyword terms), the term
                     vocabulary, and a change log of chunk additions and removals (schema.py)
    vectors.idx      the vector and keyword indexes derived from the chunks (indexes.py says
    keywords.idx     how they are kept in step with the database, and the GPU copy)
    files/           the ingested files, named by content hash, so a citation can open its page

Every write commits to SQLite first and logs each chunk it adds or removes; the indexes follow.

Concurrency: one writer at a time commits to SQLite; every other thread reads through its own
connection, so reads see the last commit and never wait on the writer (WAL mode).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ingest.models import Chunk, Document
from retrieval.keywords import keyword_terms
from retrieval.models import DocumentInfo
from retrieval.store.files import KeptFiles
from retrieval.store.indexes import DerivedIndexes
from retrieval.store.schema import (
    CHUNK_COLUMNS,
    DB_NAME,
    DOCUMENT_COLUMNS,
    SCHEMA,
    SCHEMA_VERSION,
    connect,
    is_disk_full,
    text_hash,
)

log = logging.getLogger(__name__)

KEEP_REMOVED = 20  # removed documents kept for undo, the latest ones
KEEP_REMOVED_DAYS = 7


@dataclass(frozen=True)
class RemovedDocument:
    source: str
    title: str
    chunks: int
    removed_at: str


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


@dataclass(frozen=True)
class KeywordScoring:
    """BM25 statistics of a whole sharded collection, given to each shard's keyword search:
    each query term's idf there and its average chunk length (in terms)."""

    idf: dict[str, float]
    avgdl: float


class CollectionError(Exception):
    """A collection cannot be opened or used as asked; the message says why."""


class StorageFullError(CollectionError):
    """The disk (or the database's size limit) is full; nothing of the write was stored."""


class Collection:
    """Documents, chunks and their indexes in one folder. Thread-safe."""

    def __init__(self, folder: str | Path, *, model_name: str, dim: int, gpu_search: bool = True):
        self.folder = Path(folder)
        self.name = self.folder.name
        self.folder.mkdir(parents=True, exist_ok=True)
        self._write_lock = threading.RLock()  # the write connection, and the kept files
        self._local = threading.local()  # each thread's read connection
        self._readers: weakref.WeakSet = weakref.WeakSet()
        self._closed = False
        self._files = KeptFiles(self.folder)  # written inside the write that names them
        try:
            self._db = connect(self.folder / DB_NAME)
            self._migrate()
            self._db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise CollectionError(
                f"collection '{self.name}' at {self.folder}: the database cannot be opened ({exc})"
            ) from exc
        self._check_model(model_name, dim)
        self.model_name, self.dim = model_name, dim
        self.indexes = DerivedIndexes(
            self.folder,
            name=self.name,
            dim=dim,
            gpu_search=gpu_search,
            reader=self._reader,
            snapshot=self._snapshot,
            prune_log=self._prune_change_log,
        )
        self._prune_originals()  # a process killed mid-write may have left a file no row names
        self._drop_dead_staging()

    def _reader(self) -> sqlite3.Connection:
        """This thread's read-only connection: it sees every committed write and never waits on one."""
        db = getattr(self._local, "db", None)
        if db is None:
            if self._closed:
                raise CollectionError(f"collection '{self.name}' is closed")
            db = connect(self.folder / DB_NAME, read_only=True)
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

    # ---- opening ----------------------------------------------------------------------------

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
                f"collection '{self.name}' was written by a newer Docent (schema {meta['schema_version']});"
                " upgrade Docent"
            )
        if meta.get("model") != model_name or int(meta.get("dim", -1)) != dim:
            raise CollectionError(
                f"collection '{self.name}' was built with the embedding model"
                f" {meta.get('model')} ({meta.get('dim')}-d), "
                f"but {model_name} ({dim}-d) is configured; use that model, or ingest into a new collection"
            )

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
                if is_disk_full(exc):
                    raise StorageFullError(
                        f"collection '{self.name}': the disk is full ({exc}); nothing of this change was stored"
                    ) from exc
                raise

    def find_document(self, source: str) -> DocumentInfo | None:
        row = self._reader().execute(f"SELECT {_DOC_COLUMNS} FROM documents WHERE source = ?", (source,)).fetchone()
        return _document_info(row) if row else None

    def find_by_content(self, content_hash: str) -> DocumentInfo | None:
        """The first document stored with this content (file or page hash)."""
        row = (
            self._reader()
            .execute(
                f"SELECT {_DOC_COLUMNS} FROM documents WHERE content_hash = ? ORDER BY id LIMIT 1", (content_hash,)
            )
            .fetchone()
        )
        return _document_info(row) if row else None

    def documents(self) -> list[DocumentInfo]:
        rows = self._reader().execute(f"SELECT {_DOC_COLUMNS} FROM documents ORDER BY added_at, id").fetchall()
        return [_document_info(r) for r in rows]

    def file_sources(self) -> list[str]:
        """The sources of the documents that are files (not web pages, nor files fetched by
        address): what a question may name by file name (retrieval/scope.py), read on each search."""
        rows = (
            self._reader()
            .execute("SELECT source FROM documents WHERE kind != 'web' AND instr(source, '://') = 0")
            .fetchall()
        )
        return [r[0] for r in rows]

    def counts(self) -> tuple[int, int]:
        """(documents, chunks) stored."""
        return self._reader().execute("SELECT count(*) FROM documents").fetchone()[0], self.chunk_count()

    def index_lag(self) -> int:
        return self.indexes.lag()

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
                    self._files.keep(item.document.content_hash, item.original)
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
        self.indexes.catch_up(save=False)
        self.indexes.save_if_due()
        self._prune_originals()

    def _prune_change_log(self, checkpoint: int) -> None:
        """Drops the logged changes up to checkpoint, which the saved index files now hold."""
        try:
            with self._write():
                self._db.execute("DELETE FROM changes WHERE seq <= ?", (checkpoint,))
        except (sqlite3.OperationalError, StorageFullError) as exc:  # a full disk: pruned next time
            log.warning("could not prune the change log of collection '%s': %s", self.name, exc)

    def _insert(self, item: "PreparedDocument", term_ids: dict[str, int]) -> str:
        status, doc_id = self._insert_document(item.document, len(item.document.pages), len(item.chunks))
        self._db.executemany(
            f"INSERT INTO chunks(doc_id, {CHUNK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(doc_id, *row) for row in _chunk_rows(item.chunks, item.embeddings, item.terms, term_ids)],
        )
        self._log_added(doc_id)
        return status

    def _insert_document(self, document: Document, pages: int, chunks: int) -> tuple[str, int]:
        """The documents row, replacing an earlier version: ("added" or "replaced", its id)."""
        status = "replaced" if self._delete_document(document.source) else "added"
        cursor = self._db.execute(
            f"INSERT INTO documents({DOCUMENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                document.source,
                document.title,
                document.kind,
                document.content_hash,
                document.size_bytes,
                pages,
                chunks,
                json.dumps(document.warnings),
                datetime.now(timezone.utc).isoformat(timespec="seconds"),
            ),
        )
        return status, cursor.lastrowid

    # ---- a document streamed in parts ------------------------------------------------------
    # A very large document is embedded a few pages at a time; its chunks wait in staged_chunks
    # (each part its own short write) and become the document in one transaction at the end, so
    # readers and a crash see it whole or not at all, as for any other document.

    def begin_staging(self, source: str | None = None) -> str:
        """A token for the parts of a document; source names it (a sharded collection stages
        the parts in the document's shard, so it needs the name before the first part)."""
        token = uuid.uuid4().hex
        with self._write():
            self._db.execute(
                "INSERT INTO staging(token, pid, host, started_at) VALUES (?, ?, ?, ?)",
                (token, os.getpid(), socket.gethostname(), datetime.now(timezone.utc).isoformat()),
            )
        return token

    def stage(
        self, token: str, chunks: Sequence[Chunk], embeddings: np.ndarray, terms: Sequence[Sequence[str]]
    ) -> None:
        if len(chunks) != len(embeddings) or len(chunks) != len(terms):
            raise ValueError("chunks, embeddings and terms must have the same length")
        if embeddings.ndim != 2 or embeddings.shape[1] != self.dim:
            raise ValueError(f"embeddings must be (n, {self.dim}), got {embeddings.shape}")
        with self._write():
            term_ids = self._term_ids({t for chunk_terms in terms for t in chunk_terms})
            self._db.executemany(
                f"INSERT INTO staged_chunks(token, {CHUNK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(token, *row) for row in _chunk_rows(chunks, embeddings, terms, term_ids)],
            )

    def commit_staged(
        self, token: str, document: Document, *, pages: int, chunks: int, original: Path | bytes | None
    ) -> str:
        """Makes the staged chunks the document (replacing an earlier version): "added" or "replaced"."""
        with self._write_keeping_files():
            (staged,) = self._db.execute("SELECT count(*) FROM staged_chunks WHERE token = ?", (token,)).fetchone()
            if staged != chunks:
                raise CollectionError(
                    f"{document.source}: {staged} of its {chunks} staged chunks are left; add it again"
                )
            if original is not None:
                self._files.keep(document.content_hash, original)
            status, doc_id = self._insert_document(document, pages, chunks)
            self._db.execute(
                f"INSERT INTO chunks(doc_id, {CHUNK_COLUMNS}) SELECT ?, {CHUNK_COLUMNS} FROM staged_chunks"
                " WHERE token = ? ORDER BY ordinal",
                (doc_id, token),
            )
            self._log_added(doc_id)
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
            for token, pid, their_host, started in self._db.execute(
                "SELECT token, pid, host, started_at FROM staging"
            ).fetchall():
                alive = (
                    process_alive(pid) if their_host == host else datetime.fromisoformat(started).timestamp() > day_ago
                )
                if not alive:
                    log.info("dropping the staged part of a document whose ingest ended with its process (%s)", token)
                    self._drop_staged(token)

    def remove_document(self, source: str) -> bool:
        """Removes a document and its chunks from the database and every index. A copy is kept
        (the last KEEP_REMOVED removals, for at most KEEP_REMOVED_DAYS), so restore_document can
        undo it without embedding anything again."""
        with self._write():
            row = self._db.execute("SELECT id FROM documents WHERE source = ?", (source,)).fetchone()
            if row is not None:
                removed_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
                removal = self._db.execute(
                    f"INSERT INTO removed_documents({DOCUMENT_COLUMNS}, removed_at)"
                    f" SELECT {DOCUMENT_COLUMNS}, ? FROM documents WHERE id = ?",
                    (removed_at, row[0]),
                ).lastrowid
                self._db.execute(
                    f"INSERT INTO removed_chunks(removal_id, {CHUNK_COLUMNS}) SELECT ?, {CHUNK_COLUMNS} FROM chunks"
                    " WHERE doc_id = ? ORDER BY ordinal",
                    (removal, row[0]),
                )
                self._forget_old_removals()
            removed = self._delete_document(source)
        if removed:
            self._after_write()
        return removed

    def removed_documents(self) -> list[RemovedDocument]:
        """What restore_document can bring back, the latest removal first."""
        rows = (
            self._reader()
            .execute("SELECT source, title, chunks, removed_at FROM removed_documents ORDER BY id DESC")
            .fetchall()
        )
        return [RemovedDocument(*row) for row in rows]

    def restore_document(self, source: str) -> None:
        """Brings back the latest removed copy of a document, as it was (its chunks, embeddings,
        terms and kept file). Refused when none is kept or a document of that source was added since."""
        with self._write():
            row = self._db.execute(
                "SELECT id FROM removed_documents WHERE source = ? ORDER BY id DESC LIMIT 1", (source,)
            ).fetchone()
            if row is None:
                raise CollectionError(f"no removed document {source!r} is kept in '{self.name}' to restore")
            if self._db.execute("SELECT 1 FROM documents WHERE source = ?", (source,)).fetchone():
                raise CollectionError(f"{source!r} was added to '{self.name}' again since it was removed")
            doc_id = self._db.execute(
                f"INSERT INTO documents({DOCUMENT_COLUMNS}) SELECT {DOCUMENT_COLUMNS} FROM removed_documents"
                " WHERE id = ?",
                (row[0],),
            ).lastrowid
            self._db.execute(
                f"INSERT INTO chunks(doc_id, {CHUNK_COLUMNS}) SELECT ?, {CHUNK_COLUMNS} FROM removed_chunks"
                " WHERE removal_id = ? ORDER BY ordinal",
                (doc_id, row[0]),
            )
            self._log_added(doc_id)
            self._db.execute("DELETE FROM removed_documents WHERE id = ?", (row[0],))
        self._after_write()

    def _forget_old_removals(self) -> None:
        cutoff = (datetime.now(timezone.utc) - timedelta(days=KEEP_REMOVED_DAYS)).isoformat(timespec="seconds")
        self._db.execute(
            "DELETE FROM removed_documents WHERE removed_at < ? OR id NOT IN"
            " (SELECT id FROM removed_documents ORDER BY id DESC LIMIT ?)",
            (cutoff, KEEP_REMOVED),
        )

    def _log_added(self, doc_id: int) -> None:
        self._db.execute(
            "INSERT INTO changes(chunk_id, op) SELECT id, 'add' FROM chunks WHERE doc_id = ? ORDER BY id", (doc_id,)
        )

    # ---- crawled pages ----------------------------------------------------------------------

    def web_pages(self, crawl_root: str) -> dict[str, dict]:
        """What is remembered of the pages a crawl from crawl_root stored: url -> fields."""
        rows = (
            self._reader()
            .execute(
                "SELECT url, etag, last_modified, sitemap_lastmod, content_hash, fetched_at FROM web_pages"
                " WHERE crawl_root = ?",
                (crawl_root,),
            )
            .fetchall()
        )
        keys = ("url", "etag", "last_modified", "sitemap_lastmod", "content_hash", "fetched_at")
        return {r[0]: dict(zip(keys, r)) for r in rows}

    def remember_web_page(
        self, crawl_root: str, url: str, *, etag, last_modified, sitemap_lastmod, content_hash
    ) -> None:
        """Records when and from where a page came, and what to send to ask only for changes."""
        with self._write():
            self._db.execute(
                "INSERT INTO web_pages(url, crawl_root, etag, last_modified, sitemap_lastmod, content_hash, fetched_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(url) DO UPDATE SET crawl_root = excluded.crawl_root,"
                " etag = excluded.etag, last_modified = excluded.last_modified,"
                " sitemap_lastmod = excluded.sitemap_lastmod,"
                " content_hash = excluded.content_hash, fetched_at = excluded.fetched_at",
                (
                    url,
                    crawl_root,
                    etag,
                    last_modified,
                    sitemap_lastmod,
                    content_hash,
                    datetime.now(timezone.utc).isoformat(timespec="seconds"),
                ),
            )

    # ---- original files ---------------------------------------------------------------------

    def _prune_originals(self) -> None:
        """Deletes kept files that no document refers to any more (removed or replaced)."""
        try:
            with self._write():  # not while any process's writer has kept a file it has yet to commit
                wanted = self._db.execute(
                    "SELECT content_hash FROM documents UNION SELECT content_hash FROM removed_documents"
                )
                self._files.prune(row[0] for row in wanted)
        except (StorageFullError, sqlite3.OperationalError) as exc:  # tried again after the next write
            log.warning("could not tidy the kept files of collection '%s': %s", self.name, exc)

    def original_file(self, source: str) -> Path | None:
        """The stored copy of a document's file, when it was kept."""
        document = self.find_document(source)
        if document is None:
            return None
        return self._files.path(document.content_hash)

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

    def vector_search(
        self, query: np.ndarray, k: int, *, allowed: Sequence[int] | None = None
    ) -> list[tuple[int, float]]:
        """(chunk id, cosine similarity) of the k nearest chunks, best first."""
        return self.indexes.vector_search(query, k, allowed)

    def keyword_search(
        self,
        terms: Sequence[str],
        k: int,
        *,
        allowed: Sequence[int] | None = None,
        scoring: "KeywordScoring | None" = None,
    ) -> list[tuple[int, float]]:
        """(chunk id, BM25 score) of the k best keyword matches, best first. scoring: the
        statistics of a larger collection this one is a shard of (retrieval.distributed), so its
        scores are that collection's; None: this collection's own."""
        ids_by_term = self._lookup_terms(self._reader(), terms)
        # With scoring, a term no chunk of the whole collection holds any more scores nothing.
        held = [t for t in terms if t in ids_by_term and (scoring is None or t in scoring.idf)]
        tokens = [ids_by_term[t] for t in held]
        if scoring is None:
            return self.indexes.keyword_search(tokens, k, allowed)
        return self.indexes.keyword_search(tokens, k, allowed, ([scoring.idf[t] for t in held], scoring.avgdl))

    def hybrid_lists(
        self, query: np.ndarray, terms: Sequence[str], k: int, *, allowed: Sequence[int] | None = None
    ) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
        """The vector and the keyword list of a hybrid search (a sharded collection asks its
        shards for both at once)."""
        return self.vector_search(query, k, allowed=allowed), self.keyword_search(terms, k, allowed=allowed)

    def keyword_statistics(self) -> tuple[int, int, int, dict[str, int]]:
        """(the change the keyword index reflects, its chunks, their total length in terms, each
        term's document frequency): what collection-wide BM25 over shards adds up."""
        checkpoint, stats = self.indexes.keyword_statistics()
        names = self._term_names(stats["terms"].tolist())
        frequencies = {names[t]: int(df) for t, df in zip(stats["terms"].tolist(), stats["document_frequencies"])}
        return checkpoint, int(stats["documents"]), int(stats["total_length"]), frequencies

    def _term_names(self, term_ids: list[int]) -> dict[int, str]:
        db, names = self._reader(), {}
        for start in range(0, len(term_ids), 500):
            part = term_ids[start : start + 500]
            names.update(db.execute(f"SELECT id, term FROM terms WHERE id IN ({','.join('?' * len(part))})", part))
        return names

    def sources_using(self, word: str, limit: int = 200) -> list[str]:
        """The source of each of the (at most limit) passages that use the word most."""
        ids = [chunk_id for chunk_id, _ in self.keyword_search(keyword_terms(word), limit)]
        if not ids:
            return []
        rows = (
            self._reader()
            .execute(  # the sources alone: the passages' texts are not needed
                "SELECT documents.source FROM chunks JOIN documents ON documents.id = chunks.doc_id"
                f" WHERE chunks.id IN ({','.join('?' * len(ids))})",
                ids,
            )
            .fetchall()
        )
        return [r[0] for r in rows]

    def chunk_ids_for_sources(self, sources: Sequence[str]) -> list[int]:
        """The chunk ids of the given documents (file names or URLs as stored); unknown ones add none."""
        marks = ",".join("?" * len(sources))
        rows = (
            self._reader()
            .execute(
                "SELECT chunks.id FROM chunks JOIN documents ON documents.id = chunks.doc_id"
                f" WHERE documents.source IN ({marks})",
                list(sources),
            )
            .fetchall()
        )
        return [r[0] for r in rows]

    def chunks_with_lines(self, source: str, beginnings: Sequence[str], limit: int = 30) -> list[int]:
        """Ids of the document's chunks (in document order) with a line that begins with one of
        `beginnings`, letter case aside: a table row looked up by its label."""
        if not beginnings:
            return []
        patterns = [p for b in beginnings for p in (f"{_like(b)}%", f"%\n{_like(b)}%")]
        matches = " OR ".join("c.text LIKE ? ESCAPE '!'" for _ in patterns)
        rows = (
            self._reader()
            .execute(
                "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id"
                f" WHERE d.source = ? AND ({matches}) ORDER BY c.ordinal LIMIT ?",
                [source, *patterns, limit],
            )
            .fetchall()
        )
        return [r[0] for r in rows]

    def page_text(self, source: str, page: int | None = None) -> str | None:
        """A document's text as stored, on one PDF page (page given) or whole: its passages in
        order, each one's overlap with the one before left out (consecutive passages of a page
        share a few sentences). None when the document is not stored; "" for a page it lacks."""
        db = self._reader()
        found = db.execute("SELECT id FROM documents WHERE source = ?", (source,)).fetchone()
        if found is None:
            return None
        on_page = "" if page is None else " AND page = ?"
        rows = db.execute(
            f"SELECT text, char_start, char_end FROM chunks WHERE doc_id = ?{on_page} ORDER BY ordinal",
            (found[0],) if page is None else (found[0], page),
        ).fetchall()
        parts: list[str] = []
        previous = None
        for text, start, end in rows:
            if previous is not None:
                before, before_start, before_end = previous
                shared = before_end - start
                # Offsets restart on each page of the text, so an overlap counts only where the
                # text really repeats.
                if (
                    before_start <= start
                    and 0 < shared <= len(text)
                    and before[start - before_start :] == text[:shared]
                ):
                    parts.append(text[shared:])
                    previous = (text, start, end)
                    continue
                parts.append("\n\n")
            parts.append(text)
            previous = (text, start, end)
        return "".join(parts)

    def chunk_rows(self, chunk_ids: Sequence[int], query: np.ndarray | None = None) -> dict[int, dict]:
        """Text and provenance of chunks, by id (with the context it was indexed with: its
        document's title and what the document is, its section); with a query, also each
        chunk's cosine similarity to it (embeddings are unit length), fetched in the same call
        because a sharded collection pays a round trip per call."""
        if not chunk_ids:
            return {}
        marks = ",".join("?" * len(chunk_ids))
        rows = (
            self._reader()
            .execute(
                "SELECT c.id, c.text, c.page, c.section, d.source, d.title, c.context"
                " FROM chunks c JOIN documents d ON d.id = c.doc_id"
                f" WHERE c.id IN ({marks})",
                list(chunk_ids),
            )
            .fetchall()
        )
        found = {
            r[0]: {"text": r[1], "page": r[2], "section": r[3], "source": r[4], "title": r[5], "context": r[6]}
            for r in rows
        }
        if query is not None:
            for chunk_id, similarity in self.indexes.similarities(query, list(found)).items():
                found[chunk_id]["similarity"] = similarity
        return found

    def flush(self) -> None:
        """Writes the index files now if they are behind the database."""
        self.indexes.flush()

    def close(self) -> None:
        with self._write_lock:
            if self._closed:
                return
            self.indexes.close()
            self._closed = True
            self._db.close()
            for reader in list(self._readers):
                reader.close()


_DOC_COLUMNS = "id, source, title, kind, pages, chunks, size_bytes, added_at, content_hash, warnings"


def _chunk_rows(
    chunks: Sequence[Chunk], embeddings: np.ndarray, terms: Sequence[Sequence[str]], term_ids: dict[str, int]
):
    """(ordinal, page, section, text, context, char_start, char_end, embedding, terms, text_hash) per chunk."""
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    for chunk, vector, chunk_terms in zip(chunks, embeddings, terms):
        token_ids = np.fromiter((term_ids[t] for t in chunk_terms), dtype=np.uint32, count=len(chunk_terms))
        yield (
            chunk.ordinal,
            chunk.page,
            chunk.section,
            chunk.text,
            chunk.context,
            chunk.char_start,
            chunk.char_end,
            vector.tobytes(),
            token_ids.tobytes(),
            text_hash(chunk.index_text),
        )


def _like(text: str) -> str:
    """text as a literal in a LIKE pattern escaped with "!"."""
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def process_alive(pid: int) -> bool:
    """Whether a process of this machine is running (the caller knows it is of this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process, alive
        return True
    return True


def _document_info(row: tuple) -> DocumentInfo:
    *fields, warnings = row
    return DocumentInfo(*fields, warnings=json.loads(warnings))
