"""Answer quality on a set with gold answers: does the answer state the gold fact, and is its
first citation an evidence page? (`docent eval` runs it when the set's lines carry "answer".)

A gold answer with numbers is found when each of its numbers is in the answer, compared as
values: "1,234.5", "1234.5" and "$1.2345 thousand" are the same; a figure stated in millions in
a table ("1,577") matches a gold "$1,577 million" and "$1.577 billion" (0.5% tolerance, so a
rounded figure still counts). A gold answer without numbers is found when the answer holds at
least 60% of its words (stop words aside).
"""

from __future__ import annotations

import re
from typing import Callable

from retrieval.keywords import keyword_terms

_SCALE = {"thousand": 1e3, "k": 1e3, "million": 1e6, "m": 1e6, "mm": 1e6, "billion": 1e9, "bn": 1e9, "b": 1e9}
_NUMBER = re.compile(
    r"(?<![\w.])[-−(]?\$?\s?(\d[\d,]*(?:\.\d+)?|\.\d+)\s*(%|percent|thousand|million|billion|bn|mm|[kmb]\b)?", re.I
)
TEXT_RECALL = 0.6
TOLERANCE = 0.005


def numbers(text: str) -> list[list[float]]:
    """Every number in text with the readings it may have: as written, and scaled by a following
    "thousand", "million", "billion" (a table's "1,577" in millions is 1.577e9)."""
    found = []
    for match in _NUMBER.finditer(text):
        value, unit = float(match.group(1).replace(",", "")), (match.group(2) or "").lower()
        found.append([value, value * _SCALE[unit]] if unit in _SCALE else [value])
    return found


def states(answer: str, gold: str) -> bool:
    """Whether the answer states the gold fact (see the module's note)."""
    wanted = numbers(gold)
    if wanted:
        stated = [v for readings in numbers(answer) for v in readings]
        stated += [v * scale for v in stated for scale in (1e3, 1e6, 1e9)]  # a table in thousands, millions...
        return all(
            any(abs(s - w) <= TOLERANCE * max(abs(w), 1e-9) for w in readings for s in stated) for readings in wanted
        )
    words = set(keyword_terms(gold))
    if not words:
        return gold.strip().lower() in answer.lower()
    return len(words & set(keyword_terms(answer))) >= TEXT_RECALL * len(words)


def evaluate_answers(
    ask: Callable[[str], object], questions: dict[str, str], gold: dict[str, str], evidence: dict[str, set[str]]
) -> dict:
    """ask(question) -> an Answer; evidence: question id -> {"source#page", ...}. Returns the
    share of answers that state the gold fact, the share whose first citation is an evidence
    page, and each question's outcome."""
    rows = []
    for qid, question in questions.items():
        if qid not in gold:
            continue
        answer = ask(question)
        first = answer.citations[0] if answer.citations else None
        cited = f"{first.source}#{first.page}" if first is not None else None
        rows.append(
            {
                "id": qid,
                "states_gold": states(answer.text, gold[qid]),
                "first_citation_evidence": cited in evidence.get(qid, set()),
                "first_citation": cited,
            }
        )
    if not rows:
        return {}
    return {
        "questions": len(rows),
        "gold_in_answer": sum(r["states_gold"] for r in rows) / len(rows),
        "first_citation_evidence": sum(r["first_citation_evidence"] for r in rows) / len(rows),
        "per_question": rows,
    }
