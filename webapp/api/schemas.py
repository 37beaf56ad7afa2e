"""The API's request and response bodies. Hits and documents are answered as retrieval.models'
own dataclasses; the rest is defined here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from retrieval.search import MODES
from retrieval.models import Hit
from retrieval.settings import COLLECTION_NAME_PATTERN, ROLES

NAME_PATTERN = COLLECTION_NAME_PATTERN
USER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$"
CollectionName = Annotated[str, PathParam(pattern=NAME_PATTERN)]
UserName = Annotated[str, PathParam(pattern=USER_PATTERN)]
JobId = Annotated[str, PathParam(max_length=64)]
ChatId = Annotated[str, PathParam(max_length=64)]
AnswerId = Annotated[str, PathParam(max_length=64)]
KeyId = Annotated[str, PathParam(max_length=64)]


class SearchIn(BaseModel):
    query: str = Field(min_length=1, max_length=4000, pattern=r"\S", description="not blank")
    k: int = Field(10, ge=1, le=100)
    mode: Literal[MODES] | None = None
    sources: list[str] | None = Field(None, max_length=1000, description="search only these documents")


class SearchOut(BaseModel):
    hits: list[Hit]


class TurnIn(BaseModel):
    question: str = Field(max_length=4000)
    answer: str = Field(max_length=100_000)


class AskIn(BaseModel):
    question: str = Field(min_length=1, max_length=4000, pattern=r"\S", description="not blank")
    history: list[TurnIn] = Field([], max_length=50, description="earlier turns, oldest first")
    sources: list[str] | None = Field(None, max_length=1000)


class AnswerOut(BaseModel):
    question: str
    rewritten: str | None
    answer: str
    answered: bool
    error: str | None
    citations: list[Hit]
    closest: list[Hit]


class ChatIn(BaseModel):
    collection: str = Field(pattern=NAME_PATTERN)
    title: str = Field("", max_length=200, description="empty: named after the first question")


class ChatChange(BaseModel):
    title: str | None = Field(None, min_length=1, max_length=200, pattern=r"\S")
    shared: bool | None = Field(None, description="shared: read-only for anyone with access to its collection")


class ChatOut(BaseModel):
    id: str
    owner: str
    collection: str
    title: str
    shared: bool
    created_at: str
    updated_at: str
    turns: int


@dataclass
class SavedHit(Hit):
    gone: bool = False  # the document is no longer in the collection


class SavedAnswer(AnswerOut):
    citations: list[SavedHit]
    closest: list[SavedHit]


class TurnOut(BaseModel):
    id: str = Field(description="the answer's id, for feedback")
    position: int
    question: str
    answer: SavedAnswer | None = Field(description="null when the reader lost access to the collection")
    backend: str
    asked_at: str


class ChatWithTurns(ChatOut):
    read_only: bool
    notice: str | None
    turn_list: list[TurnOut]


class ChatAskIn(BaseModel):
    question: str = Field(min_length=1, max_length=4000, pattern=r"\S", description="not blank")
    sources: list[str] | None = Field(None, max_length=1000)


class FeedbackIn(BaseModel):
    rating: Literal["up", "down"]
    comment: str = Field("", max_length=4000)


class CitedPage(BaseModel):
    ref: int | None
    source: str
    page: int | None


class FeedbackOut(BaseModel):
    answer_id: str
    user: str
    rating: Literal["up", "down"]
    comment: str
    collection: str
    question: str
    answer: str
    citations: list[CitedPage]
    backend: str
    given_at: str


class CollectionIn(BaseModel):
    name: str = Field(pattern=NAME_PATTERN)
    users: list[str] | None = Field(None, description="limit the collection to these users (and groups)")
    groups: list[str] = []


class AccessIn(BaseModel):
    users: list[str] | None = Field(None, description="null opens the collection to every signed-in user")
    groups: list[str] = []


class UrlsIn(BaseModel):
    urls: list[Annotated[str, Field(pattern=r"^https?://\S+$", max_length=2000)]] = Field(min_length=1, max_length=1000)


class CrawlIn(BaseModel):
    url: str = Field(pattern=r"^https?://\S+$", max_length=2000)
    max_pages: int | None = Field(None, ge=1, le=1_000_000)
    include: list[str] = Field([], max_length=100)
    exclude: list[str] = Field([], max_length=100)


class JobOut(BaseModel):
    id: str
    kind: str
    collection: str
    owner: str
    target: str
    state: Literal["running", "cancelling", "finished", "cancelled", "failed", "interrupted"]
    error: str | None
    started: float
    finished: float | None
    total: int | None = None
    done: int | None = None
    current: str | None = None
    chunks_done: int | None = None
    chunks_total: int | None = None
    unit: str | None = None
    outcomes: list[dict] | None = None
    discovered: int | None = None
    added: int | None = None
    replaced: int | None = None
    unchanged: int | None = None
    skipped: int | None = None
    removed: int | None = None
    left: int | None = None
    failed: list[dict] | None = None
    method: Literal["sitemap", "links", "page"] | None = Field(
        None, description="how a crawl found its pages: a sitemap, the site's links (no sitemap), or one page"
    )
    note: str | None = Field(None, description="the same, said for a person")


class UserIn(BaseModel):
    role: Literal[ROLES] = ROLES[0]
    groups: list[Annotated[str, Field(max_length=128)]] = Field([], max_length=100)
    password: str | None = Field(None, min_length=8, max_length=1024, description="unchanged when left out")


class UserOut(BaseModel):
    name: str
    role: str
    groups: list[str]
    in_settings: bool


class KeyIn(BaseModel):
    label: str = Field("", max_length=200)


class KeyOut(BaseModel):
    id: str
    user: str
    label: str
    created_at: str


class NewKey(BaseModel):
    id: str
    key: str = Field(description="shown once; only its hash is kept")


class Me(BaseModel):
    name: str
    role: str
    groups: list[str]
    via: str


class Health(BaseModel):
    status: str
    auth: str
    collections: int


class Ready(BaseModel):
    status: str
    problems: list[str]


class Problem(BaseModel):
    detail: str


ERRORS = {code: {"model": Problem} for code in (400, 401, 403, 404, 409, 413, 422, 507)}
