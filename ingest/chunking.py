"""Cutting a document into passages that fit the embedding model, page by page.

Sizes are measured in the model's own tokens, the context header included: a passage that
ran past the model's window would be cut silently and its tail never embedded. Chunks are
whole sentences packed greedily, and consecutive chunks share a few sentences of overlap so
that a statement near a boundary is found with its neighbours.
"""

from __future__ import annotations

import re
from typing import Callable

from ingest.models import Chunk, Document
from ingest.text import sentence_spans

TokenCounter = Callable[[str], int]

# all-MiniLM-L6-v2 reads 256 word pieces, two of which are [CLS] and [SEP].
DEFAULT_MAX_TOKENS = 256
SPECIAL_TOKENS = 2
DEFAULT_OVERLAP_TOKENS = 40
MIN_TEXT_TOKENS = 32
# A sentence cut at words is cut inside a word longer than this too: a "word" of megabytes (a
# file of one token, a base64 blob) would otherwise be one unbounded passage.
LONG_WORD_CHARS = 32
_WORD_PIECE = re.compile(rf"\S{{1,{LONG_WORD_CHARS}}}")
# No token covers more than a word (cut at LONG_WORD_CHARS) and its space: a sentence longer than
# this many characters a token cannot fit a budget, and is cut at words without being tokenized
# whole (a 9 MB line given to the tokenizer at once took 1.7 GB).
MAX_CHARS_PER_TOKEN = LONG_WORD_CHARS + 8


def approximate_token_count(text: str) -> int:
    """A cautious stand-in for a word-piece tokenizer: words, punctuation, and long words split."""
    return sum(1 + len(piece) // 6 for piece in re.findall(r"\w+|[^\w\s]", text))


def chunk_document(
    document: Document,
    *,
    count_tokens: TokenCounter = approximate_token_count,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
) -> list[Chunk]:
    window = max_tokens - SPECIAL_TOKENS
    if window < 2 * MIN_TEXT_TOKENS:
        raise ValueError(f"max_tokens={max_tokens} leaves no room for a header and text")
    chunks: list[Chunk] = []
    for page in document.pages:
        context = " — ".join(part for part in (document.title, document.about, page.section) if part)
        context = _cut_to(context, window // 2, count_tokens)
        budget = window - count_tokens(context)
        pieces = _pieces(page.text, budget, count_tokens)
        for start, end in _pack(pieces, budget, overlap_tokens):
            span_start, span_end = pieces[start][0], pieces[end - 1][1]
            chunks.append(
                Chunk(
                    text=page.text[span_start:span_end],
                    context=context,
                    page=page.number if document.kind == "pdf" else None,
                    section=page.section,
                    ordinal=len(chunks),
                    char_start=span_start,
                    char_end=span_end,
                )
            )
    return chunks


def _cut_to(header: str, limit: int, count_tokens: TokenCounter) -> str:
    """The header, cut to at most `limit` tokens with an ellipsis where it is longer (a
    2,000-character heading path, an e-mail forwarded 28 levels deep): a header leaves at least
    half of each passage to its text."""
    if count_tokens(header) <= limit:
        return header
    low, high = 0, len(header)  # the longest start that fits, ellipsis included
    while low < high:
        middle = (low + high + 1) // 2
        if count_tokens(header[:middle] + " …") <= limit:
            low = middle
        else:
            high = middle - 1
    start = header[:low]
    if " " in start[len(start) // 2 :]:
        start = start[: start.rindex(" ")]  # at a word's end
    return start.rstrip(" —") + " …"


def _pieces(text: str, budget: int, count_tokens: TokenCounter) -> list[tuple[int, int, int]]:
    """Sentences as (start, end, tokens); a sentence longer than the budget is cut at words."""
    pieces = []
    for start, end in sentence_spans(text):
        tokens = count_tokens(text[start:end]) if end - start <= budget * MAX_CHARS_PER_TOKEN else budget + 1
        if tokens <= budget:
            pieces.append((start, end, tokens))
            continue
        window_start, window_tokens, previous_end = None, 0, start
        for word in _WORD_PIECE.finditer(text, start, end):
            word_start, word_end = word.start(), word.end()
            word_tokens = count_tokens(word.group())
            if window_start is not None and window_tokens + word_tokens > budget:
                pieces.append((window_start, previous_end, window_tokens))
                window_start, window_tokens = None, 0
            if window_start is None:
                window_start = word_start
            window_tokens += word_tokens
            previous_end = word_end
        if window_start is not None:
            pieces.append((window_start, previous_end, window_tokens))
    return pieces


def _pack(pieces: list[tuple[int, int, int]], budget: int, overlap_tokens: int) -> list[tuple[int, int]]:
    """Greedy ranges [start, end) of pieces within the budget, each overlapping the last."""
    ranges: list[tuple[int, int]] = []
    start = 0
    while start < len(pieces):
        end, used = start, 0
        while end < len(pieces) and used + pieces[end][2] <= budget:
            used += pieces[end][2]
            end += 1
        end = max(end, start + 1)  # a single piece over budget (a very long word) still goes in
        ranges.append((start, end))
        if end >= len(pieces):
            break
        # Step back over trailing pieces that fit in the overlap, but always move forward.
        next_start, carried = end, 0
        while next_start - 1 > start and carried + pieces[next_start - 1][2] <= overlap_tokens:
            next_start -= 1
            carried += pieces[next_start][2]
        start = next_start
    return ranges
