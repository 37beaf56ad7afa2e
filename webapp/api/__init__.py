"""The HTTP API: `create_app(settings)` for a FastAPI app, `serve(settings, host, port)` to run it."""

from webapp.api.app import create_app, serve

__all__ = ["create_app", "serve"]
