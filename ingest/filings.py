"""What a document is, in words its passages can carry: a filing's company (and its trading
symbol), form and period, read from its cover page ("JPMorgan Chase & Co. (JPM), Form 10-Q,
quarter ended June 30, 2022").

Every passage of a 10-K looks like every other company's 10-K, and like the same company's
10-K of another year: "3M 2022 capital expenditure" can find 3M's 2022 filing only when its
passages say whose filing, and which year's, they come from. A cover page says so in a form the
SEC prescribes, so a few patterns read it reliably; a document that is not a filing gets None.
"""

from __future__ import annotations

import re

COVER_CHARS = 3000  # the cover's facts come first; the rest of page 1 is the table of contents

_FORM = re.compile(r"\bFORM\s*(10-K|10-Q|20-F|40-F|8-K|6-K)(?!\d)", re.IGNORECASE)
_MONTH = r"(?:January|February|March|April|May|June|July|August|September|October|November|December)"
# "For the fiscal year ended December 31 , 2020"; JPMorgan's cover interleaves a column:
# "For the quarterly period ended Commission file March 31, 2021".
_PERIOD = re.compile(
    rf"for\s+the\s+(fiscal\s+year|quarterly\s+period)\s+ended\W+(?:[a-z ]{{0,24}}?)\s*({_MONTH}\s+\d{{1,2}}\s*,\s*(\d{{4}}))",
    re.IGNORECASE,
)
# Since 2019 a cover lists each class of stock with its trading symbol and exchange:
# "Common stock JPM The New York Stock Exchange"; questions name companies so ("JPM's segments").
_TICKER = re.compile(
    r"trading\s+symbol.{0,300}?\b([A-Z]{1,5})\s+(?:The\s+)?(?:New\s+York\s+Stock\s+Exchange|NYSE|Nasdaq|NASDAQ)",
    re.IGNORECASE | re.DOTALL,
)
_REGISTRANT = re.compile(r"\(\s*exact\s+name\s+of\s+registrant", re.IGNORECASE)
# What precedes the registrant's name on a cover: the commission file number ("001-34028",
# "1-442", "0-15175") or a rule; the name may be broken over lines ("MGM\nRESORTS").
_BEFORE_NAME = re.compile(r".*(?:\b\d{1,3}-\d{3,5}\b\.?|_{3,})", re.DOTALL)


def filing_context(cover_text: str) -> str | None:
    """The company, form and period a filing's cover names, or None when the text is not a
    filing's cover (no "FORM 10-K"-like line)."""
    cover = cover_text[:COVER_CHARS]
    form = _FORM.search(cover)
    if form is None:
        return None
    company, ticker = _company(cover), _TICKER.search(cover)
    if ticker is not None and ticker.group(1).isupper():
        company = f"{company or 'ticker'} ({ticker.group(1)})"
    parts = [company, f"Form {form.group(1).upper()}"]
    period = _PERIOD.search(cover)
    if period is not None:
        ended = " ".join(period.group(2).replace(" ,", ",").split())
        if period.group(1).lower().startswith("fiscal"):
            # A fiscal year is named by the calendar year it ends in: "FY2018" ends January 31, 2018.
            parts.append(f"fiscal year {period.group(3)} (FY{period.group(3)}), ended {ended}")
        else:
            parts.append(f"quarter ended {ended}")
    return ", ".join(part for part in parts if part)


def _company(cover: str) -> str | None:
    registrant = _REGISTRANT.search(cover)
    if registrant is None:
        return None
    before = cover[max(0, registrant.start() - 200) : registrant.start()]
    name, found = _BEFORE_NAME.subn("", before)
    if not found:  # no file number close by: the name is the line above
        name = before.strip().rsplit("\n", 1)[-1]
    name = " ".join(name.replace("_", " ").split()).strip(" ,;:/")
    if not 2 <= len(name) <= 80 or not any(ch.isalpha() for ch in name):
        return None
    return name
