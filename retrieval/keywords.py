"""Keyword terms for BM25: lower-cased words, English stop words dropped, Snowball-stemmed; and
the years a text names."""

from __future__ import annotations

import re
from functools import lru_cache

import Stemmer

_WORD = re.compile(r"\w+", re.UNICODE)
YEAR = re.compile(r"(?<!\d)((?:19|20)\d\d)(?!\d)")
_FISCAL_YEAR = re.compile(r"\bFY\s?'?(\d{2}|\d{4})\b", re.I)

# The usual English function words; they carry no topic and bloat postings.
STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can did do does doing down during each few for from further had has have having he
    her here hers herself him himself his how i if in into is it its itself just me more most my myself no
    nor not now of off on once only or other our ours ourselves out over own same she should so some such
    than that the their theirs them themselves then there these they this those through to too under until
    up very was we were what when where which while who whom why will with you your yours yourself
    yourselves""".split()
)


@lru_cache(maxsize=1)
def stemmer():
    """The Snowball English stemmer (one per process; PyStemmer caches its stems)."""
    return Stemmer.Stemmer("english")


def keyword_terms(text: str) -> list[str]:
    words = [w for w in _WORD.findall(text.lower()) if w not in STOP_WORDS]
    return stemmer().stemWords(words)


def named_years(text: str) -> set[str]:
    """The years a text names: "2020", "FY2020", "FY20" (a fiscal year's two digits)."""
    years = set(YEAR.findall(text))
    return years | {y if len(y) == 4 else f"20{y}" for y in _FISCAL_YEAR.findall(text)}
