"""The extractive backend: no model; the passages' own units that answer the question, cited.

A unit is a sentence, a list item, a table row or a listing line (units.py). Each is scored by
how close it is in meaning to the question, by how many of the question's rare terms it holds,
and by whether it is the kind of thing the question asks for (a figure for "how much", a date
for "when", steps or commands for "how do I"). The answer leads with the shortest unit among
the best that holds the asked kind, quoted as written (a listing line as code, a table row with
only the asked year's columns), then up to two supporting sentences.
"""

from __future__ import annotations

import math
import re
from typing import Iterator, Sequence

import numpy as np

from ingest.text import sentence_spans
from retrieval.answer.calculations import parse_calculation
from retrieval.answer.figures import Unclear, Worked, render, render_unclear, work_out
from retrieval.answer.units import Unit, passage_units, trimmed_row
from retrieval.keywords import YEAR, keyword_terms, named_years
from retrieval.models import Hit

# What a question asks for, by its wording.
_ASKS_VALUE = re.compile(
    r"\b(how (much|many|long|large|big|wide|high|often|far)|what (is|was|were|are) the (\w+ ){0,4}"
    r"(amount|value|number|total|default|size|width|height|length|rate|ratio|percentage|share|margin|"
    r"cost|price|revenue|income|expenses?|limit|maximum|minimum|count|level|score|sum)|"
    r"what percent(age)?|default|in (usd|millions|billions|thousands|percent))\b",
    re.I,
)
_ASKS_DATE = re.compile(r"\b(when|what (year|date|day|month|time)|since when|how long ago)\b", re.I)
_ASKS_STEPS = re.compile(
    r"\b(how (do|can|should|would) (i|we|you|one)|how to|steps?|command|configure|set up|install)\b", re.I
)
# A figure, in digits or in words as legal and plain prose writes it ("within ninety days").
_NUMBER = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty"
    r"|sixty|seventy|eighty|ninety|hundred|thousand|million|billion|dozen|half)\b",
    re.I,
)
_MONTH = r"jan(uary)?|feb(ruary)?|march|april|may|june|july|aug(ust)?|sep(tember)?|oct(ober)?|nov(ember)?|dec(ember)?"
# Numbers that are no amount: a date's day and year, a page, note or section number.
_NOT_AMOUNT = re.compile(
    rf"\b({_MONTH})\.? \d{{1,2}}\b|\b\d{{1,2}} (jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b|"
    r"\b(page|note|item|section|part|chapter|table|figure|exhibit)s? \d[\d.()a-z]*|" + YEAR.pattern,
    re.I,
)
_DATE = re.compile(rf"\b((19|20)\d\d|{_MONTH})\b", re.I)
_IDENTIFIER = re.compile(
    r"(?<![\w-])--?[A-Za-z][\w-]*"  # an option
    r"|\\[A-Za-z@]+"  # a TeX macro
    r"|\b\w+(?:::\w+)+"  # a qualified name
    r"|\b[A-Za-z]\w*_\w+"  # snake_case
    r"|\b[a-z]+[A-Z]\w*"  # camelCase
)
# How a unit is scored: its cosine to the question, plus these weights times the share of the
# question's rare terms it holds, of its identifiers, and whether it is of the asked kind.
RARE_WEIGHT = 0.3
IDENTIFIER_WEIGHT = 0.3
KIND_WEIGHT = 0.1
LEAD_WITHIN = 0.05  # the lead is the shortest unit this close to the best...
KIND_REACH = 0.3  # ...of those of the asked kind, when the best of them is this close to the best
SUPPORT_WITHIN = 0.15  # supporting units: this close to the best, and at least
MIN_SIMILARITY = 0.25  # this similar to the question
MAX_SUPPORT = 2
MAX_EMBEDDED = 16  # units embedded per answer, the best on words first
MIN_WORDS, MAX_WORDS = 4, 80  # a sentence or list item of readable length
_STATEMENT_END = "\"')]\u201d\u2019"


class ExtractiveBackend:
    """No model: answers with the passages' own units that best answer the question.

    It never writes a word that is not in a passage, so it cannot invent; each unit is followed
    by the citation of the passage it was taken from.
    """

    name = "extractive"

    def __init__(self, embedder):
        self.embedder = embedder

    @classmethod
    def from_settings(cls, settings, embedder) -> "ExtractiveBackend":
        return cls(embedder)

    def stream(self, question: str, passages: Sequence[Hit]) -> Iterator[str]:
        calculation = parse_calculation(question)
        outcome = work_out(calculation, passages, self._similarity) if calculation is not None else None
        if isinstance(outcome, Worked):
            # A figure to work out: the result, its working, and the row of every figure cited.
            yield render(outcome, [f.cells[0].passage + 1 for f in outcome.found])
            return
        if isinstance(outcome, Unclear):
            # Never a guessed figure: what could not be told, and the rows that came closest.
            yield render_unclear(outcome, [c.passage + 1 for c in outcome.cells])
            return
        candidates = self._candidates(passages)
        if not candidates:
            return
        # A question made standalone from a follow-up ends with what was asked last, and a long
        # request holds its question among instructions ("... what is the FY2015 ratio? Round
        # to two decimals."): that sentence weighs as much as the whole.
        latest = _asking_sentence(question)
        # A table row or listing line does not name its subject (the company, the package):
        # it is compared with the question together with its document's title.
        read = [
            u.text if u.kind in ("sentence", "item") else f"{passages[ref - 1].title}: {u.text}"
            for ref, u in candidates
        ]
        units = [u for _, u in candidates]
        asked = _asked_kinds(question)
        years = named_years(question)
        lexical = (
            RARE_WEIGHT * _rare_term_share(question, read)
            + IDENTIFIER_WEIGHT * _identifier_share(question, units)
            + KIND_WEIGHT * np.array([_kind_match(u, asked, years) for u in units])
        )
        # Embedding is the cost of an answer: only the units that score best on words are
        # embedded (the others cannot be chosen). The question's embedding is the one search
        # made (remembered); the units, short, are embedded apart from it, not padded to it.
        embedded = np.sort(np.argsort(-lexical, kind="stable")[:MAX_EMBEDDED])
        asked_vector = self.embedder.embed_query(question)
        latest_vector = asked_vector if latest == question else self.embedder.embed_query(latest)
        vectors = self.embedder.embed([read[i] for i in embedded])
        similarity = np.full(len(units), -np.inf)
        similarity[embedded] = 0.5 * (vectors @ asked_vector) + 0.5 * (vectors @ latest_vector)
        score = similarity + lexical
        order = [int(i) for i in np.argsort(-score, kind="stable")]
        best = score[order[0]]
        lead = self._lead(order, score, units, asked)
        # Support is prose; after a table row, other rows too (a ratio needs two figures).
        kinds = ("sentence", "item", "row") if units[lead].kind == "row" else ("sentence", "item")
        supporting = [
            i
            for i in order
            if i != lead
            and units[i].kind in kinds
            and similarity[i] >= MIN_SIMILARITY
            and score[i] >= best - SUPPORT_WITHIN
        ][:MAX_SUPPORT]
        previous = None
        for i in [lead] + supporting:
            ref, unit = candidates[i]
            if previous is not None:  # a row or a listing line stands as a paragraph of its own
                yield "\n\n" if {previous.kind, unit.kind} & {"row", "code"} else " "
            yield f"{_quote(unit, years)} [{ref}]"
            previous = unit

    def _similarity(self, phrases: list[str], texts: list[str]) -> np.ndarray:
        """Cosine of each phrase (a figure's names) to each text (table rows' labels), for figures.py."""
        vectors = self.embedder.embed([*phrases, *texts])  # one call: each costs about as much as its texts
        return vectors[: len(phrases)] @ vectors[len(phrases) :].T

    def _candidates(self, passages: Sequence[Hit]) -> list[tuple[int, Unit]]:
        candidates: list[tuple[int, Unit]] = []
        seen: set[str] = set()
        for ref, passage in enumerate(passages, start=1):
            for unit in passage_units(passage.text):
                key = " ".join(unit.text.lower().split())
                if key in seen or not self._answers_alone(unit):  # overlapping chunks repeat units
                    continue
                seen.add(key)
                candidates.append((ref, unit))
        return candidates

    def _answers_alone(self, unit: Unit) -> bool:
        """A unit that reads on its own: a full sentence or list item of readable length (not a
        heading, not a run-on page header), a table row, a listing line."""
        if unit.kind in ("row", "code"):
            return True
        if not MIN_WORDS <= unit.words <= MAX_WORDS:
            return False
        return unit.kind == "item" or unit.text.rstrip(_STATEMENT_END)[-1:] in ".!?"

    def _lead(self, order: list[int], score: np.ndarray, units: list[Unit], asked: set[str]) -> int:
        """The shortest of the best units that hold what was asked (a figure for "how much"),
        when one is within kind_reach of the best unit overall; else the shortest of the best."""
        holding = [i for i in order if _holds(units[i], asked)] if asked else []
        pool = holding if holding and score[holding[0]] >= score[order[0]] - KIND_REACH else order
        near = [i for i in pool if score[i] >= score[pool[0]] - LEAD_WITHIN]
        return min(near, key=lambda i: (units[i].words, -score[i]))


def _asking_sentence(question: str) -> str:
    """The last sentence that asks (ends with "?"), else the last sentence."""
    sentences = [question[s:e] for s, e in sentence_spans(question)]
    if len(sentences) < 2:
        return question
    return next((s for s in reversed(sentences) if s.rstrip().endswith("?")), sentences[-1])


def _asked_kinds(question: str) -> set[str]:
    asked = set()
    if _ASKS_VALUE.search(question):
        asked.add("value")
    if _ASKS_DATE.search(question):
        asked.add("date")
    if _ASKS_STEPS.search(question):
        asked.add("steps")
    return asked


def _holds(unit: Unit, asked: set[str]) -> bool:
    if "value" in asked and not _NUMBER.search(_NOT_AMOUNT.sub("", unit.text)):
        return False
    if "date" in asked and not _DATE.search(unit.text):
        return False
    if "steps" in asked and unit.kind not in ("code", "item") and "`" not in unit.text:
        return False
    return True


def _kind_match(unit: Unit, asked: set[str], years: set[str]) -> float:
    """+1 for a unit of the asked kind, -1 for a table row without the asked year's column."""
    if unit.kind == "row" and years and not any(y in unit.text for y in years):
        return -1.0
    if not asked:
        return 0.0
    return 1.0 if _holds(unit, asked) else 0.0


def _rare_term_share(question: str, texts: list[str]) -> np.ndarray:
    """For each unit's text, the share of the question's terms it holds, each term weighted by
    how rare it is among the units (a macro name or a row label counts more than "company")."""
    unit_terms = [set(keyword_terms(text)) for text in texts]
    held = {t: sum(t in ut for ut in unit_terms) for t in keyword_terms(question)}
    weight = {t: math.log(1 + len(texts) / n) for t, n in held.items() if n}  # a term no unit holds tells nothing
    total = sum(weight.values())
    if not total:
        return np.zeros(len(texts))
    return np.array([sum(w for t, w in weight.items() if t in ut) / total for ut in unit_terms])


def _identifier_share(question: str, units: list[Unit]) -> np.ndarray:
    """For each unit, the share of the question's identifiers (an option "--novalid", a macro
    "\\heavyrulewidth", "Acquire::http::Proxy", "max_connections", "getUserById") it holds as
    written: names the embedding model reads as noise, and which answer when they match."""
    names = {m.group().lower() for m in _IDENTIFIER.finditer(question)}
    if not names:
        return np.zeros(len(units))
    return np.array([sum(name in u.text.lower() for name in names) / len(names) for u in units])


def _quote(unit: Unit, years: set[str]) -> str:
    if unit.kind == "code":
        return unit.text if unit.text.startswith("`") else f"`{unit.text}`"
    if unit.kind == "row":
        return trimmed_row(unit.text, years)
    return unit.text
