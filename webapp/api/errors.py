"""Each failure a client can cause gets its status and a message that names the problem."""

from __future__ import annotations

import json
import sqlite3

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from retrieval.store import CollectionError, StorageFullError
from webapp.access import AccessDenied, AuthenticationFailed
from webapp.jobs import JobConflict
from webapp.session import NotFound


# The status of each failure a client can cause: the routes' handlers, and the request guard's
# answers before a route runs (webapp/api/guard.py), give the same.
STATUSES: dict[type[Exception], int] = {
    AuthenticationFailed: 401,
    AccessDenied: 403,
    NotFound: 404,
    JobConflict: 409,
    StorageFullError: 507,
    CollectionError: 400,
    ValueError: 400,
}


def status_of(exc: Exception) -> int:
    """The status of a failure, by its most specific class that has one."""
    return next(STATUSES[kind] for kind in type(exc).__mro__ if kind in STATUSES)


def add_error_handlers(app: FastAPI) -> None:
    def handle(request: Request, exc: Exception) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, AuthenticationFailed) else None
        return JSONResponse({"detail": str(exc)}, status_code=status_of(exc), headers=headers)

    for kind in STATUSES:
        app.add_exception_handler(kind, handle)

    def closed(request: Request, exc: sqlite3.ProgrammingError) -> JSONResponse:
        # The collection was deleted while this request used it.
        return JSONResponse({"detail": "the collection was deleted while the request ran"}, status_code=409)

    app.add_exception_handler(sqlite3.ProgrammingError, closed)

    def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer, without echoing a huge input back.
        errors = [{**error, "input": _short_input(error.get("input"))} for error in exc.errors()]
        return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)

    app.add_exception_handler(RequestValidationError, invalid)


ECHO_LIMIT = 200  # characters of a rejected input shown back to the client


def _short_input(value):
    text = value if isinstance(value, str) else json.dumps(jsonable_encoder(value), default=str)
    if len(text) <= ECHO_LIMIT:
        return value
    return f"{text[:ECHO_LIMIT]}… ({len(text):,} characters)"
