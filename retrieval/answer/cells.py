"""The figures of the tables in passages, each with what names it: its row's label, its column's
name, the lines that title its table, its period and its unit.

Ingest writes a table row as one line whose cells carry their column names ("Total sales |
2019: $1,496.5 | 2018: $1,202.9", ingest/tables.py), whatever the file type, so a passage cut
from the middle of a table still says what each figure is. A row printed without column
names takes the years printed above its table ("December 31," "2018" "2017"); a line the PDF
table reader left as text ("Total current assets 5,121.3 4,186.5") is read as a row with the
column names of the rows around it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

from ingest.tables import ROW_SEPARATOR, despace_digits
from retrieval.answer.glossary import statements_named
from retrieval.answer.units import row_cells, row_lines
from retrieval.keywords import YEAR, named_years
from retrieval.models import Hit

# What a printed 1 is worth in a table "in thousands".
SCALES = {"thousand": 1e3, "thousands": 1e3, "million": 1e6, "millions": 1e6, "billion": 1e9, "billions": 1e9}
_SCALE_SAID = re.compile(
    r"\b(?:in|amounts? in|expressed in|dollars in|\$ in|usd in|€ in|£ in)\s+(?:[a-z$€£.]+\s+)?"
    r"(thousands?|millions?|billions?)\b|[$€£]\s?(m|bn|k|000s?|’000|'000)\b|\b(m|bn)\s?[$€£]|"
    r"\((?:[$€£]|usd|eur|gbp)?\s?(thousands?|millions?|billions?|m|bn|000s?|'000|’000)\)",
    re.I,
)
_SHORT_SCALES = {"m": 1e6, "bn": 1e9, "k": 1e3, "000": 1e3, "000s": 1e3, "'000": 1e3, "’000": 1e3}
_NUMBER = re.compile(r"^\(?\s*[-−–]?\s*[$€£]?\s*\(?\s*(\d[\d,]*(?:\.\d+)?|\.\d+)\s*\)?\s*%?\s*\)?$")
# A footnote mark after a label: "(a)", "(1)", "(Note 4)", "(Note (b))", "*".
_FOOTNOTE = re.compile(
    r"\s*(?:\((?:[a-z]|\d{1,2}|notes? (?:[\d, and]+|\([a-z\d]{1,2}\)(?:\s*(?:,|and)\s*\([a-z\d]{1,2}\))*))\)|\*+)(?=\s*$)",
    re.I,
)
# A column of note references ("Note", "2019 Notes", "Note ref"): its numbers are no figures.
_NOTE_COLUMN = re.compile(r"^(?:(?:19|20)\d\d\s+)?notes?(?:\s+ref(?:erence)?s?\.?)?$", re.I)
_FIGURE_TEXT = (
    r"[$€£]?\s?\(?\s?[-−]?\d(?:[\d,]*\d)?(?:\.\d+)?\s?\)?%?"  # no trailing comma: "$88,848, $133,514 and" is prose
)
# A line the PDF table reader left as text: a label, then two figures or more ("Total current
# assets 5,121.3 4,186.5", sometimes with the next row run on after them); prose, which puts
# one figure between words, is no row.
_LOOSE_ROW = re.compile(
    rf"^(?P<label>[A-Za-z][A-Za-z ,'’&()/-]*?[A-Za-z)])\s+(?P<figures>{_FIGURE_TEXT}(?:\s+{_FIGURE_TEXT})+)(?:\s|$)"
)
_LOOSE_FIGURE = re.compile(_FIGURE_TEXT)
TITLE_LINES = 3  # lines just above a table that may title it
TITLE_CHARS = 120
GROUP_CHARS = 60  # a group heading inside a table ("Current liabilities:") is short, with no figure
INTRODUCTION_CHARS = 400


@dataclass(frozen=True)
class Cell:
    """One figure of a table, with everything that names it."""

    label: str  # its row's label, footnote marks dropped ("Total sales")
    column: str  # its column's name ("2019", "Domestic 2019", "" when the row names none)
    printed: str  # as printed, sign marks aside: "1,496.5"
    value: float  # signed: "(7,227)" and "-7,227" are -7227
    percent: bool  # a percentage (printed with %, or in a column or table of percentages)
    scale: float | None  # what a printed 1 is worth, when the table or its page says
    periods: frozenset[str]  # the years that name it: its column's, else its label's
    title: str  # the lines titling its table and the group heading above its row ("Assets")
    section: str  # its page's heading ("Consolidated Statements of Cash Flows (in millions)")
    row: str  # the row as printed
    passage: int  # index of its passage among those read
    table: int  # which table of the passage (a run of rows)


def passage_cells(passages: Sequence[Hit]) -> list[Cell]:
    """Every figure of every table row in the passages, in order."""
    cells: list[Cell] = []
    for index, passage in enumerate(passages):
        for cell in _cells_of(passage.text, passage.section or ""):
            cells.append(_at(cell, index))
    return cells


def _at(cell: Cell, passage: int) -> Cell:
    return Cell(**{**cell.__dict__, "passage": passage})


@lru_cache(maxsize=1024)  # each figure of a calculation reads the same passages: parsed once
def _cells_of(text: str, section: str) -> tuple[Cell, ...]:
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    page_scale = _scale(section) or _only_scale(text)
    years = _column_years(lines)
    headers = _usual_headers(text)
    out: list[Cell] = []
    above: list[str] = []  # the lines since the last row: a new table's title, or a group heading
    titles: list[str] = []
    table = -1
    previous_row = False
    for line in lines:
        row = _row(line, years, headers)
        if row is None:
            above.append(line)
            previous_row = False
            continue
        if not previous_row:
            if table < 0 or len(above) != 1 or len(above[0]) > GROUP_CHARS or re.search(r"\d", above[0]):
                table += 1
                titles = [t for t in above[-TITLE_LINES:] if len(t) <= TITLE_CHARS or _introduces(t)]
                group = ""
            else:
                group = above[0]  # one short line between rows: a heading inside the table
            above = []
        previous_row = True
        label, named = row
        title = " ".join([*titles, group]).strip()
        table_scale = _scale(title) or page_scale
        for column, printed in named:
            value = _value(printed)
            if value is None or _NOTE_COLUMN.match(column.strip()):
                continue
            percent = "%" in printed or "%" in column or "percent" in column.lower()
            # A column's years, else (a table with its years down the side) the row's.
            periods = named_years(despace_digits(column)) or named_years(label)
            out.append(
                Cell(
                    label=_FOOTNOTE.sub("", label).strip(" :"),
                    column=column,
                    printed=_NUMBER.match(printed.strip()).group(1),
                    value=value,
                    percent=percent,
                    scale=None if percent else (_scale(column) or table_scale),
                    periods=frozenset(periods),
                    title=title,
                    section=section,
                    row=line,
                    passage=0,
                    table=max(table, 0),
                )
            )
    return tuple(out)


def statements_of(cell: Cell) -> frozenset[str]:
    """The financial statement the cell is in, when its page is headed by one (ingest names a
    page by the statement printed at its top: "Consolidated Statements of Income"), not a
    note or a summary that repeats some of its rows."""
    return statements_named(cell.section)


def _introduces(line: str) -> bool:
    """A sentence that introduces the table under it ("The following table presents revenue by
    type (in thousands):")."""
    return line.rstrip().endswith(":") and len(line) <= INTRODUCTION_CHARS


def _row(line: str, years: list[str], headers: tuple[str, ...]) -> tuple[str, list[tuple[str, str]]] | None:
    """A line as (label, [(column name, printed figure)]), or None when it is no table row."""
    if ROW_SEPARATOR in line:
        label, cells = row_cells(line)
        if all(h is None for h, _ in cells) and len(cells) == len(years):
            return label, list(zip(years, (figure for _, figure in cells)))
        if all(h is None for h, _ in cells) and len(cells) == len(headers):
            return label, list(zip(headers, (figure for _, figure in cells)))
        return label, [(h or "", figure) for h, figure in cells]
    match = _LOOSE_ROW.match(line) if headers else None
    if match:
        figures = _LOOSE_FIGURE.findall(match.group("figures"))
        if len(figures) >= len(headers):
            return match.group("label"), list(zip(headers, (f.strip() for f in figures)))
    return None


def _usual_headers(text: str) -> tuple[str, ...]:
    """The column names most of the passage's named rows have."""
    rows = [row_cells(line) for line in row_lines(text)]
    headed = [tuple(h for h, _ in cells) for _, cells in rows if cells and all(h is not None for h, _ in cells)]
    return max(set(headed), key=headed.count) if headed else ()


def _column_years(lines: list[str]) -> list[str]:
    """The years printed as column headings above a table's first row, in their order."""
    years: list[str] = []
    for line in lines:
        if ROW_SEPARATOR in line:
            break
        if len(line) <= 40:
            years += [y for y in YEAR.findall(line) if y not in years]
    return years if len(years) >= 2 else []


def _value(printed: str) -> float | None:
    text = printed.strip()
    match = _NUMBER.match(text)
    if not match:
        return None
    value = float(match.group(1).replace(",", ""))
    negative = text.startswith(("(", "-", "−", "–")) or "(" in text[:3] or re.match(r"^[$€£]\s*[-−(]", text)
    return -value if negative else value


def _scale(text: str) -> float | None:
    match = _SCALE_SAID.search(text)
    if not match:
        return None
    word = next(g for g in match.groups() if g).lower()
    return SCALES.get(word) or _SHORT_SCALES.get(word)


def _only_scale(text: str) -> float | None:
    """The scale a passage states, when it states only one ("(in millions)" after the table)."""
    found = {_scale(m.group()) for m in _SCALE_SAID.finditer(text)}
    return found.pop() if len(found) == 1 else None
