"""Made-up answers for tests of what stores them."""

from __future__ import annotations

from retrieval.models import Answer, Hit


def big_answer(n: int) -> Answer:
    """Answer n with five cited passages of about 10 KB each (a write that takes a while)."""
    hits = [
        Hit("manual.pdf", "Manual", p, n * 10 + p, 0.5, f"Passage {p} of answer {n}. " * 400, ref=p + 1)
        for p in range(5)
    ]
    return Answer(f"Question {n}?", f"Answer {n} [1][2][3][4][5].", hits, answered=True)
