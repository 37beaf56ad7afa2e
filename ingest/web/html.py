"""The main text of an HTML page (trafilatura), cut into sections by the page's headings.

trafilatura finds the main text but drops headings it takes for page furniture (DocBook's
`<div class="titlepage"><h2>`, Sphinx's headings with permalinks), so the heading path of each
block of its text is read from the HTML itself: the page's words with its h1-h6 between them,
and each block placed by finding its first words there."""

from __future__ import annotations

import hashlib
import re
import threading

from ingest.errors import IngestError
from ingest.models import Document, Page
from ingest.tables import markdown_table
from ingest.text import clean_page_text

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_CANONICAL = re.compile(r"<link\b[^>]*\brel=[\"']?canonical[\"']?[^>]*>", re.IGNORECASE)
_HREF = re.compile(r"\bhref=[\"']?([^\"' >]+)", re.IGNORECASE)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
# trafilatura on several threads at once crashes the process now and then (SIGSEGV or SIGABRT
# inside lxml: adbar/trafilatura#840, #925; here once in a crawl test, during a garbage
# collection). A crawl reads pages on its threads (files are parsed in worker processes), so every
# use of lxml on them holds this lock and lets its trees go before releasing it: one page is
# taken apart at a time (the work holds the GIL anyway), while the fetching stays parallel.
LXML_LOCK = threading.RLock()


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

    with LXML_LOCK:
        markdown = trafilatura.extract(
            html, url=url, output_format="markdown", include_tables=True, include_comments=False, favor_recall=True
        )
        if not markdown or not markdown.strip():
            raise IngestError(url, "no main text was found on the page")
        metadata = trafilatura.extract_metadata(html)
        found = metadata.title if metadata and metadata.title else None
        del metadata  # it may hold the page's tree
        outline = _outline(html)
    written = _html_title(html)
    # trafilatura's title is the <title> without the site's name ("APT | Debian Handbook"), but
    # where it differs from <title> altogether it took a heading for one: the <title> is kept.
    title = (found if found and (not written or found.lower() in written.lower()) else written) or found or url
    sections = markdown_sections(markdown, outline)
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


def markdown_sections(markdown: str, outline: "_Outline | None" = None) -> list[tuple[str | None, str]]:
    """(heading path, text) for each run of paragraphs under the same headings: the page's own
    headings (outline) where a block is found in the page, else the markdown's."""
    headings: list[tuple[int, str]] = []  # the open markdown headings, outermost first
    sections: list[tuple[str | None, str]] = []
    paragraphs: list[str] = []
    path: str | None = None

    def flush():
        if paragraphs:
            sections.append((path, "\n\n".join(paragraphs)))
            paragraphs.clear()

    for block in re.split(r"\n\s*\n", markdown):
        block = block.strip()
        heading = _HEADING.match(block) if block and "\n" not in block else None
        if heading:
            level = len(heading.group(1))
            while headings and headings[-1][0] >= level:
                headings.pop()
            headings.append((level, heading.group(2)))
            if outline is None or not outline.found_any:
                flush()
                path = " › ".join(t for _, t in headings)
            continue
        if not block:
            continue
        found = outline.path_of(block) if outline is not None else None
        new_path = found if found is not None else (" › ".join(t for _, t in headings) or path)
        if new_path != path:
            flush()
            path = new_path
        # A paragraph's source lines were wrapped by the page's HTML: join them as a PDF's are
        # (list items and listing lines stay lines); a code block is kept as written, and a
        # table's rows become lines whose cells are named by their column headers.
        table = markdown_table(block) if "```" not in block else None
        if table is not None:
            paragraphs.append("\n".join(table))
        else:
            paragraphs.append(block if "```" in block else clean_page_text(block))
    flush()
    return sections


_HEADING_TAGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_WORD = re.compile(r"\w+")
_PROBE_WORDS = 8  # a block is placed by where its first words occur in the page


class _Outline:
    """The page's words in order, and where each heading starts among them."""

    def __init__(self, root):
        self.words: list[str] = []
        self.headings: list[tuple[int, int, str]] = []  # (word index, level, text)
        self._walk(root)
        self._at: dict[str, list[int]] = {}
        for i, word in enumerate(self.words):
            self._at.setdefault(word, []).append(i)
        self._cursor = 0
        self.found_any = False

    def _walk(self, element) -> None:
        tag = element.tag if isinstance(element.tag, str) else ""
        if tag in ("script", "style", "noscript", "template"):
            return
        if tag in _HEADING_TAGS:
            text = " ".join(element.text_content().split()).strip(" ¶#")
            if text:
                self.headings.append((len(self.words), _HEADING_TAGS[tag], text))
        self.words += _WORD.findall((element.text or "").lower())
        for child in element:
            self._walk(child)
            self.words += _WORD.findall((child.tail or "").lower())

    def path_of(self, block: str) -> str | None:
        """The heading path in force where block's first words occur (searching on from the
        last block placed, then from the top); None when they are not found."""
        probe = _WORD.findall(block.lower())[:_PROBE_WORDS]
        if not probe:
            return None
        starts = self._at.get(probe[0], [])
        matches = [i for i in starts if self.words[i : i + len(probe)] == probe]
        if not matches:
            return None
        index = next((i for i in matches if i >= self._cursor), matches[0])
        self._cursor = index
        self.found_any = True
        open_headings: list[tuple[int, str]] = []
        for at, level, text in self.headings:
            if at > index:
                break
            while open_headings and open_headings[-1][0] >= level:
                open_headings.pop()
            open_headings.append((level, text))
        return " › ".join(t for _, t in open_headings) or None


# An XHTML page (DocBook's output, Debian's handbook) starts with one; lxml refuses a decoded
# text that declares its encoding, and the page's links and headings were lost with it.
_XML_DECLARATION = re.compile(r"^\ufeff?\s*<\?xml[^>]*\?>")


def html_tree(html: str, *, whole: bool = False):
    """The page parsed by lxml's HTML parser (whole: as a document, <html> at its root); None
    when it cannot be. Use it, and let it go, holding LXML_LOCK."""
    import lxml.html

    text = _XML_DECLARATION.sub("", html, count=1)
    try:
        return lxml.html.document_fromstring(text) if whole else lxml.html.fromstring(text)
    except (ValueError, lxml.etree.ParserError):
        return None


def _outline(html: str) -> _Outline | None:
    root = html_tree(html)
    if root is None:
        return None
    body = root.find("body")
    return _Outline(body if body is not None else root)


def _html_title(html: str) -> str | None:
    match = _TITLE.search(html[:100_000])
    return re.sub(r"\s+", " ", match.group(1)).strip() if match else None
