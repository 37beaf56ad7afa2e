"""Who is calling: every route acts through the caller's UserSession (see webapp.session)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from retrieval.settings import Settings
from webapp.api.guard import principal_for
from webapp.session import UserSession


def _session(request: Request) -> UserSession:
    """The caller, as the request guard found it from the API key (or the local admin when
    sign-in is off)."""
    state = request.app.state
    principal = getattr(request.state, "principal", None) or principal_for(state.access, request.headers)
    return UserSession(state.docent, state.access, state.jobs, principal, state.chats)


def _settings(request: Request) -> Settings:
    return request.app.state.settings


User = Annotated[UserSession, Depends(_session)]
CurrentSettings = Annotated[Settings, Depends(_settings)]
