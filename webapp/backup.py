"""Backups of a data home that restore: `docent backup create DEST`, `verify SRC`, `restore SRC`.

A copy of the data home's folder taken while the server writes may not open: a SQLite file and
its write-ahead log copied at different moments, or a kept file pruned between the database and
its copy. So a backup is taken database by database through SQLite's online backup API, while
the server serves and ingests:

- each collection's database is copied in one step while a second connection holds the
  collection's write lock, so no writer commits and no kept file is pruned in between; the kept
  files the copy names are taken under the same lock (most of them were copied before it, so
  writers wait only for the database copy and the few files kept since);
- the access and chat databases likewise, each in one step (no lock needed: they name no files);
- the indexes are not copied: they are derived from the database, and rebuilt on restore.

Everything is written to DEST.partial-PID, with `manifest.json` (every file's size and SHA-256,
each collection's counts) written last, fsynced, and the folder renamed to DEST: a backup killed
midway leaves a folder that is not DEST and does not verify, and the data home is only read.
A document committed before the backup began is in it; one committing during it is whole or
absent, as in any SQLite snapshot.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable

from retrieval.store.files import ORIGINALS_DIR
from retrieval.store.schema import DB_NAME, SCHEMA_VERSION

MANIFEST = "manifest.json"
FORMAT = 1
HOME_DATABASES = ("access.sqlite3", "chats.sqlite3")  # jobs.sqlite3 and uploads/ are transient
HOME_FILES = ("docent.toml",)
COLLECTIONS = "collections"
LOCK_TIMEOUT_SECONDS = 60  # how long the backup waits for a writer to finish its commit

Report = Callable[[str], None]


class BackupError(RuntimeError):
    """The backup cannot be made, verified or restored; the message says what is wrong."""


@dataclass
class Manifest:
    created: str
    docent_version: str
    schema_version: int
    collections: dict[str, dict] = field(default_factory=dict)  # name -> {documents, chunks}
    files: dict[str, dict] = field(default_factory=dict)  # relative path -> {bytes, sha256}
    format: int = FORMAT

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=1, sort_keys=True)


# ---- create --------------------------------------------------------------------------------------


def create_backup(home: Path, dest: Path, report: Report = lambda line: None) -> Manifest:
    home, dest = Path(home), Path(dest)
    if not home.is_dir():
        raise BackupError(f"no data home at {home}")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupError(f"{dest} exists and is not an empty folder: give a new one")
    if dest.resolve().is_relative_to(home.resolve()):
        raise BackupError(f"{dest} is inside the data home {home}: give a folder outside it")
    work = dest.with_name(f"{dest.name}.partial-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        manifest = Manifest(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), _docent_version(), SCHEMA_VERSION)
        for name in HOME_DATABASES:
            if (home / name).exists():
                _copy_database(home / name, work / name)
        for name in HOME_FILES:
            if (home / name).is_file():
                shutil.copy2(home / name, work / name)
        for folder in sorted((home / COLLECTIONS).glob("*/")) if (home / COLLECTIONS).is_dir() else []:
            if not (folder / DB_NAME).exists():
                report(f"skipped {folder.name}: not a collection of this machine (sharded on a Ray cluster?)")
                continue
            counts = _copy_collection(folder, work / COLLECTIONS / folder.name)
            manifest.collections[folder.name] = counts
            report(f"{folder.name}: {counts['documents']} documents, {counts['chunks']} passages")
        manifest.files = {str(p.relative_to(work)): _describe(p) for p in sorted(_files_under(work))}
        _sync_files(work)
        _write_synced(work / MANIFEST, manifest.to_json())  # last: a backup without it is unfinished
        if dest.exists():
            dest.rmdir()
        work.rename(dest)
        _sync_folder(dest.parent)
        return manifest
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _copy_collection(folder: Path, into: Path) -> dict:
    """The collection's database and the kept files it names, as of one moment."""
    kept, copies = folder / ORIGINALS_DIR, into / ORIGINALS_DIR
    copies.mkdir(parents=True)
    for path in kept.iterdir() if kept.is_dir() else []:  # the bulk, before the lock
        if path.is_file() and path.suffix != ".tmp":
            shutil.copyfile(path, copies / path.name)

    def files_named(db: sqlite3.Connection) -> None:
        named = {
            row[0]
            for row in db.execute("SELECT content_hash FROM documents UNION SELECT content_hash FROM removed_documents")
        }
        for name in named:
            if not (copies / name).exists() and (kept / name).is_file():
                shutil.copyfile(kept / name, copies / name)  # kept since the bulk was copied
        for path in copies.iterdir():
            if path.name not in named:
                path.unlink()  # pruned since: no document of this moment names it

    _copy_database(folder / DB_NAME, into / DB_NAME, locked=files_named)
    return _counts(into / DB_NAME)


def _counts(path: Path) -> dict:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {
            "documents": db.execute("SELECT count(*) FROM documents").fetchone()[0],
            "chunks": db.execute("SELECT count(*) FROM chunks").fetchone()[0],
        }
    finally:
        db.close()


def _copy_database(source: Path, target: Path, locked: Callable[[sqlite3.Connection], None] | None = None) -> None:
    """Copies a SQLite database in one step of the online backup API into a self-contained file
    (no write-ahead log). locked(copy): more work done while a second connection holds the
    source's write lock, so nothing commits between the copy and it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    holder = sqlite3.connect(source, timeout=LOCK_TIMEOUT_SECONDS, isolation_level=None)
    reader = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=LOCK_TIMEOUT_SECONDS)
    copy = sqlite3.connect(target, isolation_level=None)
    try:
        if locked is not None:
            holder.execute("BEGIN IMMEDIATE")
        reader.backup(copy)
        copy.execute("PRAGMA journal_mode=DELETE")
        if locked is not None:
            locked(copy)
    except sqlite3.Error as exc:
        raise BackupError(f"{source} could not be copied: {exc}") from exc
    finally:
        copy.close()
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()
        reader.close()


# ---- verify --------------------------------------------------------------------------------------


def verify_backup(source: Path) -> Manifest:
    """Checks a backup: its manifest, every file's size and checksum, no file it does not list,
    and each database's integrity and counts. Raises BackupError naming the first problem."""
    source = Path(source)
    try:
        raw = json.loads((source / MANIFEST).read_text())
        manifest = Manifest(**raw)
    except FileNotFoundError:
        raise BackupError(f"{source} is not a finished backup: it has no {MANIFEST}") from None
    except (ValueError, TypeError) as exc:
        raise BackupError(f"{source / MANIFEST} is damaged: {exc}") from None
    if manifest.format > FORMAT:
        raise BackupError(f"{source} was written by a newer Docent (backup format {manifest.format}); upgrade Docent")
    present = {str(p.relative_to(source)) for p in _files_under(source)} - {MANIFEST}
    if present - set(manifest.files):
        raise BackupError(
            f"{source} holds files its manifest does not list: {sorted(present - set(manifest.files))[:5]}"
        )
    for relative, expected in manifest.files.items():
        path = source / relative
        if not path.is_file():
            raise BackupError(f"{relative} is missing from {source}")
        if _describe(path) != expected:
            raise BackupError(f"{relative} in {source} is damaged: its size or checksum is not the one recorded")
    for relative in manifest.files:
        if relative.endswith(".sqlite3"):
            _check_database(source / relative)
    for name, counts in manifest.collections.items():
        held = _counts(source / COLLECTIONS / name / DB_NAME)
        if held != counts:
            raise BackupError(f"collection '{name}' in {source} holds {held}, its manifest says {counts}")
    return manifest


def _check_database(path: Path) -> None:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        result = db.execute("PRAGMA integrity_check").fetchone()[0]
    except sqlite3.Error as exc:
        raise BackupError(f"{path} is not a readable database: {exc}") from None
    finally:
        db.close()
    if result != "ok":
        raise BackupError(f"{path} fails SQLite's integrity check: {result}")


# ---- restore -------------------------------------------------------------------------------------


def restore_backup(source: Path, home: Path, *, replace: bool = False, report: Report = lambda line: None) -> Manifest:
    """Restores a verified backup into home, which must be empty (or missing) unless replace is
    given; then what home held is moved aside to HOME.replaced-TIME, not deleted. The indexes are
    rebuilt when each collection is first opened (open_restored does it at once)."""
    source, home = Path(source), Path(home)
    manifest = verify_backup(source)
    if home.exists() and any(home.iterdir()):
        if not replace:
            raise BackupError(f"the data home {home} is not empty: restore into an empty one, or give --replace")
        aside = home.with_name(f"{home.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
        home.rename(aside)
        report(f"what {home} held is now in {aside}")
    staging = home.with_name(f"{home.name}.restoring-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        shutil.copytree(source, staging, ignore=shutil.ignore_patterns(MANIFEST))
        for relative, expected in manifest.files.items():  # what was written is what was backed up
            if _describe(staging / relative) != expected:
                raise BackupError(f"{relative} was not restored whole into {home}")
        staging.chmod(0o700)
        if home.exists():
            home.rmdir()
        staging.rename(home)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


# ---- files ---------------------------------------------------------------------------------------


def _files_under(folder: Path):
    return (p for p in folder.rglob("*") if p.is_file())


def _describe(path: Path) -> dict:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def _write_synced(path: Path, text: str) -> None:
    with path.open("w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())


def _sync_files(folder: Path) -> None:
    for path in _files_under(folder):
        with path.open("rb") as file:
            os.fsync(file.fileno())
    for sub in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
        _sync_folder(sub)


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _docent_version() -> str:
    try:
        return version("docent")
    except PackageNotFoundError:
        return "unknown"
