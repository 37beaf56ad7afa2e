"""Searching a collection and asking it, whole or streamed as server-sent events."""

from __future__ import annotations

import json
from typing import Iterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from webapp.api.deps import User
from webapp.api.schemas import AnswerOut, AskIn, CollectionName, SearchIn, SearchOut

router = APIRouter(tags=["ask"])


@router.post("/collections/{collection}/search", response_model=SearchOut)
def search(collection: CollectionName, body: SearchIn, user: User) -> dict:
    hits = user.search(body.query, collection=collection, k=body.k, mode=body.mode, sources=body.sources)
    return {"hits": [h.to_dict() for h in hits]}


@router.post("/collections/{collection}/ask", response_model=AnswerOut)
def ask(collection: CollectionName, body: AskIn, user: User) -> dict:
    """Answers from the collection's documents only, citing the passage behind each statement."""
    history = [(t.question, t.answer) for t in body.history]
    return user.ask(body.question, collection=collection, history=history, sources=body.sources).to_dict()


@router.post(
    "/collections/{collection}/ask/stream",
    responses={200: {"content": {"text/event-stream": {}}, "description": "`token` events, then one `answer` event"}},
)
def ask_stream(collection: CollectionName, body: AskIn, user: User) -> StreamingResponse:
    """Server-sent events: `token` (data: {"text": ...}) as the answer is written, then `answer`
    (data: the same object /ask returns)."""
    history = [(t.question, t.answer) for t in body.history]
    stream = user.ask_stream(body.question, collection=collection, history=history, sources=body.sources)
    return StreamingResponse(_events(stream), media_type="text/event-stream")


def _events(stream) -> Iterator[str]:
    def event(name: str, data: dict) -> str:
        return f"event: {name}\ndata: {json.dumps(data)}\n\n"

    for piece in stream:
        yield event("token", {"text": piece})
    yield event("answer", stream.answer.to_dict())
