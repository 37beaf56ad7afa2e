"""Docent's HTTP API (FastAPI), served by `docent api`; its OpenAPI document is at /openapi.json.

The routes are in routes/ (one module per resource), their bodies in schemas.py, the caller's
session in deps.py and the error statuses in errors.py.

Every route acts through a webapp.session.UserSession, as the app does, so both allow the
same things to the same people. With sign-in on (`auth` other than "none"), a request carries
an API key as `Authorization: Bearer KEY` or `X-API-Key: KEY`; the key acts as its user.

The MCP server (webapp/mcp_server.py) answers at /mcp, behind the same guard: a request there
acts as its key's user too.

Routes are plain functions, which FastAPI runs on its thread pool: searches run in parallel
(the native engine releases the GIL), beside any ingest, which runs as a background job.
"""

from __future__ import annotations

import logging
import threading

from fastapi import FastAPI

from retrieval.service import Docent
from retrieval.settings import Settings
from webapp.access import AccessControl
from webapp.api.errors import add_error_handlers
from webapp.api.guard import RequestGuard, principal_for
from webapp.api.observe import RequestObserver
from webapp.api.routes import ROUTERS
from webapp.api.schemas import ERRORS
from webapp.chats import open_chats
from webapp.jobs import JobManager
from webapp.logs import configure_logging
from webapp.mcp_server import HttpEndpoint, build_server
from webapp.metrics import ServerState
from webapp.session import UserSession
from webapp.uploads import sweep_uploads

log = logging.getLogger(__name__)


def create_app(settings: Settings, *, docent: Docent | None = None, jobs: JobManager | None = None) -> FastAPI:
    """The API over one Docent (one shared engine per collection in this process)."""
    docent = docent or Docent(settings)
    access, jobs, chats = AccessControl(settings), jobs or JobManager(settings.home), open_chats(settings)

    def session_for_mcp(ctx) -> UserSession:
        # The request guard has checked the key already; this finds its user again.
        return UserSession(docent, access, jobs, principal_for(access, ctx.headers or {}), chats)

    mcp = HttpEndpoint(build_server(session_for_mcp, settings.app_url))

    app = FastAPI(
        title="Docent",
        version="0.1.0",
        responses=ERRORS,
        description="Search, ask with cited answers, and manage the documents of self-hosted Docent collections.",
        lifespan=lambda _app: mcp.running(),
    )
    sweep_uploads(settings.home)  # what a killed process left
    app.state.settings, app.state.docent = settings, docent
    app.state.access, app.state.jobs, app.state.chats = access, jobs, chats
    app.state.server_state = ServerState(docent, app.state.jobs)
    add_error_handlers(app)
    state = app.state

    def may_add(principal, collection: str) -> None:
        UserSession(docent, state.access, state.jobs, principal, state.chats).check_may_add(collection)

    app.add_middleware(RequestGuard, settings=settings, access=state.access, may_add=may_add)
    app.add_middleware(RequestObserver)  # added last: the outermost, it sees the guard's refusals too
    for router in ROUTERS:
        app.include_router(router)
    app.add_route("/mcp", mcp, include_in_schema=False)
    return app


def serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    if settings.auth == "none" and host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("sign-in is off (auth = none) and the API listens on %s: anyone who can reach it is an admin", host)
    configure_logging(settings.log_format)
    docent = Docent(settings)
    # Loaded beside the server, not before it: /health answers at once and /ready says when the
    # model is in (a request that needs it first waits for it).
    threading.Thread(target=_load_model, args=(docent,), name="docent-model-load", daemon=True).start()
    try:
        uvicorn.run(create_app(settings, docent=docent), host=host, port=port, log_config=None)
    finally:
        docent.close()


def _load_model(docent: Docent) -> None:
    try:
        docent.load_model()
        log.info("the embedding model is loaded: %s", docent.embedding_precision)
    except Exception:  # /ready stays 503 and says so; the next request that needs it tries again
        log.exception("the embedding model could not be loaded")
