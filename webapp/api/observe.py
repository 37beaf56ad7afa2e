"""The outermost layer of the API: every request gets an id (the client's X-Request-ID when it
sends a sane one, else a new one; sent back in the response), is counted and timed by route
template and status (webapp/metrics.py), and leaves one log line: method, route, status,
duration, user, collection. Never the path's values beyond the collection, a query or a body.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from webapp import metrics
from webapp.logs import request_fields

log = logging.getLogger("docent.requests")

_SANE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class RequestObserver:
    """Pure ASGI middleware (a streamed answer is timed to its last byte)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _SANE_ID.fullmatch(given) else uuid.uuid4().hex[:16]
        fields = {"request_id": request_id}
        token = request_fields.set(fields)
        started, status = time.perf_counter(), 500

        async def sending(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            seconds = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            metrics.REQUESTS.labels(template, method, str(status)).inc()
            metrics.REQUEST_SECONDS.labels(template, method).observe(seconds)
            fields.update(route=template, collection=(scope.get("path_params") or {}).get("collection"))
            log.info(
                "%s %s %s %.1f ms",
                method,
                template,
                status,
                seconds * 1000,
                extra={"method": method, "status": status, "duration_ms": round(seconds * 1000, 1)},
            )
            request_fields.reset(token)
