"""The files a question names: "What was Adobe's FY2015 operating cash flow?" names
ADOBE_2015_10K.pdf, "American Water Works" names AMERICANWATERWORKS_2021_10K.pdf.

A file's name often says what the file is about (a company and a year, a product and a
version), and a question that uses that name wants that file. Passages do not carry it well: a
table row's embedding knows nothing of the company, and every filing has pages about cash flow.
So a question that names files is searched in them first (Docent.search falls back to the
whole collection when they hold nothing relevant).

Only a file name's distinctive words count: words of three or more letters (not "10K", nor a
year) that the collection's passages use mostly in the files whose names hold them (not
"earnings" in JOHNSON_JOHNSON_2023Q2_EARNINGS.pdf), found in the question as a word or as
consecutive words run together ("American Water Works"). A year in the question then narrows
the named files to those whose name has that year, when one does. Web pages are named by their
address, which says little; they are never named this way.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Callable, Iterable

from retrieval.keywords import STOP_WORDS, named_years

# A word of file names names them when at least this share of the files whose passages use it
# most are those files.
MOSTLY = 0.5
MAX_RUN = 3  # words run together to match a name word: "american water works"
_WORD = re.compile(r"[a-z]+|\d+")


def named_sources(question: str, files: Iterable[str], holders: Callable[[str], list[str]]) -> list[str]:
    """The sources (as stored) of the files the question names. files: the sources of the
    collection's files (Collection.file_sources: no web pages); holders(word): the sources of
    the passages that use the word most (a few hundred at most)."""
    names = {source: _name_words(source) for source in files}
    files_with: dict[str, set[str]] = {}
    for source, words in names.items():
        for word in words:
            files_with.setdefault(word, set()).add(source)
    text = question.lower()
    said = _said(text)
    naming = {
        word
        for word, files in files_with.items()
        if word in said and word.isalpha() and len(word) >= 3 and word not in STOP_WORDS
    }
    # A common word in a file name ("earnings", "handbook") is no name: the passages that use it
    # most are mostly in other files. A company's or a product's name is used in its own files.
    naming = {w for w in naming if _mostly_within(holders(w), files_with[w])}
    named = [source for source, words in names.items() if naming & set(words)]
    years = named_years(question)
    of_year = [s for s in named if years & named_years(PurePosixPath(s).stem)]
    return of_year or named


def _mostly_within(sources: list[str], files: set[str]) -> bool:
    """Whether most of the files whose passages use the word are the files it names (files,
    not passages: each passage of a file also holds the words of its title)."""
    using = set(sources)
    return not using or len(using & files) >= MOSTLY * len(using)


def _name_words(source: str) -> list[str]:
    return _WORD.findall(PurePosixPath(source).stem.lower())


def _said(text: str) -> set[str]:
    """The question's words, and each run of up to MAX_RUN consecutive words written as one."""
    words = _WORD.findall(text)
    return {"".join(words[i : i + n]) for n in range(1, MAX_RUN + 1) for i in range(len(words) - n + 1)}
