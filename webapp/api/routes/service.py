"""Whether the service is up, and who the caller is."""

from __future__ import annotations

from fastapi import APIRouter, Request

from webapp.api.deps import CurrentSettings, User
from webapp.api.schemas import Health, Me

router = APIRouter(tags=["service"])


@router.get("/health", response_model=Health)
def health(request: Request, settings: CurrentSettings) -> dict:
    """Up and able to read its data home. Needs no key."""
    return {"status": "ok", "auth": settings.auth, "collections": len(request.app.state.docent.collection_names())}


@router.get("/me", response_model=Me)
def me(user: User) -> dict:
    p = user.principal
    return {"name": p.name, "role": p.role, "groups": sorted(p.groups), "via": p.via}
