"""Docent's HTTP API (FastAPI), served by `docent api`; its OpenAPI document is at /openapi.json.

The routes are in routes/ (one module per resource), their bodies in schemas.py, the caller's
session in deps.py and the error statuses in errors.py.

Every route acts through a webapp.session.UserSession, as the app does, so both allow the
same things to the same people. With sign-in on (`auth` other than "none"), a request carries
an API key as `Authorization: Bearer KEY` or `X-API-Key: KEY`; the key acts as its user.

Routes are plain functions, which FastAPI runs on its thread pool: searches run in parallel
(the native engine releases the GIL), beside any ingest, which runs as a background job.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI

from retrieval.service import Docent
from retrieval.settings import Settings
from webapp.access import AccessControl
from webapp.api.errors import add_error_handlers
from webapp.api.guard import RequestGuard
from webapp.api.routes import ROUTERS
from webapp.api.schemas import ERRORS
from webapp.chats import open_chats
from webapp.jobs import JobManager
from webapp.uploads import sweep_uploads

log = logging.getLogger(__name__)


def create_app(settings: Settings, *, docent: Docent | None = None, jobs: JobManager | None = None) -> FastAPI:
    """The API over one Docent (one shared engine per collection in this process)."""
    docent = docent or Docent(settings)
    app = FastAPI(
        title="Docent",
        version="0.1.0",
        responses=ERRORS,
        description="Search, ask with cited answers, and manage the documents of self-hosted Docent collections.",
    )
    sweep_uploads(settings.home)  # what a killed process left
    app.state.settings, app.state.docent = settings, docent
    app.state.access, app.state.jobs = AccessControl(settings), jobs or JobManager(settings.home)
    app.state.chats = open_chats(settings)
    add_error_handlers(app)
    app.add_middleware(RequestGuard, settings=settings, access=app.state.access)
    for router in ROUTERS:
        app.include_router(router)
    return app


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
