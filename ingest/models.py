"""The data that flows through ingestion: a Document of Pages, cut into Chunks, and the outcome
of ingesting one source."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath


@dataclass(frozen=True)
class Page:
    number: int  # 1-based, as a reader counts pages
    text: str  # cleaned text in reading order
    section: str | None = None


@dataclass
class Document:
    source: str  # file name or URL, as given
    title: str
    kind: str  # "pdf", ...
    content_hash: str  # sha256 of the raw bytes
    pages: list[Page]
    size_bytes: int = 0
    warnings: list[str] = field(default_factory=list)  # problems that did not stop ingestion
    # Pages with no text that OCR could not read, because no OCR engine is installed: the
    # document is partial, and its outcome says so.
    missing_pages: list[int] = field(default_factory=list)
    # What the document is, where its own text says so (a filing's company, form and period):
    # every passage's context names it, as it names the title.
    about: str | None = None


@dataclass(frozen=True)
class Chunk:
    text: str  # the passage as written, shown to the user
    context: str  # title, what the document is, section: indexed with the passage, not shown as part of it
    page: int | None
    section: str | None
    ordinal: int  # position within the document
    char_start: int  # span of `text` within its page's text
    char_end: int

    @property
    def index_text(self) -> str:
        """What is embedded and keyword-indexed: the context header, then the passage."""
        return f"{self.context}\n{self.text}" if self.context else self.text


@dataclass
class IngestOutcome:
    """What happened to one source: added, replaced, unchanged, duplicate (the same content is
    held under another source, named in duplicate_of, and is kept once), skipped (a folder's file
    of a type Docent does not read; error says so), or failed (with the reason)."""

    source: str
    status: str
    chunks: int = 0
    pages: int = 0
    title: str | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    duplicate_of: str | None = None
    missing_pages: list[int] = field(default_factory=list)  # stored without these (no OCR to read them)

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    @property
    def partial(self) -> bool:
        return self.ok and bool(self.missing_pages)

    def to_dict(self) -> dict:
        return asdict(self)


def title_from_name(source: str) -> str:
    """A document's title when it has none of its own: its file name's words
    ("reports/ADOBE_2015_10K.pdf" -> "ADOBE 2015 10K")."""
    return PurePosixPath(source.rsplit("/", 1)[-1]).stem.replace("_", " ")
