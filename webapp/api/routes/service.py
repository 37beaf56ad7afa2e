"""Whether the service is up (liveness), ready to serve (readiness), what it has done (metrics),
and who the caller is."""

from __future__ import annotations

import hmac
import os
import sqlite3
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from webapp import metrics
from webapp.api.deps import CurrentSettings, User
from webapp.api.guard import api_key
from webapp.api.schemas import Health, Me, Ready

router = APIRouter(tags=["service"])


@router.get("/health", response_model=Health)
def health(request: Request, settings: CurrentSettings) -> dict:
    """Up and able to read its data home (liveness). Needs no key."""
    return {"status": "ok", "auth": settings.auth, "collections": len(request.app.state.docent.collection_names())}


@router.get("/ready", response_model=Ready, responses={503: {"model": Ready, "description": "not ready, and why"}})
def ready(request: Request) -> JSONResponse:
    """Ready to serve (readiness): the embedding model is loaded, the data home is writable and
    the access and chat databases open. 503 with the reasons otherwise. Needs no key."""
    problems = not_ready(request.app.state)
    body = {"status": "not ready" if problems else "ready", "problems": problems}
    return JSONResponse(body, status_code=503 if problems else 200)


@router.get("/metrics", response_class=Response, responses={200: {"content": {metrics.CONTENT_TYPE: {}}}})
def scrape(request: Request, settings: CurrentSettings) -> Response:
    """Prometheus metrics (webapp/metrics.py). Open like /health unless DOCENT_METRICS_KEY is set;
    then the scraper sends it as a bearer token."""
    wanted = settings.metrics_key
    if wanted is not None and not hmac.compare_digest(api_key(request.headers), wanted.get_secret_value()):
        raise HTTPException(401, "/metrics needs the metrics key (DOCENT_METRICS_KEY) as a bearer token")
    return Response(metrics.exposition(request.app.state.server_state), media_type=metrics.CONTENT_TYPE)


@router.get("/me", response_model=Me)
def me(user: User) -> dict:
    p = user.principal
    return {"name": p.name, "role": p.role, "groups": sorted(p.groups), "via": p.via}


def not_ready(state) -> list[str]:
    """Why the server cannot serve yet; empty when it can."""
    problems = []
    if not state.docent.model_loaded:
        problems.append("the embedding model is not loaded yet")
    home = Path(state.settings.home)
    probe = home / f".ready-{os.getpid()}"
    try:
        probe.write_bytes(b"ready")
        probe.unlink()
    except OSError as exc:
        problems.append(f"the data home {home} is not writable ({exc.strerror or exc})")
    for name, store in (("access", state.access), ("chats", state.chats)):
        try:
            store.check()
        except sqlite3.Error as exc:
            problems.append(f"the {name} database cannot be read ({exc})")
    return problems
