"""Collections on disk: SQLite as the source of truth (collection.py, schema.py), the native
indexes derived from it and kept in step with it (indexes.py), and their read-write lock."""

from retrieval.store.collection import (
    Collection,
    CollectionError,
    PreparedDocument,
    RemovedDocument,
    StorageFullError,
    process_alive,
)
from retrieval.store.indexes import HNSW_EF, HNSW_FROM_CHUNKS, HNSW_M, KEYWORDS_FILE, VECTORS_FILE
from retrieval.store.schema import DB_NAME, text_hash

__all__ = [
    "Collection",
    "CollectionError",
    "DB_NAME",
    "HNSW_EF",
    "HNSW_FROM_CHUNKS",
    "HNSW_M",
    "KEYWORDS_FILE",
    "PreparedDocument",
    "RemovedDocument",
    "StorageFullError",
    "VECTORS_FILE",
    "process_alive",
    "text_hash",
]
