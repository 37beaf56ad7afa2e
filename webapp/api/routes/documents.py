"""A collection's documents: list and remove them, add files and web pages, crawl a site.
Adding runs as a background job (routes/jobs.py)."""

from __future__ import annotations

import hashlib
import re
from typing import Annotated

from fastapi import APIRouter, File, HTTPException, Query, Response, UploadFile
from fastapi.responses import JSONResponse

from ingest.sources import FILE_TYPES, Source
from retrieval.models import DocumentInfo
from retrieval.store import RemovedDocument
from webapp.api.deps import CurrentSettings, User
from webapp.api.schemas import CollectionName, CrawlIn, JobOut, UrlsIn
from webapp.uploads import UploadSpool

router = APIRouter(tags=["documents"])

UPLOAD_CHUNK = 1 << 20
FILE_KINDS = ", ".join(t.name for t in FILE_TYPES)
Wait = Annotated[bool, Query(description="answer when the job has ended")]
SourceName = Annotated[str, Query(min_length=1, max_length=4000, description="a document's source, as listed")]


@router.get("/collections/{collection}/documents", response_model=list[DocumentInfo])
def documents(collection: CollectionName, user: User) -> list[dict]:
    return [d.to_dict() for d in user.documents(collection)]


@router.delete("/collections/{collection}/documents", status_code=204)
def remove_document(collection: CollectionName, user: User, source: SourceName) -> Response:
    """Removes a document and its passages (editors)."""
    user.remove(source, collection)
    return Response(status_code=204)


@router.get("/collections/{collection}/removed", response_model=list[RemovedDocument])
def removed_documents(collection: CollectionName, user: User) -> list[RemovedDocument]:
    """Documents removed lately (editors), the latest first: what /removed/restore can bring back."""
    return user.removed_documents(collection)


@router.post("/collections/{collection}/removed/restore", status_code=204)
def restore_document(collection: CollectionName, user: User, source: SourceName) -> Response:
    """Undoes a document's removal (editors): it comes back as it was, nothing embedded again."""
    user.restore(source, collection)
    return Response(status_code=204)


@router.post("/collections/{collection}/files", status_code=202, response_model=JobOut)
def ingest_files(
    collection: CollectionName,
    user: User,
    settings: CurrentSettings,
    files: Annotated[list[UploadFile], File(description=f"files ({FILE_KINDS})")],
    wait: Wait = False,
) -> JSONResponse:
    """Adds files (editors) as a background job; its progress is at /jobs/{id}."""
    user.require("write")
    if len(files) > settings.max_upload_files:
        raise HTTPException(413, f"{len(files)} files in one upload; this server takes {settings.max_upload_files}")
    spool = UploadSpool(settings.home)
    sources = []
    try:
        for n, upload in enumerate(files):
            name = _upload_name(upload.filename)
            path = spool.path / f"{n:05d}"
            digest = hashlib.sha256()
            with path.open("wb") as out:
                while block := upload.file.read(UPLOAD_CHUNK):
                    out.write(block)
                    digest.update(block)
                    if out.tell() > settings.max_upload_bytes:
                        limit = settings.max_upload_bytes
                        raise HTTPException(413, f"{name} is larger than this server accepts ({limit:,} bytes)")
            # A file sent without a name is named by its content: two of them never replace each other.
            sources.append(Source(name=name or f"upload-{digest.hexdigest()[:12]}", path=path))
        job = user.start_ingest(sources, collection, spool=spool)
    except BaseException:
        spool.remove()
        raise
    return job_response(job, wait)


@router.post("/collections/{collection}/urls", status_code=202, response_model=JobOut)
def ingest_urls(collection: CollectionName, body: UrlsIn, user: User, wait: Wait = False) -> JSONResponse:
    """Adds web pages (or linked PDFs) by URL (editors) as a background job."""
    job = user.start_ingest([Source(name=u) for u in body.urls], collection)
    return job_response(job, wait)


@router.post("/collections/{collection}/crawls", status_code=202, response_model=JobOut)
def crawl(collection: CollectionName, body: CrawlIn, user: User) -> JSONResponse:
    """Crawls a site through its sitemap (editors); a re-crawl redoes only what changed."""
    options = user.docent.crawl_options(max_pages=body.max_pages, include=body.include, exclude=body.exclude)
    return job_response(user.start_crawl(body.url, collection, options=options), False)


def job_response(job, wait: bool) -> JSONResponse:
    if wait:
        job.wait()
    return JSONResponse(job.summary(), status_code=200 if wait else 202, headers={"Location": f"/jobs/{job.id}"})


def _upload_name(filename: str | None) -> str:
    """The name a citation shows: the file's own name, without any folder a client sent ("" for none)."""
    name = re.split(r"[\\/]", filename or "")[-1].strip()
    return "".join(ch for ch in name if ch.isprintable())[:255]
