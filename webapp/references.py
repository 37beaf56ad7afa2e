"""How an answer's citations are written outside Docent's own chat: as numbered references
under the answer, each naming its source and page and linking to what it cites.

The OpenAI-compatible API, the MCP tools, the Slack app and the app's "copy answer" all write
them from here, so a citation reads the same wherever the answer is read. A reference links to
the app's page view (`?collection=…&source=…&page=…`) when the app's public address is set
(DOCENT_APP_URL), else to the web page it cites; a file with no app address has no link.
"""

from __future__ import annotations

from urllib.parse import urlencode

from retrieval.models import Answer, Hit

SOURCES_HEADING = "**Sources**"
_SOURCES_BLOCK = "\n\n" + SOURCES_HEADING + "\n"


def place(hit: Hit) -> str:
    """Where a passage is, in words: "Title, page 3", or a slide's, sheet's or heading's name."""
    if hit.page is not None:
        return f"{hit.title}, page {hit.page}"
    return f"{hit.title}, {hit.section}" if hit.section and hit.section != hit.title else hit.title


def page_link(hit: Hit, collection: str, app_url: str | None) -> str | None:
    """The address that shows the cited page: the app's page view, else the web page itself."""
    if app_url:
        query = {"collection": collection, "source": hit.source}
        if hit.page is not None:
            query["page"] = str(hit.page)
        return f"{app_url.rstrip('/')}/?{urlencode(query)}"
    if hit.source.startswith(("http://", "https://")):
        return hit.source
    return None


def citation_record(hit: Hit, collection: str, app_url: str | None) -> dict:
    """A citation as data, for clients that show their own list of sources."""
    return {
        "ref": hit.ref,
        "source": hit.source,
        "title": hit.title,
        "page": hit.page,
        "section": hit.section,
        "url": page_link(hit, collection, app_url),
        "text": hit.text,
    }


def markdown_references(citations: list[Hit], collection: str, app_url: str | None) -> str:
    """The numbered list of sources in Markdown ("" when there is none)."""
    lines = []
    for hit in citations:
        label = _escaped(place(hit))
        link = page_link(hit, collection, app_url)
        named = f"[{label}](<{link}>)" if link else label
        source = f" ({_escaped(hit.source)})" if hit.source not in (hit.title, link) else ""
        lines.append(f"- [{hit.ref}] {named}{source}")  # a list: each on its own line when rendered
    return _SOURCES_BLOCK + "\n".join(lines) if lines else ""


def answer_with_references(answer: Answer, collection: str, app_url: str | None) -> str:
    """The answer's text and, under it, the sources its [n] markers point to."""
    return answer.text.strip() + markdown_references(answer.citations, collection, app_url)


def without_references(text: str) -> str:
    """An answer as the conversation holds it, without the sources written under it: a client
    sends earlier answers back, and the follow-up rewriter should read what was said."""
    cut = text.find(_SOURCES_BLOCK)
    return text[:cut] if cut >= 0 else text


def _escaped(text: str) -> str:
    """Brackets and backslashes of a title escaped, so a title cannot end or forge a link."""
    return text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]").replace("\n", " ")
