"""One router per resource; webapp/api/app.py includes them all. A new route goes in the module
of its resource (a new resource: a new module here, added to ROUTERS)."""

from webapp.api.routes import ask, chats, collections, documents, jobs, openai_api, service, users

ROUTERS = [
    service.router,
    collections.router,
    users.router,
    documents.router,
    jobs.router,
    ask.router,
    chats.router,
    openai_api.router,
]
