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


def add_error_handlers(app: FastAPI) -> None:
    def handler(status: int, headers: dict | None = None):
        def handle(request: Request, exc: Exception) -> JSONResponse:
            return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)

        return handle

    app.add_exception_handler(AuthenticationFailed, handler(401, {"WWW-Authenticate": "Bearer"}))
    app.add_exception_handler(AccessDenied, handler(403))
    app.add_exception_handler(NotFound, handler(404))
    app.add_exception_handler(JobConflict, handler(409))
    app.add_exception_handler(StorageFullError, handler(507))
    app.add_exception_handler(CollectionError, handler(400))
    app.add_exception_handler(ValueError, handler(400))

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
