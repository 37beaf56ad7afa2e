"""The answer-bearing units of a passage: its sentences, list items, table rows and listing lines,
each as a reader should see it quoted.

A passage keeps the lines whose breaks carry meaning (ingest/text.py): a table row ("Dividends
paid | 2020: (389) | 2019: (353)"), a listing line ("\\heavyrulewidth=.08em"), a list item.
Everything else is prose, cut into sentences. A web page's text is the Markdown its extractor
wrote: its escapes and emphasis marks are not the page's words and are dropped here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ingest.tables import ROW_SEPARATOR
from ingest.text import LIST_ITEM_MARK, line_kind, sentence_spans

_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~])")
_EMPHASIS = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1|(?<![\w*])\*(?=\S)([^*]+?)(?<=\S)\*(?![\w*])")
_FENCE = "```"


@dataclass(frozen=True)
class Unit:
    kind: str  # "sentence", "item", "row" or "code"
    text: str  # as quoted in an answer: Markdown escapes and emphasis dropped, list marks too

    @property
    def words(self) -> int:
        return len(self.text.split())


def passage_units(text: str) -> list[Unit]:
    """The passage's units in order; a Markdown code block's lines are listing lines."""
    units: list[Unit] = []
    fenced = False
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped.startswith(_FENCE):
            fenced = not fenced
            continue
        if not stripped:
            continue
        if fenced:
            units.append(Unit("code", stripped))
            continue
        kind = line_kind(stripped)
        if kind in ("row", "code"):
            units.append(Unit(kind, plain(stripped) if kind == "code" else stripped))
        elif kind == "item":
            units.append(Unit("item", plain(LIST_ITEM_MARK.sub("", stripped))))
        else:
            units += [Unit("sentence", plain(stripped[s:e])) for s, e in sentence_spans(stripped)]
    return _with_terms_defined([u for u in units if u.text])


def row_lines(text: str) -> list[str]:
    """The passage's table rows, as passage_units finds them, without cutting its prose into
    sentences (what a table reader needs, at a fraction of the cost)."""
    rows = []
    fenced = False
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped.startswith(_FENCE):
            fenced = not fenced
        elif stripped and not fenced and line_kind(stripped) == "row":
            rows.append(stripped)
    return rows


def _with_terms_defined(units: list[Unit]) -> list[Unit]:
    """A definition list's term ("`--debug`") and its definition, which Markdown writes as two
    items, as one item: "`--debug`: Output an XML tree ...". Alone, neither answers."""
    merged: list[Unit] = []
    for unit in units:
        previous = merged[-1] if merged else None
        if (
            previous is not None
            and previous.kind == unit.kind == "item"
            and previous.words <= 3
            and previous.text[-1:] not in ".!?:"
        ):
            merged[-1] = Unit("item", f"{previous.text}: {unit.text}")
        else:
            merged.append(unit)
    return merged


def plain(text: str) -> str:
    """Text without Markdown's escapes and emphasis marks (inline `code` keeps its backticks)."""
    text = _EMPHASIS.sub(lambda m: m.group(2) or m.group(3), text)
    return " ".join(_ESCAPE.sub(r"\1", text).split())


def row_cells(row: str) -> tuple[str, list[tuple[str | None, str]]]:
    """A table row's label and its (column header or None, figure) cells."""
    label, *cells = row.split(ROW_SEPARATOR)
    out = []
    for cell in cells:
        header, sep, figure = cell.partition(": ")
        out.append((header, figure) if sep else (None, cell))
    return label, out


def trimmed_row(row: str, years: set[str]) -> str:
    """The row with only the columns of the asked years (all of them when none is named or none
    of its columns is one of them): the shortest quote that holds the answer."""
    label, cells = row_cells(row)
    kept = [(h, f) for h, f in cells if h is not None and any(y in h for y in years)]
    if not kept:
        return row
    return ROW_SEPARATOR.join([label] + [f"{h}: {f}" for h, f in kept])
