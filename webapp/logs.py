"""How a Docent server logs: plain lines on a terminal (the default), or one JSON object a line
(DOCENT_LOG_FORMAT=json) for a log store to search by request.

Each record made while a request is served carries that request's id (also sent back as the
X-Request-ID header), user, route and collection, from a context variable the API's request
middleware sets (webapp/api/observe.py). What is logged at INFO never holds a question, a
passage or a secret: the request line names the route's template, not its path or body.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from contextvars import ContextVar

# The request being served on this task or thread: request_id, user, route, collection.
request_fields: ContextVar[dict | None] = ContextVar("request_fields", default=None)

_RECORD_FIELDS = ("method", "status", "duration_ms")  # passed with `extra=` by the request line


class RequestContext(logging.Filter):
    """Puts the current request's fields on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in (request_fields.get() or {}).items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in ("request_id", "user", "route", "collection", *_RECORD_FIELDS):
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class TextLines(logging.Formatter):
    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = getattr(record, "request_id", None)
        return f"{text} [request {request_id}]" if request_id else text


def configure_logging(log_format: str, level: int = logging.INFO) -> None:
    """One handler on stderr for the root logger, and uvicorn's loggers through it (their own
    access line is replaced by the API's request line, which names the route's template)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines() if log_format == "json" else TextLines())
    handler.addFilter(RequestContext())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per model-server call is noise
