"""How an answer's citations are written outside Docent's own chat: as numbered references
under the answer, each naming its source and page and linking to what it cites.

The OpenAI-compatible API, the MCP tools, the Slack app and the app's "copy answer" all write
them from here, so a citation reads the same wherever the answer is read. A reference links to
the app's page view (`?collection=…&source=…&page=…`) when the app's public address is set
(DOCENT_APP_URL), else to the web page it cites; a file with no app address has no link.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import urlencode

from retrieval.models import Answer, Hit

SOURCES_HEADING = "**Sources**"


def place(hit: Hit) -> str:
    """Where a passage is, in words: "Title, page 3", or a slide's, sheet's or heading's name."""
    if hit.page is not None:
        return f"{hit.title}, page {hit.page}"
    return f"{hit.title}, {hit.section}" if hit.section and hit.section != hit.title else hit.title


def page_link(source: str, page: int | None, collection: str, app_url: str | None) -> str | None:
    """The address that shows a cited page: the app's page view, else the web page itself."""
    if app_url:
        query = {"collection": collection, "source": source}
        if page is not None:
            query["page"] = str(page)
        return f"{app_url.rstrip('/')}/?{urlencode(query)}"
    if source.startswith(("http://", "https://")):
        return source
    return None


def citation_record(hit: Hit, collection: str, app_url: str | None) -> dict:
    """A citation as data, for clients that show their own list of sources."""
    return {
        "ref": hit.ref,
        "source": hit.source,
        "title": hit.title,
        "page": hit.page,
        "section": hit.section,
        "url": page_link(hit.source, hit.page, collection, app_url),
        "text": hit.text,
    }


class Reference(NamedTuple):
    """One line of a list of sources, before it is written in a client's markup."""

    ref: int | None
    label: str  # where: "Title, page 3"
    link: str | None
    source: str | None  # the file name or URL, when neither the label nor the link says it


def references(citations: list[Hit], collection: str, app_url: str | None) -> list[Reference]:
    found = []
    for hit in citations:
        link = page_link(hit.source, hit.page, collection, app_url)
        source = hit.source if hit.source not in (hit.title, link) else None
        found.append(Reference(hit.ref, place(hit), link, source))
    return found


def markdown_references(citations: list[Hit], collection: str, app_url: str | None) -> str:
    """The numbered list of sources in Markdown ("" when there is none)."""
    lines = []
    for ref, label, link, source in references(citations, collection, app_url):
        named = f"[{_escaped(label)}](<{link}>)" if link else _escaped(label)
        shown = f" ({_escaped(source)})" if source else ""
        lines.append(f"- [{ref}] {named}{shown}")  # a list: each on its own line when rendered
    return _sources_block(SOURCES_HEADING) + "\n".join(lines) if lines else ""


def answer_with_references(answer: Answer, collection: str, app_url: str | None) -> str:
    """The answer's text and, under it, the sources its [n] markers point to."""
    return answer.text.strip() + markdown_references(answer.citations, collection, app_url)


def without_references(text: str, heading: str = SOURCES_HEADING) -> str:
    """An answer as the conversation holds it, without the sources written under it (under
    `heading`): a client sends earlier answers back, and the follow-up rewriter should read what
    was said."""
    cut = text.find(_sources_block(heading))
    return text[:cut] if cut >= 0 else text


def _sources_block(heading: str) -> str:
    return f"\n\n{heading}\n"


def _escaped(text: str) -> str:
    """Brackets and backslashes of a title escaped, so a title cannot end or forge a link."""
    return text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]").replace("\n", " ")
