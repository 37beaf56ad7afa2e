"""Which sentences of a cited passage support the answer: the spans the app highlights."""

from __future__ import annotations

import re
from typing import Sequence

from ingest.text import sentence_spans
from retrieval.keywords import keyword_terms
from retrieval.models import Hit

_MARKERS = re.compile(r"\s*(?:\[\d{1,3}\])+")
_CLAIM = re.compile(r"(.+?)((?:\s*\[\d{1,3}\])+)", re.DOTALL)
# A passage sentence supports a claim when it holds this share of the claim's terms.
MIN_OVERLAP = 0.5


def claims_by_ref(answer: str) -> dict[int, list[str]]:
    """The text before each run of markers, by the citation numbers in that run."""
    claims: dict[int, list[str]] = {}
    for match in _CLAIM.finditer(answer):
        claim = _MARKERS.sub("", match.group(1)).strip(" .")
        for ref in map(int, re.findall(r"\d+", match.group(2))):
            if claim:
                claims.setdefault(ref, []).append(claim)
    return claims


def supporting_spans(passage: str, claims: Sequence[str]) -> list[tuple[int, int]]:
    """Spans of the passage's sentences that best support each claim (none when too weak)."""
    sentences = sentence_spans(passage)
    terms = [set(keyword_terms(passage[s:e])) for s, e in sentences]
    found: set[tuple[int, int]] = set()
    for claim in claims:
        claim_terms = set(keyword_terms(claim))
        if not claim_terms:
            continue
        # The claim may span several passage sentences: take every one that carries enough of it.
        for span, sentence_terms in zip(sentences, terms):
            shared = len(claim_terms & sentence_terms)
            if shared and shared / min(len(claim_terms), len(sentence_terms)) >= MIN_OVERLAP:
                found.add(span)
    return sorted(found)


def add_highlights(answer: str, citations: Sequence[Hit]) -> None:
    claims = claims_by_ref(answer)
    for hit in citations:
        hit.highlights = supporting_spans(hit.text, claims.get(hit.ref, []))
