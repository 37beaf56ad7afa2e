"""PDFs page by page, with a clear error for each way a PDF can fail: pypdf opens the file (its
pages, title, encryption), pdfium reads each page's text (ingest/pdf_text.py) and draws the pages
OCR reads."""

from __future__ import annotations

import hashlib
import logging
import re
from collections import deque
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import BinaryIO, Iterator

from pypdf import PdfReader
from pypdf import PasswordType
from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

from ingest.errors import CorruptPDFError, EncryptedPDFError, NoTextLayerError, NotAPDFError
from ingest.filings import filing_context
from ingest.models import Document, Page, title_from_name
from ingest.ocr import MARK as OCR_MARK, OCR_DPI, ocr_available, ocr_problem, read_image
from ingest.pdf_text import PDFIUM_LOCK, page_text, plain_text
from ingest.tables import table_heading
from ingest.page_breaks import mend_page_break
from ingest.text import clean_page_text

# A page with fewer letters than this carries no real text (a scan's stray OCR marks, a
# page number, a last line): it is read by OCR if it draws anything else, else skipped, and
# reported either way.
MIN_LETTERS_PER_PAGE = 20
COVER_LETTERS = 300  # a first page with fewer is a bare title ("FORM 10-K"): the cover follows

_WORD_PREFIXES = re.compile(r"^(microsoft (word|powerpoint|excel) - )", re.IGNORECASE)

# pypdf logs every recoverable oddity of a damaged file as a warning; we report our own.
logging.getLogger("pypdf").setLevel(logging.ERROR)


def load_pdf(data: bytes | str | Path, source: str | None = None) -> Document:
    """Reads a PDF into a Document of pages with cleaned text.

    `data` is the file's bytes or its path; `source` is the name shown in citations
    (by default the path as given). Raises a subclass of IngestError naming the problem.
    """
    return PdfStream(data, source).document()


class PdfStream:
    """A PDF read one page at a time: its name, title, hash and page count at once, its pages
    as they are extracted. A file given by path is never read into memory whole (pypdf reads
    the objects it needs), so a PDF of thousands of pages costs the memory of a few."""

    def __init__(self, data: bytes | str | Path, source: str | None = None):
        if isinstance(data, (bytes, bytearray)):
            self.source = source or "document.pdf"
            head, self.size_bytes = bytes(data[:1024]), len(data)
            self.content_hash = hashlib.sha256(data).hexdigest()
            opened = BytesIO(data)
        else:
            path = Path(data)
            self.source = source or str(data)
            with path.open("rb") as file:
                head = file.read(1024)
                digest = hashlib.sha256(head)
                while block := file.read(1 << 20):
                    digest.update(block)
            self.content_hash, self.size_bytes = digest.hexdigest(), path.stat().st_size
            opened = path.open("rb")  # an open file, not a path: pypdf would read a path whole
        if b"%PDF-" not in head:
            raise NotAPDFError(
                self.source,
                f"not a PDF file (its content looks like {_sniff(head)}); the file may be damaged, or saved under the wrong name",
            )
        self._file = opened
        self._document = None  # pdfium's: its pages' text, drawings for OCR
        try:
            self._reader = _open(opened, self.source)
            try:
                self.page_count = len(self._reader.pages)
            except Exception as exc:  # pypdf raises many types for broken page trees
                raise CorruptPDFError(self.source, f"the PDF is damaged and its pages cannot be read ({exc})") from exc
            if not self.page_count:
                raise CorruptPDFError(self.source, "the PDF has no pages")
            self._document = _open_pdfium(data if isinstance(data, (bytes, bytearray)) else str(data), self.source)
            self.title = _title(self._reader, self.source)
            self._cover_texts: dict[int, str] = {}  # plain text of the cover's pages, read once
            self.about = self._about()
        except BaseException:
            self.close()
            raise
        self.warnings: list[str] = []  # complete once pages() is exhausted
        self.missing_pages: list[int] = []  # likewise

    def document(self) -> Document:
        """Every page at once, as a Document (for a PDF small enough to hold)."""
        pages = list(self.pages())
        return Document(
            source=self.source,
            title=self.title,
            kind="pdf",
            content_hash=self.content_hash,
            pages=pages,
            size_bytes=self.size_bytes,
            warnings=self.warnings,
            missing_pages=self.missing_pages,
            about=self.about,
        )

    def pages(self) -> Iterator[Page]:
        """The pages with text, cleaned, a sentence across a page break kept on the page where it
        starts. Raises NoTextLayerError at the end when no page had text."""
        try:
            yield from self._pages()
        finally:
            self.close()

    def close(self) -> None:
        self._file.close()
        if self._document is not None:
            with PDFIUM_LOCK:
                self._document.close()
            self._document = None

    def _pages(self) -> Iterator[Page]:
        textless: list[int] = []
        short: list[int] = []  # pages of a few words and nothing else
        read_by_ocr: list[int] = []
        pending: Page | None = None
        earlier: deque[Page] = deque(maxlen=2)  # the pages before `pending` show its running footer too
        for number in range(1, self.page_count + 1):
            try:
                text = clean_page_text(self._page_text(number))
            except Exception as exc:
                self.warnings.append(f"page {number}: text could not be extracted ({type(exc).__name__}: {exc})")
                text = ""
            section = table_heading(text)  # every passage of a statement says which statement
            if _letters(text) < MIN_LETTERS_PER_PAGE:
                if self._nothing_more_to_read(number, text):
                    short.append(number)
                    continue
                text, section = self._ocr(number), OCR_MARK
                if _letters(text) < MIN_LETTERS_PER_PAGE:
                    textless.append(number)
                    continue
                read_by_ocr.append(number)
            page = Page(number=number, text=text, section=section)
            if pending is not None:
                mended, page = mend_page_break(pending, page, earlier)
                if mended.text:
                    yield mended
                earlier.appendleft(pending)
            pending = page
        if pending is not None and pending.text:
            yield pending
        problem = ocr_problem() if textless else None  # importing the engine costs a second: only when asked
        if len(short) == self.page_count:
            raise NoTextLayerError(
                self.source, f"the PDF has too little text to index (fewer than {MIN_LETTERS_PER_PAGE} letters a page)"
            )
        if len(textless) + len(short) == self.page_count:  # nothing kept: the unread pages say why
            raise NoTextLayerError(
                self.source,
                "the PDF has no text layer, and OCR found no writing on its pages (blank, or drawn too faintly)"
                if problem is None
                else "the PDF has no text layer (it looks like a scan, an image-only export, or text drawn as "
                f"shapes), and {problem}",
            )
        if read_by_ocr:
            self.warnings.append(f"pages without a text layer were read by OCR: {page_ranges(read_by_ocr)}")
        if textless:
            why = "OCR found no writing on them" if problem is None else problem
            self.warnings.append(f"pages without text were skipped ({why}): {page_ranges(textless)}")
            if problem is not None:  # pages that hold text Docent could not read, not blank ones
                self.missing_pages.extend(textless)
        if short:
            self.warnings.append(f"pages with too little text to index were skipped: {page_ranges(short)}")

    def _about(self) -> str | None:
        """What the PDF is, from its cover: page 1, and page 2 when page 1 is a bare title. The
        plain text read here is kept for when the pages are read."""
        cover = ""
        for number in range(1, min(self.page_count, 2) + 1):
            try:
                with self._page(number) as page:
                    self._cover_texts[number] = plain_text(page)
            except Exception:  # a page that cannot be read is reported when the pages are read
                break
            cover += clean_page_text(self._cover_texts[number]) + "\n"
            if _letters(cover) >= COVER_LETTERS:
                break
        return filing_context(cover)

    @contextmanager
    def _page(self, number: int):
        """A page of the pdfium document, used holding PDFIUM_LOCK, closed after."""
        with PDFIUM_LOCK:
            page = self._document[number - 1]
            try:
                yield page
            finally:
                page.close()

    def _page_text(self, number: int) -> str:
        """A page's text (ingest/pdf_text.py); the cover's plain text is read once."""
        with self._page(number) as page:
            return page_text(page, self._cover_texts.pop(number, None))

    def _nothing_more_to_read(self, number: int, text: str) -> bool:
        """Whether a page of a few words holds nothing else that OCR could read (no image, vector
        drawing or shading): such a page (a last line, a caption) costs no 300-dpi drawing and
        OCR. A page whose text layer gave no words (a blank, a scan, marks from a font without a
        Unicode map) goes to OCR."""
        import pypdfium2.raw as pdfium_c

        if _letters(text) == 0:
            return False
        try:
            with self._page(number) as page:
                kinds = {o.type for o in page.get_objects(max_depth=15)}
        except Exception:  # noqa: BLE001 - a page pdfium cannot read goes to OCR, which reports it
            return False
        return kinds <= {pdfium_c.FPDF_PAGEOBJ_TEXT, pdfium_c.FPDF_PAGEOBJ_FORM}  # a form's contents are listed too

    def _ocr(self, number: int) -> str:
        """The page drawn at OCR_DPI and read by OCR ("" when OCR is not installed or fails)."""
        if not ocr_available():
            return ""
        try:
            with self._page(number) as page:
                image = page.render(scale=OCR_DPI / 72).to_pil()
            return clean_page_text(read_image(image))
        except Exception as exc:  # a page pdfium cannot draw is skipped like a blank one
            self.warnings.append(f"page {number}: OCR failed ({type(exc).__name__}: {exc})")
            return ""


def _open_pdfium(data: bytes | str, source: str):
    """The PDF opened by pdfium (which opens an empty-password encryption by itself)."""
    import pypdfium2

    try:
        with PDFIUM_LOCK:
            return pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError as exc:
        raise CorruptPDFError(source, f"the PDF is damaged and its pages cannot be read ({exc})") from exc


def _open(data: BinaryIO, source: str) -> PdfReader:
    try:
        reader = PdfReader(data, strict=False)
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
                source,
                "the PDF is protected by a password; remove the protection (or save an unprotected copy)"
                " and add it again",
            )
    return reader


def _title(reader: PdfReader, source: str) -> str:
    stem = Path(source.rsplit("/", 1)[-1]).stem
    try:
        meta = reader.metadata
        title = (meta.title or "").strip() if meta else ""
    except Exception:
        title = ""
    title = _WORD_PREFIXES.sub("", title).strip()
    # Metadata titles are often junk ("Untitled", "Document", the file name, an SEC filing's
    # accession number "0001410636-21-000101"); the file name says more then, and its words
    # (ADOBE_2015_10K: the company and the year) go into every passage's context.
    if (
        _letters(title) < 3
        or title.lower() in {"untitled", "title", "document", "untitled document", stem.lower()}
        or title.lower().endswith((".txt", ".doc", ".docx", ".pdf"))
    ):
        return title_from_name(source)
    return title


def _letters(text: str) -> int:
    return sum(ch.isalpha() for ch in text)


def page_ranges(numbers: list[int]) -> str:
    """Page numbers as ranges: [3, 4, 5, 9] -> "3-5, 9"."""
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
