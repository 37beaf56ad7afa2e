"""Saved chats (list, create, read, rename, share, delete, ask in one) and feedback on answers."""

from __future__ import annotations

import json
from typing import Iterator

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse

from webapp.api.deps import User
from webapp.api.schemas import (
    NAME_PATTERN,
    USER_PATTERN,
    AnswerId,
    ChatAskIn,
    ChatChange,
    ChatId,
    ChatIn,
    ChatOut,
    ChatWithTurns,
    FeedbackIn,
    FeedbackOut,
    TurnOut,
)
from webapp.chats import eval_set_jsonl
from webapp.session import SavingStream

router = APIRouter(tags=["chats"])


@router.get("/chats", response_model=list[ChatOut])
def chats(
    user: User,
    collection: str | None = Query(None, pattern=NAME_PATTERN, description="only chats over this collection"),
    owner: str | None = Query(None, pattern=USER_PATTERN, description="another user's chats (admins)"),
    limit: int = Query(100, ge=1, le=1000),
) -> list[dict]:
    """The caller's chats, the most recently used first."""
    if collection is not None and owner is None:
        found = user.chats(collection, limit)  # a collection this user may read
    else:
        found = user.all_chats(owner, collection, limit)
    return [c.to_dict() for c in found]


@router.post("/chats", status_code=201, response_model=ChatOut)
def create_chat(body: ChatIn, user: User) -> dict:
    """A new, empty chat over a collection; it takes its title from the first question unless given one."""
    return user.create_chat(body.collection, body.title).to_dict()


@router.get("/chats/{chat_id}", response_model=ChatWithTurns)
def chat(chat_id: ChatId, user: User) -> dict:
    """The chat with every turn as it was answered (read-only when another user shared it)."""
    return user.chat(chat_id).to_dict()


@router.patch("/chats/{chat_id}", response_model=ChatOut)
def change_chat(chat_id: ChatId, body: ChatChange, user: User) -> dict:
    """Renames the chat, or shares it with everyone who may read its collection (or stops sharing)."""
    info = None
    if body.title is not None:
        info = user.rename_chat(chat_id, body.title)
    if body.shared is not None:
        info = user.share_chat(chat_id, body.shared)
    return (info or user.chat(chat_id).info).to_dict()


@router.delete("/chats/{chat_id}", status_code=204)
def delete_chat(chat_id: ChatId, user: User) -> Response:
    """Deletes the chat (its owner, or an admin); feedback on its answers is kept."""
    user.delete_chat(chat_id)
    return Response(status_code=204)


@router.post("/chats/{chat_id}/ask", response_model=TurnOut)
def ask_in_chat(chat_id: ChatId, body: ChatAskIn, user: User) -> dict:
    """Asks in the chat, its earlier turns as context, and saves the turn."""
    stream = user.ask_in_chat(chat_id, body.question, sources=body.sources)
    for _ in stream:
        pass
    return stream.turn.to_dict()


@router.post(
    "/chats/{chat_id}/ask/stream",
    responses={200: {"content": {"text/event-stream": {}}, "description": "`token` events, then one `turn` event"}},
)
def ask_in_chat_stream(chat_id: ChatId, body: ChatAskIn, user: User) -> StreamingResponse:
    """Server-sent events: `token` (data: {"text": ...}) as the answer is written, then `turn`
    (data: the saved turn, as /chats/{id}/ask returns it). A client that leaves early saves nothing."""
    stream = user.ask_in_chat(chat_id, body.question, sources=body.sources)
    return StreamingResponse(_events(stream), media_type="text/event-stream")


def _events(stream: SavingStream) -> Iterator[str]:
    for piece in stream:
        yield f"event: token\ndata: {json.dumps({'text': piece})}\n\n"
    yield f"event: turn\ndata: {json.dumps(stream.turn.to_dict())}\n\n"


@router.post("/answers/{answer_id}/feedback", response_model=FeedbackOut)
def give_feedback(answer_id: AnswerId, body: FeedbackIn, user: User) -> dict:
    """A thumbs up or down, with an optional comment, on an answer of a chat the caller may read;
    giving it again replaces the caller's earlier feedback on that answer."""
    return user.give_feedback(answer_id, body.rating, body.comment).to_dict()


@router.get("/feedback", response_model=list[FeedbackOut])
def feedback(
    user: User,
    collection: str | None = Query(None, pattern=NAME_PATTERN),
    limit: int = Query(100, ge=1, le=10_000),
) -> list[dict]:
    """Recent feedback, newest first, with the question, answer, citations and backend (admins)."""
    return [f.to_dict() for f in user.feedback(collection, limit)]


@router.get(
    "/feedback/export",
    responses={200: {"content": {"application/x-ndjson": {}}, "description": "one question per line"}},
)
def export_feedback(
    user: User,
    collection: str = Query(pattern=NAME_PATTERN),
    limit: int = Query(10_000, ge=1, le=100_000),
) -> Response:
    """A collection's thumbs-up answers as a question set for `docent eval` (admins): each line
    holds the question, the approved answer and the pages it cited."""
    return Response(
        eval_set_jsonl(user.approved_answers(collection, limit)),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="feedback-{collection}.jsonl"'},
    )
