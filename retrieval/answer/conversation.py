"""Follow-up questions made standalone before retrieval.

"And in 2022?" retrieves nothing by itself. With an LLM backend the question is rewritten by
the model from the conversation (prompts/rewrite_question.txt); without one, or when the model
fails or answers with something that is not a question, a history-aware rule does it: a
follow-up that swaps a number or year takes the previous question with the new number, and any
other dependent follow-up is searched together with the previous question.
"""

from __future__ import annotations

import re
from typing import Sequence

import prompts
from retrieval.answer.base import BackendError

_FOLLOW_UP_START = re.compile(r"^\s*(and|but|also|or|what about|how about|and what about|and how about)\b[\s,]*", re.I)
_PRONOUNS = {
    "it",
    "its",
    "they",
    "them",
    "their",
    "this",
    "that",
    "these",
    "those",
    "he",
    "she",
    "his",
    "her",
    "there",
    "one",
}
_NUMBER = re.compile(r"\b\d[\d.,]*\b")

Turn = tuple[str, str]  # (the standalone question asked, the answer given)


def is_follow_up(question: str) -> bool:
    words = re.findall(r"\w+", question.lower())
    return bool(_FOLLOW_UP_START.match(question)) or len(words) <= 3 or bool(set(words) & _PRONOUNS)


def rule_based_rewrite(question: str, history: Sequence[Turn]) -> str:
    if not history or not is_follow_up(question):
        return question
    previous = history[-1][0].strip()
    new_numbers = _NUMBER.findall(question)
    old_numbers = _NUMBER.findall(previous)
    rest = _FOLLOW_UP_START.sub("", question).strip()
    if new_numbers and old_numbers and len(rest.split()) <= 4:
        # "What was the revenue in 2021?" + "and in 2022?" -> "What was the revenue in 2022?"
        head, sep, tail = previous.rpartition(old_numbers[-1])
        return f"{head}{new_numbers[0]}{tail}"
    return f"{previous} {rest[:1].upper()}{rest[1:]}"


def standalone_question(question: str, history: Sequence[Turn], backend=None) -> str:
    """The question to search for, given the conversation so far (oldest turn first)."""
    if not history:
        return question
    complete = getattr(backend, "complete", None)
    if complete is not None:
        transcript = "\n".join(f"User: {q}\nAssistant: {a[:500]}" for q, a in history[-3:])
        try:
            rewritten = complete(
                [{"role": "user", "content": prompts.render("rewrite_question", history=transcript, question=question)}]
            )
        except BackendError:
            rewritten = ""
        rewritten = rewritten.strip().splitlines()[0].strip(" \"'") if rewritten.strip() else ""
        if 3 <= len(rewritten.split()) <= 60:
            return rewritten
    return rule_based_rewrite(question, history)
