"""Docent as an MCP server, driven by the `mcp` SDK's own client: over streamable HTTP at /mcp
of a real `docent api` (each request as its API key's user) and over stdio from a real `docent
mcp` process. Cited search and answers, a page read whole, a follow-up in a saved chat, and a
collection the user may not read refused with an error and none of its passages."""

from __future__ import annotations

import asyncio
import json

import httpx
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from support.cli import DOCENT, environment_with, run

QUESTION = "How much does a mooring permit cost?"
SECRET = "4.2 million"
TOOLS = {"list_collections", "list_documents", "search", "ask", "read_page"}


def over_http(team_api: str, key: str) -> Client:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {key}"})
    return Client(streamable_http_client(f"{team_api}/mcp", http_client=http), read_timeout_seconds=120)


def over_stdio(team, key: str) -> Client:
    env = environment_with(**team.environment(DOCENT_API_KEY=key))
    return Client(StdioServerParameters(command=DOCENT, args=["--home", str(team.home), "mcp"], env=env))


async def calls(client: Client, *requests: tuple[str, dict]) -> tuple[set[str], list]:
    """The tools listed, and each request's result, in one session."""
    async with client as session:
        tools = {tool.name for tool in (await session.list_tools()).tools}
        return tools, [await session.call_tool(name, arguments) for name, arguments in requests]


def everything_said(result) -> str:
    return json.dumps(result.structured_content) + " ".join(getattr(c, "text", "") for c in result.content)


def test_over_http_a_reader_searches_asks_and_reads_the_cited_page(team, team_api):
    tools, (collections, documents, search, ask, page) = asyncio.run(
        calls(
            over_http(team_api, team.keys["rita@example.com"]),
            ("list_collections", {}),
            ("list_documents", {"collection": "default"}),
            ("search", {"collection": "default", "query": "mooring permit", "k": 3}),
            ("ask", {"collection": "default", "question": QUESTION}),
            ("read_page", {"collection": "default", "source": "handbook.pdf", "page": 3}),
        )
    )
    assert tools == TOOLS
    assert collections.structured_content == {"collections": [{"name": "default", "documents": 1}]}
    assert [d["source"] for d in documents.structured_content["documents"]] == ["handbook.pdf"]
    best = search.structured_content["passages"][0]
    assert (best["source"], best["page"]) == ("handbook.pdf", 3) and "120 euros" in best["text"]
    assert best["url"] == "https://docent.example.com/?collection=default&source=handbook.pdf&page=3"
    answer = ask.structured_content
    assert answer["answered"] and "120 euros" in answer["answer"] and "[1]" in answer["answer"]
    assert [(c["ref"], c["source"], c["page"]) for c in answer["citations"]] == [(1, "handbook.pdf", 3)]
    assert "**Sources**" in answer["answer"]
    read = page.structured_content
    assert read["page"] == 3 and read["pages"] == 4 and not read["truncated"]
    assert read["text"].startswith("Chapter 2. Mooring fees") and "8 euros per meter per day" in read["text"]


def test_over_http_a_collection_the_reader_may_not_see_gives_errors_and_nothing_of_it(team, team_api):
    _, results = asyncio.run(
        calls(
            over_http(team_api, team.keys["rita@example.com"]),
            ("search", {"collection": "payroll", "query": "payroll budget"}),
            ("ask", {"collection": "payroll", "question": "What is the payroll budget?"}),
            ("read_page", {"collection": "payroll", "source": "payroll.pdf", "page": 1}),
            ("list_documents", {"collection": "payroll"}),
            ("ask", {"collection": "default", "question": "   "}),
            ("read_page", {"collection": "default", "source": "handbook.pdf", "page": 9}),
        )
    )
    for result in results[:4]:
        assert result.is_error and "no collection 'payroll'" in everything_said(result)
        assert SECRET not in everything_said(result)
    assert results[4].is_error and "the question is empty" in everything_said(results[4])
    assert results[5].is_error and "not page 9" in everything_said(results[5])
    # Without a key the request is refused before the MCP server reads it.
    reply = httpx.post(f"{team_api}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert reply.status_code == 401


def test_over_http_a_question_asked_in_a_saved_chat_is_a_follow_up(team, team_api):
    async def conversation():
        async with over_http(team_api, team.keys["rita@example.com"]) as session:
            first = await session.call_tool("ask", {"collection": "default", "question": QUESTION, "chat_id": "new"})
            chat_id = first.structured_content["chat_id"]
            second = await session.call_tool(
                "ask", {"collection": "default", "question": "And for commercial vessels?", "chat_id": chat_id}
            )
            return chat_id, second.structured_content

    chat_id, answer = asyncio.run(conversation())
    assert answer["chat_id"] == chat_id
    assert "mooring" in answer["searched_for"].lower() and "8 euros per meter per day" in answer["answer"]
    # The chat is the user's own, as the app shows it.
    chat = httpx.get(
        f"{team_api}/chats/{chat_id}", headers={"Authorization": f"Bearer {team.keys['rita@example.com']}"}
    ).json()
    assert chat["owner"] == "rita@example.com" and chat["turns"] == 2


def test_docent_mcp_over_stdio_acts_as_its_keys_user(team):
    question = ("ask", {"collection": "payroll", "question": "What is the payroll budget?"})
    tools, (admin_answer,) = asyncio.run(calls(over_stdio(team, team.keys["ada@example.com"]), question))
    assert tools == TOOLS
    assert not admin_answer.is_error and SECRET in admin_answer.structured_content["answer"]
    assert admin_answer.structured_content["citations"][0]["source"] == "payroll.pdf"
    _, (reader_answer,) = asyncio.run(calls(over_stdio(team, team.keys["rita@example.com"]), question))
    assert reader_answer.is_error and SECRET not in everything_said(reader_answer)
    refused = run(team.home, "mcp", check=False, env=team.environment(DOCENT_API_KEY="docent_not_a_key"))
    assert refused.returncode == 2 and "unknown or revoked API key" in refused.stderr
