"""Small helpers that turn retrieval results into what the app draws."""

from __future__ import annotations

import re
from io import BytesIO
from pathlib import Path

from retrieval.models import Answer, Hit

# Characters Streamlit's Markdown would read as formatting (or as its own [directives]).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+\-.!|~$:])")


def escape_markdown(text: str) -> str:
    """Text shown as written: everything Streamlit draws (labels, captions, notices, answers) is
    Markdown, so a document titled `![i](http://host/t.png)` would make every reader's browser
    fetch that image. Every string that comes from a document or a user goes through this."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


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
        place = f"{hit.title}, page {hit.page}" if hit.page is not None else hit.title
        lines.append(f"[{hit.ref}] {place} ({hit.source})" if hit.source != hit.title else f"[{hit.ref}] {place}")
    return "\n".join(lines).strip() + "\n"


def page_image(path: Path, page: int, *, scale: float = 1.5) -> bytes:
    """One page of a PDF rendered to PNG bytes (pdfium; opens empty-password encryption too)."""
    import pypdfium2

    document = pypdfium2.PdfDocument(str(path))
    try:
        if not 1 <= page <= len(document):
            raise ValueError(f"{path.name} has {len(document)} pages, not {page}")
        image = document[page - 1].render(scale=scale).to_pil()
        buffer = BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()
    finally:
        document.close()
