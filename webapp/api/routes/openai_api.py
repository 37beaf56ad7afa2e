"""Docent as an OpenAI-compatible model: any chat client that speaks the OpenAI chat API (Open
WebUI, LibreChat, the `openai` library) asks a collection as if it were a model.

`GET /v1/models` lists one model per collection the key may read, named `docent:<collection>`;
`POST /v1/chat/completions` answers the last user message from that collection, with the earlier
turns as the conversation (a follow-up is rewritten as in the app), whole or streamed in
OpenAI's chunk format. The answer's [n] markers point to a numbered list of sources written
under it, and the same citations come as data in a `citations` field of the choice (of the last
chunk, streamed), beside a `docent` field: whether the documents answered, and the question as
searched for when it was rewritten from the conversation.

System messages are read by no one: Docent answers from the documents with its own prompt.
`usage` is zero: the extractive answer uses no language model, and the answer backends do not
report what their model counted (docs/integrations.md says so).

Errors use OpenAI's shape ({"error": {"message", "type", "code"}}) so that clients show them.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Iterator, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from retrieval.models import Answer
from webapp.api.deps import CurrentSettings, User
from webapp.api.errors import STATUSES, status_of
from webapp.references import answer_with_references, citation_record, markdown_references, without_references
from webapp.session import HISTORY_TURNS

router = APIRouter(prefix="/v1", tags=["openai"])

MODEL_PREFIX = "docent:"
CREATED = 0  # collections have no creation time clients could use; OpenAI's field is required


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")  # name, tool_calls ... are accepted and not read
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(part.text for part in self.content if part.type == "text" and part.text)
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatCompletionIn(BaseModel):
    model_config = ConfigDict(extra="allow")  # temperature, max_tokens ...: Docent's answer settings rule
    model: str = Field(min_length=1, max_length=200)
    messages: list[Message] = Field(min_length=1, max_length=200)
    stream: bool = False
    stream_options: StreamOptions | None = None


class OpenAIError(Exception):
    def __init__(self, status: int, message: str, kind: str, code: str | None = None):
        super().__init__(message)
        self.status, self.kind, self.code = status, kind, code

    def response(self) -> JSONResponse:
        body = {"error": {"message": str(self), "type": self.kind, "param": None, "code": self.code}}
        return JSONResponse(body, status_code=self.status)


def _model(collection: str) -> dict:
    return {"id": MODEL_PREFIX + collection, "object": "model", "created": CREATED, "owned_by": "docent"}


@router.get("/models")
def models(user: User) -> dict:
    """One model per collection this key may read."""
    return {"object": "list", "data": [_model(name) for name in user.collections()]}


@router.get("/models/{model}")
def model(model: str, user: User) -> JSONResponse:
    try:
        return JSONResponse(_model(_collection(model, user)))
    except OpenAIError as exc:
        return exc.response()


@router.post(
    "/chat/completions",
    responses={200: {"content": {"text/event-stream": {}}, "description": "a chat completion, or its chunks"}},
)
def chat_completions(body: ChatCompletionIn, user: User, settings: CurrentSettings):
    """Answers the conversation's last user message from the collection the model names."""
    try:
        collection = _collection(body.model, user)
        question, history = _conversation(body.messages)
        stream = user.ask_stream(question, collection=collection, history=history)
    except OpenAIError as exc:
        return exc.response()
    except tuple(STATUSES) as exc:  # a failure the client caused, with the API's status for it
        return OpenAIError(status_of(exc), str(exc), "invalid_request_error").response()
    completion_id = "chatcmpl-" + uuid.uuid4().hex
    created = int(time.time())
    if body.stream:
        usage = bool(body.stream_options and body.stream_options.include_usage)
        chunks = _chunks(stream, completion_id, created, body.model, collection, settings.app_url, usage)
        return StreamingResponse(chunks, media_type="text/event-stream")
    for _ in stream:
        pass
    answer = stream.answer
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": body.model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": answer_with_references(answer, collection, settings.app_url),
                },
                "finish_reason": "stop",
                "citations": _citations(answer, collection, settings.app_url),
                "docent": _details(answer),
            }
        ],
        "usage": _ZERO_USAGE,
    }


_ZERO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def _collection(model: str, user) -> str:
    """The collection a model names, once this key may read it: 404 otherwise, as OpenAI answers
    a model that does not exist (a collection the key may not see is not said to exist)."""
    readable = user.collections()
    name = model[len(MODEL_PREFIX) :] if model.startswith(MODEL_PREFIX) else None
    if name not in readable:
        offered = ", ".join(MODEL_PREFIX + n for n in readable) or "none"
        raise OpenAIError(
            404,
            f"The model '{model}' does not exist or this key may not use it (its models: {offered})",
            "invalid_request_error",
            "model_not_found",
        )
    return name


def _conversation(messages: list[Message]) -> tuple[str, list[tuple[str, str]]]:
    """The question (the last message, a user's) and the earlier turns as (question, answer)
    pairs, oldest first; the sources written under an earlier answer are left out."""
    last = messages[-1]
    question = last.text().strip()
    if last.role != "user" or not question:
        raise OpenAIError(400, "the last message must be the user's question, and not empty", "invalid_request_error")
    history: list[tuple[str, str]] = []
    asked: str | None = None
    for message in messages[:-1]:
        if message.role == "user":
            if asked is not None:
                history.append((asked, ""))
            asked = message.text().strip()
        elif message.role == "assistant" and asked is not None:
            history.append((asked, without_references(message.text()).strip()))
            asked = None
    if asked is not None:
        history.append((asked, ""))
    return question, history[-HISTORY_TURNS:]


def _citations(answer: Answer, collection: str, app_url: str | None) -> list[dict]:
    return [citation_record(hit, collection, app_url) for hit in answer.citations]


def _details(answer: Answer) -> dict:
    """What Docent adds beside OpenAI's fields: whether the documents answered, and what was
    searched for when the question was rewritten from the conversation."""
    return {"answered": answer.answered, "rewritten": answer.rewritten, "error": answer.error}


def _chunks(stream, completion_id, created, model, collection, app_url, usage) -> Iterator[str]:
    def chunk(delta: dict, finish: str | None = None, **extra) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, **extra}
        body = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [choice],
        }
        return f"data: {json.dumps(body)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    for piece in stream:
        yield chunk({"content": piece})
    answer = stream.answer
    references = markdown_references(answer.citations, collection, app_url)
    if references:
        yield chunk({"content": references})
    yield chunk({}, "stop", citations=_citations(answer, collection, app_url), docent=_details(answer))
    if usage:
        body = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}
        yield f"data: {json.dumps({**body, 'choices': [], 'usage': _ZERO_USAGE})}\n\n"
    yield "data: [DONE]\n\n"
