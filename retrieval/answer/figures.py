"""Worked figures: a calculation (calculations.py) done with the figures of the passages' tables,
shown with its working and every figure's row cited, or, when a figure cannot be told for
sure, what was found and what is missing, never a guess.

Each figure the calculation needs is named by a phrase at a year. The cell it is read from is
the one whose names (its row's label, its column's name, its table's title) hold every word
of the phrase that the passages' tables use, in the column of that year; among several, the
one whose label says nothing more than the phrase. The figure is taken only when one cell
fits clearly better than any other that would give another value: two rows that fit alike,
a year no column shows, or a phrase no row fits leave the result unstated. Figures of tables
that state their units ("in thousands") are compared in those units, and a result is stated
only when it is plausible for what was asked (a share of a total is no more than the total).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np

from retrieval.answer.calculations import LATEST, PREVIOUS, Calculation, listed_in_words
from retrieval.answer.cells import Cell, passage_cells, statements_of
from retrieval.answer.formulas import Figure, Number, Operation, figures_of, formula_text, words
from retrieval.answer.glossary import BALANCE_SHEET, CASH_FLOWS, item_within
from retrieval.answer.units import trimmed_row
from retrieval.keywords import stemmer as _stemmer
from retrieval.models import Hit

_WORD = re.compile(r"\w+")
# "attributable to General Mills" only says whose; the part of noncontrolling (minority)
# interests is another quantity (ASC 810, IFRS 10), so that note stays in the label.
_OWNER_NOTE = re.compile(r"\s*,?\s*\battributable to\b(?!.*\b(?:non-?controlling|minority)\b).*$", re.I)
_SIGN_NOTE = re.compile(r"\((?:net\s+)?(?:loss|losses|deficit|benefit|gain|gains|expense|income)\)", re.I)
_TOTAL = re.compile(r"\btotal\s+", re.I)
_CHANGE_TERMS = frozenset({"chang", "increas", "decreas", "growth", "movement", "declin"})
_PERCENT_ASKED = re.compile(r"%|\b(?:percent\w*|rate|ratio|margin|share|proportion)\b", re.I)
_NAMES_NOTHING = frozenset(
    "a an the of in on at for to from by with and or as is are was were be been its it their our this that these those".split()
)
# A phrase's words that only say a figure is as printed: they name no row.
_AS_PRINTED = {"unadjust", "report", "gaap", "consolid", "statement", "incur", "record", "recogn", "compani"}
CLEAR_LEAD = 0.2  # how much better than any rival giving another value a cell must fit
LABEL_FIT_WEIGHT = 0.3
COLUMN_FIT_WEIGHT = 0.2
STATEMENT_WEIGHT = 0.1  # in a financial statement; as much again in the one that reports the figure
MIN_LABEL_FIT = 0.5  # at most half of a label's words may be words the figure's name lacks
SIMILAR_CANDIDATES = 12  # cells whose labels are embedded, the best on words first
MIN_SHARE_BY_MEANING = 0.6  # ...when they cover this much of the name's words
SAME_MEANING = 0.85  # cosine of a label to a name that means the same (MiniLM puts "operating income"
# and "Non-operating income" at 0.82, "cost of goods sold" and "Cost of products sold" at 0.87)
SCALE_NAMES = {1e3: "thousand", 1e6: "million", 1e9: "billion"}
FIGURE_PASSAGES = 3  # passages kept for each figure
SOURCES_SEARCHED = 2  # documents searched, those of the best hits first
Similarity = Callable[[list[str], list[str]], np.ndarray]  # cosine of each phrase to each text


@dataclass(frozen=True)
class Found:
    figure: Figure
    cells: tuple[Cell, ...]  # one, or every period of the row for an average over them
    value: float  # as used: an outflow as the amount paid, in the common scale


@dataclass(frozen=True)
class Worked:
    calculation: Calculation
    result: str  # as stated: "25.19%", "-12.6", "$940 million"
    value: float
    working: str  # the formula with the figures put in
    found: tuple[Found, ...]


@dataclass(frozen=True)
class Unclear:
    """A calculation whose figures could not all be told: why, and the rows that came closest."""

    calculation: Calculation
    problems: tuple[str, ...]
    cells: tuple[Cell, ...]
    progress: float = 0.0  # how far its figures were found (figures.py's stages, averaged)


def work_out(
    calculation: Calculation, passages: Sequence[Hit], similarity: Similarity | None = None
) -> Worked | Unclear | None:
    """The calculation done with the passages' figures; Unclear when a figure cannot be told
    for sure or the result is implausible; None when no table row is about any of its figures
    (the question is better answered from the passages' words)."""
    cells = passage_cells(passages)
    if not cells:
        return None
    where = _where(passages, calculation.statements)
    attempts = [calculation.expression, *calculation.alternatives]
    unclears = []
    for expression in attempts:
        outcome = _work_out(calculation, expression, cells, where, similarity, passages)
        if isinstance(outcome, Worked):
            return outcome
        if outcome is not None:
            unclears.append(outcome)
    # Of readings that all fail, the one that got furthest says best what is missing.
    unclear = max(unclears, key=lambda u: u.progress, default=None)
    # A figure only read, not worked out, is better quoted from the passages than refused.
    return None if calculation.kind == "value" else unclear


def _work_out(calculation, expression, cells, where, similarity, passages) -> Worked | Unclear | None:
    calculation = replace(calculation, expression=expression)  # the reading tried
    if calculation.comparison is not None and calculation.comparison.among:
        return _rows_compared(calculation, cells, where, passages)
    found: dict[Figure, Found] = {}
    problems: list[str] = []
    closest: list[Cell] = []
    any_row = False
    stages = []
    over_periods = calculation.kind in ("average", "comparison") and isinstance(expression, Figure)
    for figure in figures_of(expression):
        match = _find(
            figure,
            cells,
            where,
            similarity,
            every_period=over_periods,
            percent=_percent_wanted(calculation),
            on_date=calculation.on_date,
        )
        any_row = any_row or bool(match.candidates)
        closest += [c for c in match.candidates if c not in closest]
        stages.append(match.stage)
        if match.problem:
            problems.append(match.problem)
        else:
            found[figure] = match.found
    if not any_row:
        return None
    if problems:
        return Unclear(calculation, tuple(problems), tuple(closest[:4]), progress=sum(stages) / len(stages))
    used = [(f.figure, c) for f in found.values() for c in f.cells]
    twice = [a for i, (a, c) in enumerate(used) for b, d in used[i + 1 :] if c is d and a.phrase != b.phrase]
    if twice:
        return Unclear(calculation, (f"two of its figures would be the same row ({twice[0].phrase!r})",), _cells(found))
    for item in _one_item_over_years(found):
        settled = _from_one_row(item, cells, where, similarity)
        if settled is None:
            years = " and ".join(_period_name(f.year) for f in item)
            problem = f"{item[0].phrase!r} for {years} would come from rows labelled differently"
            return Unclear(calculation, (problem,), tuple(c for f in item for c in found[f].cells), 0.9)
        found.update(settled)
    if calculation.kind == "comparison":
        return _items_compared(calculation, found) if calculation.comparison.items else _compared(calculation, found)
    values, common_scale, problem = _in_one_scale(found)
    if problem:
        return Unclear(calculation, (problem,), tuple(c for f in found.values() for c in f.cells))
    figures = tuple(found[f] for f in figures_of(expression))
    # The percentage change of a percentage (a rate, a margin) may mean its change in points
    # or its relative change: both are stated, points first.
    points = calculation.kind == "percent change" and all(c.percent for c in _cells(found))
    if over_periods:
        (only,) = found.values()
        value = sum(values[id(c)] for c in only.cells) / len(only.cells)
    else:
        try:
            value = _evaluate(expression, {f: values[id(found[f].cells[0])] for f in found})
        except (ZeroDivisionError, ValueError, OverflowError):
            return Unclear(calculation, ("the arithmetic has no value (a division by zero)",), _cells(found))
    if not math.isfinite(value):
        return Unclear(calculation, ("the arithmetic has no value",), _cells(found))
    if calculation.kind in ("formula", "value") and isinstance(expression, Figure):
        # A row labelled with the measure itself is stated as printed: "Gross margin | 8,574" is
        # the company's gross margin in millions, though a textbook's is a percentage.
        calculation = replace(calculation, percent=False)
    implausible = _implausible(calculation, found, value)
    if implausible:
        return Unclear(calculation, (implausible,), _cells(found))
    if points:
        change = _evaluate(expression.left, {f: values[id(found[f].cells[0])] for f in found})
        result = f"{_plain_number(change, calculation.decimals)} percentage points ({_stated(calculation, value, found, None)})"
    else:
        result = _stated(calculation, value, found, common_scale)
    return Worked(
        calculation=calculation,
        result=result,
        value=value,
        working=_working(expression, found, values, common_scale, over_periods),
        found=figures,
    )


@dataclass(frozen=True)
class _Match:
    found: Found | None = None
    problem: str | None = None
    candidates: tuple[Cell, ...] = ()
    stage: int = 0  # 0: no row is the figure's; 1: its row, but no one cell for the period; 2: found


def _find(
    figure: Figure,
    cells: list[Cell],
    where: _Where,
    similarity,
    every_period: bool,
    percent: bool | None = None,
    on_date: str | None = None,
) -> _Match:
    """The cell the figure is read from (see the module's note). on_date: the day of the year
    the question names ("july 27"): of a row's columns of one year (a year's quarters), the
    one headed by that day."""
    scored = _scores(figure, cells, where, similarity)
    if not any(s.covered for s in scored) and _TOTAL.search(figure.phrase):
        # "the total basic earnings per share" where no row says "total": the row itself.
        loose = replace(
            figure,
            phrase=_TOTAL.sub("", figure.phrase).strip(),
            also=tuple(_TOTAL.sub("", n).strip() for n in figure.also),
        )
        scored = _scores(loose, cells, where, similarity) or scored
    if not scored:
        return _Match(problem=f"no table row is about {figure.phrase!r}")
    fitting = [s for s in scored if s.covered]
    shown = tuple(dict.fromkeys(s.cell for s in scored[:6]))
    if not fitting:
        return _Match(problem=f"no table row is labelled as {figure.phrase!r}", candidates=shown)
    if every_period:
        return _every_period(figure, fitting, shown, percent)
    in_period = _in_period(figure, fitting)
    if not in_period:
        period = _period_name(figure.year)
        return _Match(problem=f"{figure.phrase!r} has no figure for {period}", candidates=shown, stage=1)
    if on_date is not None:
        dated = [s for s in in_period if _names_day(s.cell.column, on_date)]
        in_period = dated or in_period
    in_period.sort(key=lambda s: -s.score)
    best = in_period[0]
    # The same figure printed in a statement and in a summary of it: the statement is cited,
    # in its finest print (thousands before millions).
    same = [s for s in in_period if _same_figure(s.cell, best.cell) and s.score > best.score - CLEAR_LEAD + 1e-9]
    best = max(same, key=lambda s: (bool(statements_of(s.cell)), -(s.cell.scale or 1), s.score))
    rivals = [s for s in in_period if not _same_figure(s.cell, best.cell)]
    if rivals:
        rival = rivals[0]
        top = max(s.score for s in same)
        clearly = (any(s.exact for s in same) and not rival.exact) or top - rival.score >= CLEAR_LEAD - 1e-9
        if not clearly:
            labels = " or ".join(dict.fromkeys(f"{_cell_name(s.cell)!r}" for s in [best, *rivals[:2]]))
            return _Match(
                problem=f"{figure.phrase!r} could be {labels}",
                candidates=(best.cell, *(r.cell for r in rivals[:3])),
                stage=1,
            )
    value = abs(best.cell.value) if figure.outflow else best.cell.value
    return _Match(found=Found(figure, (best.cell,), value), candidates=shown, stage=2)


@dataclass(frozen=True)
class _Where:
    """What the passages say around their tables, and which statements the question names."""

    context: set[str]  # every word the passages and their documents' names use
    headings: set[str]  # the words of their documents' titles and pages' headings
    statements: frozenset[str]  # the financial statements the question says to use


@dataclass(frozen=True)
class _Scored:
    cell: Cell
    score: float
    share: float  # of the name's words (weighted) that the cell's names hold
    covered: bool  # every word of the name that the tables use is in the cell's names
    exact: bool  # covered, and its label holds no word the name does not
    labelled: bool = True  # its label may name the figure (no more than half other words, no change)


def _scores(figure: Figure, cells: list[Cell], where: _Where, similarity) -> list[_Scored]:
    """Each cell's fit to the best fitting of the figure's names, best first.

    A name's words are weighted by how rare they are among the tables' row names; a cell
    covers the name when its label, column and table title hold every weighted word, its label
    holds at least one of them, and at most half of its label's words are not the name's (so
    "Other costs - COGS" is not "COGS"). Cells in a financial statement, and in the statement
    the figure is reported in, fit better than the same label in a note or a summary."""
    named = [_cell_terms(c.label, c.column, c.title) for c in cells]
    held = [(label, column, title) for label, column, title, _ in named]
    names_of = [every for *_, every in named]  # every word naming each cell
    vocabulary = set().union(*names_of)
    distinct: dict[frozenset, int] = {}
    for key in names_of:
        distinct[key] = distinct.get(key, 0) + 1
    documents = len(distinct)
    holders: dict[str, int] = {}
    for key in distinct:
        for term in key:
            holders[term] = holders.get(term, 0) + 1
    kinds = where.statements | ({figure.statement} if figure.statement else set())
    best: dict[int, tuple[float, float, float, float]] = {}  # cell -> (share, label fit, column fit, name)
    names = [figure.phrase, *figure.also]
    names += [n for n in dict.fromkeys(map(_without_quantity, names)) if n and n not in names]
    for n, name in enumerate(names):
        wanted = _label_terms(name) - _AS_PRINTED
        known = wanted & vocabulary
        # A name no row uses but the passages do (the company's, "AVX's total sales") tells
        # nothing; any other word no row uses means the figure asked for is not among them.
        missing = wanted - vocabulary - (where.context & _proper_terms(name)) - where.headings
        weight = {t: math.log(1 + documents / holders[t]) for t in known}
        total = sum(weight.values()) + sum(math.log(1 + documents) for _ in missing)
        if not total:
            continue
        # A row whose label is made of the name's own words is named by them: another row of
        # its table does not hold those words by the table's title alone ("Land" and "Leasehold
        # improvements" under "Land, property and equipment", asked "land and leasehold
        # improvements").
        named_rows: dict[tuple[int, int], set[frozenset]] = {}
        for cell, (label, _, _) in zip(cells, held):
            if label and label <= wanted:
                named_rows.setdefault((cell.passage, cell.table), set()).add(frozenset(label))
        for i, (label, column, title) in enumerate(held):
            if not cells[i].label.strip():
                continue  # a row without a label (a table's unnamed total) names nothing
            if label and not label & wanted:
                continue
            others = named_rows.get((cells[i].passage, cells[i].table), set()) - {label}
            present = (label | column | title.difference(*others) if others else names_of[i]) & weight.keys()
            if not present:
                continue
            # Rounded: the sums run over sets, whose order (and so the last bits of a float sum)
            # changes from process to process; ties between names must stay ties.
            share = round(sum(weight[t] for t in present) / total, 9)
            if figure.statement == BALANCE_SHEET and CASH_FLOWS in statements_of(cells[i]):
                continue  # a balance's row in a cash flow statement is its change ("Inventories | (298)")
            fits = (
                share,
                len(label & wanted) / len(label) if label else 1.0,
                len(column & wanted) / len(column) if column else 1.0,
                n,
            )
            if i not in best or fits[:3] > best[i][:3]:
                best[i] = fits
    scored = []
    for i, (share, label_fit, column_fit, n) in best.items():
        cell = cells[i]
        # "Net decrease in cash" is a change in cash, not cash: a label that names a change the
        # name does not is another quantity.
        changes = (held[i][0] & _CHANGE_TERMS) - _terms(names[int(n)])
        labelled = label_fit >= MIN_LABEL_FIT and not changes
        covered = share >= 0.999 and labelled
        exact = covered and label_fit == 1.0
        score = share + LABEL_FIT_WEIGHT * label_fit + COLUMN_FIT_WEIGHT * column_fit + _statement_fit(cell, kinds)
        scored.append(_Scored(cell, score, share, covered, exact, labelled))
    scored.sort(key=lambda s: -s.score)
    if similarity is not None and not any(s.covered for s in scored):
        scored = _same_meaning(names, scored, similarity)
    return scored


_QUANTITY = re.compile(r"\b(?:amounts?|values?|figures?)\b", re.I)


def _without_quantity(name: str) -> str:
    """A name without the words that only say it is a quantity ("the cash amount", "the
    Buildings value"): another name for a row that does not print them. "" when none."""
    rest = " ".join(_QUANTITY.sub(" ", name).split())
    return rest if rest != name and _terms(rest) else ""


@lru_cache(maxsize=16384)  # the same passages' cells are scored for every figure
def _cell_terms(label: str, column: str, title: str) -> tuple[frozenset[str], ...]:
    """The words of a cell's label, column and title, and all of them."""
    terms = (_label_terms(label), _column_terms(column), _terms(title))
    return (*terms, terms[0] | terms[1] | terms[2])


@lru_cache(maxsize=8192)
def _label_terms(label: str) -> frozenset[str]:
    """The words of what a row's label names, without what only says whose it is or which way
    its sign goes: "Net earnings attributable to General Mills" names net earnings, "Net income
    (loss)" net income."""
    return _terms(_SIGN_NOTE.sub(" ", _OWNER_NOTE.sub("", label)))


@lru_cache(maxsize=8192)
def _column_terms(column: str) -> frozenset[str]:
    return _terms(_without_years(column))


def _statement_fit(cell: Cell, kinds: set[str]) -> float:
    on = statements_of(cell)
    return (STATEMENT_WEIGHT if on else 0.0) + (STATEMENT_WEIGHT if on & kinds else 0.0)


def _same_meaning(names: list[str], scored: list[_Scored], similarity) -> list[_Scored]:
    """Cells that cover no name word for word but whose label means the same as one of the
    names ("Cost of products sold" for "cost of goods sold"): most of the name's words, and a
    label the embedding model puts very close to it."""
    near = [s for s in scored[:SIMILAR_CANDIDATES] if s.share >= MIN_SHARE_BY_MEANING and s.labelled]
    near = [s for s in near if not _one_of_listed(s.cell, names, scored)]
    if not near:
        return scored
    labels = list(dict.fromkeys(s.cell.label for s in near))
    cosine = similarity(names, labels).max(axis=0)
    same = {label for label, c in zip(labels, cosine) if c >= SAME_MEANING}
    rescored = [_Scored(s.cell, s.score, s.share, s.cell.label in same, False) if s in near else s for s in scored]
    return sorted(rescored, key=lambda s: (-s.covered, -s.score))


def _one_of_listed(cell: Cell, names: list[str], scored: list[_Scored]) -> bool:
    """Whether the cell's row is one of several rows of its table that a name lists ("Land"
    and "Leasehold improvements" of "land and leasehold improvements"): close in meaning to
    the name, but another row is labelled with words of the name its label lacks."""
    label = _label_terms(cell.label)
    others = {
        _label_terms(s.cell.label)
        for s in scored
        if (s.cell.passage, s.cell.table) == (cell.passage, cell.table) and s.cell.label != cell.label
    }
    for name in names:
        wanted = _label_terms(name)
        if label < wanted and any(other and other <= wanted and not other <= label for other in others):
            return True
    return False


def _in_period(figure: Figure, fitting: list[_Scored]) -> list[_Scored]:
    """The fitting cells of the figure's year: a column of that year; for the latest period or
    the one before it (a change with no year said), read off each cell's row. Where a row gives
    an amount and a percentage for a period, the one the phrase asks for."""
    cells = _by_period(figure, fitting)
    wants_percent = bool(_PERCENT_ASKED.search(figure.phrase))
    kept = [s for s in cells if s.cell.percent == wants_percent]
    rows_kept = {(s.cell.passage, s.cell.table, s.cell.row) for s in kept}
    return kept + [s for s in cells if (s.cell.passage, s.cell.table, s.cell.row) not in rows_kept]


def _by_period(figure: Figure, fitting: list[_Scored]) -> list[_Scored]:
    if figure.year is None:
        # No year said: a row with one figure, or the one cell fitting it.
        return [s for s in fitting if not s.cell.periods or _row_periods(s.cell, fitting) == {s.cell}]
    if figure.year > 0:
        return [s for s in fitting if s.cell.periods == {str(figure.year)}]
    out = []
    for s in fitting:
        periods = sorted(
            {
                int(next(iter(c.cell.periods)))
                for c in fitting
                if _same_row(c.cell, s.cell) and len(c.cell.periods) == 1
            },
            reverse=True,
        )
        wanted = -figure.year - 1  # LATEST -> the first, PREVIOUS -> the second
        if len(periods) >= 2 and s.cell.periods == {str(periods[wanted])}:
            out.append(s)
    return out


def _of_kind(cells: list[Cell], percent: bool) -> list[Cell]:
    """The percentages (or the amounts) of cells that print both, as asked; all, where none is."""
    return [c for c in cells if c.percent == percent] or cells


def _names_day(column: str, day: str) -> bool:
    """Whether a column's name holds the day ("july 27" in "Three months ended July 27, 2019")."""
    month, number = day.split()
    return bool(re.search(rf"\b{month}\s+0?{number}\b", column, re.I))


def _percent_wanted(calculation: Calculation) -> bool | None:
    """Whether a row's percentages (True) or its amounts (False) are asked for where it prints
    both for a period; None: as the phrase says."""
    comparison = calculation.comparison
    if comparison is not None and comparison.threshold is not None:
        return comparison.threshold_percent
    return None


def _every_period(figure: Figure, fitting: list[_Scored], shown, percent: bool | None = None) -> _Match:
    """Every period of the best fitting row (for an average over them, or to compare them);
    where the row prints an amount and a percentage for a period, the one asked for."""
    best = max(fitting, key=lambda s: s.score)
    rivals = [s for s in fitting if not _same_row(s.cell, best.cell) and s.score > best.score - CLEAR_LEAD]
    if rivals and not (best.exact and not any(r.exact for r in rivals)):
        return _Match(
            problem=f"{figure.phrase!r} could be {_cell_name(best.cell)!r} or {_cell_name(rivals[0].cell)!r}",
            candidates=shown,
            stage=1,
        )
    row = [s.cell for s in fitting if _same_row(s.cell, best.cell) and len(s.cell.periods) == 1]
    row = _of_kind(row, bool(_PERCENT_ASKED.search(figure.phrase)) if percent is None else percent)
    by_period: dict[str, Cell] = {}
    for cell in row:
        by_period.setdefault(next(iter(cell.periods)), cell)  # a period printed twice: its first column
    row = list(by_period.values())
    if len(row) < 2:
        return _Match(problem=f"{figure.phrase!r} has no figures for several periods", candidates=shown, stage=1)
    return _Match(found=Found(figure, tuple(row), 0.0), candidates=shown, stage=2)


def _row_periods(cell: Cell, fitting: list[_Scored]) -> set[Cell]:
    return {s.cell for s in fitting if _same_row(s.cell, cell)}


def _same_row(a: Cell, b: Cell) -> bool:
    return (a.passage, a.table, a.row) == (b.passage, b.table, b.row)


def _same_figure(a: Cell, b: Cell) -> bool:
    """Whether two cells give the same figure: the same value once in the same scale (a
    statement's thousands and a summary's millions)."""
    if a.percent != b.percent:
        return False
    if a.scale and b.scale and a.scale != b.scale:
        return math.isclose(a.value * a.scale, b.value * b.scale, rel_tol=5e-3)
    return math.isclose(a.value, b.value, rel_tol=1e-9)


def _one_item_over_years(found: dict[Figure, Found]) -> list[list[Figure]]:
    """The figures that are one line item in several years (a change, an average of two
    years) read from rows with different labels: one row's 2019 and another's 2018 make no
    change of either."""
    items: dict[tuple, list[Figure]] = {}
    for figure in found:
        items.setdefault((figure.phrase, figure.also), []).append(figure)
    mixed = []
    for figures in items.values():
        labels = {_plain_label(c.label) for f in figures for c in found[f].cells}
        if len(figures) > 1 and len(labels) > 1:
            mixed.append(figures)
    return mixed


def _plain_label(label: str) -> str:
    """A label as compared between years: "Nonvested as of December 31, 2018" is the 2019 row's."""
    return " ".join(_WORD.findall(_without_years(label).lower()))


def _from_one_row(item: list[Figure], cells: list[Cell], where: _Where, similarity) -> dict[Figure, Found] | None:
    """Every year of one line item read from the best fitting row that has them all, or None
    when no fitting row does."""
    scored = [s for s in _scores(item[0], cells, where, similarity) if s.covered]
    top = max((s.score for s in scored), default=0.0)
    for best in scored:
        if best.score < top - CLEAR_LEAD + 1e-9:
            break  # a row that fits clearly worse ("Winter mooring fees" for "mooring fees") is another item
        row = [s for s in scored if _same_row(s.cell, best.cell)]
        settled = {}
        for figure in item:
            in_year = _in_period(figure, row)
            if not in_year:
                break
            cell = max(in_year, key=lambda s: s.score).cell
            settled[figure] = Found(figure, (cell,), abs(cell.value) if figure.outflow else cell.value)
        else:
            return settled
    return None


def _compared(calculation: Calculation, found: dict[Figure, Found]) -> Worked | Unclear:
    """The period of the row whose figure is highest or lowest, or the periods above or below
    the question's threshold (or how many), compared as _sizes says."""
    (only,) = found.values()
    comparison = calculation.comparison
    cells = list(only.cells)
    if len(calculation.years) >= 2:
        cells = [c for c in cells if int(_period_of(c)) in calculation.years]
        if len(cells) < 2:
            return Unclear(
                calculation, (f"{only.figure.phrase!r} has no figures for the years asked",), only.cells, 0.5
            )
    by_size = _sizes(cells)[1]
    if comparison.threshold is None:
        chosen = _extreme(cells, comparison.most)
        if len(chosen) > 1:
            periods = " and ".join(_period_of(c) for c in chosen)
            return Unclear(calculation, (f"{only.figure.phrase!r} is the same in {periods}",), tuple(cells), 0.9)
    else:
        chosen = _past_threshold(cells, comparison)
        if isinstance(chosen, str):
            return Unclear(calculation, (chosen,), tuple(cells), 0.5)
    result = " and ".join(_period_of(c) for c in chosen) if chosen else "none of them"
    if comparison.threshold is None:
        result = f"{result}, {_as_printed_cell(chosen[0])}"  # the one period, with its figure
    if comparison.count:
        result = f"{len(chosen)}" + (f" ({result})" if chosen else "")
    working = "; ".join(f"{_period_of(c)}: {c.printed}" for c in cells)
    if by_size:
        working += " (printed negative: compared by size)"
    return Worked(
        calculation=calculation,
        result=result,
        value=chosen[0].value if chosen else math.nan,
        working=working,
        found=(only,),
    )


def _past_threshold(cells: list[Cell], comparison) -> list[Cell] | str:
    """The cells above (comparison.most) or below the question's threshold, compared in the
    table's units and as _sizes says; or why they cannot be compared with it."""
    if comparison.threshold_percent != all(c.percent for c in cells):
        kind = "a percentage" if comparison.threshold_percent else "an amount"
        return f"the question compares with {kind}, and the table does not print one"
    limit = comparison.threshold
    scale = cells[0].scale
    if comparison.threshold_scale and scale and all(c.scale == scale for c in cells):
        limit = comparison.threshold * comparison.threshold_scale / scale  # in the table's units
    sizes, _ = _sizes(cells)
    return [c for c, v in zip(cells, sizes) if (v > limit if comparison.most else v < limit)]


def _items_compared(calculation: Calculation, found: dict[Figure, Found]) -> Worked | Unclear:
    """Which of the things the question lists has the highest or lowest figure, each read
    as a figure of its own, in one scale."""
    values, common_scale, problem = _in_one_scale(found)
    if problem:
        return Unclear(calculation, (problem,), _cells(found))
    figures = figures_of(calculation.expression)
    cells = [found[f].cells[0] for f in figures]
    if len({c.percent for c in cells}) > 1:
        return Unclear(calculation, ("it would compare a percentage with an amount",), tuple(cells))
    in_one_scale = [values[id(c)] for c in cells]
    chosen = [cells.index(c) for c in _extreme(cells, calculation.comparison.most, in_one_scale)]
    items = calculation.comparison.items
    if len(chosen) > 1:
        return Unclear(calculation, (f"{' and '.join(items[i] for i in chosen)} are the same",), tuple(cells), 0.9)
    scale = f" (in {SCALE_NAMES[common_scale]}s)" if common_scale in SCALE_NAMES else ""
    working = "; ".join(f"{item}: {cell.printed}" for item, cell in zip(items, cells)) + scale
    if _sizes(cells, in_one_scale)[1]:
        working += " (printed negative: compared by size)"
    best = cells[chosen[0]]
    return Worked(
        calculation=calculation,
        result=(f"{items[chosen[0]]} ({best.label})" if best.label.lower() != items[chosen[0]].lower() else best.label)
        + f", {_as_printed_cell(best)}",
        value=best.value,
        working=working,
        found=tuple(found[f] for f in figures),
    )


_TOTAL_ROW = frozenset({"total", "subtotal"})


def _rows_compared(
    calculation: Calculation, cells: list[Cell], where: _Where, passages: Sequence[Hit]
) -> Worked | Unclear | None:
    """Which row of a table ("which segment", "which currency") has the highest or lowest
    figure in the column the question names: its words are the column's and the table's title
    (the rows are what is compared, so their labels name none of them), in the asked year, or
    the latest the column shows. Total rows are not compared; a column that another fits as
    well and that gives another answer leaves it unstated."""
    figure = calculation.expression
    comparison = calculation.comparison
    year = calculation.years[-1] if calculation.years else None
    vocabulary = set().union(*(_cell_terms(c.label, c.column, c.title)[3] for c in cells))
    groups: dict[tuple, tuple[float, list[Cell]]] = {}
    totals: dict[tuple, Cell] = {}  # each column's total row, where the table prints one
    for name in dict.fromkeys([figure.phrase, *figure.also, _without_quantity(figure.phrase)]):
        wanted = _label_terms(name) - _AS_PRINTED if name else frozenset()
        known = wanted & vocabulary
        if not known or wanted - known - where.headings - (where.context & _proper_terms(name)):
            continue  # a word of the name that these tables do not use: not what they show
        for cell in cells:
            _, column, title, _ = _cell_terms(cell.label, cell.column, cell.title)
            label = _label_terms(cell.label)
            if not known <= column | title or not label or not re.search(r"[A-Za-z]", cell.label):
                continue
            if year is not None and cell.periods != {str(year)}:
                continue
            key = (cell.passage, cell.table, cell.column)
            if label & _TOTAL_ROW:
                totals.setdefault(key, cell)
                continue
            fit = len(known & column) / len(known)
            best_fit, members = groups.get(key, (fit, []))
            if cell not in members:
                members.append(cell)
            groups[key] = (max(best_fit, fit), members)
    groups = {k: (fit, rows) for k, (fit, rows) in groups.items() if len({c.label for c in rows}) >= 2}
    if not groups:
        return _columns_compared(calculation, cells, where)
    if year is None:  # no year asked: the latest the fitting columns show
        latest = max((int(_period_of(rows[0])) for _, rows in groups.values() if rows[0].periods), default=None)
        if latest is not None:
            groups = {k: g for k, g in groups.items() if not g[1][0].periods or int(_period_of(g[1][0])) == latest}
    ranked = sorted(groups.items(), key=lambda g: (-g[1][0], -len(g[1][1])))
    key, (fit, rows) = ranked[0]
    parts, cut = _table_parts(key[:2], cells, passages)
    for part in parts[1:]:  # the same table's rows in the passage before or after: the same column
        more, total = _column_cells(cells, part, key[2])
        # A part without the table's title (its unit) is in the title's unit.
        rows = rows + [c if c.scale or c.percent else replace(c, scale=rows[0].scale) for c in more]
        if total is not None:
            totals.setdefault(key, total)
    ranked = [g for k, g in ranked if k[:2] not in parts]
    total = totals.get(key)
    if total is None:
        rows, total = _without_unnamed_total(rows)
    if total is not None:
        added = sum(c.value for c in rows)
        if math.isclose(added, total.value, rel_tol=0.01, abs_tol=0.5):
            cut = None  # every row is here: they make the total
        else:
            cut = f"the rows read do not add up to the table's total ({total.label}: {total.printed})"
    if cut:
        return Unclear(calculation, (cut,), tuple(rows), 0.5)
    rows = _of_kind(rows, bool(_PERCENT_ASKED.search(figure.phrase)))
    by_passage = dict.fromkeys(c.passage for c in rows)  # each passage's rows cited with its number
    if comparison.threshold is not None:  # "How many segments had revenue above 500 million?"
        past = _past_threshold(rows, comparison)
        if isinstance(past, str):
            return Unclear(calculation, (past,), tuple(rows), 0.5)
        found = tuple(Found(figure, tuple(c for c in rows if c.passage == p), 0.0) for p in by_passage)
        named = listed_in_words([c.label for c in past]) if past else "none of them"
        result = (
            f"{len(past)} ({named})" if comparison.count and past else (str(len(past)) if comparison.count else named)
        )
        working = "; ".join(f"{c.label} {c.printed}" for c in rows)
        return Worked(calculation=calculation, result=result, value=float(len(past)), working=working, found=found)
    chosen = _extreme(rows, comparison.most)
    found = tuple(Found(figure, tuple(c for c in rows if c.passage == p), chosen[0].value) for p in by_passage)
    if len(chosen) > 1:
        problem = f"{' and '.join(c.label for c in chosen)} have the same {figure.phrase!r}"
        return Unclear(calculation, (problem,), tuple(rows), 0.9)
    for other_fit, other in ranked:
        if other_fit == fit and len(other) >= 2 and _extreme(other, comparison.most)[0].label != chosen[0].label:
            problem = f"{figure.phrase!r} could be {_cell_name(rows[0])!r} or {_cell_name(other[0])!r}"
            return Unclear(calculation, (problem,), (*rows[:2], *other[:2]), 0.5)
    column = _without_years(rows[0].column).strip() or figure.phrase
    period = f" ({_period_of(rows[0])})" if rows[0].periods else ""
    working = f"{column}{period}: " + "; ".join(f"{c.label} {c.printed}" for c in rows)
    if _sizes(rows)[1]:
        working += " (printed negative: compared by size)"
    result = f"{chosen[0].label}, {_as_printed_cell(chosen[0])}"
    return Worked(calculation=calculation, result=result, value=chosen[0].value, working=working, found=found)


def _without_unnamed_total(cells: list[Cell]) -> tuple[list[Cell], Cell | None]:
    """The cells without the one that is the sum of all the others ("Consolidated", "Gross
    deferred tax assets": a total not labelled so), and that one (None when none is)."""
    if len(cells) >= 3:
        grand = sum(c.value for c in cells)
        for cell in cells:
            if cell.value and math.isclose(grand - cell.value, cell.value, rel_tol=0.002):
                return [c for c in cells if c is not cell], cell
    return cells, None


def _column_cells(cells: list[Cell], part: tuple[int, int], column: str) -> tuple[list[Cell], Cell | None]:
    """A column's cells in one part (passage, table) of a table: its rows, and its total row."""
    inside = [
        c for c in cells if (c.passage, c.table) == part and c.column == column and re.search(r"[A-Za-z]", c.label)
    ]
    total = next((c for c in inside if _label_terms(c.label) & _TOTAL_ROW), None)
    return [c for c in inside if c is not total and not _label_terms(c.label) & _TOTAL_ROW], total


def _columns_compared(calculation: Calculation, cells: list[Cell], where: _Where) -> Worked | Unclear | None:
    """Which column of a row ("Revenue | Americas 2019: 410 | EMEA 2019: 380") has the highest
    or lowest figure, where the compared things head the columns: the row the question names,
    in the asked year (else the latest it shows), total columns aside. A row is never cut, so
    its columns are all there."""
    figure = calculation.expression
    comparison = calculation.comparison
    year = calculation.years[-1] if calculation.years else None
    fitting = [s for s in _scores(figure, cells, where, None) if s.covered]

    def compared(row: list[Cell]) -> list[Cell]:
        named = [c for c in row if _column_terms(c.column) and not _column_terms(c.column) & _TOTAL_ROW]
        if year is not None:
            return [c for c in named if c.periods == {str(year)}]
        latest = max((int(_period_of(c)) for c in named if c.periods), default=None)
        return [c for c in named if latest is None or c.periods == {str(latest)}]

    rows: dict[tuple, tuple[float, list[Cell]]] = {}
    for s in fitting:
        key = (s.cell.passage, s.cell.table, s.cell.row)
        score, members = rows.get(key, (s.score, []))
        rows[key] = (max(score, s.score), [*members, s.cell])
    ranked = sorted(
        ((score, _without_unnamed_total(compared(row))[0]) for score, row in rows.values()), key=lambda r: -r[0]
    )
    ranked = [(score, row) for score, row in ranked if len({_without_years(c.column).strip() for c in row}) >= 2]
    if not ranked:
        return None
    top, row = ranked[0]
    chosen = _extreme(row, comparison.most)
    names = [_without_years(c.column).strip() for c in chosen]
    if len(chosen) > 1:
        return Unclear(calculation, (f"{' and '.join(names)} have the same {figure.phrase!r}",), tuple(row), 0.9)
    for score, other in ranked[1:]:
        if score > top - CLEAR_LEAD and _without_years(_extreme(other, comparison.most)[0].column).strip() != names[0]:
            problem = f"{figure.phrase!r} could be {row[0].label!r} or {other[0].label!r}"
            return Unclear(calculation, (problem,), (row[0], other[0]), 0.5)
    period = f" ({_period_of(row[0])})" if row[0].periods else ""
    working = f"{row[0].label}{period}: " + "; ".join(f"{_without_years(c.column).strip()} {c.printed}" for c in row)
    if _sizes(row)[1]:
        working += " (printed negative: compared by size)"
    found = (Found(figure, tuple(row), chosen[0].value),)
    result = f"{names[0]}, {_as_printed_cell(chosen[0])}"
    return Worked(calculation=calculation, result=result, value=chosen[0].value, working=working, found=found)


def _table_parts(
    at: tuple[int, int], cells: list[Cell], passages: Sequence[Hit]
) -> tuple[list[tuple[int, int]], str | None]:
    """The parts of a table (passage, table) that runs over a passage's end into the next
    passage of its document (a document's passages are numbered in reading order), and why
    it may still have rows not read (None when it has none)."""
    by_chunk = {(p.source, p.chunk_id): i for i, p in enumerate(passages)}
    parts = [at]
    for step in (1, -1):
        passage, table = at
        while True:
            lines = _lines(passages[passage].text)
            printed = {c.row for c in cells if (c.passage, c.table) == (passage, table)}
            if not lines or (lines[-1] if step == 1 else lines[0]) not in printed:
                break  # the table ends inside this passage
            hit = passages[passage]
            beside = by_chunk.get((hit.source, hit.chunk_id + step))
            if beside is None:
                return (
                    parts,
                    "the table goes on past the passages read"
                    if step == 1
                    else "the table starts before the passages read",
                )
            tables = [c.table for c in cells if c.passage == beside]
            other = _lines(passages[beside].text)
            joined = (
                other
                and tables
                and (other[0] if step == 1 else other[-1]) in {c.row for c in cells if c.passage == beside}
            )
            if not joined:
                break  # the neighbouring passage starts (or ends) with no row: the table ends here
            passage, table = beside, (min(tables) if step == 1 else max(tables))
            parts.append((passage, table))
    return parts, None


def _lines(text: str) -> list[str]:
    """A passage's lines that hold text, stripped, as cells.py reads them (Cell.row)."""
    return [line.strip() for line in text.split("\n") if line.strip()]


def _as_printed_cell(cell: Cell) -> str:
    """A cell's figure as its table prints it, with the table's unit: "32,502 million", "4.1%"."""
    if cell.percent:
        return f"{'-' if cell.value < 0 else ''}{cell.printed}%"
    unit = f" {SCALE_NAMES[cell.scale]}" if cell.scale in SCALE_NAMES else ""
    return f"{'-' if cell.value < 0 else ''}{cell.printed}{unit}"


def _period_of(cell: Cell) -> str:
    return max(cell.periods)  # its one year; of "2019 and 2018", the later


def _sizes(cells: list[Cell], values: list[float] | None = None) -> tuple[list[float], bool]:
    """The figures as compared (values: the cells' own, else theirs as printed), and whether
    by size: figures all negative (costs, outflows in parentheses) are compared by size, the
    "largest" the largest amount."""
    values = [c.value for c in cells] if values is None else values
    by_size = all(v < 0 for v in values)
    return [abs(v) if by_size else v for v in values], by_size


def _extreme(cells: list[Cell], most: bool, values: list[float] | None = None) -> list[Cell]:
    """The cells with the highest (most) or lowest figure (as _sizes compares them): one, or
    several that tie."""
    sizes, _ = _sizes(cells, values)
    extreme = max(sizes) if most else min(sizes)
    return [c for c, v in zip(cells, sizes) if v == extreme]


def _in_one_scale(found: dict[Figure, Found]) -> tuple[dict[int, float], float | None, str | None]:
    """Each found cell's value (by id) in one scale: the tables' own where they state one and
    all agree, else in units where they differ; (values, the common scale, a problem)."""
    cells = [(f, c) for f in found.values() for c in f.cells]
    scales = {c.scale for _, c in cells if not c.percent}
    known = {s for s in scales if s}
    values = {}
    rescale = len(known) > 1
    for f, c in cells:
        value = abs(c.value) if f.figure.outflow else c.value
        values[id(c)] = value * c.scale if rescale and c.scale else value
    if rescale and None in scales:
        return values, None, "the figures' tables are in different units, and one of them does not say which"
    common = None if rescale else (next(iter(known)) if known else None)
    return values, (1.0 if rescale else common), None


def _implausible(calculation: Calculation, found: dict[Figure, Found], value: float) -> str | None:
    cells = [c for f in found.values() for c in f.cells]
    percents = {c.percent for c in cells}
    if calculation.kind in ("share", "ratio") and True in percents and False in percents:
        return "it would divide a percentage by an amount"
    if calculation.kind in ("sum", "difference") and len(percents) > 1:
        return "it would add a percentage to an amount"
    if calculation.kind == "share":
        whole = found[figures_of(calculation.expression)[-1]].cells[0]
        if re.search(r"\btotal\b", whole.label, re.I) and abs(value) > 1.0001:
            return f"the part would be larger than the total ({whole.label})"
    if calculation.kind == "formula" and calculation.percent and abs(value) > 1 and "margin" in calculation.name:
        return "a margin larger than the revenue it is a share of"
    if (
        calculation.percent
        and calculation.kind not in ("percent change", "growth rate")
        and not _divides(calculation.expression)
        and False in percents
    ):
        return "a percentage was asked for, and the figures make an amount, not a share"
    return None


def _divides(node) -> bool:
    """Whether the formula divides by a figure (a share or a ratio), not only by a count."""
    if not isinstance(node, Operation):
        return False
    by_figure = node.op in "/^" and bool(figures_of(node.right))
    return by_figure or _divides(node.left) or _divides(node.right)


def _evaluate(node, values: dict) -> float:
    if isinstance(node, Figure):
        return values[node]
    if isinstance(node, Number):
        return node.value
    left, right = _evaluate(node.left, values), _evaluate(node.right, values)
    if node.op == "+":
        return left + right
    if node.op == "-":
        return left - right
    if node.op == "*":
        return left * right
    if node.op == "/":
        return left / right
    if left < 0:
        raise ValueError("a growth rate of a negative figure")
    return left**right


def _sum_of(parts):
    total = parts[0]
    for part in parts[1:]:
        total = Operation("+", total, part)
    return total


def _cells(found: dict[Figure, Found]) -> tuple[Cell, ...]:
    return tuple(c for f in found.values() for c in f.cells)


def _working(expression, found: dict[Figure, Found], values: dict, common_scale, over_periods: bool) -> str:
    """The formula with each figure as printed (or, across scales, in millions)."""

    def text(cell: Cell, figure: Figure) -> str:
        if common_scale == 1.0:
            return f"{values[id(cell)] / 1e6:,.1f}"
        shown = cell.printed
        negative = cell.value < 0 and not figure.outflow
        return f"({shown})" if negative else shown

    if over_periods:
        (only,) = found.values()
        parts = " + ".join(text(c, only.figure) for c in only.cells)
        body = f"({parts}) / {len(only.cells)}"
    else:
        body = formula_text(expression, lambda f: text(found[f].cells[0], f))
    if common_scale == 1.0:
        return f"{body} (in millions)"
    if common_scale in SCALE_NAMES:
        return f"{body} (in {SCALE_NAMES[common_scale]}s)"
    return body


def _as_printed(working: str) -> str:
    """ "389 (in millions)" as "389, in millions"."""
    return re.sub(r" \(in (\w+)\)$", r", in \1", working)


def _stated(calculation: Calculation, value: float, found: dict[Figure, Found], common_scale) -> str:
    decimals = calculation.decimals
    if calculation.percent:
        return f"{value * 100:,.{2 if decimals is None else decimals}f}%"
    if not calculation.is_amount and calculation.kind != "average":
        return f"{value:,.{2 if decimals is None else decimals}f}"
    percent = all(c.percent for f in found.values() for c in f.cells)
    if calculation.scale and common_scale:
        scaled = value * common_scale / calculation.scale
        places = decimals if decimals is not None else (2 if abs(scaled) < 100 else 0)
        sign = "-" if scaled < 0 else ""
        return f"{sign}${abs(scaled):,.{places}f} {SCALE_NAMES[calculation.scale]}"
    number = _plain_number(value, decimals)
    if percent:
        return f"{number}%"
    if common_scale == 1.0:
        return f"{_plain_number(value / 1e6, decimals)} million"
    if common_scale in SCALE_NAMES:
        return f"{number} {SCALE_NAMES[common_scale]}"
    return number


def _plain_number(value: float, decimals: int | None) -> str:
    """At most two decimals unless asked, without trailing zeros: 1,622 and 57,362.5."""
    if decimals is not None:
        return f"{value:,.{decimals}f}"
    text = f"{value:,.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def figure_passages(
    calculation: Calculation,
    hits: Sequence[Hit],
    search: Callable[[list[str], list[str]], list[list[Hit]]],
    lines: Callable[[list[str], str], list[Hit]],
) -> list[Hit]:
    """Passages that hold the calculation's figures, to put before the hits. For each figure,
    within the documents of the best hits (one whose name or title holds the asked year
    first): those with a line that begins with one of its names (a statement's row, which
    ranked search finds poorly among pages of similar rows) and, unless one of these already
    has its row on a financial statement's page, the passages a search for its names finds;
    of these, the ones whose rows fit the figure best. search(queries, sources) searches for
    several figures at once (their queries embedded together: most of a search's cost)."""
    sources = _sources(calculation, hits)
    if not sources:
        return []
    needed = list(dict.fromkeys(f for e in (calculation.expression, *calculation.alternatives) for f in figures_of(e)))
    by_line = {f: list({h.chunk_id: h for s in sources for h in lines(_row_names(f), s)}.values()) for f in needed}
    scored = {f: _scores_in_year(f, by_line[f], calculation.statements) for f in needed}
    unsettled = [f for f in needed if not _on_its_statement(f, scored[f], calculation.statements)]
    searched = dict(zip(unsettled, search([_figure_query(f, calculation) for f in unsettled], sources)))
    chosen: dict[int, Hit] = {}
    for figure in needed:
        pool = list({h.chunk_id: h for h in [*searched.get(figure, []), *by_line[figure]]}.values())
        if figure in searched:
            scored[figure] = _scores_in_year(figure, pool, calculation.statements)
        for hit in _fitting_first(pool, scored[figure])[:FIGURE_PASSAGES]:
            chosen.setdefault(hit.chunk_id, hit)
    return list(chosen.values())


def _figure_query(figure: Figure, calculation: Calculation) -> str:
    """The statement that reports the figure, by name (passages are searched with their page's
    heading), its names and its year."""
    year = f" {figure.year}" if figure.year and figure.year > 0 else ""
    statement = figure.statement or " ".join(sorted(calculation.statements))
    return f"{statement} {' '.join(_row_names(figure)[:4])}{year}".strip()


def _row_names(figure: Figure) -> list[str]:
    """What a row holding the figure may be labelled: its names without the words that name no
    row (the company's "Adobe's", "unadjusted"), and the line item's own names."""
    names = []
    for name in (figure.phrase, *figure.also):
        words = [
            w for w in name.split() if not re.search(r"['’]s$", w) and not (_terms(w) and _terms(w) <= _AS_PRINTED)
        ]
        names.append(" ".join(words))
    found = item_within(figure.phrase)
    if found is not None:
        names += [found[0].name, *found[0].also]
    return [n for n in dict.fromkeys(names) if n]


def _fitting_first(passages: list[Hit], scored: list[_Scored]) -> list[Hit]:
    """The passages, those with a row fitting the figure in its year best first (scored: the
    passages' cells scored for the figure, in its year)."""
    fit: dict[int, tuple[bool, float]] = {}
    for s in scored:
        fit[s.cell.passage] = max(fit.get(s.cell.passage, (False, 0.0)), (s.covered, s.score))
    order = sorted(range(len(passages)), key=lambda i: fit.get(i, (False, 0.0)), reverse=True)
    return [passages[i] for i in order]


def _on_its_statement(figure: Figure, scored: list[_Scored], statements: frozenset[str]) -> bool:
    """Whether a passage holds a row named as the figure, in its year, on the page of a
    financial statement (of the one that reports it, when known): nothing to search for."""
    where = statements | ({figure.statement} if figure.statement else set())
    return any(s.covered and statements_of(s.cell) and (not where or statements_of(s.cell) & where) for s in scored)


def _scores_in_year(figure: Figure, passages: list[Hit], statements: frozenset[str]) -> list[_Scored]:
    """The passages' cells scored for the figure (_scores), those of its year."""
    if not passages:
        return []
    scored = _scores(figure, passage_cells(passages), _where(passages, statements), None)
    if figure.year and figure.year > 0:
        scored = [s for s in scored if s.cell.periods == {str(figure.year)}]
    return scored


def _sources(calculation: Calculation, hits: Sequence[Hit]) -> list[str]:
    sources = list(dict.fromkeys(h.source for h in hits[:5]))
    titles = {h.source: f"{h.source} {h.title}" for h in hits}
    if calculation.years:
        sources.sort(key=lambda s: str(calculation.years[-1]) not in titles[s])
    return sources[:SOURCES_SEARCHED]


def render(worked: Worked, refs: Sequence[int]) -> str:
    """The answer: the result and its working, then each figure's row cited (refs: the
    citation number of each found figure's first cell's passage, in worked.found's order)."""
    calc = worked.calculation
    lead = f"{calc.name[:1].upper()}{calc.name[1:]}{_periods(calc)}: **{worked.result}**"
    if calc.sign is not None:  # asked whether it is positive (or negative): say so first
        holds = (worked.value > 0) if calc.sign == "positive" else (worked.value < 0)
        kind = "positive" if worked.value > 0 else "negative" if worked.value < 0 else "zero"
        lead = f"{'Yes' if holds else 'No'}, it is {kind}. {lead}"
    if calc.kind == "value":  # a figure read and restated in the asked scale, not worked out
        lines = [f"{lead} (printed as {_as_printed(worked.working)})."]
    elif calc.kind == "comparison":
        lines = [f"{lead}, worked out from the figures below: {worked.working}."]
    elif isinstance(calc.expression, Figure) and calc.kind != "average":  # a measure printed as a row of its own
        lines = [f"{lead}, as the document states it."]
    else:
        lines = [f"{lead}, worked out from the figures below: {worked.working} = {worked.result}."]
    rows: dict[str, tuple[set[str], int]] = {}  # each row quoted once, with every column used
    for found, ref in zip(worked.found, refs):
        for cell in found.cells:  # the rows an average or a comparison reads, each once
            years, _ = rows.setdefault(cell.row, (set(), ref))
            years.update(cell.periods)
    lines += [f"{trimmed_row(row, years)} [{ref}]" for row, (years, ref) in rows.items()]
    return "\n\n".join(lines)


def render_unclear(unclear: Unclear, refs: Sequence[int]) -> str:
    """What could not be told, and the closest rows cited (refs: one per unclear.cells)."""
    calc = unclear.calculation
    lines = [
        f"I could not work out {calc.name}{_periods(calc)} from these documents for certain: "
        + "; ".join(unclear.problems)
        + "."
    ]
    if unclear.cells:
        lines.append("The closest rows:")
        seen = set()
        for cell, ref in zip(unclear.cells, refs):
            if cell.row in seen:
                continue
            seen.add(cell.row)
            lines.append(f"{cell.row} [{ref}]")
    return "\n\n".join(lines)


def _periods(calc: Calculation) -> str:
    if not calc.years:
        return ""
    if len(calc.years) == 1:
        return f", {calc.years[0]}"
    return f", {calc.years[0]} to {calc.years[-1]}"


def _period_name(year: int | None) -> str:
    if year == LATEST:
        return "its latest period"
    if year == PREVIOUS:
        return "the period before its latest"
    return str(year) if year else "one period"


def _cell_name(cell: Cell) -> str:
    column = _without_years(cell.column).strip()
    return f"{cell.label} ({column})" if column else cell.label


def _without_years(text: str) -> str:
    return re.sub(r"\b(?:FY\s?)?(?:19|20)\d\d\b", " ", text)


@lru_cache(maxsize=8192)  # a table's labels, columns and titles are compared again for every figure
def _terms(text: str) -> frozenset[str]:
    """A name's words as compared: stemmed, without the words that name nothing. Unlike a
    keyword search's stop words, "other", "before", "after", "over" and "under" tell rows
    apart ("Other", "Income before taxes"), so they are kept."""
    words = _WORD.findall(re.sub(r"['’]s\b", "", text.lower()))
    return frozenset(t for t in _stemmer().stemWords([w for w in words if w not in _NAMES_NOTHING]) if not t.isdigit())


def _proper_terms(phrase: str) -> set[str]:
    """The terms of a phrase's names: its capitalised words and words with capitals or digits
    inside ("AVX", "iPhone"). A phrase is cut from inside a question, so its first word's
    capital is its own ("Adobe's operating income")."""
    words = re.findall(r"[\w'’&.-]+", phrase)
    return _terms(" ".join(w for w in words if w[:1].isupper() or re.search(r"\w[A-Z0-9]", w)))


def _where(passages: Sequence[Hit], statements: frozenset[str]) -> _Where:
    headings = set().union(*(_terms(f"{p.title} {p.section or ''}") for p in passages))
    return _Where(_context_terms(passages), headings, statements)


def _context_terms(passages: Sequence[Hit]) -> set[str]:
    """The words the passages and their documents' titles use anywhere."""
    words_used: set[str] = set()
    for passage in passages:
        name = " ".join(re.findall(r"[A-Za-z]+", passage.source))  # ADOBE_2016_10K.pdf: "ADOBE", "K", "pdf"
        words_used |= _terms(f"{passage.title} {name} {passage.section or ''} {passage.text}")
    return words_used


__all__ = ["Found", "Unclear", "Worked", "figure_passages", "render", "render_unclear", "work_out", "words"]
