"""Answers with citations: backends behind one interface, and the checks around them.

A backend gets the question and numbered passages and streams text in which [n] cites
passage n. The Answerer around it decides whether the passages are relevant enough to answer
at all, and rewrites citation markers as they stream: markers are renumbered 1, 2, ... in
order of first use, and a marker naming no given passage is dropped, so an answer can only
cite passages that were really put before the backend.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Iterator, Protocol, Sequence

import numpy as np

import prompts
from ingest.text import sentence_spans
from retrieval.citations import add_highlights
from retrieval.keywords import keyword_terms
from retrieval.llm import BackendError
from retrieval.models import Answer, Hit

BACKENDS = ("extractive", "openai", "llamacpp")


class AnswerBackend(Protocol):
    name: str

    def stream(self, question: str, passages: Sequence[Hit]) -> Iterator[str]:
        """Text of the answer in pieces; [n] cites passages[n - 1]."""
        ...


class ExtractiveBackend:
    """No model: answers with the passages' own sentences that best match the question.

    It never writes a word that is not in a passage, so it cannot invent; each sentence is
    followed by the citation of the passage it was taken from.
    """

    name = "extractive"

    def __init__(
        self,
        embedder,
        *,
        max_sentences: int = 3,
        min_sentence_similarity: float = 0.25,
        min_words: int = 4,
        max_words: int = 80,
    ):
        self.embedder = embedder
        self.max_sentences = max_sentences
        self.min_sentence_similarity = min_sentence_similarity
        self.min_words = min_words
        self.max_words = max_words

    def _is_statement(self, sentence: str) -> bool:
        """A full sentence of readable length: not a heading, not a run-on table or page header."""
        words = len(sentence.split())
        return self.min_words <= words <= self.max_words and sentence.rstrip("\"')]\u201d\u2019")[-1:] in ".!?"

    def stream(self, question: str, passages: Sequence[Hit]) -> Iterator[str]:
        candidates: list[tuple[int, str]] = []
        seen: set[str] = set()
        for ref, passage in enumerate(passages, start=1):
            for start, end in sentence_spans(passage.text):
                sentence = passage.text[start:end]
                key = " ".join(sentence.lower().split())
                if not self._is_statement(sentence) or key in seen:  # overlapping chunks repeat sentences
                    continue
                seen.add(key)
                candidates.append((ref, sentence))
        if not candidates:
            return
        # A question made standalone from a follow-up ends with what was asked last: weigh
        # that part as much as the whole, so the answer is to the new question.
        spans = sentence_spans(question)
        latest = question[spans[-1][0] : spans[-1][1]] if len(spans) > 1 else question
        vectors = self.embedder.embed([question, latest] + [s for _, s in candidates])
        similarity = 0.5 * (vectors[2:] @ vectors[0]) + 0.5 * (vectors[2:] @ vectors[1])
        query_terms = set(keyword_terms(question))
        overlap = np.array(
            [len(query_terms & set(keyword_terms(s))) / len(query_terms) if query_terms else 0.0 for _, s in candidates]
        )
        score = similarity + 0.1 * overlap
        order = np.argsort(-score, kind="stable")
        best = score[order[0]]
        chosen = [order[0]] + [
            i for i in order[1:] if similarity[i] >= self.min_sentence_similarity and score[i] >= best - 0.15
        ]
        for n, i in enumerate(chosen[: self.max_sentences]):
            ref, sentence = candidates[i]
            yield ("" if n == 0 else " ") + f"{sentence} [{ref}]"


def make_backend(settings, embedder) -> AnswerBackend:
    """The backend the settings name. Raises BackendError when it cannot be set up."""
    from retrieval.llm import LlamaCppBackend, OpenAIBackend

    if settings.llm == "extractive":
        return ExtractiveBackend(embedder)
    if settings.llm == "openai":
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        return OpenAIBackend(
            base_url=settings.openai_base_url,
            model=settings.openai_model,
            api_key=key,
            timeout=settings.llm_timeout,
            max_tokens=settings.llm_max_tokens,
            temperature=settings.llm_temperature,
        )
    if settings.llm == "llamacpp":
        return LlamaCppBackend(
            model_path=settings.llamacpp_model,
            context_tokens=settings.llm_context_tokens,
            max_tokens=settings.llm_max_tokens,
            temperature=settings.llm_temperature,
        )
    raise ValueError(f"unknown answer backend {settings.llm!r}: this version offers {', '.join(BACKENDS)}")


def format_passages(passages: Sequence[Hit]) -> str:
    """The numbered passages as an LLM backend's prompt shows them (prompts/passage.txt)."""
    return "\n\n".join(
        prompts.render(
            "passage",
            ref=n,
            title=p.title,
            location=f"page {p.page}" if p.page is not None else " › ".join(filter(None, [p.section, p.source])),
            text=p.text,
        )
        for n, p in enumerate(passages, start=1)
    )


@dataclass
class AnswerStream:
    """Iterate for the answer's text as it is produced; then `.answer` holds the result."""

    pieces: Iterator[str]
    answer: Answer | None = None
    hits: list[Hit] | None = None  # what retrieval found (set by the caller)
    rewritten: str | None = None  # the standalone question searched for, when it differs

    def __iter__(self) -> Iterator[str]:
        return self.pieces


class UnavailableBackend:
    """Stands in for a backend that could not be set up, so the failure is told like any other."""

    def __init__(self, name: str, error: str):
        self.name = name
        self.error = error

    def stream(self, question: str, passages: Sequence[Hit]) -> Iterator[str]:
        raise BackendError(self.error)
        yield  # a generator, like every backend


class Answerer:
    def __init__(self, backend: AnswerBackend, *, min_relevance: float = 0.3, max_passages: int = 5):
        self.backend = backend
        self.min_relevance = min_relevance
        self.max_passages = max_passages

    def relevant(self, hits: Sequence[Hit]) -> list[Hit]:
        return [h for h in hits if h.similarity is not None and h.similarity >= self.min_relevance][: self.max_passages]

    def stream(self, question: str, hits: Sequence[Hit]) -> AnswerStream:
        result = AnswerStream(iter(()))
        passages = self.relevant(hits)

        def run() -> Iterator[str]:
            if not passages:
                text = prompts.render("no_answer") if hits else prompts.render("no_documents")
                yield text
                result.answer = Answer(question, text, [], answered=False, closest=list(hits[:3]))
                return
            renumber = _CitationRewriter(len(passages))
            parts = []
            error = None
            try:
                for piece in self.backend.stream(question, passages):
                    out = renumber.feed(piece)
                    parts.append(out)
                    if out:
                        yield out
            except BackendError as exc:
                error = str(exc)
            tail = renumber.flush()
            parts.append(tail)
            if tail:
                yield tail
            text = "".join(parts).strip()
            citations = [replace(passages[old - 1], ref=new) for old, new in renumber.order()]
            if error is not None:
                # What streamed before the failure stays; the passages are still shown.
                notice = prompts.render("backend_failed", reason=error)
                yield ("\n\n" if text else "") + notice
                text = f"{text}\n\n{notice}" if text else notice
                result.answer = Answer(question, text, citations, answered=False, closest=list(passages), error=error)
                return
            answered = bool(citations)
            if not answered:
                # Nothing it wrote is tied to a passage: say so rather than pass it off as an answer.
                notice = prompts.render("uncited") if text else prompts.render("no_answer")
                yield ("\n\n" if text else "") + notice
                text = f"{text}\n\n{notice}" if text else notice
            add_highlights(text, citations)
            result.answer = Answer(question, text, citations, answered=answered, closest=[] if answered else list(hits[:3]))

        result.pieces = run()
        return result

    def answer(self, question: str, hits: Sequence[Hit]) -> Answer:
        stream = self.stream(question, hits)
        for _ in stream:
            pass
        return stream.answer


class _CitationRewriter:
    """Renumbers [n] markers in streamed text, holding back a marker split across pieces."""

    _MARKER = re.compile(r"\[(\d{1,3})\]")
    _PARTIAL = re.compile(r"\[\d{0,3}$")

    def __init__(self, n_passages: int):
        self.n_passages = n_passages
        self.mapping: dict[int, int] = {}
        self.buffer = ""

    def feed(self, piece: str) -> str:
        self.buffer += piece
        partial = self._PARTIAL.search(self.buffer)
        cut = partial.start() if partial else len(self.buffer)
        ready, self.buffer = self.buffer[:cut], self.buffer[cut:]
        return self._MARKER.sub(self._rewrite, ready)

    def flush(self) -> str:
        ready, self.buffer = self.buffer, ""
        return self._MARKER.sub(self._rewrite, ready)

    def _rewrite(self, match: re.Match) -> str:
        old = int(match.group(1))
        if not 1 <= old <= self.n_passages:
            return ""  # cites nothing that was given: dropped, never invented
        new = self.mapping.setdefault(old, len(self.mapping) + 1)
        return f"[{new}]"

    def order(self) -> list[tuple[int, int]]:
        return sorted(self.mapping.items(), key=lambda item: item[1])
