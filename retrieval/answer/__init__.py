"""Answers with citations: the Answerer and its citation checks, the backends behind one
registry (extractive, openai, llamacpp), highlighting of cited sentences, follow-up
questions made standalone, and figures a question asks to be worked out."""

from retrieval.answer.answerer import Answerer, AnswerStream
from retrieval.answer.backends import BACKEND_NAMES, BACKENDS, make_backend
from retrieval.answer.base import AnswerBackend, BackendError, UnavailableBackend
from retrieval.answer.conversation import Turn, standalone_question
from retrieval.answer.calculations import measure_words, parse_calculation
from retrieval.answer.figures import figure_passages
from retrieval.answer.passages import format_passages

__all__ = [
    "AnswerBackend",
    "AnswerStream",
    "Answerer",
    "BACKENDS",
    "BACKEND_NAMES",
    "BackendError",
    "Turn",
    "UnavailableBackend",
    "figure_passages",
    "format_passages",
    "make_backend",
    "measure_words",
    "parse_calculation",
    "standalone_question",
]
