"""Docent's HTTP API (FastAPI), served by `docent api`; its OpenAPI document is at /openapi.json.

Every route acts through a retrieval.session.UserSession, as the app does, so both allow the
same things to the same people. With sign-in on (`auth` other than "none"), a request carries
an API key as `Authorization: Bearer KEY` or `X-API-Key: KEY`; the key acts as its user.

Routes are plain functions, which FastAPI runs on its thread pool: searches run in parallel
(the native engine releases the GIL), beside any ingest, which runs as a background job.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import tempfile
from pathlib import Path
from typing import Annotated, Iterator, Literal

from fastapi import Depends, FastAPI, File, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from ingest.crawl import CrawlOptions
from retrieval.access import AccessControl, AccessDenied, AuthenticationFailed, LOCAL
from retrieval.jobs import JobConflict, JobManager
from retrieval.models import DocumentInfo, Hit
from retrieval.service import Docent, Source
from retrieval.session import NotFound, UserSession
from retrieval.settings import Settings
from retrieval.store import CollectionError, StorageFullError

log = logging.getLogger(__name__)

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
USER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$"
CollectionName = Annotated[str, PathParam(pattern=NAME_PATTERN)]
UPLOAD_CHUNK = 1 << 20


# ---- request and response bodies --------------------------------------------------------------
# Hits and documents are answered as retrieval.models' own dataclasses; the rest is defined here.


class SearchIn(BaseModel):
    query: str = Field(min_length=1, max_length=4000)
    k: int = Field(10, ge=1, le=100)
    mode: Literal["hybrid", "vector", "keyword"] | None = None
    sources: list[str] | None = Field(None, max_length=1000, description="search only these documents")


class SearchOut(BaseModel):
    hits: list[Hit]


class TurnIn(BaseModel):
    question: str = Field(max_length=4000)
    answer: str = Field(max_length=100_000)


class AskIn(BaseModel):
    question: str = Field(min_length=1, max_length=4000)
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


class UserIn(BaseModel):
    role: Literal["reader", "editor", "admin"] = "reader"
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


class Problem(BaseModel):
    detail: str


ERRORS = {code: {"model": Problem} for code in (400, 401, 403, 404, 409, 413, 422, 507)}


# ---- the application ---------------------------------------------------------------------------


def _session(request: Request) -> UserSession:
    """The caller, from the API key it sends (or the local admin when sign-in is off)."""
    state = request.app.state
    principal = LOCAL
    if state.access.enabled:
        header = request.headers.get("authorization", "")
        key = header[7:].strip() if header.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
        if not key:
            raise AuthenticationFailed("an API key is needed: send it as 'Authorization: Bearer KEY'")
        principal = state.access.principal_for_key(key)
    return UserSession(state.docent, state.access, state.jobs, principal)


User = Annotated[UserSession, Depends(_session)]


def create_app(settings: Settings, *, docent: Docent | None = None, jobs: JobManager | None = None) -> FastAPI:
    """The API over one Docent (one shared engine per collection in this process)."""
    docent = docent or Docent(settings)
    access = AccessControl(settings)
    jobs = jobs or JobManager(settings.home)
    app = FastAPI(
        title="Docent", version="0.1.0", responses=ERRORS,
        description="Search, ask with cited answers, and manage the documents of self-hosted Docent collections.",
    )
    app.state.docent, app.state.access, app.state.jobs = docent, access, jobs
    _errors(app)

    @app.get("/health", response_model=Health, tags=["service"])
    def health() -> dict:
        """Up and able to read its data home. Needs no key."""
        return {"status": "ok", "auth": settings.auth, "collections": len(docent.collection_names())}

    @app.get("/me", response_model=Me, tags=["service"])
    def me(user: User) -> dict:
        p = user.principal
        return {"name": p.name, "role": p.role, "groups": sorted(p.groups), "via": p.via}

    @app.get("/collections", response_model=list[str], tags=["collections"])
    def collections(user: User) -> list[str]:
        """The collections this key may see."""
        return user.collections()

    @app.post("/collections", status_code=201, response_model=list[str], tags=["collections"])
    def create_collection(body: CollectionIn, user: User) -> list[str]:
        """Creates a collection (admins), optionally limited to named users and groups."""
        user.create_collection(body.name, users=body.users, groups=body.groups)
        return user.collections()

    @app.delete("/collections/{collection}", status_code=204, tags=["collections"])
    def delete_collection(collection: CollectionName, user: User) -> Response:
        """Deletes a collection and all it holds (admins)."""
        user.delete_collection(collection)
        return Response(status_code=204)

    @app.put("/collections/{collection}/access", status_code=204, tags=["collections"])
    def set_access(collection: CollectionName, body: AccessIn, user: User) -> Response:
        """Who may see the collection (admins)."""
        user.set_collection_access(collection, body.users, body.groups)
        return Response(status_code=204)

    @app.get("/users", response_model=list[UserOut], tags=["users"])
    def users(user: User) -> list[dict]:
        """Everyone who may sign in (admins)."""
        return [_user_out(u) for u in user.users()]

    @app.put("/users/{name}", response_model=UserOut, tags=["users"])
    def put_user(name: Annotated[str, PathParam(pattern=USER_PATTERN)], body: UserIn, user: User) -> dict:
        """Adds a user or changes one's role, groups or password (admins)."""
        return _user_out(user.set_user(name, body.role, body.groups, body.password))

    @app.delete("/users/{name}", status_code=204, tags=["users"])
    def delete_user(name: Annotated[str, PathParam(pattern=USER_PATTERN)], user: User) -> Response:
        """Removes a user and their API keys (admins)."""
        user.delete_user(name)
        return Response(status_code=204)

    @app.post("/users/{name}/keys", status_code=201, response_model=NewKey, tags=["users"])
    def create_key(name: Annotated[str, PathParam(pattern=USER_PATTERN)], body: KeyIn, user: User) -> dict:
        """A new API key acting as the user (admins); the key is in this answer only."""
        key_id, key = user.create_api_key(name, body.label)
        return {"id": key_id, "key": key}

    @app.get("/keys", response_model=list[KeyOut], tags=["users"])
    def keys(user: User) -> list[dict]:
        return user.api_keys()

    @app.delete("/keys/{key_id}", status_code=204, tags=["users"])
    def revoke_key(key_id: Annotated[str, PathParam(max_length=64)], user: User) -> Response:
        user.revoke_api_key(key_id)
        return Response(status_code=204)

    @app.get("/collections/{collection}/documents", response_model=list[DocumentInfo], tags=["documents"])
    def documents(collection: CollectionName, user: User) -> list[dict]:
        return [d.to_dict() for d in user.documents(collection)]

    @app.delete("/collections/{collection}/documents", status_code=204, tags=["documents"])
    def remove_document(
        collection: CollectionName, user: User,
        source: Annotated[str, Query(min_length=1, max_length=4000, description="as the document list names it")],
    ) -> Response:
        """Removes a document and its passages (editors)."""
        user.remove(source, collection)
        return Response(status_code=204)

    @app.post("/collections/{collection}/files", status_code=202, response_model=JobOut, tags=["documents"])
    def ingest_files(
        collection: CollectionName, user: User, files: Annotated[list[UploadFile], File(description="PDF files")],
        wait: Annotated[bool, Query(description="answer when the job has ended")] = False,
    ) -> JSONResponse:
        """Adds PDFs (editors) as a background job; its progress is at /jobs/{id}."""
        user.require("write")
        spool = Path(tempfile.mkdtemp(prefix="upload-", dir=_uploads_dir(settings)))
        sources = []
        try:
            for n, upload in enumerate(files):
                name = _upload_name(upload.filename, n)
                path = spool / f"{n:05d}.pdf"
                with path.open("wb") as out:
                    while block := upload.file.read(UPLOAD_CHUNK):
                        out.write(block)
                sources.append(Source(name=name, path=path))
            job = user.start_ingest(sources, collection, spool=spool)
        except BaseException:
            import shutil

            shutil.rmtree(spool, ignore_errors=True)
            raise
        return _job_response(job, wait)

    @app.post("/collections/{collection}/urls", status_code=202, response_model=JobOut, tags=["documents"])
    def ingest_urls(
        collection: CollectionName, body: UrlsIn, user: User,
        wait: Annotated[bool, Query(description="answer when the job has ended")] = False,
    ) -> JSONResponse:
        """Adds web pages (or linked PDFs) by URL (editors) as a background job."""
        job = user.start_ingest([Source(name=u) for u in body.urls], collection)
        return _job_response(job, wait)

    @app.post("/collections/{collection}/crawls", status_code=202, response_model=JobOut, tags=["documents"])
    def crawl(collection: CollectionName, body: CrawlIn, user: User) -> JSONResponse:
        """Crawls a site through its sitemap (editors); a re-crawl redoes only what changed."""
        s = settings
        options = CrawlOptions(
            max_pages=body.max_pages or s.crawl_max_pages, include=tuple(body.include), exclude=tuple(body.exclude),
            concurrency=s.crawl_concurrency, per_host=s.crawl_per_host,
        )
        return _job_response(user.start_crawl(body.url, collection, options=options), False)

    @app.get("/jobs", response_model=list[JobOut], tags=["jobs"])
    def list_jobs(user: User, collection: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None) -> list[dict]:
        """Ingests and crawls of the collections this key may see, newest first."""
        return [j.summary() for j in user.visible_jobs(collection)]

    @app.get("/jobs/{job_id}", response_model=JobOut, tags=["jobs"])
    def job(job_id: Annotated[str, PathParam(max_length=64)], user: User) -> dict:
        return user.job(job_id).summary()

    @app.post("/jobs/{job_id}/cancel", response_model=JobOut, tags=["jobs"])
    def cancel(job_id: Annotated[str, PathParam(max_length=64)], user: User) -> dict:
        """Stops a job (editors): what it finished stays, the document in progress is not stored."""
        return user.cancel_job(job_id).summary()

    @app.post("/collections/{collection}/search", response_model=SearchOut, tags=["ask"])
    def search(collection: CollectionName, body: SearchIn, user: User) -> dict:
        hits = user.search(body.query, collection=collection, k=body.k, mode=body.mode, sources=body.sources)
        return {"hits": [h.to_dict() for h in hits]}

    @app.post("/collections/{collection}/ask", response_model=AnswerOut, tags=["ask"])
    def ask(collection: CollectionName, body: AskIn, user: User) -> dict:
        """Answers from the collection's documents only, citing the passage behind each statement."""
        history = [(t.question, t.answer) for t in body.history]
        return user.ask(body.question, collection=collection, history=history, sources=body.sources).to_dict()

    @app.post(
        "/collections/{collection}/ask/stream", tags=["ask"],
        responses={200: {"content": {"text/event-stream": {}}, "description": "`token` events, then one `answer` event"}},
    )
    def ask_stream(collection: CollectionName, body: AskIn, user: User) -> StreamingResponse:
        """Server-sent events: `token` (data: {"text": ...}) as the answer is written, then `answer`
        (data: the same object /ask returns)."""
        history = [(t.question, t.answer) for t in body.history]
        stream = user.ask_stream(body.question, collection=collection, history=history, sources=body.sources)
        return StreamingResponse(_events(stream, body.question), media_type="text/event-stream")

    return app


def _user_out(u) -> dict:
    return {"name": u.name, "role": u.role, "groups": u.groups, "in_settings": u.fixed}


def _events(stream, question: str) -> Iterator[str]:
    def event(name: str, data: dict) -> str:
        return f"event: {name}\ndata: {json.dumps(data)}\n\n"

    for piece in stream:
        yield event("token", {"text": piece})
    answer = stream.answer
    answer.question, answer.rewritten = question, stream.rewritten
    yield event("answer", answer.to_dict())


def _job_response(job, wait: bool) -> JSONResponse:
    if wait:
        job.wait()
    return JSONResponse(job.summary(), status_code=200 if wait else 202, headers={"Location": f"/jobs/{job.id}"})


def _uploads_dir(settings: Settings) -> Path:
    folder = Path(settings.home) / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _upload_name(filename: str | None, n: int) -> str:
    """The name a citation shows: the file's own name, without any folder a client sent."""
    name = re.split(r"[\\/]", filename or "")[-1].strip()
    name = "".join(ch for ch in name if ch.isprintable())[:255]
    return name or f"upload-{n + 1}.pdf"


def _errors(app: FastAPI) -> None:
    """Each failure a client can cause gets its status and a message that names the problem."""

    def handler(status: int, headers: dict | None = None):
        def handle(request: Request, exc: Exception) -> JSONResponse:
            return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)

        return handle

    app.add_exception_handler(AuthenticationFailed, handler(401, {"WWW-Authenticate": "Bearer"}))
    app.add_exception_handler(AccessDenied, handler(403))
    app.add_exception_handler(NotFound, handler(404))
    app.add_exception_handler(JobConflict, handler(409))
    app.add_exception_handler(StorageFullError, handler(507))
    app.add_exception_handler(CollectionError, handler(400))
    app.add_exception_handler(ValueError, handler(400))

    def closed(request: Request, exc: sqlite3.ProgrammingError) -> JSONResponse:
        # The collection was deleted while this request used it.
        return JSONResponse({"detail": "the collection was deleted while the request ran"}, status_code=409)

    app.add_exception_handler(sqlite3.ProgrammingError, closed)


def serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    if settings.auth == "none" and host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("sign-in is off (auth = none) and the API listens on %s: anyone who can reach it is an admin", host)
    docent = Docent(settings)
    docent.load_model()
    try:
        uvicorn.run(create_app(settings, docent=docent), host=host, port=port, log_level="info")
    finally:
        docent.close()
