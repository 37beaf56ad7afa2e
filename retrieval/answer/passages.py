"""The passages and the question as an LLM backend's prompt shows them (prompts/)."""

from __future__ import annotations

from typing import Sequence

import prompts
from retrieval.models import Hit


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


def answer_messages(question: str, passages: Sequence[Hit]) -> list[dict]:
    return [
        {"role": "system", "content": prompts.render("answer_system", no_answer=prompts.render("no_answer"))},
        {
            "role": "user",
            "content": prompts.render("answer_user", passages=format_passages(passages), question=question),
        },
    ]
