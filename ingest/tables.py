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

from ingest.models import Page

ROW_SEPARATOR = " | "
# A page is read again in layout mode when this many of its plain-text lines carry two figures
# side by side; it is rebuilt from the layout text when this many rows parse.
MIN_FIGURE_LINES = 3
MIN_ROWS = 3

_FIGURE = re.compile(r"^[(\-−]?[$€£]?\s?(\d[\d,]*(\.\d+)?|\.\d+)%?\)?%?$|^[—–-]{1,2}$")
_YEAR = re.compile(r"\b(19|20)\d\d\b")
_CELL_GAP = re.compile(r"\s*\.{3,}\s*|\s{2,}")  # dot leaders or two or more spaces
_CURRENCY = {"$", "€", "£"}


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
        if token in _CURRENCY:
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
    cells = [cell for cell in _CELL_GAP.split(line.strip()) if cell]
    merged: list[str] = []
    for cell in cells:
        if merged and merged[-1] in _CURRENCY:  # "$" and its figure are printed apart
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


# ---- tables of Office files and spreadsheets ---------------------------------------------------

ROWS_PER_PAGE = 50  # a spreadsheet's rows are cited in blocks: "Revenue, rows 2-51"


def table_lines(rows: list[list]) -> list[str]:
    """A table's rows as lines, each cell named by its column header (the first row with text):
    "Total net revenue | 2022: $5,123 | 2021: $4,876"; "name: Alice | age: 31"."""
    rows = [[_cell_text(v) for v in row] for row in rows]
    rows = [row for row in rows if any(row)]
    if not rows:
        return []
    header, body = rows[0], rows[1:]
    if not body:
        return [ROW_SEPARATOR.join(c for c in header if c)]
    return [line for line in (_named_row(header, row) for row in body) if line]


def sheet_pages(sheet: str, rows) -> list[Page]:
    """A sheet's rows ((row number, values), in order) as pages of ROWS_PER_PAGE rows whose
    section names the sheet and the rows; the header row is repeated in every row's cells."""
    pages: list[Page] = []
    header: list[str] | None = None
    block: list[tuple[int, str]] = []

    def flush() -> None:
        if block:
            section = f"{sheet}, rows {block[0][0]}-{block[-1][0]}" if len(block) > 1 else f"{sheet}, row {block[0][0]}"
            pages.append(Page(len(pages) + 1, "\n".join(line for _, line in block), section))
            block.clear()

    for number, values in rows:
        cells = [_cell_text(v) for v in values]
        if not any(cells):
            continue
        if header is None:
            header = cells
            continue
        line = _named_row(header, cells)
        if line:
            block.append((number, line))
        if len(block) == ROWS_PER_PAGE:
            flush()
    flush()
    if header is not None and not pages:  # a sheet of one row: its header is its content
        pages.append(Page(1, ROW_SEPARATOR.join(c for c in header if c), f"{sheet}, row 1"))
    return pages


def _named_row(header: list[str], cells: list[str]) -> str:
    named = []
    for i, cell in enumerate(cells):
        if not cell:
            continue
        title = header[i] if i < len(header) else ""
        named.append(f"{title}: {cell}" if title and title != cell else cell)
    return ROW_SEPARATOR.join(named)


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "isoformat"):  # a date or datetime: the date alone when it has no time
        text = value.isoformat()
        return text[:10] if text.endswith("T00:00:00") else text
    return " ".join(str(value).split())
