"""Files of text: Markdown and plain text (sections under their headings), CSV (rows named by
their header, cited by row numbers) and saved HTML pages (the web extractor's main text).

Text is decoded as UTF-8 (a byte-order mark dropped), else as Windows-1252, as most text
written on Windows is.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re

from ingest.errors import IngestError
from ingest.limits import check_characters
from ingest.models import Document, Page, title_from_name
from ingest.tables import sheet_pages
from ingest.web.html import load_html, markdown_sections

CSV_DELIMITERS = ",;\t"
_MARKDOWN_TITLE = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)


def decode_text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def looks_like_text(head: bytes) -> bool:
    """Text, not binary: no NUL bytes, and almost every character printable."""
    if not head or b"\x00" in head:
        return False
    text = decode_text(head)
    printable = sum(ch.isprintable() or ch in "\n\r\t" for ch in text)
    return printable >= 0.95 * len(text)


def looks_like_csv(head: bytes) -> bool:
    """Rows of delimited values: the first lines (three at least) hold the same number, one or
    more, of one delimiter, outside quotes."""
    if not looks_like_text(head):
        return False
    lines = [line for line in decode_text(head).splitlines() if line.strip()][:-1]  # the last may be cut
    if len(lines) < 3:
        return False
    for delimiter in CSV_DELIMITERS:
        counts = {len(row) for row in csv.reader(lines[:20], delimiter=delimiter)}
        if len(counts) == 1 and counts.pop() >= 2:
            return True
    return False


def looks_like_html(head: bytes) -> bool:
    start = head.lstrip().lower()
    return start.startswith((b"<!doctype html", b"<html")) or b"<html" in start[:512]


def _require_text(name: str, data: bytes) -> None:
    """A file named as text (".txt", ".csv") whose content is binary is refused, not stored as
    passages of garbage."""
    if data and not looks_like_text(data):
        raise IngestError(name, "holds binary data, not text (NUL bytes or unprintable characters)")


def _decoded(name: str, data: bytes) -> str:
    """The file's text, refused before it is parsed when it holds more characters than a file
    may (DOCENT_MAX_FILE_CHARACTERS): a 190 MB .md took 33 s to parse before it was refused."""
    _require_text(name, data)
    text = decode_text(data)
    check_characters(name, len(text))
    return text


def load_text_file(name: str, data: bytes) -> Document:
    """Markdown or plain text; Markdown's headings cut it into sections."""
    text = _decoded(name, data)
    sections = markdown_sections(text)
    if not sections:
        raise IngestError(name, "the file holds no text")
    title = _MARKDOWN_TITLE.search(text)
    return _document(name, data, "text", title.group(1) if title else None, sections)


def load_csv_file(name: str, data: bytes) -> Document:
    """Each row as a line whose values are named by the header row; cited as "rows 2-51"."""
    text = _decoded(name, data)
    try:
        dialect = csv.Sniffer().sniff(text[:20_000], delimiters=CSV_DELIMITERS)
    except csv.Error:
        dialect = csv.excel
    try:  # rows read as they are made into pages, not all held first
        pages = sheet_pages(title_from_name(name), enumerate(csv.reader(io.StringIO(text), dialect), start=1))
    except csv.Error as exc:  # a field past csv.field_size_limit() (128 KiB) among them
        raise IngestError(name, f"the CSV file cannot be read ({exc})") from None
    if not pages:
        raise IngestError(name, "the CSV file holds no values")
    return _document(name, data, "csv", None, [(p.section, p.text) for p in pages])


def load_html_file(name: str, data: bytes) -> Document:
    """A saved web page, read as a crawled one is (its main text, its sections)."""
    document = load_html(decode_text(data), name)
    document.kind = "html"
    document.content_hash = hashlib.sha256(data).hexdigest()
    document.size_bytes = len(data)
    return document


def _document(name: str, data: bytes, kind: str, title: str | None, sections) -> Document:
    return Document(
        source=name,
        title=(title or title_from_name(name)).strip(),
        kind=kind,
        content_hash=hashlib.sha256(data).hexdigest(),
        pages=[Page(number=n, text=text, section=section) for n, (section, text) in enumerate(sections, start=1)],
        size_bytes=len(data),
    )
