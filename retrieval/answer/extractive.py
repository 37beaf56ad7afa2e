"""The extractive backend: no model, the passages' own best sentences, each cited."""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from ingest.text import sentence_spans
from retrieval.keywords import keyword_terms
from retrieval.models import Hit


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

    @classmethod
    def from_settings(cls, settings, embedder) -> "ExtractiveBackend":
        return cls(embedder)

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
