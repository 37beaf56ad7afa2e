"""Docent as an MCP server (the official `mcp` SDK), so that any agent (Claude Code, Cursor,
Codex, a desktop assistant) can search and ask a team's documents.

Two ways in, one server: `docent mcp` over stdio, for an agent on the same machine (it acts as
the user of DOCENT_API_KEY when sign-in is on, else as the local admin), and `/mcp` on
`docent api` (streamable HTTP, stateless), where each request acts as the user of the API key it
carries, checked by the API's request guard before the MCP server reads it. Either way every
tool goes through that user's webapp.session.UserSession: a collection the user may not see is
"not found" and none of its passages is returned.

Tools: list_collections, list_documents, search, ask (optionally in a saved chat, so that a
follow-up is one) and read_page (a cited page's text). A failure the caller can fix (unknown
collection, no access, empty question, a page out of range) comes back as a tool error that
says what is wrong; any other stays in the server's log.
"""

from __future__ import annotations

import functools
import logging
from contextlib import asynccontextmanager
from typing import Any, Callable, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations

from retrieval.models import Answer, Hit
from retrieval.service import require_text
from retrieval.store import CollectionError
from webapp.access import AccessDenied, AuthenticationFailed
from webapp.references import answer_with_references, citation_record, page_link
from webapp.session import NotFound, UserSession

log = logging.getLogger(__name__)

INSTRUCTIONS = (
    "Docent answers from a team's own documents (PDFs, Office files, web pages) and cites the page"
    " behind each statement. Use `ask` for a cited answer, `search` for the passages themselves,"
    " `read_page` to read a cited page whole. Collections are named by `list_collections`."
)
PAGE_TEXT_LIMIT = 40_000  # characters of read_page's text: a whole book is not one tool result
READ_ONLY = ToolAnnotations(readOnlyHint=True, openWorldHint=False)
CALLER_ERRORS = (NotFound, AccessDenied, AuthenticationFailed, CollectionError, ValueError)

SessionFor = Callable[[Context], UserSession]


def build_server(session_for: SessionFor, app_url: str | None) -> MCPServer:
    """The MCP server; session_for(ctx) is the caller's UserSession for a tool call."""
    server = MCPServer("docent", instructions=INSTRUCTIONS, version="0.1.0")

    def tool(function):
        """A tool whose caller-caused failures are tool errors with their message."""

        @functools.wraps(function)
        def run(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except CALLER_ERRORS as exc:
                raise ToolError(str(exc)) from exc

        annotations = None if function.__name__ == "ask" else READ_ONLY  # ask may save to a chat
        return server.tool(annotations=annotations)(run)

    @tool
    def list_collections(ctx: Context) -> dict[str, Any]:
        """The collections you may read, with how many documents each holds."""
        user = session_for(ctx)
        return {"collections": [{"name": name, "documents": len(user.documents(name))} for name in user.collections()]}

    @tool
    def list_documents(collection: str, ctx: Context) -> dict[str, Any]:
        """The documents of a collection: source (file name or URL), title, kind, pages, passages."""
        documents = session_for(ctx).documents(collection)
        fields = ("source", "title", "kind", "pages", "chunks", "added_at")
        return {"documents": [{f: getattr(d, f) for f in fields} for d in documents]}

    @tool
    def search(
        collection: str,
        query: str,
        ctx: Context,
        k: int = 10,
        mode: Literal["hybrid", "vector", "keyword"] | None = None,
        sources: list[str] | None = None,
    ) -> dict[str, Any]:
        """Passages of a collection that match a query, best first, each with its source, title,
        page, section and score. mode: hybrid (default), vector or keyword; sources: search only
        these documents (as list_documents names them)."""
        if not 1 <= k <= 100:
            raise ValueError(f"k must be between 1 and 100, not {k}")
        hits = session_for(ctx).search(query, collection=collection, k=k, mode=mode, sources=sources)
        return {"passages": [_passage(hit, collection, app_url) for hit in hits]}

    @tool
    def ask(collection: str, question: str, ctx: Context, chat_id: str | None = None) -> dict[str, Any]:
        """A cited answer from the collection's documents only: its [n] markers point to the
        citations. With chat_id (from an earlier ask with chat_id "new"), the question is asked
        in that saved chat, so a follow-up ("and in 2022?") is understood from the turns before;
        the chat also appears in the user's Docent app. If the documents do not answer,
        `answered` is false and `closest` holds the nearest passages."""
        require_text(question, "question")  # before a chat is made for it
        user = session_for(ctx)
        if chat_id is None:
            answer = user.ask(question, collection=collection)
            return _answer(answer, collection, app_url)
        if chat_id == "new":
            chat_id = user.create_chat(collection).id
        elif user.chat(chat_id).info.collection != collection:
            raise ValueError(f"chat {chat_id} is a chat of another collection than '{collection}'")
        stream = user.ask_in_chat(chat_id, question)
        for _ in stream:
            pass
        return {**_answer(stream.turn.answer, collection, app_url), "chat_id": chat_id}

    @tool
    def read_page(collection: str, source: str, ctx: Context, page: int | None = None) -> dict[str, Any]:
        """The text Docent holds of a document: one page of a PDF (page, as a citation gives it),
        or the whole of any other document (a web page, an e-mail, a sheet)."""
        info, text = session_for(ctx).read_page(source, page, collection)
        shown = {"source": info.source, "title": info.title, "kind": info.kind, "pages": info.pages}
        if info.kind == "pdf" and page is not None:
            shown["page"] = page
        cut = len(text) > PAGE_TEXT_LIMIT
        shown["text"] = text[:PAGE_TEXT_LIMIT] + ("\n[… cut: ask for one page]" if cut else "")
        shown["truncated"] = cut
        link = page_link(info.source, shown.get("page"), collection, app_url)
        if link:
            shown["url"] = link
        return shown

    return server


class HttpEndpoint:
    """The server's streamable HTTP transport as an ASGI endpoint, routed at /mcp of the API.
    `running()` is the API's lifespan: each run of the app gets a fresh session manager (the
    SDK's runs once), and a request outside a run is told the server is not running.

    Stateless: each request stands alone, so any replica behind a load balancer can take it.
    DNS-rebinding protection is off: with sign-in on, the key is what protects; with it off,
    the whole API is open to whoever reaches it (`docent api` warns of that off localhost)."""

    def __init__(self, server: MCPServer):
        self.server, self.manager = server, None

    @asynccontextmanager
    async def running(self):
        from mcp.server.transport_security import TransportSecuritySettings

        self.server.streamable_http_app(
            stateless_http=True,
            json_response=True,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        manager = self.server.session_manager
        async with manager.run():
            self.manager = manager
            try:
                yield
            finally:
                self.manager = None

    async def __call__(self, scope, receive, send) -> None:
        if self.manager is None:
            from starlette.responses import PlainTextResponse

            return await PlainTextResponse("the MCP server is not running", status_code=503)(scope, receive, send)
        await self.manager.handle_request(scope, receive, send)


def _passage(hit: Hit, collection: str, app_url: str | None) -> dict[str, Any]:
    record = citation_record(hit, collection, app_url)
    del record["ref"]
    return {**record, "score": hit.score}


def _answer(answer: Answer, collection: str, app_url: str | None) -> dict[str, Any]:
    return {
        "answer": answer_with_references(answer, collection, app_url),
        "answered": answer.answered,
        "searched_for": answer.rewritten or answer.question,
        "citations": [citation_record(hit, collection, app_url) for hit in answer.citations],
        "closest": [] if answer.answered else [_passage(hit, collection, app_url) for hit in answer.closest],
        "error": answer.error,
    }


def serve_stdio(settings, api_key: str | None) -> int:
    """`docent mcp`: the server on this process's stdin and stdout, as one user for its life."""
    import sys

    from retrieval.service import Docent
    from webapp.access import AccessControl
    from webapp.api.guard import principal_for
    from webapp.chats import open_chats
    from webapp.jobs import JobManager

    access = AccessControl(settings)
    try:
        principal = principal_for(access, {"authorization": f"Bearer {api_key}"} if api_key else {})
    except AuthenticationFailed as exc:
        print(
            f"docent mcp: {exc} (sign-in is on: set DOCENT_API_KEY to a key from `docent keys create`)", file=sys.stderr
        )
        return 2
    docent = Docent(settings)
    jobs, chats = JobManager(settings.home), open_chats(settings)
    session = UserSession(docent, access, jobs, principal, chats)
    log.info("docent mcp: serving %s over stdio as %s", settings.home, principal.name)
    try:
        build_server(lambda ctx: session, settings.app_url).run("stdio")
    finally:
        docent.close()
    return 0
