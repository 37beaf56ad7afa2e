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

_FOLLOW_UP_START = re.compile(
    r"^\s*(and|but|also|or|so|then|what about|how about|what if|and what about|and how about|same for)\b"
    r"[\s,]*",
    re.I,
)
# Words that point back to something named earlier. "there" only where it is not existential.
_REFERRING = {"it", "its", "they", "them", "their", "this", "that", "these", "those", "he", "she", "him", "his", "her"}
_REFERRING |= {"one", "ones", "there"}
_EXISTENTIAL = {"is", "are", "was", "were", "be", "been"}
# Words that name nothing a search could find: question words, auxiliaries, prepositions, and
# the generic asks of a follow-up ("give an example", "more detail", "explain").
_GENERIC = set(
    """a an the is are was were be been being am do does did done can could should would will may might must
    shall have has had i you we me my your our us what which who whom whose when where why how of in on at to
    for from with by about as into onto than and or but not no if so any some here please more detail details
    example examples give tell explain mean means meaning work works else other way same also too then much
    many long often again before after up down out over just very really there own each every such""".split()
)
_NUMBER = re.compile(r"\b\d[\d.,]*\b")
_TOKEN = re.compile(r"[\w\\.:\-/']+")

Turn = tuple[str, str]  # (the standalone question asked, the answer given)


def is_follow_up(question: str) -> bool:
    """Whether a question leans on the conversation for its subject. A complete question is left
    alone even with "its" in it ("What does \\LTchunksize control and what is its default?"):
    only elliptical ones are follow-ups ("and in 2022?", "what about the API?", "why?", "who
    issues them?"). Held to precision >= 0.95 and recall >= 0.8 on tests/data/follow_ups.jsonl."""
    if _FOLLOW_UP_START.match(question):
        return True
    tokens = [t.strip(".:-/'") for t in _TOKEN.findall(question)]
    tokens = [t for t in tokens if t]
    words = [re.sub(r"'s$", "", t.lower()) for t in tokens]
    content = [w for w in words if w not in _GENERIC and w not in _REFERRING and not _NUMBER.fullmatch(w)]
    named = [i for i, t in enumerate(tokens) if _names_something(t, first=i == 0)]
    if not content and not named:
        return True  # "why?", "by whom?", "what does code 6 mean?" is below
    if not named and len(content) <= 1 and len(words) <= 5:
        return True  # "what does code 6 mean?": one generic noun and a number
    for i, word in enumerate(words):
        if word not in _REFERRING:
            continue
        if word == "there" and (
            i == 0 or words[i - 1] in _EXISTENTIAL or (i + 1 < len(words) and words[i + 1] in _EXISTENTIAL)
        ):
            continue  # "is there a limit", "there are"
        if any(n < i for n in named):
            return False  # its subject is named before it: "how does HNSW build its graph?"
        before = [w for w in words[:i] if w not in _GENERIC and w not in _REFERRING]
        if i == len(words) - 1 or len(before) < 3:
            return True  # "who has the key to it?", "is that higher than its depreciation?"
        return False
    return False


def _names_something(token: str, *, first: bool) -> bool:
    """A name-like token: a code or option name (\\endhead, json.loads, --noout), letters with
    digits (BM25, FY2016, 3M), or a capitalised word that does not start the question."""
    if re.search(r"[\\_.:/]|\w-\w", token) or token.startswith("-"):
        return True
    if re.search(r"\d", token) and re.search(r"[A-Za-z]", token):
        return True
    return not first and len(token) > 1 and token[0].isupper()


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
