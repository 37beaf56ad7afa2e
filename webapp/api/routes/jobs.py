"""Background jobs (ingests and crawls): list, follow, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from webapp.api.deps import User
from webapp.api.schemas import NAME_PATTERN, JobId, JobOut

router = APIRouter(tags=["jobs"])


@router.get("/jobs", response_model=list[JobOut])
def list_jobs(user: User, collection: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None) -> list[dict]:
    """Ingests and crawls of the collections this key may see, newest first."""
    return [j.summary() for j in user.visible_jobs(collection)]


@router.get("/jobs/{job_id}", response_model=JobOut)
def job(job_id: JobId, user: User) -> dict:
    return user.job(job_id).summary()


@router.post("/jobs/{job_id}/cancel", response_model=JobOut)
def cancel(job_id: JobId, user: User) -> dict:
    """Stops a job (editors): what it finished stays, the document in progress is not stored."""
    return user.cancel_job(job_id).summary()
