"""Worked figures: a calculation (formulas.py) done with the figures the passages' table rows
give, shown with its working and every figure cited.

Each figure is looked up as a table row whose label is the line item's ("Total current
liabilities", or one of the names filings give it) and whose column is the asked year's, on a
page that is the item's statement where the page says which ("Consolidated Balance Sheets
(In thousands)"). Figures on pages that state their unit are compared in it, so a ratio of a
figure in thousands and one in millions comes out right. Where a figure cannot be found the
calculation is not done: nothing is guessed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Sequence

from ingest.tables import ROW_SEPARATOR
from retrieval.answer.financial_terms import STATEMENT_HEADINGS, UNITS, LineItem
from retrieval.answer.formulas import Calculation, Figure, Number, formula_text, words
from retrieval.answer.units import passage_units, row_cells
from retrieval.keywords import YEAR, named_years
from retrieval.models import Hit

_UNIT = re.compile(r"\bin (thousands|millions|billions)\b", re.I)
_FOOTNOTE = re.compile(r"\s*(\((?:[a-z]|\d{1,2}|notes? [\d, and]+)\)|\*+)\s*$")
_FIGURE = r"\$?\s?\(?\s?\d[\d,]*(?:\.\d+)?\s?\)?"
_LOOSE_ROW = re.compile(
    rf"^(?P<label>[A-Za-z][A-Za-z ,'’&()/-]*?[A-Za-z)])\s+(?P<figures>{_FIGURE}(?:\s+{_FIGURE})*)(?:\s|$)"
)
_LOOSE_FIGURE = re.compile(_FIGURE)
_NOT_THE_ITEM = ("noncontrolling", "non-controlling", "minority", "per share", "per common share", "discontinued")
_CONTINUES_LABEL = re.compile(r"^(,| \(| -| –| attributable\b| net\b| of continuing\b)")
_CELL_NUMBER = re.compile(r"^\(?-?\$?\s*\(?\s*(\d[\d,]*(?:\.\d+)?)\s*\)?\s*%?\)?$")
GOOD_MATCH = (3, 2)  # a row labelled as the item, on its statement's page: no need to look further
SOURCES_SEARCHED = 2  # documents tried, those of the best hits first


@dataclass(frozen=True)
class FoundFigure:
    figure: Figure
    value: float  # as printed, an outflow ("(1,722)") as the amount it is
    printed: str  # the figure as the table prints it, without sign marks
    unit: float | None  # what a printed 1 is worth, when the page says ("In thousands")
    row: str  # the row quoted, only the asked year's column
    passage: int  # index of the passage it is in
    match: tuple[int, int]  # (label match 0-3, statement match 0-2)


def find_figure(figure: Figure, passages: Sequence[Hit]) -> FoundFigure | None:
    """The best row for the figure among the passages: the closest label, on the item's own
    statement; then in the document of the earliest passage, the finest print (a statement's
    thousands before a summary's millions) and the earliest page (a filing's own statements
    come before those of its subsidiaries)."""
    best, best_key = None, None
    source_rank: dict[str, int] = {}
    for index, passage in enumerate(passages):
        statement = _statement_match(passage.section, figure.item)
        unit = _page_unit(passage)
        rank = source_rank.setdefault(passage.source, len(source_rank))
        for label, cells in table_rows(passage.text):
            score = _label_match(_normal_label(label), figure.item)
            if not score:
                continue
            cell = _year_cell(cells, figure.year)
            if cell is None:
                continue
            header, printed = cell
            value = _cell_value(printed)
            if value is None:
                continue
            key = (score, statement, -rank, -(unit or math.inf), -(passage.page or 0), -index)
            if best_key is None or key > best_key:
                best_key = key
                best = FoundFigure(
                    figure=figure,
                    value=abs(value) if figure.item.outflow else value,
                    printed=_CELL_NUMBER.match(printed.strip()).group(1),
                    unit=unit,
                    row=f"{label} | {header}: {printed}",
                    passage=index,
                    match=(score, statement),
                )
    return best


def figure_passages(
    calculation: Calculation, hits: Sequence[Hit], rows: Callable[[Sequence[str], str], list[Hit]]
) -> list[Hit]:
    """Passages that hold the calculation's figures, best first: for each figure, the best row
    among the hits and the passages rows(labels, source) gives (one document's passages with a
    line that begins with one of the labels), in the first document that has a good one."""
    chosen: list[Hit] = []
    for figure in calculation.figures():
        best = None
        for source in _sources(calculation, hits):
            candidates = [h for h in [*chosen, *hits] if h.source == source]
            known = {h.chunk_id for h in candidates}
            candidates += [h for h in rows(_row_beginnings(figure.item), source) if h.chunk_id not in known]
            found = find_figure(figure, candidates)
            if found is not None and (best is None or found.match > best[0].match):
                best = (found, candidates[found.passage])
            if best is not None and best[0].match >= GOOD_MATCH:
                break
        if best is not None and all(best[1].chunk_id != c.chunk_id for c in chosen):
            chosen.append(best[1])
    return chosen


def _sources(calculation: Calculation, hits: Sequence[Hit]) -> list[str]:
    """The documents to look figures up in: those of the best hits, one whose name or title
    holds the asked year first (the FY2020 report for a FY2018-FY2020 average)."""
    sources = list(dict.fromkeys(h.source for h in hits[:5]))
    titles = {h.source: f"{h.source} {h.title}" for h in hits}
    sources.sort(key=lambda s: str(calculation.year) not in titles[s])
    return sources[:SOURCES_SEARCHED]


def _row_beginnings(item: LineItem) -> list[str]:
    """How the item's row may begin, as printed: its labels, with "and" also as "&"."""
    return list(dict.fromkeys(item.labels + tuple(label.replace(" and ", " & ") for label in item.labels)))


@dataclass(frozen=True)
class WorkedFigure:
    calculation: Calculation
    result: str  # as stated: "0.66", "4.2%", "$3,215 million"
    value: float  # as computed
    working: str  # the formula with the figures put in
    figures: list[FoundFigure]


def work_out(calculation: Calculation, passages: Sequence[Hit]) -> WorkedFigure | None:
    """The calculation done with the passages' figures; None when one cannot be found or the
    arithmetic has no value (a division by zero)."""
    found = {}
    for figure in calculation.figures():
        hit = find_figure(figure, passages)
        if hit is None:
            return None
        found[figure] = hit
    units = {f.unit for f in found.values()}
    # Figures are compared in one unit: the pages' own when they say, else as printed.
    common = None not in units and len(units) > 1
    values = {figure: f.value * (f.unit if common else 1) for figure, f in found.items()}
    try:
        value = _evaluate(calculation.expression, values)
    except (ZeroDivisionError, ValueError, OverflowError):
        return None
    if not math.isfinite(value):
        return None
    unit = None if common or len(units) != 1 else next(iter(units))
    return WorkedFigure(
        calculation=calculation,
        result=_stated(calculation, value, absolute=common, unit=unit),
        value=value,
        working=_working(calculation, found, common),
        figures=list(found.values()),
    )


def render(worked: WorkedFigure, refs: Sequence[int]) -> str:
    """The answer: the result and its working, then each figure's row cited ([n] from refs,
    one per figure, in the order of worked.figures)."""
    calc = worked.calculation
    lead = f"{calc.name[:1].upper()}{calc.name[1:]}, FY{calc.year}: **{worked.result}**"
    if calc.sign is not None:  # asked whether it is positive (or negative): say so first
        holds = (worked.value > 0) if calc.sign == "positive" else (worked.value < 0)
        kind = "positive" if worked.value > 0 else "negative" if worked.value < 0 else "zero"
        lead = f"{'Yes' if holds else 'No'}, it is {kind}. {lead}"
    formula = words(calc.expression, calc.year)
    if isinstance(calc.expression, Figure):
        lines = [f"{lead}."]  # a figure read, not worked out
    else:
        lines = [f"{lead}, worked out from the figures below: {formula} = {worked.working}."]
    seen = set()
    for figure, ref in zip(worked.figures, refs):
        if figure.row in seen:
            continue
        seen.add(figure.row)
        lines.append(f"{figure.row} [{ref}]")
    return "\n\n".join(lines)


@lru_cache(maxsize=512)  # each figure of a calculation reads the same passages: parsed once
def table_rows(text: str) -> list[tuple[str, list[tuple[str | None, str]]]]:
    """The passage's table rows as (label, [(column header, figure)]). Rows printed without
    headers get the column years the page prints above them ("December 31, 2018 2017"); a line
    the table reader left as text ("Total current assets 5,121.3 4,186.5") is read as a row
    with the headers of the rows around it. The result is shared (cached): read it, never change it."""
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    rows = [row_cells(u.text) for u in passage_units(text) if u.kind == "row"]
    headed = [tuple(h for h, _ in cells) for _, cells in rows if all(h is not None for h, _ in cells)]
    headers = max(set(headed), key=headed.count) if headed else ()
    years = _column_years(lines)
    out = []
    for label, cells in rows:
        if all(h is None for h, _ in cells) and len(cells) == len(years):
            cells = list(zip(years, (figure for _, figure in cells)))
        out.append((label, cells))
    for line in lines:
        match = _LOOSE_ROW.match(line) if ROW_SEPARATOR not in line and headers else None
        if match:
            figures = _LOOSE_FIGURE.findall(match.group("figures"))
            if len(figures) >= len(headers):
                out.append((match.group("label"), list(zip(headers, (f.strip() for f in figures)))))
    return out


def _column_years(lines: list[str]) -> list[str]:
    """The years printed as column headings above a table's first row, in their order."""
    years: list[str] = []
    for line in lines:
        if ROW_SEPARATOR in line:
            break
        if len(line) <= 40:
            years += [y for y in YEAR.findall(line) if y not in years]
    return years if len(years) >= 2 else []


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


def _working(calculation: Calculation, found: dict, common: bool) -> str:
    """The formula with each figure as printed (or, across units, in millions)."""

    def figure_text(figure: Figure) -> str:
        hit = found[figure]
        return f"{hit.value * hit.unit / 1e6:,.1f}" if common else hit.printed

    units = {f.unit for f in found.values()}
    if common:
        suffix = " (in millions)"
    elif len(units) == 1 and None not in units:
        suffix = f" (in {_unit_name(next(iter(units)))})"
    else:
        suffix = ""
    return formula_text(calculation.expression, figure_text) + suffix


def _stated(calculation: Calculation, value: float, *, absolute: bool, unit: float | None) -> str:
    decimals = calculation.decimals
    if calculation.percent:
        return f"{value * 100:.{1 if decimals is None else decimals}f}%"
    if not calculation.is_amount:
        return f"{value:.{2 if decimals is None else decimals}f}"
    if calculation.scale and (absolute or unit):
        scaled = value * (1 if absolute else unit) / calculation.scale
        places = decimals if decimals is not None else (2 if abs(scaled) < 100 else 0)
        sign = "-" if scaled < 0 else ""
        return f"{sign}${abs(scaled):,.{places}f} {_unit_name(calculation.scale)[:-1]}"
    places = decimals if decimals is not None else (1 if value != round(value) else 0)
    named = f" {_unit_name(unit)[:-1]}" if unit else " (in the table's units)"
    return f"{value:,.{places}f}{named}"


def _unit_name(unit: float) -> str:
    return next(name for name, value in UNITS.items() if value == unit)


def _page_unit(passage: Hit) -> float | None:
    """What a printed 1 is worth on the passage's page, when its heading or text says."""
    for text in (passage.section or "", passage.text[:400]):
        match = _UNIT.search(text)
        if match:
            return UNITS[match.group(1).lower()]
    return None


def _statement_match(section: str | None, item: LineItem) -> int:
    """2 on the item's own statement, 1 on a page that names no statement, 0 on another one."""
    if not section:
        return 1
    heading = section.lower()
    if any(words in heading for words in STATEMENT_HEADINGS[item.statement]):
        return 2
    named_other = any(any(w in heading for w in names) for names in STATEMENT_HEADINGS.values())
    return 0 if named_other else 1


def _normal_label(label: str) -> str:
    label = _FOOTNOTE.sub("", label.lower().replace("&", "and").replace("’", "'"))
    return " ".join(label.split()).strip(" :$.")


def _label_match(label: str, item: LineItem) -> int:
    """3 for the item's own label, 2 for it with a qualifier ("Net income attributable to
    X"), 0 for another row."""
    if any(word in label for word in _NOT_THE_ITEM):
        return 0
    for wanted in _labels(item):
        if label == wanted or (wanted.endswith(" to") and label.startswith(wanted + " ")):
            return 3
    for wanted in _labels(item):
        if label.startswith(wanted) and _CONTINUES_LABEL.match(label[len(wanted) :]):
            return 2
    return 0


def _labels(item: LineItem) -> tuple[str, ...]:
    return tuple(label.replace("&", "and") for label in item.labels + item.asked)


def _year_cell(cells: list[tuple[str | None, str]], year: int | None) -> tuple[str, str] | None:
    """The (header, figure) of the year's column: a header naming that year and no other."""
    for header, printed in cells:
        if header is not None and named_years(header) == {str(year)}:
            return header, printed
    return None


def _cell_value(printed: str) -> float | None:
    text = printed.strip()
    match = _CELL_NUMBER.match(text)
    if not match:
        return None
    value = float(match.group(1).replace(",", ""))
    return -value if text.startswith("(") or "(" in text[:3] or text.startswith("-") else value
