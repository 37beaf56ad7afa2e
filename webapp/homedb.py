"""One SQLite file in the data home (access.sqlite3, chats.sqlite3): a single connection behind a
lock, opened on first use with its schema, so one object serves every thread of a server."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from retrieval.settings import prepare_home


class HomeDatabase:
    def __init__(self, path: Path, schema: str):
        self.path, self._schema = Path(path), schema
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            prepare_home(self.path.parent)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # what was saved survives a power cut, as documents do
            db.execute("PRAGMA foreign_keys=ON")
            db.executescript(self._schema)
            self._db = db
        return self._db

    def query(self, sql: str, args: Iterable = ()) -> list[tuple]:
        with self._lock:
            return self._conn().execute(sql, tuple(args)).fetchall()

    def check(self) -> None:
        """Raises sqlite3.Error when the file cannot be opened or read."""
        self.query("SELECT count(*) FROM sqlite_master")

    def change(self, sql: str, args: Iterable = ()) -> int:
        """Runs one statement that writes; returns how many rows it changed."""
        with self._lock:
            return self._conn().execute(sql, tuple(args)).rowcount

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The connection inside one write transaction: all of it is committed, or none."""
        with self._lock:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
