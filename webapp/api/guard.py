"""What the API checks before a route reads anything: the caller's key (with sign-in on), its
allowance of requests a minute (webapp/limits.py), and the size of the body. Without this a client with no key could make the server read, parse and hold
a body of any size before being told 401: three 300 MB bodies grew the server by 1.7 GB.

A body announced larger than its limit (Content-Length) is refused at once with 413; one that
arrives without a length is counted as it is read and refused as soon as it passes the limit.
Uploads are spooled to disk as they arrive; each file's own limit is checked by the route.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Callable

from fastapi import HTTPException

from retrieval.settings import Settings
from retrieval.store import CollectionError
from webapp.access import LOCAL, AccessControl, AccessDenied, AuthenticationFailed, Principal
from webapp.limits import RateLimiter
from webapp.api.errors import status_of
from webapp.logs import request_fields
from webapp.session import NotFound

UPLOAD_PATH = re.compile(r"/collections/([^/]+)/files")
PUBLIC_PATHS = {"/health", "/ready", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def api_key(headers: dict[str, str]) -> str:
    """The key a request carries: `Authorization: Bearer KEY` or `X-API-Key: KEY`."""
    header = headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else headers.get("x-api-key", "")


def principal_for(access: AccessControl, headers) -> Principal:
    """The caller: the user its key acts as, or the local admin when sign-in is off.
    Raises AuthenticationFailed for a missing, unknown or revoked key."""
    if not access.enabled:
        return LOCAL
    key = api_key(headers)
    if not key:
        raise AuthenticationFailed("an API key is needed: send it as 'Authorization: Bearer KEY'")
    return access.principal_for_key(key)


def _caller(principal: Principal, headers: dict[str, str], scope) -> str:
    """Whose allowance a request takes: its key's (each key its own), else the client address's
    (sign-in off: everyone is the same local user)."""
    key = api_key(headers)
    if key and principal is not LOCAL:
        return "key:" + hashlib.sha256(key.encode()).hexdigest()[:32]
    client = scope.get("client")
    return "address:" + (client[0] if client else "unknown")


def body_limit(settings: Settings, path: str) -> int:
    if path.endswith("/files"):  # multipart uploads, spooled to disk
        return settings.max_upload_bytes * settings.max_upload_files + (1 << 20)
    return settings.max_json_bytes


class RequestGuard:
    """Pure ASGI middleware: the key first, then the body, counted."""

    def __init__(self, app, *, settings: Settings, access: AccessControl, may_add: Callable[[Principal, str], None]):
        """may_add(principal, collection) raises AccessDenied or NotFound (webapp.session) when the
        caller may not add documents to the collection: an upload is refused before its body."""
        self.app, self.settings, self.access, self.may_add = app, settings, access, may_add
        self.limiter = RateLimiter(settings.rate_limit_per_minute)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if scope["path"] not in PUBLIC_PATHS:
            try:
                # Kept for the route (request.state.principal): the key is looked up once.
                principal = scope.setdefault("state", {})["principal"] = principal_for(self.access, headers)
            except AuthenticationFailed as exc:
                return await _refuse(send, 401, str(exc), {"www-authenticate": "Bearer"})
            fields = request_fields.get()
            if fields is not None:
                fields["user"] = principal.name
            wait = self.limiter.wait_for(_caller(principal, headers, scope))
            if wait:
                detail = f"too many requests: at most {self.limiter.per_minute} a minute (DOCENT_RATE_LIMIT_PER_MINUTE)"
                return await _refuse(send, 429, f"{detail}; try again in {wait} s", {"retry-after": str(wait)})
            upload_to = UPLOAD_PATH.fullmatch(scope["path"]) if scope["method"] == "POST" else None
            if upload_to:
                try:
                    self.may_add(principal, upload_to[1])
                except (AccessDenied, NotFound, CollectionError) as exc:
                    return await _refuse(send, status_of(exc), str(exc))
        limit = body_limit(self.settings, scope["path"])
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return await _refuse(send, 413, _too_large(limit))
        received = 0
        parts = PartSizes.of(headers.get("content-type", ""), self.settings.max_upload_bytes)

        async def counted():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                received += len(body)
                # FastAPI passes an HTTPException raised while it reads the body through as is.
                if received > limit:
                    raise HTTPException(413, _too_large(limit))
                too_large = parts.feed(body) if parts is not None else None
                if too_large is not None:
                    raise HTTPException(413, f"{too_large} is larger than this server accepts ({parts.limit:,} bytes)")
            return message

        await self.app(scope, counted, send)


class PartSizes:
    """The size of each part of a multipart body, counted as it arrives, so a file past the
    upload limit is refused as soon as it passes it rather than once all of it has come. The
    route checks each file exactly; this allows a part its headers (HEADER_ROOM) on top."""

    HEADER_ROOM = 16 << 10

    def __init__(self, boundary: bytes, limit: int):
        self.delimiter, self.limit = b"--" + boundary, limit
        self.since = 0  # bytes of the current part so far
        self.name = "a file"
        self._tail = b""  # the last bytes seen, where a delimiter may begin

    @classmethod
    def of(cls, content_type: str, limit: int) -> "PartSizes | None":
        found = re.search(r'boundary="?([^";,\s]{1,200})', content_type)
        return cls(found[1].encode("latin-1"), limit) if content_type.startswith("multipart/") and found else None

    def feed(self, data: bytes) -> str | None:
        """The name of the file past the limit, once one is; else None."""
        buffer, counted = self._tail + data, len(self._tail)  # the tail's bytes are counted already
        part_start, at = None, buffer.find(self.delimiter)
        while at >= 0:
            size = self.since - counted + at if part_start is None else at - part_start
            if size > self.limit + self.HEADER_ROOM:
                return self.name
            part_start = at + len(self.delimiter)
            named = _FILENAME.search(buffer, part_start, part_start + 2048)
            self.name = _printable(named[1].decode("utf-8", "replace")) if named else "a file"
            at = buffer.find(self.delimiter, part_start)
        self.since = self.since + len(data) if part_start is None else len(buffer) - part_start
        self._tail = buffer[-(len(self.delimiter) - 1) :]
        return self.name if self.since > self.limit + self.HEADER_ROOM else None


_FILENAME = re.compile(rb'filename="([^"\r\n]{0,300})"')


def _printable(name: str) -> str:
    return "".join(c for c in name if c.isprintable())[:200] or "a file"


def _too_large(limit: int) -> str:
    return f"the request body is larger than this server accepts ({limit:,} bytes)"


async def _refuse(send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
