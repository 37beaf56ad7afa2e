"""One shard of a sharded collection: a Collection in its own folder, held by a Ray actor.

The actor speaks in the shard's own chunk ids; the router (router.py) makes them global. When
the actor's process dies Ray starts it again (max_restarts) with the same arguments, so it opens
the same folder: SQLite is the source of truth and the index files catch up from it, exactly as
a collection reopened after a crash (retrieval/store/indexes.py).
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from retrieval.store import DB_NAME, Collection
from retrieval.store.collection import KeywordScoring

# The Collection methods the router may call through `call`, by name.
DELEGATED = frozenset(
    {
        "find_document",
        "find_by_content",
        "documents",
        "file_sources",
        "chunk_count",
        "write_documents",
        "begin_staging",
        "stage",
        "commit_staged",
        "abandon_staged",
        "remove_document",
        "removed_documents",
        "restore_document",
        "web_pages",
        "remember_web_page",
        "embeddings_for",
        "vector_search",
        "chunk_ids_for_sources",
        "chunks_with_lines",
        "chunk_rows",
        "flush",
    }
)


class Shard:
    """A collection's shard. Made remote by cluster.py (`ray.remote(Shard)`), so this module
    does not import Ray and can be tested as a plain object."""

    def __init__(self, folder: str, model_name: str, dim: int, gpu_search: bool = False):
        self.folder = Path(folder)
        self.collection = Collection(self.folder, model_name=model_name, dim=dim, gpu_search=gpu_search)
        self.started_at = time.time()

    def call(self, method: str, *args, **kwargs):
        if method not in DELEGATED:
            raise ValueError(f"a shard does not answer {method!r}")
        return getattr(self.collection, method)(*args, **kwargs)

    def keyword_search(self, terms, k, allowed, scoring: KeywordScoring) -> tuple[int, list[tuple[int, float]]]:
        """(the change its keyword index reflects, the k best matches scored with the whole
        collection's statistics). The router compares the change with the one its statistics
        were summed at, and sums them again when the shard has changed since."""
        hits = self.collection.keyword_search(terms, k, allowed=allowed, scoring=scoring)
        return self.collection.indexes.keywords.checkpoint, hits

    def keyword_statistics(self):
        return self.collection.keyword_statistics()

    def original(self, source: str) -> tuple[str, bytes] | None:
        """(content hash, bytes) of a document's kept file: the router's machine may not see
        this shard's disk."""
        path = self.collection.original_file(source)
        if path is None or not path.exists():
            return None
        return path.name, path.read_bytes()

    def holds_its_files(self) -> bool:
        """Whether its database is still where it was opened (a deleted data home leaves a
        detached actor holding files that are gone)."""
        return (self.folder / DB_NAME).exists()

    def status(self) -> dict:
        c = self.collection
        return {
            "folder": str(self.folder),
            "documents": len(c.documents()),
            "chunks": c.chunk_count(),
            "index": type(c.indexes.vectors).__name__,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "up_seconds": round(time.time() - self.started_at, 1),
        }

    def close(self) -> None:
        self.collection.close()
