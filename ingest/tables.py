"""Tables kept as rows: a row's label, its column headers and its figures stay together as one
line ("Net income | 2020: $709 | 2019: $621 | 2018: $565"), in PDFs, Office files and sheets.

pypdf's plain extraction runs a table together: a row's figures land at the start of the next
row's label, so neither a search nor a reader can tell which number belongs to what. Its layout
mode keeps each printed row on one line, with the columns apart; that mode is slower and
interleaves multi-column prose, so it is used only for a page whose plain text looks tabular,
and only the lines that parse as table rows are taken from it as rows.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from ingest.models import Page

ROW_SEPARATOR = " | "
# A page is read again in layout mode when this many of its plain-text lines carry two figures
# side by side; it is rebuilt from the layout text when this many rows parse.
MIN_FIGURE_LINES = 3
MIN_ROWS = 3

_FIGURE = re.compile(r"^[(\-−]?[$€£]?\s?[(\-−]?(\d[\d,]*(\.\d+)?|\.\d+)%?\)?%?$|^[—–-]{1,2}$")
_YEAR = re.compile(r"\b(19|20)\d\d\b")
_CELL_GAP = re.compile(r"\s*\.{3,}\s*|\s{2,}")  # dot leaders or two or more spaces
_CURRENCY = {"$", "€", "£"}
_PERCENT_APART = re.compile(r"(\d\)?)\s+%")  # "20.7 %", "(5) %"
_SIGN_APART = re.compile(r"^([$€£])\s+(?=[(\d])")  # "$ 785", "$ (123)"


def looks_tabular(plain_text: str) -> bool:
    """Whether a page's plain text has lines of figures, as a table's rows give it."""
    lines = 0
    for line in plain_text.splitlines():
        if _has_figure_run(line):
            lines += 1
            if lines >= MIN_FIGURE_LINES:
                return True
    return False


def _has_figure_run(line: str) -> bool:
    """Two figures side by side ("604 582", "$ 709 $ 621"), not a year: a row's columns, which
    prose ("$3,255 million for 2020, $3,094 million for 2019") does not give."""
    run = 0
    for token in line.split():
        if token in _CURRENCY or token == "%":  # signs printed apart from their figures
            continue
        run = run + 1 if _FIGURE.match(token) and not _YEAR.fullmatch(token) else 0
        if run >= 2:
            return True
    return False


def rebuild_with_rows(layout_text: str) -> str | None:
    """The page's text with each table row on a line of its own, its cells joined by " | " and
    each figure named by its column header where the table has one; other lines as they are.
    None when fewer than MIN_ROWS rows parse (the page is better read as plain text)."""
    lines: list[str] = []
    header: list[str] = []
    stacked: list[str] = []  # column years printed one per line ("December 31," "2018" "2017")
    rows = 0
    for raw in layout_text.splitlines():
        cells = _cells(raw)
        if cells:  # blank lines may stand between the stacked years
            stacked = stacked + cells if len(cells) == 1 and _YEAR.fullmatch(cells[0]) else []
        years = _header_years(cells) or (list(stacked) if len(stacked) >= 2 else None)
        if years:
            header = years
            lines.append(" ".join(cells))
            continue
        row = _row(cells, header)
        if row is None:
            lines.append(" ".join(raw.split()))
            continue
        if row[:1].islower() and lines and lines[-1] and not is_row(lines[-1]):
            row = f"{lines.pop()} {row}"  # a label wrapped onto a second printed line
        lines.append(row)
        rows += 1
    if rows < MIN_ROWS:
        return None
    return "\n".join(lines)


# A statement's name ("CONSOLIDATED STATEMENTS OF CASH FLOWS", "Consolidated Balance Sheet
# (continued)") or a caption ("Table 3: Results"), and its unit ("(in millions, except per share
# data)"), as printed above the table.
_STATEMENT = re.compile(
    r"(?:(?:condensed|consolidated|combined)\s+)*"
    r"(?:balance\s+sheets?|statements?\s+of\s+(?:consolidated\s+)?(?:comprehensive\s+)?"
    r"(?:income|operations|earnings|cash\s+flows?|financial\s+(?:position|condition)|loss"
    r"|(?:changes\s+in\s+)?(?:(?:share|stock)holders[’']?\s+|shareowners[’']?\s+)?equity)"
    r"(?:\s*\((?:loss|deficit)\))?(?:\s+and\s+comprehensive\s+(?:income|loss))?)"
    r"(?:\s*\(continued\))?",
    re.IGNORECASE,
)
_CAPTION = re.compile(r"^table\s+\d+(?:\.\d+)*\s*[:.]\s*\S.{0,80}", re.IGNORECASE | re.MULTILINE)
HEADING_CHARS = 400  # a statement's name heads its page; further down it is a mention
_UNIT = re.compile(
    r"\(?\b(?:dollars\s+|amounts\s+)?in\s+(?:millions|thousands|billions)\b[^)\n\d]{0,40}\)?", re.IGNORECASE
)


def table_heading(text: str) -> str | None:
    """The heading printed above a page's first table row, as it names the table: a financial
    statement's name (at the top of the page) with its unit, or a numbered caption. None for a
    page without rows, or when nothing above them names the table."""
    if ROW_SEPARATOR not in text:
        return None
    above = text.split(ROW_SEPARATOR, 1)[0].rsplit("\n", 1)[0]
    statement = _STATEMENT.search(above[:HEADING_CHARS])
    if statement is not None and _is_titled(statement.group()):
        unit = _UNIT.search(above)
        heading = " ".join(statement.group().split())
        return f"{heading} ({' '.join(unit.group().strip('() ').split())})" if unit else heading
    caption = _CAPTION.search(above)
    return " ".join(caption.group().split()) if caption else None


def _is_titled(name: str) -> bool:
    """Printed as a heading (every long word capitalised), not said in a sentence ("the
    consolidated statements of income include ...")."""
    return all(word[0].isupper() for word in re.findall(r"[A-Za-z]{4,}", name))


def is_row(line: str) -> bool:
    return ROW_SEPARATOR in line


def _cells(line: str) -> list[str]:
    cells = [_SIGN_APART.sub(r"\1", _PERCENT_APART.sub(r"\1%", cell)) for cell in _CELL_GAP.split(line.strip()) if cell]
    merged: list[str] = []
    for cell in cells:
        if merged and (merged[-1] in _CURRENCY or cell == "%"):  # "$" and "%" printed apart from their figure
            merged[-1] += cell
        else:
            merged.append(cell)
    return merged


def _header_years(cells: list[str]) -> list[str] | None:
    """The years of a line of column headers ("2020  2019  2018", "Fiscal 2022  Fiscal 2021",
    "December 31,  2018  2017"), else None."""
    if len(cells) >= 2 and all(_YEAR.search(cell) and len(cell) <= 24 for cell in cells):
        return [_YEAR.search(cell).group() for cell in cells]
    if len(cells) >= 3 and all(_YEAR.fullmatch(cell) for cell in cells[1:]):
        return cells[1:]
    return None


def _row(cells: list[str], header: list[str]) -> str | None:
    """A label followed by figures, rendered as one line; None for anything else."""
    if len(cells) < 2 or not any(ch.isalpha() for ch in cells[0]) or _FIGURE.match(cells[0]):
        return None
    figures = cells[1:]
    if not all(_FIGURE.match(cell) for cell in figures):
        return None
    label = cells[0].rstrip(" .:")
    if len(header) == len(figures):
        return ROW_SEPARATOR.join([label] + [f"{year}: {figure}" for year, figure in zip(header, figures)])
    return ROW_SEPARATOR.join([label] + figures)


# ---- tables of Office files, spreadsheets, HTML pages and Markdown ---------------------------

ROWS_PER_PAGE = 50  # a spreadsheet's rows are cited in blocks: "Revenue, rows 2-51"
HEADER_SCAN = 8  # a table's title and header rows are looked for among its first rows
_UNIT_CAPTION = re.compile(r"\bin (?:thousands|millions|billions)\b|[$€£]|\b(?:usd|eur|gbp)\b|['’]000", re.I)
_SPACED_DIGITS = re.compile(r"\b\d(?: \d){3}\b")
_MARKDOWN_RULE = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?$")


@dataclass(frozen=True)
class TableHeader:
    """How a table's body rows are read: the lines that title it (a caption or unit row above
    the header, a heading spanning every column), each column's name (its header rows' cells
    joined: "2019 Amount"), and whether the first column labels its row rather than holding a
    value of its own ("Total sales" in a statement, not "name: Alice" in a list)."""

    titles: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    labelled_rows: bool = True

    def line(self, cells: list[str]) -> str:
        """A body row as one line: "Total sales | 2019: $1,496.5 | 2018: $1,202.9"; a row with
        only a label (a group heading inside the table, "Assets") is its label alone."""
        named = []
        for i, cell in enumerate(cells):
            if not cell:
                continue
            title = self.columns[i] if i < len(self.columns) else ""
            if i == 0 and self.labelled_rows:
                named.append(cell)
            else:
                named.append(f"{title}: {cell}" if title and title != cell else cell)
        return ROW_SEPARATOR.join(named)


def read_header(rows: list[list[str]]) -> tuple[TableHeader, int]:
    """The header of a table (rows of cell texts, none empty) and where its body starts.

    Above the header may stand title rows, a single cell each ("In millions of CHF"). The
    header is the next row unless that row already holds figures; a header may take several
    rows (a year over "Amount" and "%"), the later ones with an empty first cell and no
    figure. A header cell stands over the empty cells to its right (a merged cell's text is
    in its first cell); a header level that is the same over every column titles the table."""
    widest = max(_filled(row) for row in rows[:HEADER_SCAN])
    titles: list[str] = []
    at = 0
    while at < len(rows) - 1 and at < HEADER_SCAN and _filled(rows[at]) <= 1 < widest:
        titles.append(next(cell for cell in rows[at] if cell))
        at += 1
    if at >= len(rows) or _holds_figures(rows[at]):
        return TableHeader(tuple(titles)), at
    levels = [rows[at]]
    at += 1
    while at < len(rows) - 1 and at < HEADER_SCAN and not rows[at][0] and not _holds_figures(rows[at]):
        levels.append(rows[at])
        at += 1
    width = max(len(row) for row in rows)
    filled = [
        _spread(level, width) if n < len(levels) - 1 else level + [""] * (width - len(level))
        for n, level in enumerate(levels)
    ]
    for level, raw in zip(list(filled), levels):
        values = {cell for cell in level[1:] if cell}
        spans_all = len(values) == 1 and (all(level[1:]) or _filled(raw[1:]) == 1 < width - 1)
        if len(filled) > 1 and spans_all:
            titles.append(values.pop())  # "Years Ended September 30," or "(in millions)" over every column
            filled.remove(level)
    columns = [despace_digits(" ".join(dict.fromkeys(level[i] for level in filled if level[i]))) for i in range(width)]
    periods = [c for c in columns[1:] if c]
    # The first column labels the rows when it has no header, when every other column is a
    # period, or when its header only says the table's unit ("(Dollars in thousands)").
    labelled = (
        not columns[0]
        or (bool(periods) and all(_YEAR.search(c) for c in periods))
        or bool(_UNIT_CAPTION.search(columns[0]))
    )
    if labelled and columns[0]:
        titles.append(columns[0])  # "(In thousands)", "As of"
    return TableHeader(tuple(titles), tuple(columns), labelled), at


def despace_digits(text: str) -> str:
    """A letter-spaced number written whole: "2 0 1 8" -> "2018" (headings set with spacing)."""
    return _SPACED_DIGITS.sub(lambda m: m.group().replace(" ", ""), text)


def table_lines(rows: list[list]) -> list[str]:
    """A table's rows as lines, each cell named by its column header: "Total net revenue |
    2022: $5,123 | 2021: $4,876"; "name: Alice | age: 31". Title rows above the header come
    first, as lines of their own."""
    rows = [[_cell_text(v) for v in row] for row in rows]
    rows = [row for row in rows if any(row)]
    if not rows:
        return []
    if len(rows) == 1:
        return [ROW_SEPARATOR.join(c for c in rows[0] if c)]
    header, body = read_header(rows)
    lines = list(header.titles) + [header.line(row) for row in rows[body:]]
    return [line for line in lines if line]


def markdown_table(block: str) -> list[str] | None:
    """A Markdown table ("| Fixed Price | $ 1,452.4 | ...", as HTML pages are extracted) as
    table_lines gives it; None when the block is not a table."""
    lines = [line.strip() for line in block.strip().split("\n")]
    if len(lines) < 2 or not all(line.startswith("|") for line in lines):
        return None
    rows = [_markdown_cells(line) for line in lines if not _MARKDOWN_RULE.match(line)]
    return table_lines(rows)


def _markdown_cells(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [" ".join(unicodedata.normalize("NFKC", cell).split()) for cell in cells]


def sheet_pages(sheet: str, rows) -> list[Page]:
    """A sheet's rows ((row number, values), in order) as pages of ROWS_PER_PAGE rows whose
    section names the sheet and the rows; each row's cells are named by the header, and the
    title rows above the header ("In millions of CHF") head every page."""
    pages: list[Page] = []
    header: TableHeader | None = None
    first: list[tuple[int, list[str]]] = []  # the rows read before the header is known
    block: list[tuple[int, str]] = []

    def flush() -> None:
        if block:
            section = f"{sheet}, rows {block[0][0]}-{block[-1][0]}" if len(block) > 1 else f"{sheet}, row {block[0][0]}"
            text = "\n".join([*header.titles, *(line for _, line in block)])
            pages.append(Page(len(pages) + 1, text, section))
            block.clear()

    def add(number: int, cells: list[str]) -> None:
        line = header.line(cells)
        if line:
            block.append((number, line))
        if len(block) == ROWS_PER_PAGE:
            flush()

    for number, values in rows:
        cells = [_cell_text(v) for v in values]
        if not any(cells):
            continue
        if header is not None:
            add(number, cells)
            continue
        first.append((number, cells))
        if len(first) == HEADER_SCAN:
            header, body = read_header([c for _, c in first])
            for n, c in first[body:]:
                add(n, c)
    if header is None and len(first) > 1:
        header, body = read_header([c for _, c in first])
        for n, c in first[body:]:
            add(n, c)
    flush()
    if len(first) == 1:  # a sheet of one row: its header is its content
        pages.append(Page(1, ROW_SEPARATOR.join(c for c in first[0][1] if c), f"{sheet}, row {first[0][0]}"))
    return pages


def _filled(row: list[str]) -> int:
    return sum(1 for cell in row if cell)


def _holds_figures(row: list[str]) -> bool:
    """Whether a row's cells after the first hold a figure that is not a year: a body row."""
    return any(_FIGURE.match(cell) and not _YEAR.fullmatch(cell) for cell in row[1:] if cell)


def _spread(level: list[str], width: int) -> list[str]:
    """A header row with each cell also over the empty cells to its right (and the first
    cell's text over the empty ones before it), the label column aside."""
    out = level + [""] * (width - len(level))
    current = next((cell for cell in out[1:] if cell), "")
    for i in range(1, width):
        current = out[i] or current
        out[i] = current
    return out


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "isoformat"):  # a date or datetime: the date alone when it has no time
        text = value.isoformat()
        return text[:10] if text.endswith("T00:00:00") else text
    return " ".join(str(value).split())
