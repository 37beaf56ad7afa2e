"""Answer quality on a set with gold answers: does the answer state the gold fact, is its first
citation an evidence page, and how often is a figure it works out right? (`docent eval` runs it
when the set's lines carry "answer".)

A gold answer with numbers is found when each of its numbers is in the answer, compared as
values: "1,234.5", "1234.5" and "$1.2345 thousand" are the same; a figure stated in millions in
a table ("1,577") matches a gold "$1,577 million" and "$1.577 billion" (0.5% tolerance, so a
rounded figure still counts), and a gold figure given to fewer decimals than the answer states
("1.6%" for "1.63%") matches the answer's figure rounded to them; a year ("2019") is
found only as itself. A gold answer without numbers
is found when the answer holds at least 60% of its words (stop words aside); a gold answer of
several spans is found when each of them is.

A worked figure is an answer that leads with a result it computed ("Percentage change in net
debt, 2018 to 2019: **25.19%**, worked out from the figures below"); it is right when that lead
states the gold figure, a percentage and the fraction it is ("87.31%", "0.8731") being the same.
"""

from __future__ import annotations

import re
from typing import Callable

from retrieval.keywords import keyword_terms

_SCALE = {"thousand": 1e3, "k": 1e3, "million": 1e6, "m": 1e6, "mm": 1e6, "billion": 1e9, "bn": 1e9, "b": 1e9}
_NUMBER = re.compile(
    r"(?<![\w.])[-−(]?\$?\s?(\d[\d,]*(?:\.\d+)?|\.\d+)\s*(%|percent|thousand|million|billion|bn|mm|[kmb]\b)?", re.I
)
_WORKED = re.compile(r"^(?P<result>[^\n]*?\*\*[^*]+\*\*), worked out from", re.M)
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


def _decimals(text: str) -> list[int]:
    """The decimals each number of text is written with."""
    return [len(m.group(1).split(".")[1]) if "." in m.group(1) else 0 for m in _NUMBER.finditer(text)]


def states(answer: str, gold: str, *, as_fraction: bool = False) -> bool:
    """Whether the answer states the gold fact (see the module's note). as_fraction: the
    answer's figures also read as percentages of one (0.8731 for 87.31, and 87.31 for 0.8731)."""
    wanted = numbers(gold)
    if wanted:
        stated = [v for readings in numbers(answer) for v in readings]
        if as_fraction:
            stated += [v * 100 for v in stated] + [v / 100 for v in stated]
        scaled = stated + [v * scale for v in stated for scale in (1e3, 1e6, 1e9)]  # a table in thousands...
        return all(
            any(s == readings[0] for s in stated)
            if year
            else any(_same(s, w, places) for w in readings for s in scaled)
            for readings, places, year in zip(wanted, _decimals(gold), _years(gold))
        )
    words = set(keyword_terms(gold))
    if not words:
        return gold.strip().lower() in answer.lower()
    return len(words & set(keyword_terms(answer))) >= TEXT_RECALL * len(words)


def _years(text: str) -> list[bool]:
    """Whether each number of text is a year ("2019"), which names a period: it is stated only
    as itself, not within a figure's rounding (2018 is not 2019)."""
    return [bool(re.fullmatch(r"(?:19|20)\d\d", m.group(1))) and not m.group(2) for m in _NUMBER.finditer(text)]


def _same(stated: float, wanted: float, places: int) -> bool:
    if abs(stated - wanted) <= TOLERANCE * max(abs(wanted), 1e-9):
        return True
    return places > 0 and round(stated, places) == round(wanted, places)


def worked_result(answer: str) -> str | None:
    """What a worked figure leads with (its name, period and result: "Working capital, 2022:
    **-1,561 million**"), or None when the answer works nothing out."""
    match = _WORKED.search(answer)
    return match.group("result") if match else None


def evaluate_answers(
    ask: Callable[[str], object],
    questions: dict[str, str],
    gold: dict[str, list[str]],
    evidence: dict[str, set[str]],
    *,
    kinds: dict[str, str] | None = None,
    halves: dict[str, str] | None = None,
) -> dict:
    """ask(question id) -> an Answer; gold: question id -> the facts it must state; evidence:
    question id -> {"source#page", ...} (empty where the set names no pages). Returns the share
    of answers that state the gold facts, the share whose first citation is an evidence page,
    the worked figures stated and right, the same by kind of answer and by half of the set, and
    each question's outcome."""
    rows = []
    for qid, question in questions.items():
        if qid not in gold:
            continue
        answer = ask(qid)
        first = answer.citations[0] if answer.citations else None
        cited = f"{first.source}#{first.page}" if first is not None else None
        result = worked_result(answer.text)
        rows.append(
            {
                "id": qid,
                "kind": (kinds or {}).get(qid, ""),
                "half": (halves or {}).get(qid, ""),
                "states_gold": all(states(answer.text, g) for g in gold[qid]),
                "first_citation_evidence": cited in evidence.get(qid, set()),
                "first_citation": cited,
                "worked": result,
                "worked_right": result is not None and all(states(result, g, as_fraction=True) for g in gold[qid]),
                "answer": answer.text,
            }
        )
    if not rows:
        return {}
    summary = _summary(rows, with_evidence=any(evidence.values()))
    for key, name in (("kind", "by_kind"), ("half", "by_half")):
        groups = sorted({r[key] for r in rows if r[key]})
        if groups:
            summary[name] = {g: _summary([r for r in rows if r[key] == g], any(evidence.values())) for g in groups}
    return {**summary, "per_question": rows}


def _summary(rows: list[dict], with_evidence: bool) -> dict:
    worked = [r for r in rows if r["worked"] is not None]
    out = {
        "questions": len(rows),
        "gold_in_answer": sum(r["states_gold"] for r in rows) / len(rows),
        "worked_stated": len(worked),
        "worked_right": sum(r["worked_right"] for r in worked),
    }
    if with_evidence:
        out["first_citation_evidence"] = sum(r["first_citation_evidence"] for r in rows) / len(rows)
    return out
