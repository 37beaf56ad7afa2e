"""What can be ingested: a Source (a name for citations, and its bytes, its path or its URL),
the file types Docent reads (one registry, by content), and folders expanded into files.

Loading a file runs in worker processes that parse files ahead of the embedding, so this module
imports nothing heavy: a worker should not pay for importing the model stack.

A new file type is one FileType entry in FILE_TYPES: how its content is recognised, its file
name suffixes (for folders and the app's uploader), and its loader. Everything else (the CLI,
the API, the app, the pipeline) takes the list from here.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ingest.errors import IngestError
from ingest.limits import check_characters
from ingest.filings import filing_context
from ingest.mail import load_email, looks_like_email
from ingest.models import Document
from ingest.pdf import PdfStream
from ingest.textfiles import (
    load_csv_file,
    load_html_file,
    load_text_file,
    looks_like_csv,
    looks_like_html,
    looks_like_text,
)

HEAD_BYTES = 1024  # how much of a file is read to recognise its type


@dataclass
class Source:
    """Something to ingest: a name for citations, and its bytes or its path (a URL has neither)."""

    name: str
    data: bytes | None = None
    path: Path | None = None
    refused: str | None = None  # why it is not read: a file in a folder of a type Docent does not read

    def __post_init__(self) -> None:
        # One name for one text: "café" typed on one system and uploaded from another (NFD, as
        # macOS writes file names) is the same document, not two that look alike.
        self.name = unicodedata.normalize("NFC", self.name)

    @classmethod
    def from_path(cls, path: str | Path) -> "Source":
        return cls(name=str(path), path=Path(path))

    @property
    def is_url(self) -> bool:
        return self.data is None and is_url(self.name)


@dataclass
class LargePdf:
    """A PDF with more pages than asked to load at once: it is streamed, page by page, instead."""

    name: str
    page_count: int


Loaded = tuple[Document, bytes] | LargePdf | IngestError


@dataclass(frozen=True)
class FileType:
    """A kind of file Docent reads: recognised by its first bytes, loaded by `load`. A weak
    recognition (any text may be CSV or Markdown) yields to what the file's name says."""

    name: str
    suffixes: tuple[str, ...]
    mime: str
    recognise: Callable[[bytes], bool]
    load: Callable[[str, bytes | None, str | None, int], Loaded]  # (name, data, path, stream_from_pages)
    weak: bool = False


def load_pdf_file(name: str, data: bytes | None, path: str | None, stream_from_pages: int) -> Loaded:
    """(document, the file's bytes), a LargePdf past stream_from_pages pages, or the
    IngestError as a value (it crosses process lines). The PDF is opened and parsed once."""
    try:
        stream = PdfStream(data if data is not None else Path(path), name)
        if stream.page_count > stream_from_pages:
            stream.close()
            return LargePdf(name, stream.page_count)
        return stream.document(), data if data is not None else read_file(name, path)
    except IngestError as exc:
        return exc


def whole_file(read: Callable[[str, bytes], Document]) -> Callable[[str, bytes | None, str | None, int], Loaded]:
    """A loader of a file read whole: (document, the file's bytes), or the IngestError as a
    value; a library's own exception on a damaged file becomes one that names the file."""

    def load(name: str, data: bytes | None, path: str | None, stream_from_pages: int) -> Loaded:
        try:
            data = data if data is not None else read_file(name, path)
            document = read(name, data)
            check_characters(name, sum(len(page.text) for page in document.pages))
            if document.about is None and document.pages:
                document.about = filing_context("\n".join(page.text for page in document.pages[:2]))
            return document, data
        except IngestError as exc:
            return exc
        except Exception as exc:
            return IngestError(name, f"the file is damaged and cannot be read ({type(exc).__name__}: {exc})")

    return load


def _office(name: str, data: bytes) -> Document:
    from ingest.office import load_office  # python-docx, -pptx and openpyxl only when needed

    return load_office(name, data)


def _email(name: str, data: bytes) -> Document:
    return load_email(name, data, _attachment)


def _attachment(name: str, data: bytes) -> Document | str:
    """An e-mail's attachment read by the loader of its type, or why it cannot be."""
    found = load_file(name, data, None, stream_from_pages=1 << 30)
    if isinstance(found, IngestError):
        return found.reason
    return found[0]


def _image(name: str, data: bytes) -> Document:
    from ingest.ocr import load_image  # the OCR engine only when an image comes

    return load_image(name, data)


FILE_TYPES = (
    FileType("PDF", (".pdf",), "application/pdf", lambda head: b"%PDF-" in head, load_pdf_file),
    FileType(
        "Word, PowerPoint, Excel",
        (".docx", ".pptx", ".xlsx"),
        "application/zip",
        lambda head: head.startswith(b"PK\x03\x04"),
        whole_file(_office),
    ),
    FileType("HTML", (".html", ".htm"), "text/html", looks_like_html, whole_file(load_html_file)),
    FileType(
        "image (OCR)",
        (".png", ".jpg", ".jpeg", ".tif", ".tiff"),
        "image/*",
        lambda head: head.startswith((b"\x89PNG", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*")),
        whole_file(_image),
    ),
    FileType("e-mail", (".eml",), "message/rfc822", looks_like_email, whole_file(_email)),
    FileType("CSV", (".csv", ".tsv"), "text/csv", looks_like_csv, whole_file(load_csv_file), weak=True),
    FileType(
        "Markdown, text",
        (".md", ".markdown", ".txt"),
        "text/plain",
        looks_like_text,
        whole_file(load_text_file),
        weak=True,
    ),
)
SUFFIXES = tuple(s for file_type in FILE_TYPES for s in file_type.suffixes)


def file_type_of(name: str, head: bytes) -> FileType | None:
    """The type the content shows (a PDF, an Office file, an HTML page); else the one the
    name's suffix claims, whose loader then says what is wrong with the file (a "report.pdf"
    that holds a few words of text); else what text content may be (CSV, Markdown or text)."""
    strong = next((t for t in FILE_TYPES if not t.weak and t.recognise(head)), None)
    named = next((t for t in FILE_TYPES if name.lower().endswith(t.suffixes)), None)
    weak = next((t for t in FILE_TYPES if t.weak and t.recognise(head)), None)
    return strong or named or weak


def load_file(name: str, data: bytes | None, path: str | None, stream_from_pages: int) -> Loaded:
    """A file of any type Docent reads, recognised by its content (not its name)."""
    try:
        head = data[:HEAD_BYTES] if data is not None else read_file(name, path, head=HEAD_BYTES)
    except IngestError as exc:
        return exc
    file_type = file_type_of(name, head)
    if file_type is None:
        return IngestError(name, f"not a kind of file Docent reads (it reads {_readable()})")
    return file_type.load(name, data, path, stream_from_pages)


def read_file(name: str, path: str | Path | None, *, head: int | None = None) -> bytes:
    """The file's bytes (only the first `head` of them when given), or an IngestError."""
    if path is None:
        raise IngestError(name, "nothing to read: neither bytes nor a path were given")
    try:
        with Path(path).open("rb") as file:
            return file.read(head) if head is not None else file.read()
    except FileNotFoundError:
        raise IngestError(name, "file not found") from None
    except IsADirectoryError:
        raise IngestError(name, "is a folder; give the files in it, or the folder to the CLI") from None
    except PermissionError:
        raise IngestError(name, "permission denied") from None
    except OSError as exc:
        raise IngestError(name, f"cannot be read ({exc.strerror})") from None


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def expand_paths(paths: Sequence[str]) -> list[Source]:
    """Files and URLs as given; a folder stands for the files in it and its subfolders, sorted,
    hidden ones (".git", ".DS_Store") aside. A file there whose name is not of a type Docent
    reads is listed as refused, with the reason, not read: a folder's scripts and data files
    are not documents, and nothing is skipped without a word."""
    sources: list[Source] = []
    for given in paths:
        path = Path(given)
        if is_url(given):
            sources.append(Source(name=given))
        elif path.is_dir():
            for found in sorted(path.rglob("*")):
                if not found.is_file() or any(part.startswith(".") for part in found.relative_to(path).parts):
                    continue
                source = Source.from_path(found)
                if found.suffix.lower() not in SUFFIXES:
                    source.refused = f"not a kind of file Docent reads ({_kind_name(found)}; it reads {_readable()})"
                sources.append(source)
        else:
            sources.append(Source.from_path(given))
    return sources


def _kind_name(path: Path) -> str:
    return f"a {path.suffix} file" if path.suffix else "a file without a suffix"


def _readable() -> str:
    return ", ".join(f"{t.name} ({' '.join(t.suffixes)})" for t in FILE_TYPES)
