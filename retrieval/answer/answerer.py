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
from typing import Iterator, Sequence

import prompts
from retrieval.answer.base import AnswerBackend, BackendError
from retrieval.answer.citations import add_highlights
from retrieval.keywords import keyword_terms
from retrieval.models import Answer, Hit

CHECKED_PASSAGES = 3  # the best passages the question's words are looked for in
_YEAR_WORD = re.compile(r"(?:fy)?\d+")  # "2022", "fy2022": a period, not a thing named


@dataclass
class AnswerStream:
    """Iterate for the answer's text as it is produced; then `.answer` holds the result."""

    pieces: Iterator[str]
    answer: Answer | None = None
    hits: list[Hit] | None = None  # what retrieval found (set by the caller)
    rewritten: str | None = None  # the standalone question searched for, when it differs

    def __iter__(self) -> Iterator[str]:
        return self.pieces


# Words that ask rather than name: what a question wants done, not what it is about.
_ASKING = frozenset(
    keyword_terms(
        "change percentage percent average total sum value amount number figure year years ratio difference increase "
        "decrease growth rate company"
    )
)


class Answerer:
    """min_relevance: the cosine below which a passage does not count; term_share and
    sure_relevance: the passages answer a question only when they hold at least term_share of
    the words it names things with, or one of them is as close to it as sure_relevance (a
    question in other words than its documents'). Calibrated on TAT-QA's development set, each
    question asked of its own report and of another one (docs/benchmarks.md)."""

    def __init__(
        self,
        backend: AnswerBackend,
        *,
        min_relevance: float = 0.25,
        max_passages: int = 5,
        term_share: float = 0.5,
        sure_relevance: float = 0.55,
    ):
        self.backend = backend
        self.min_relevance = min_relevance
        self.max_passages = max_passages
        self.term_share = term_share
        self.sure_relevance = sure_relevance

    def relevant(self, hits: Sequence[Hit]) -> list[Hit]:
        return [h for h in hits if h.similarity is not None and h.similarity >= self.min_relevance][: self.max_passages]

    def holds_question(self, question: str, passages: Sequence[Hit], *, worked: str = "") -> bool:
        """Whether the passages can answer the question at all (see the class's note). worked:
        the name of a measure worked out from figures found in the passages ("working capital"):
        its words are held though no passage prints them."""
        if any(p.similarity is not None and p.similarity >= self.sure_relevance for p in passages):
            return True
        named = {t for t in keyword_terms(question) if not _YEAR_WORD.fullmatch(t)} - _ASKING
        if not named:
            return True
        held = set(keyword_terms(worked))
        for passage in passages[:CHECKED_PASSAGES]:
            held.update(keyword_terms(f"{passage.title} {passage.section or ''} {passage.text}"))
        return len(named & held) >= self.term_share * len(named)

    def stream(
        self, question: str, hits: Sequence[Hit], *, leading: Sequence[Hit] = (), worked: str = ""
    ) -> AnswerStream:
        """leading: passages the question needs whatever their rank (the rows a calculation's
        figures are in), put before the relevant hits; worked: the name of a measure worked out from
        them, which no passage need print."""
        result = AnswerStream(iter(()))
        given = {h.chunk_id for h in leading}
        passages = list(leading) + [h for h in self.relevant(hits) if h.chunk_id not in given]
        if not self.holds_question(question, passages, worked=worked if leading else ""):
            passages = []  # refused, with the closest passages shown

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
            result.answer = Answer(
                question, text, citations, answered=answered, closest=[] if answered else list(hits[:3])
            )

        result.pieces = run()
        return result

    def answer(self, question: str, hits: Sequence[Hit], *, leading: Sequence[Hit] = (), worked: str = "") -> Answer:
        stream = self.stream(question, hits, leading=leading, worked=worked)
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
