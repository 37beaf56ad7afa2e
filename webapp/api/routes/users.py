"""Users and their API keys (admins)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from webapp.api.deps import User
from webapp.api.schemas import KeyId, KeyIn, KeyOut, NewKey, UserIn, UserName, UserOut

router = APIRouter(tags=["users"])


@router.get("/users", response_model=list[UserOut])
def users(user: User) -> list[dict]:
    """Everyone who may sign in (admins)."""
    return [_user_out(u) for u in user.users()]


@router.put("/users/{name}", response_model=UserOut)
def put_user(name: UserName, body: UserIn, user: User) -> dict:
    """Adds a user or changes one's role, groups or password (admins)."""
    return _user_out(user.set_user(name, body.role, body.groups, body.password))


@router.delete("/users/{name}", status_code=204)
def delete_user(name: UserName, user: User) -> Response:
    """Removes a user and their API keys (admins)."""
    user.delete_user(name)
    return Response(status_code=204)


@router.post("/users/{name}/keys", status_code=201, response_model=NewKey)
def create_key(name: UserName, body: KeyIn, user: User) -> dict:
    """A new API key acting as the user (admins); the key is in this answer only."""
    key_id, key = user.create_api_key(name, body.label)
    return {"id": key_id, "key": key}


@router.get("/keys", response_model=list[KeyOut])
def keys(user: User) -> list[dict]:
    return user.api_keys()


@router.delete("/keys/{key_id}", status_code=204)
def revoke_key(key_id: KeyId, user: User) -> Response:
    user.revoke_api_key(key_id)
    return Response(status_code=204)


def _user_out(u) -> dict:
    return {"name": u.name, "role": u.role, "groups": u.groups, "in_settings": u.fixed}
