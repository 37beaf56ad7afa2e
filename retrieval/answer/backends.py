"""The answer backends by name: the one list that settings, the CLI, the API and the app use.

A new backend is a class with `name`, `stream(question, passages)` (and optionally
`complete(messages)`, which lets it rewrite follow-up questions) and a `from_settings(settings,
embedder)` constructor, added here once; its own settings go in retrieval/settings.py.
"""

from __future__ import annotations

from retrieval.answer.auto import auto_backend
from retrieval.answer.base import AnswerBackend
from retrieval.answer.extractive import ExtractiveBackend
from retrieval.answer.llm import LlamaCppBackend, OpenAIBackend

BACKENDS = {backend.name: backend for backend in (ExtractiveBackend, OpenAIBackend, LlamaCppBackend)}
# auto, the default: a local model server when one answers, else extractive (auto.py).
BACKEND_NAMES = ("auto", *BACKENDS)


def make_backend(settings, embedder) -> AnswerBackend:
    """The backend the settings name, with a `description` of what answers. Raises BackendError
    when it cannot be set up."""
    if settings.llm == "auto":
        return auto_backend(settings, embedder)
    backend = BACKENDS.get(settings.llm)
    if backend is None:
        raise ValueError(f"unknown answer backend {settings.llm!r}: this version offers {', '.join(BACKEND_NAMES)}")
    made = backend.from_settings(settings, embedder)
    made.description = f"{settings.llm} (DOCENT_LLM)"
    return made
