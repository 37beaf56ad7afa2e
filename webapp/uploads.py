"""Where uploaded files wait for their ingest job: one folder per upload under HOME/uploads.

The process that made a folder holds a lock on it (flock on its .lock file) until its job has
removed it. A process killed mid-upload or mid-job leaves its folder behind with the lock
released, so the next API process to start on the home removes it; a folder whose lock is held
belongs to a live process (several may serve one home) and is left alone. Making and sweeping
folders both hold the lock on the uploads folder itself, so a sweep never sees a folder whose
lock is not taken yet.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)

LOCK = ".lock"


class UploadSpool:
    """One upload's folder, held by this process until remove()."""

    def __init__(self, home: str | Path):
        with _uploads_locked(home) as uploads:
            self.path = Path(tempfile.mkdtemp(prefix="upload-", dir=uploads))
            self._lock = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._lock, fcntl.LOCK_EX)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self._lock is not None:
            os.close(self._lock)  # releases the lock
            self._lock = None


def sweep_uploads(home: str | Path) -> int:
    """Removes the upload folders that no live process holds; returns how many."""
    if not (Path(home) / "uploads").is_dir():
        return 0
    removed = 0
    with _uploads_locked(home) as uploads:
        for folder in uploads.iterdir():
            if not folder.is_dir():
                continue
            try:
                fd = os.open(folder / LOCK, os.O_RDWR)
            except FileNotFoundError:
                fd = None  # made by a Docent without locks, or its lock already removed: nobody holds it
            try:
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live process's upload
            finally:
                if fd is not None:
                    os.close(fd)
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    if removed:
        log.warning("removed %d upload folder(s) left in %s by a process that stopped", removed, uploads)
    return removed


@contextmanager
def _uploads_locked(home: str | Path) -> Iterator[Path]:
    uploads = Path(home) / "uploads"
    uploads.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(uploads / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield uploads
    finally:
        os.close(fd)
