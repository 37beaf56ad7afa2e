"""Who is calling: every route acts through the caller's UserSession (see webapp.session)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from retrieval.settings import Settings
from webapp.access import LOCAL, AuthenticationFailed
from webapp.api.guard import api_key
from webapp.session import UserSession


def _session(request: Request) -> UserSession:
    """The caller, from the API key it sends (or the local admin when sign-in is off)."""
    state = request.app.state
    principal = LOCAL
    if state.access.enabled:
        key = api_key(request.headers)
        if not key:
            raise AuthenticationFailed("an API key is needed: send it as 'Authorization: Bearer KEY'")
        principal = state.access.principal_for_key(key)
    return UserSession(state.docent, state.access, state.jobs, principal)


def _settings(request: Request) -> Settings:
    return request.app.state.settings


User = Annotated[UserSession, Depends(_session)]
CurrentSettings = Annotated[Settings, Depends(_settings)]
