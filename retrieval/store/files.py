"""The files a collection keeps (`files/` in its folder, named by content hash), so a citation
can open the page it cites. Which files are still wanted is the database's to say: the
collection keeps a file inside the transaction that names it and prunes under its write lock."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterable

ORIGINALS_DIR = "files"


class KeptFiles:
    def __init__(self, collection_folder: Path):
        self.folder = collection_folder / ORIGINALS_DIR

    def keep(self, content_hash: str, data: bytes | Path) -> None:
        """Writes the file under its hash (a temporary name, then renamed); kept once."""
        self.folder.mkdir(exist_ok=True)
        target = self.folder / content_hash
        if target.exists():
            return
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

    def prune(self, wanted: Iterable[str]) -> None:
        """Deletes every kept file whose hash is not wanted (its document removed or replaced)."""
        if not self.folder.is_dir():
            return
        wanted = set(wanted)
        for path in self.folder.iterdir():
            if path.name not in wanted:
                path.unlink(missing_ok=True)

    def path(self, content_hash: str) -> Path | None:
        path = self.folder / content_hash
        return path if path.is_file() else None
