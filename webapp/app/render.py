"""Small helpers that turn retrieval results into what the app draws."""

from __future__ import annotations

import re
from io import BytesIO
from pathlib import Path

from retrieval.models import Answer, Hit
from webapp.references import place

# Characters Streamlit's Markdown would read as formatting (or as its own [directives]).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+\-.!|~$:])")


# Streamlit turns `:material/warning:` and `:smile:` into icons, and bare addresses
# (https://host/…, www.host, name@host) into live links, after Markdown is parsed: escaping
# does not stop either (checked in Chromium). An invisible word joiner after each ':' and '@',
# and inside "www.", does.
_JOINER = "\u2060"
_WWW = re.compile(r"(?i)\b(www)\.")


def escape_markdown(text: str) -> str:
    """Text shown as written: everything Streamlit draws (labels, captions, notices, answers) is
    Markdown, so a document titled `![i](http://host/t.png)` would make every reader's browser
    fetch that image, and one holding `:material/warning:` or an address would show an icon or a
    live link. Every string that comes from a document or a user goes through this."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", unlinked(text))


def unlinked(text: str) -> str:
    """The text with its icon codes and addresses broken by joiners: what the page holds."""
    return _WWW.sub(rf"\1{_JOINER}.", text.replace(":", ":" + _JOINER).replace("@", "@" + _JOINER))


md = escape_markdown


def highlighted_passage(hit: Hit) -> str:
    """The passage as Markdown, with the sentences the answer cites on a highlighted background."""
    out, position = [], 0
    for start, end in hit.highlights:
        out.append(escape_markdown(hit.text[position:start]))
        out.append(f":orange-background[{escape_markdown(hit.text[start:end])}]")
        position = end
    out.append(escape_markdown(hit.text[position:]))
    return "".join(out)


def where(hit: Hit) -> str:
    """Where a passage is, as Markdown: the page of a PDF, or the section and address of a web page."""
    if hit.page is not None:  # a PDF page; its section, when it has one, says it was read by OCR
        return f"{md(hit.title)}, page {hit.page}" + (f" ({md(hit.section)})" if hit.section else "")
    section = f" › {hit.section}" if hit.section and hit.section != hit.title else ""
    return md(f"{hit.title}{section} ({hit.source})")


def answer_markdown(answer: Answer) -> str:
    """The answer as Markdown to paste elsewhere: its text, then each citation's source."""
    lines = [answer.text.strip(), ""]
    for hit in answer.citations:
        where = place(hit)
        lines.append(f"[{hit.ref}] {where} ({hit.source})" if hit.source != hit.title else f"[{hit.ref}] {where}")
    return "\n".join(lines).strip() + "\n"


def page_image(path: Path, page: int, *, scale: float = 1.5) -> bytes:
    """One page of a PDF rendered to PNG bytes (pdfium; opens empty-password encryption too)."""
    import pypdfium2

    from ingest.pdf_text import PDFIUM_LOCK  # pdfium may not be called from two threads at once

    with PDFIUM_LOCK:
        document = pypdfium2.PdfDocument(str(path))
        try:
            if not 1 <= page <= len(document):
                raise ValueError(f"{path.name} has {len(document)} pages, not {page}")
            image = document[page - 1].render(scale=scale).to_pil()
        finally:
            document.close()
    buffer = BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
