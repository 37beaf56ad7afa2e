"""What every answer backend is: a stream of text in which [n] cites passage n, and the error
it raises when it cannot answer."""

from __future__ import annotations

from typing import Iterator, Protocol, Sequence

from retrieval.models import Hit


class BackendError(Exception):
    """The language model could not answer; the message says why, in words a user can act on."""


class AnswerBackend(Protocol):
    name: str

    def stream(self, question: str, passages: Sequence[Hit]) -> Iterator[str]:
        """Text of the answer in pieces; [n] cites passages[n - 1]."""
        ...


class UnavailableBackend:
    """Stands in for a backend that could not be set up, so the failure is told like any other."""

    def __init__(self, name: str, error: str):
        self.name = name
        self.error = error
        self.description = f"{name}: not available ({error})"

    def stream(self, question: str, passages: Sequence[Hit]) -> Iterator[str]:
        raise BackendError(self.error)
        yield  # a generator, like every backend
