"""Reading a PDF source (bytes, or a path) into a Document.

Kept apart, with nothing heavy imported, because it runs in worker processes that parse PDFs
ahead of the embedding: a worker should not pay for importing the model stack.
"""

from __future__ import annotations

from pathlib import Path

from ingest.errors import IngestError
from ingest.models import Document
from ingest.pdf import load_pdf


def read_file(name: str, path: str | Path | None) -> bytes:
    if path is None:
        raise IngestError(name, "nothing to read: neither bytes nor a path were given")
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise IngestError(name, "file not found") from None
    except IsADirectoryError:
        raise IngestError(name, "is a folder; give the PDFs in it, or the folder to the CLI") from None
    except PermissionError:
        raise IngestError(name, "permission denied") from None
    except OSError as exc:
        raise IngestError(name, f"cannot be read ({exc.strerror})") from None


def load_pdf_file(name: str, data: bytes | None, path: str | None) -> tuple[Document, bytes] | IngestError:
    """(document, the file's bytes), or the IngestError as a value (it crosses process lines)."""
    try:
        raw = data if data is not None else read_file(name, path)
        return load_pdf(raw, source=name), raw
    except IngestError as exc:
        return exc
