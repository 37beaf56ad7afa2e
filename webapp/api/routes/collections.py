"""Collections: list, create, delete, and who may see each."""

from __future__ import annotations

from fastapi import APIRouter, Response

from webapp.api.deps import User
from webapp.api.schemas import AccessIn, CollectionIn, CollectionName

router = APIRouter(tags=["collections"])


@router.get("/collections", response_model=list[str])
def collections(user: User) -> list[str]:
    """The collections this key may see."""
    return user.collections()


@router.post("/collections", status_code=201, response_model=list[str])
def create_collection(body: CollectionIn, user: User) -> list[str]:
    """Creates a collection (admins), optionally limited to named users and groups."""
    user.create_collection(body.name, users=body.users, groups=body.groups)
    return user.collections()


@router.delete("/collections/{collection}", status_code=204)
def delete_collection(collection: CollectionName, user: User) -> Response:
    """Deletes a collection and all it holds (admins)."""
    user.delete_collection(collection)
    return Response(status_code=204)


@router.put("/collections/{collection}/access", status_code=204)
def set_access(collection: CollectionName, body: AccessIn, user: User) -> Response:
    """Who may see the collection (admins)."""
    user.set_collection_access(collection, body.users, body.groups)
    return Response(status_code=204)
