"""A sentence that runs over a page break, kept whole on the page where it starts.

A page's text stops where the page does, often inside a sentence whose rest opens the next
page; split there, neither half says what the sentence says, so the rest joins the page where
the sentence starts. Most pages, though, end with a running footer (a printed page number,
"2023 FORM 10-K 3") and open with a running header ("Table of Contents 5"), and a heading or a
table starts the next page as often as a sentence's rest does. Reading the footer as an
unfinished sentence moved the next page's heading and first sentence onto the page before, so a
citation named the wrong page. A running header or footer is what two consecutive pages share
at their start or end, numbers aside; the sentence is read without them, and the next page
continues it only when it starts as a sentence's rest does (in lower case, or after a comma or a
word such as "the" that cannot end one).
"""

from __future__ import annotations

import re
from typing import Sequence

from ingest.models import Page
from ingest.text import DANGLING_WORDS, ends_sentence, line_kind, sentence_spans

MAX_EDGE_WORDS = 8  # a running header or footer is a short line; pages sharing more say it as text
MAX_CARRIED = 400  # characters: a sentence's rest, not the next page's first paragraph
_EDGE_READ = MAX_EDGE_WORDS + 2
_DIGITS = re.compile(r"\d+")
_CLOSING = "\"')]\u201d\u2019"


def mend_page_break(current: Page, following: Page, earlier: Sequence[Page] = ()) -> tuple[Page, Page]:
    """The two pages with a sentence that runs from one onto the next kept whole on the first.
    The pages just before them (two: a printed report's left and right pages have footers of
    their own, "4 NIKE, INC." and "2023 FORM 10-K 5") also show the running header and footer."""
    if following.number != current.number + 1:
        return current, following
    before = [page.text for page in earlier]
    cuts = [_split_edge(current.text, other, at_end=True) for other in (following.text, *before)]
    body, footer = min(cuts, key=lambda cut: len(cut[0]))  # the longest footer any neighbour shows
    cuts = [_split_edge(following.text, other, at_end=False) for other in (current.text, *before)]
    header, rest = min(cuts, key=lambda cut: len(cut[1]))
    if ends_sentence(body) or not _continues(body, rest):
        return current, following
    end = sentence_spans(rest)[0][1]
    carried = rest[:end]
    if end > MAX_CARRIED or carried.rstrip(_CLOSING)[-1:] not in (".", "!", "?", ":", ";"):
        return current, following  # no end nearby: what follows is not the rest of a sentence
    left = rest[end:].lstrip()
    if not any(ch.isalpha() for ch in left):
        header = left = ""  # the page held only the sentence's rest (and its number): nothing of its own
    return (
        Page(current.number, _paragraphs(f"{body} {carried}", footer), current.section),
        Page(following.number, _paragraphs(header, left), following.section),
    )


def _split_edge(text: str, neighbour: str, *, at_end: bool) -> tuple[str, str]:
    """`text` parted where its running header (at_end False: (header, the rest)) or running
    footer (at_end True: (the rest, footer)) starts, the words it shares with the neighbouring
    page at that edge, numbers aside. No shared words: all of it is the rest."""
    mine, others = _edge_words(text, at_end), _edge_words(neighbour, at_end)
    shared = 0
    limit = min(MAX_EDGE_WORDS + 1, len(mine) - 1, len(others) - 1)
    while shared < limit and mine[shared] == others[shared]:
        shared += 1
    if shared > MAX_EDGE_WORDS:
        shared = 0  # pages that end alike for longer ("... the pump 12 runs at 3 litres a minute.") say it themselves
    if not shared:
        return (text, "") if at_end else ("", text)
    if at_end:
        body = text.rsplit(None, shared)[0]
        return body, text[len(body) :].lstrip()
    rest = text.split(None, shared)[shared]
    return text[: len(text) - len(rest)].rstrip(), rest


def _edge_words(text: str, at_end: bool) -> list[str]:
    """The words at a page's start (at its end: the last first), numbers masked: as many as an
    edge may hold and two more (one past the edge, one the page keeps), not the whole page."""
    if at_end:
        words = text.rsplit(None, _EDGE_READ)[-_EDGE_READ:][::-1]
    else:
        words = text.split(None, _EDGE_READ)[:_EDGE_READ]
    return [_DIGITS.sub("#", word) for word in words]


def _continues(body: str, rest: str) -> bool:
    """Whether `rest` reads as the rest of the sentence `body` stops in."""
    if not body or not rest or line_kind(rest.split("\n", 1)[0]) == "row":
        return False
    if rest[0].islower():
        return True  # "... our creative solutions are used | to create much of ..."
    last = body.split()[-1]
    return last[-1] in ",-\u2013\u2014" or last.lower() in DANGLING_WORDS  # "... filed with the | Securities ..."


def _paragraphs(*parts: str) -> str:
    return "\n\n".join(part for part in parts if part)
