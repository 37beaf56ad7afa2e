"""A PDF page's text layer read by pdfium: in reading order, and laid out by position where the
page holds tables.

pdfium reads a page's text an order of magnitude faster than pypdf (bench/extract_bench.py) and
maps more fonts to Unicode (Japanese, ligatures). Its text comes in the order the page draws it,
which keeps a table row on one line but gives no column gaps, and a header printed as stacked
cells ("December 26," over "2015") comes one cell a line. So a page whose text looks tabular is
laid out again from its characters' positions: the runs of text that share a baseline make one
line, left to right; a gap of 0.6 of the font's height or more is a column gap (two spaces or
more), which ingest/tables.py splits rows on; a wider space than usual between lines parts
paragraphs (a blank line).

Some PDFs part two words by moving the second a little to the right rather than by a space
character ("A significant", "ended December"), and pdfium, which adds a space only for a wider
move, reads them as one ("Asignificant"). Where a word is one English does not know, the gaps
between its letters are measured: one of at least 0.08 of the font's height that stands out
from the gaps beside it parts two words. Letter-spaced headings ("D I R E C T O R S" drawn with
even gaps) stay whole, and a word English knows is never parted.

pdfium may not be called from two threads at once, not even for different documents: every call
into it goes through PDFIUM_LOCK.
"""

from __future__ import annotations

import ctypes
import re
import statistics
import threading
from dataclasses import dataclass
from functools import lru_cache

import pypdfium2.raw as pdfium_c

from ingest.tables import looks_tabular, rebuild_with_rows

PDFIUM_LOCK = threading.RLock()

# Sizes are a font's height as drawn (its ascent to its descent, about 1.2 of its em).
COLUMN_GAP = 0.6  # a gap this many sizes wide parts columns (a space between words is 0.2-0.4)
SAME_LINE = 0.4  # pieces whose baselines are closer than this many sizes share a line
PARAGRAPH_GAP = 1.4  # lines further apart than this many times the page's usual spacing part paragraphs
_BREAKS = {0x0A, 0x0D}
_SOFT_HYPHEN = 0xFFFE  # pdfium's mark for a hyphen at a line's end, the line break dropped
_JOINED_HYPHEN = re.compile("(\\w)\ufffe([a-z])")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
WORD_GAP = 0.08  # a move between two letters this many sizes wide may part two words
GAP_STANDS_OUT = 0.06  # ... when it is this much wider than the gaps between the letters beside it
_LETTERS = re.compile(r"[^\W\d_]{4,}")


def page_text(page, plain: str | None = None) -> str:
    """A pypdfium2 page's text: in reading order, or with each table row on a line of its own
    (ingest/tables.py) where its plain text looks tabular (`plain`: that text, when already
    read). Call it holding PDFIUM_LOCK."""
    textpage = page.get_textpage()
    try:
        # The text is read, and where pdfium ran words together measured, once for both readings.
        if plain is None:
            text, breaks = _drawn_text(textpage)
        else:
            text, breaks = plain, None  # the layout measures them itself
        if looks_tabular(text):
            rebuilt = rebuild_with_rows(layout_text(textpage, breaks))
            if rebuilt is not None:
                return rebuilt
        return text
    finally:
        textpage.close()


def plain_text(page) -> str:
    """A pypdfium2 page's text in the order the page draws it, lines apart. Call it holding
    PDFIUM_LOCK."""
    textpage = page.get_textpage()
    try:
        return _drawn_text(textpage)[0]
    finally:
        textpage.close()


def _drawn_text(textpage) -> tuple[str, set[int]]:
    """The page's text in drawing order, cleaned (_drawing_order_text), and where words pdfium
    ran together were parted: its text read from pdfium once for both."""
    drawn = textpage.get_text_range()
    breaks = _unspaced_word_breaks(textpage, drawn)
    return _drawing_order_text(drawn, breaks), breaks


def _drawing_order_text(text: str, breaks: set[int]) -> str:
    """pdfium's text of a page cleaned: a word pdfium joined across a hyphenated line break stays
    joined ("imple-" "mented": "implemented", as ingest/text.clean_page_text joins words broken
    so); any other hyphen pdfium marked is a hyphen. Two words pdfium ran together are parted
    before the characters at `breaks` (see the module's note)."""
    if breaks:
        text = "".join(f" {char}" if i in breaks else char for i, char in enumerate(text))
    text = _JOINED_HYPHEN.sub(r"\1\2", text).replace("\ufffe", "-")
    return _CONTROL.sub("", text)


def _unspaced_word_breaks(textpage, text: str) -> set[int]:
    """The indexes of the characters (of `text`, the page's text from pdfium) that start a word
    pdfium ran into the one before it: within a run of letters English does not know, a move to
    the right of at least WORD_GAP sizes that stands out from the moves beside it."""
    raw = textpage.raw
    if len(text) != pdfium_c.FPDFText_CountChars(raw):
        return set()  # characters outside the BMP: the text's indexes are not pdfium's
    breaks: set[int] = set()
    for word in _LETTERS.finditer(text):
        if _known_word(word.group().lower()):
            continue
        gaps = [_letter_gap(raw, i) for i in range(word.start() + 1, word.end())]
        for at, gap in enumerate(gaps):
            beside = gaps[max(at - 1, 0) : at] + gaps[at + 1 : at + 2]
            if gap >= WORD_GAP and all(gap >= other + GAP_STANDS_OUT for other in beside):
                breaks.add(word.start() + 1 + at)
    return breaks


def _letter_gap(raw, i: int) -> float:
    """How far character i is drawn to the right of where the one before it ends, in sizes."""
    before, box, x, y = pdfium_c.FS_RECTF(), pdfium_c.FS_RECTF(), ctypes.c_double(), ctypes.c_double()
    if not (
        pdfium_c.FPDFText_GetLooseCharBox(raw, i - 1, before)
        and pdfium_c.FPDFText_GetLooseCharBox(raw, i, box)
        and pdfium_c.FPDFText_GetCharOrigin(raw, i, x, y)
    ):
        return 0.0
    size = (box.top - box.bottom) or 1.0
    if abs(box.bottom - before.bottom) > SAME_LINE * size:
        return 0.0  # another line: not a gap between letters
    return (x.value - before.right) / size


@lru_cache(maxsize=65536)
def _known_word(word: str) -> bool:
    from wordfreq import zipf_frequency

    return zipf_frequency(word, "en") > 0


@dataclass
class _Piece:
    """A run of text on one printed line, as pdfium reads it in order."""

    text: str
    left: float
    right: float
    baseline: float
    size: float


def layout_text(textpage, breaks: set[int] | None = None) -> str:
    """The page's text as printed lines, top to bottom, each left to right, with two spaces or
    more where a column gap stands (`breaks`: where words pdfium ran together part, when
    already measured)."""
    if breaks is None:
        breaks = _unspaced_word_breaks(textpage, textpage.get_text_range())
    pieces = _pieces(textpage, breaks)
    if not pieces:
        return ""
    pieces.sort(key=lambda p: (-p.baseline, p.left))
    lines: list[list[_Piece]] = []
    for piece in pieces:
        line = lines[-1] if lines else None
        if line is not None and abs(line[0].baseline - piece.baseline) <= SAME_LINE * max(line[0].size, piece.size):
            line.append(piece)
        else:
            lines.append([piece])
    gaps = [above[0].baseline - line[0].baseline for above, line in zip(lines, lines[1:])]
    spacing = statistics.median(gaps) if gaps else 0.0  # the page's usual distance between lines
    out = []
    for gap, line in zip([0.0, *gaps], lines):
        if gap > PARAGRAPH_GAP * spacing:
            out.append("")  # space left between two lines parts paragraphs, as blank lines in text
        line.sort(key=lambda p: p.left)
        text = line[0].text
        for before, piece in zip(line, line[1:]):
            text += _gap(piece.left - before.right, max(before.size, piece.size)) + piece.text
        out.append(text)
    return "\n".join(out)


def _pieces(textpage, word_breaks: set[int]) -> list[_Piece]:
    """The page's characters grouped into pieces: a piece ends at a line break pdfium reads
    and at a column gap within what it reads as one line."""
    raw = textpage.raw
    left, right, bottom, top = (ctypes.c_double() for _ in range(4))
    x, y = ctypes.c_double(), ctypes.c_double()
    loose = pdfium_c.FS_RECTF()
    pieces: list[_Piece] = []
    chars: list[str] = []
    current: _Piece | None = None
    pending_space = False

    def close() -> None:
        nonlocal current
        if current is not None:
            current.text = "".join(chars).strip()
            if current.text:
                pieces.append(current)
        current = None
        chars.clear()

    for i in range(pdfium_c.FPDFText_CountChars(raw)):
        code = pdfium_c.FPDFText_GetUnicode(raw, i)
        if code in _BREAKS:
            close()
            continue
        pending_space = pending_space or i in word_breaks
        char = "-" if code == _SOFT_HYPHEN else chr(code)
        if char.isspace() or not char.isprintable():
            pending_space = True
            continue
        if not pdfium_c.FPDFText_GetCharBox(raw, i, left, right, bottom, top):
            continue
        pdfium_c.FPDFText_GetCharOrigin(raw, i, x, y)
        # The size as drawn: the font's height box (a font size is often scaled by the text matrix).
        pdfium_c.FPDFText_GetLooseCharBox(raw, i, loose)
        size = (loose.top - loose.bottom) or (top.value - bottom.value) or 1.0
        if current is not None and (
            abs(y.value - current.baseline) > SAME_LINE * size
            or left.value - current.right >= COLUMN_GAP * size
            or left.value < current.right - size  # drawn back to the left: another line or column
        ):
            close()
        if current is None:
            current = _Piece("", left.value, right.value, y.value, size)
        elif pending_space:
            chars.append(" ")
        chars.append(char)
        current.right = max(current.right, right.value)
        pending_space = False
    close()
    return pieces


def _gap(width: float, size: float) -> str:
    """The spaces standing for a gap between two pieces of one line: one between words, two or
    more (one a font height) between columns."""
    if width < COLUMN_GAP * size:
        return " "
    return " " * max(2, round(width / size))
