"""A collection's database: its tables, its connections, and what a full disk looks like."""

from __future__ import annotations

import errno
import hashlib
import sqlite3
from pathlib import Path

SCHEMA_VERSION = 1
DB_NAME = "docent.sqlite3"

# A chunk's stored fields, shared by the live chunks, a streamed document's staged ones, and a
# removed document's (kept for undo).
CHUNK_FIELDS = """
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
"""
CHUNK_COLUMNS = "ordinal, page, section, text, context, char_start, char_end, embedding, terms, text_hash"
DOCUMENT_FIELDS = """
    source TEXT NOT NULL,
    title TEXT NOT NULL,
    kind TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    pages INTEGER NOT NULL,
    chunks INTEGER NOT NULL,
    warnings TEXT NOT NULL,
    added_at TEXT NOT NULL
"""
DOCUMENT_COLUMNS = "source, title, kind, content_hash, size_bytes, pages, chunks, warnings, added_at"

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,{DOCUMENT_FIELDS},
    UNIQUE (source)
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,{CHUNK_FIELDS}
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
    token TEXT NOT NULL,{CHUNK_FIELDS}
);
CREATE INDEX IF NOT EXISTS staged_by_token ON staged_chunks(token);
CREATE TABLE IF NOT EXISTS staging (
    token TEXT PRIMARY KEY, pid INTEGER NOT NULL, host TEXT NOT NULL, started_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    chunk_id INTEGER NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('add', 'remove'))
);
CREATE TABLE IF NOT EXISTS removed_documents (  -- removed by a user: kept a while, for undo
    id INTEGER PRIMARY KEY AUTOINCREMENT,{DOCUMENT_FIELDS},
    removed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS removed_chunks (
    removal_id INTEGER NOT NULL REFERENCES removed_documents(id) ON DELETE CASCADE,{CHUNK_FIELDS}
);
CREATE INDEX IF NOT EXISTS removed_by_removal ON removed_chunks(removal_id);
"""


class _Connection(sqlite3.Connection):
    """A connection that can be weakly referenced, so a closing collection finds its readers."""


def connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30, factory=_Connection)
    if read_only:
        db.execute("PRAGMA query_only=ON")
    else:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA foreign_keys=ON")
    return db


def is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(exc, sqlite3.OperationalError) and "full" in str(exc)  # SQLITE_FULL


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
