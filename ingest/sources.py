"""Reading a PDF source (bytes, or a path) into a Document.

Kept apart, with nothing heavy imported, because it runs in worker processes that parse PDFs
ahead of the embedding: a worker should not pay for importing the model stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ingest.errors import IngestError
from ingest.models import Document
from ingest.pdf import PdfStream


def read_file(name: str, path: str | Path | None, *, probe: bool = False) -> bytes:
    """The file's bytes (probe: only whether it can be opened, b"" then), or an IngestError."""
    if path is None:
        raise IngestError(name, "nothing to read: neither bytes nor a path were given")
    try:
        if probe:
            with Path(path).open("rb"):
                return b""
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise IngestError(name, "file not found") from None
    except IsADirectoryError:
        raise IngestError(name, "is a folder; give the PDFs in it, or the folder to the CLI") from None
    except PermissionError:
        raise IngestError(name, "permission denied") from None
    except OSError as exc:
        raise IngestError(name, f"cannot be read ({exc.strerror})") from None


@dataclass
class LargePdf:
    """A PDF with more pages than asked to load at once: it is streamed, page by page, instead."""

    name: str
    page_count: int


def load_pdf_file(
    name: str, data: bytes | None, path: str | None, stream_from_pages: int
) -> tuple[Document, bytes] | LargePdf | IngestError:
    """(document, the file's bytes), a LargePdf past stream_from_pages pages, or the
    IngestError as a value (it crosses process lines). The PDF is opened and parsed once."""
    try:
        if data is None:
            read_file(name, path, probe=True)
        stream = PdfStream(data if data is not None else Path(path), name)
        if stream.page_count > stream_from_pages:
            stream.close()
            return LargePdf(name, stream.page_count)
        return stream.document(), data if data is not None else read_file(name, path)
    except IngestError as exc:
        return exc
