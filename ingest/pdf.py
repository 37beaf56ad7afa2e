"""PDFs through pypdf, page by page, with a clear error for each way a PDF can fail."""

from __future__ import annotations

import hashlib
import logging
import re
from io import BytesIO
from pathlib import Path

from pypdf import PdfReader
from pypdf import PasswordType
from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

from ingest.errors import CorruptPDFError, EncryptedPDFError, NoTextLayerError, NotAPDFError
from ingest.models import Document, Page
from ingest.text import clean_page_text, ends_sentence

# A page with fewer letters than this carries no real text (a scan's stray OCR marks, a
# page number): it is skipped and reported.
MIN_LETTERS_PER_PAGE = 20

_WORD_PREFIXES = re.compile(r"^(microsoft (word|powerpoint|excel) - )", re.IGNORECASE)

# pypdf logs every recoverable oddity of a damaged file as a warning; we report our own.
logging.getLogger("pypdf").setLevel(logging.ERROR)


def load_pdf(data: bytes | str | Path, source: str | None = None) -> Document:
    """Reads a PDF into a Document of pages with cleaned text.

    `data` is the file's bytes or its path; `source` is the name shown in citations
    (by default the path as given). Raises a subclass of IngestError naming the problem.
    """
    if not isinstance(data, (bytes, bytearray)):
        source = source or str(data)
        data = Path(data).read_bytes()
    source = source or "document.pdf"
    if b"%PDF-" not in data[:1024]:
        kind = _sniff(data)
        raise NotAPDFError(source, f"not a PDF file (its content looks like {kind}); only PDFs can be added here")

    reader = _open(data, source)
    try:
        raw_pages = list(reader.pages)
    except Exception as exc:  # pypdf raises many types for broken page trees
        raise CorruptPDFError(source, f"the PDF is damaged and its pages cannot be read ({exc})") from exc
    if not raw_pages:
        raise CorruptPDFError(source, "the PDF has no pages")

    warnings: list[str] = []
    texts: list[str] = []
    for number, page in enumerate(raw_pages, start=1):
        try:
            texts.append(clean_page_text(page.extract_text() or ""))
        except Exception as exc:
            warnings.append(f"page {number}: text could not be extracted ({type(exc).__name__}: {exc})")
            texts.append("")

    textless = [n for n, t in enumerate(texts, start=1) if _letters(t) < MIN_LETTERS_PER_PAGE]
    if len(textless) == len(texts):
        raise NoTextLayerError(
            source,
            "the PDF has no text layer (it looks like a scan, an image-only export, or text drawn "
            "as shapes); run OCR on it first, for example with ocrmypdf, then add it again",
        )
    if textless:
        warnings.append(f"pages without a text layer were skipped: {_ranges(textless)}")

    pages = [Page(number=n, text=t) for n, t in enumerate(texts, start=1) if n not in set(textless)]
    return Document(
        source=source,
        title=_title(reader, source),
        kind="pdf",
        content_hash=hashlib.sha256(data).hexdigest(),
        pages=_mend_page_breaks(pages),
        size_bytes=len(data),
        warnings=warnings,
    )


def _open(data: bytes, source: str) -> PdfReader:
    try:
        reader = PdfReader(BytesIO(data), strict=False)
    except DependencyError as exc:
        raise EncryptedPDFError(source, f"the PDF is encrypted with a cipher this install cannot read ({exc})") from exc
    except Exception as exc:
        raise CorruptPDFError(source, f"the PDF is damaged and cannot be read ({exc})") from exc
    if reader.is_encrypted:
        # Many published PDFs are encrypted with an empty user password: they open for anyone.
        try:
            opened = reader.decrypt("")
        except (DependencyError, FileNotDecryptedError, NotImplementedError) as exc:
            raise EncryptedPDFError(source, f"the PDF is encrypted and cannot be opened ({exc})") from exc
        except PdfReadError as exc:
            raise CorruptPDFError(source, f"the PDF's encryption data is damaged ({exc})") from exc
        if opened == PasswordType.NOT_DECRYPTED:
            raise EncryptedPDFError(
                source, "the PDF is protected by a password; remove the protection (or save an unprotected copy) and add it again"
            )
    return reader


def _mend_page_breaks(pages: list[Page]) -> list[Page]:
    """Keeps a sentence that runs across a page break whole, on the page where it starts."""
    mended = list(pages)
    for i in range(len(mended) - 1):
        current, following = mended[i], mended[i + 1]
        if following.number != current.number + 1 or ends_sentence(current.text):
            continue
        match = re.search(r"[.!?][\"')\]]*(\s|$)", following.text)
        if not match or match.end() > 400:  # no nearby end: the next page starts something else
            continue
        fragment = following.text[: match.end()].strip()
        mended[i] = Page(current.number, f"{current.text} {fragment}", current.section)
        mended[i + 1] = Page(following.number, following.text[match.end() :].lstrip(), following.section)
    return [p for p in mended if p.text]


def _title(reader: PdfReader, source: str) -> str:
    stem = Path(source.rsplit("/", 1)[-1]).stem
    try:
        meta = reader.metadata
        title = (meta.title or "").strip() if meta else ""
    except Exception:
        title = ""
    title = _WORD_PREFIXES.sub("", title).strip()
    # Metadata titles are often junk ("Untitled", the file name); the file name is better then.
    if len(title) < 4 or title.lower() in {"untitled", "title", stem.lower()} or title.lower().endswith((".txt", ".doc", ".docx", ".pdf")):
        return stem
    return title


def _letters(text: str) -> int:
    return sum(ch.isalpha() for ch in text)


def _ranges(numbers: list[int]) -> str:
    parts, start = [], numbers[0]
    for prev, cur in zip(numbers, numbers[1:] + [None]):
        if cur != prev + 1 if cur is not None else True:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = cur
    return ", ".join(parts)


def _sniff(data: bytes) -> str:
    head = data[:512].lstrip().lower()
    if not head:
        return "an empty file"
    if head.startswith((b"<!doctype html", b"<html")):
        return "an HTML page"
    if head.startswith(b"pk\x03\x04"):
        return "a ZIP archive or an Office document"
    if head.startswith((b"\x89png", b"\xff\xd8\xff", b"gif8")):
        return "an image"
    try:
        head.decode("utf-8")
        return "plain text"
    except UnicodeDecodeError:
        return "binary data of an unknown kind"
