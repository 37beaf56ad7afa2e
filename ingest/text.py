"""Cleaning extracted text and splitting it into sentences with their character spans."""

from __future__ import annotations

import re
import unicodedata

from ingest.tables import is_row

_HYPHEN_BREAK = re.compile(r"(\w)[-\u00ad]\n\s*([a-z])")
_SOFT_HYPHEN = re.compile("\u00ad")
_SPACES = re.compile(r"[ \t\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")
_NUMBERED_LABELS = {"chapter", "section", "part", "table", "figure", "step", "article", "appendix", "item", "page"}
DANGLING_WORDS = {
    "a",
    "an",
    "the",
    "of",
    "and",
    "or",
    "to",
    "in",
    "on",
    "for",
    "with",
    "by",
    "at",
    "from",
    "is",
    "are",
}

# A sentence ends at . ! or ? (optionally followed by closing quotes or brackets) and
# whitespace, when the next sentence starts like one.
_SENTENCE_END = re.compile(r"[.!?][\"'\u201d\u2019)\]]*\s+(?=[\"'\u201c\u2018(\[]?[A-Z0-9])")
_ABBREVIATIONS = {
    "e.g",
    "i.e",
    "etc",
    "vs",
    "cf",
    "al",
    "fig",
    "figs",
    "eq",
    "eqs",
    "no",
    "nos",
    "vol",
    "pp",
    "p",
    "mr",
    "mrs",
    "ms",
    "dr",
    "prof",
    "sr",
    "jr",
    "st",
    "inc",
    "ltd",
    "co",
    "corp",
    "u.s",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
    "sec",
    "ch",
    "approx",
}


def clean_page_text(raw: str) -> str:
    """Normalizes extracted PDF text: ligatures, hyphenated line breaks, wrapped lines.

    Paragraph breaks (blank lines) are kept as a blank line; lines wrapped inside a paragraph
    are joined with a space; "exam-\\nple" becomes "example".
    """
    text = unicodedata.normalize("NFKC", raw).replace("\x00", "")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _HYPHEN_BREAK.sub(r"\1\2", text)
    text = _SOFT_HYPHEN.sub("", text)
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    text = _BLANK_LINES.sub("\n\n", text)
    return _join_wrapped_lines(text.strip())


def _join_wrapped_lines(text: str) -> str:
    """Joins the lines of each paragraph with spaces; a heading line stands as its own paragraph.

    A heading ("Chapter 2. Mooring fees") is a short line without closing punctuation that
    starts after a sentence end and is followed by a capitalized line. Without this rule it
    would be glued to the first sentence under it. Lines whose breaks carry meaning stay lines
    of their own: a table row, a listing line, and a list item (with its wrapped continuation).
    """
    lines = text.split("\n")
    paragraphs: list[list[list[str]]] = []
    # The paragraph's lines, each the wrapped lines it is joined from: joined once at the end,
    # since adding to a string line by line takes time quadratic in a paragraph's length.
    current: list[list[str]] = []
    standalone = False  # whether the last line is a row or listing line, which nothing continues
    for i, line in enumerate(lines):
        if not line:
            if current:
                paragraphs.append(current)
            current, standalone = [], False
            continue
        after_sentence_end = i == 0 or not lines[i - 1] or lines[i - 1][-1] in ".!?:"
        following = lines[i + 1] if i + 1 < len(lines) else ""
        kind = line_kind(line)
        if kind in ("prose", "item") and after_sentence_end and _looks_like_heading(line) and following[:1].isupper():
            if current:
                paragraphs.append(current)
            paragraphs.append([[line]])
            current, standalone = [], False
            continue
        if current and kind == "prose" and not standalone:
            current[-1].append(line)
        else:
            current.append([line])
        standalone = kind in ("row", "code")
    if current:
        paragraphs.append(current)
    return "\n\n".join("\n".join(" ".join(wrapped) for wrapped in p) for p in paragraphs)


LIST_ITEM_MARK = re.compile(r"^(?:[•◦▪▫‣⁃●○■□➢✓*–-]|\d{1,2}[.)]|\([a-z0-9]{1,3}\)|[a-z][.)])\s+(?=\S)")
_LISTING = re.compile(
    r"^\\[A-Za-z@]+"  # a TeX macro: \heavyrulewidth=.08em
    r"|^\S*\w::\w"  # a qualified name: Acquire::http::Proxy "http://proxy:3128";
    r"|^[\w.-]+=\S"  # key=value
    r"|[{}]\s*$"  # a block opens or closes
    r"|^[$#] [a-z]"  # a shell prompt
)


def line_kind(line: str) -> str:
    """What a line of extracted text is: "row" (a table row, cells joined by " | "), "code" (a
    listing line), "item" (starts a list item), or "prose"."""
    if is_row(line):
        return "row"
    if _LISTING.search(line) and len(line.split()) <= 16:
        return "code"
    if LIST_ITEM_MARK.match(line):
        return "item"
    return "prose"


def _looks_like_heading(line: str) -> bool:
    last_word = line.rsplit(None, 1)[-1].lower()
    return len(line) <= 60 and line[-1] not in ".,;:!?-" and last_word not in DANGLING_WORDS


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of `text`; a paragraph break always ends one."""
    spans: list[tuple[int, int]] = []
    for paragraph in re.finditer(r"[^\n]+", text):
        base, body, start = paragraph.start(), paragraph.group(), 0
        for match in _SENTENCE_END.finditer(body):
            if _ends_with_abbreviation(body[start : match.start() + 1]):
                continue
            spans.append((base + start, base + match.start() + len(match.group().rstrip())))
            start = match.end()
        if start < len(body):
            spans.append((base + start, base + len(body)))
    return [(s, e) for s, e in (_trim(text, s, e) for s, e in spans) if e > s]


def _ends_with_abbreviation(sentence: str) -> bool:
    """Whether the final "." belongs to an abbreviation, an initial, or a numbered label."""
    words = sentence[:-1].split()
    if not words:
        return True
    last = words[-1].lower().lstrip("(\"'")
    if last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha()):
        return True
    # "Chapter 2. Mooring fees", "Section 4.1. Scope": the number labels what follows.
    return len(words) >= 2 and last.replace(".", "").isdigit() and words[-2].lower() in _NUMBERED_LABELS


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def ends_sentence(text: str) -> bool:
    """Whether text ends at a sentence boundary (so the next page starts a new sentence)."""
    stripped = text.rstrip().rstrip("\"')]\u201d\u2019")
    if stripped and line_kind(stripped.rsplit("\n", 1)[-1]) in ("row", "code"):
        return True  # a table or listing ends the page: nothing on the next continues it
    return not stripped or stripped[-1] in ".!?:;"
