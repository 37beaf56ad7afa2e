"""The main text of an HTML page (trafilatura), cut into sections by its headings."""

from __future__ import annotations

import hashlib
import re

from ingest.errors import IngestError
from ingest.models import Document, Page

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_CANONICAL = re.compile(r"<link\b[^>]*\brel=[\"']?canonical[\"']?[^>]*>", re.IGNORECASE)
_HREF = re.compile(r"\bhref=[\"']?([^\"' >]+)", re.IGNORECASE)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def decode(body: bytes, charset: str | None = None) -> str:
    for encoding in (charset, "utf-8"):
        if encoding:
            try:
                return body.decode(encoding)
            except (LookupError, UnicodeDecodeError):
                pass
    return body.decode("cp1252", errors="replace")


def canonical_url(html: str) -> str | None:
    for tag in _CANONICAL.findall(html[:200_000]):
        href = _HREF.search(tag)
        if href:
            return href.group(1)
    return None


def load_html(html: str, url: str) -> Document:
    """A Document whose pages are the page's sections: each keeps its heading path
    ("Classes › Python Scopes and Namespaces") so a citation can name the section."""
    import trafilatura

    markdown = trafilatura.extract(
        html, url=url, output_format="markdown", include_tables=True, include_comments=False, favor_recall=True
    )
    if not markdown or not markdown.strip():
        raise IngestError(url, "no main text was found on the page")
    metadata = trafilatura.extract_metadata(html)
    title = (metadata.title if metadata and metadata.title else None) or _html_title(html) or url
    sections = _sections(markdown)
    if not sections:
        raise IngestError(url, "no main text was found on the page")
    text = "\n\n".join(t for _, t in sections)
    return Document(
        source=url,
        title=title.strip(),
        kind="web",
        # The hash of the extracted text, not of the HTML: a new timestamp or ad in the page
        # chrome is not a change worth re-embedding.
        content_hash=hashlib.sha256(text.encode()).hexdigest(),
        pages=[Page(number=i, text=t, section=s) for i, (s, t) in enumerate(sections, start=1)],
        size_bytes=len(html),
    )


def _sections(markdown: str) -> list[tuple[str | None, str]]:
    """(heading path, text) for each run of paragraphs between headings."""
    headings: list[tuple[int, str]] = []  # the open headings, outermost first
    sections: list[tuple[str | None, str]] = []
    paragraphs: list[str] = []

    def flush():
        if paragraphs:
            sections.append((" › ".join(t for _, t in headings) or None, "\n\n".join(paragraphs)))
            paragraphs.clear()

    for block in re.split(r"\n\s*\n", markdown):
        block = block.strip()
        heading = _HEADING.match(block) if block and "\n" not in block else None
        if heading:
            flush()
            level = len(heading.group(1))
            while headings and headings[-1][0] >= level:
                headings.pop()
            headings.append((level, heading.group(2)))
        elif block:
            paragraphs.append(block)
    flush()
    return sections


def _html_title(html: str) -> str | None:
    match = _TITLE.search(html[:100_000])
    return re.sub(r"\s+", " ", match.group(1)).strip() if match else None
