"""A short glossary of financial analysis: the usual names of a few line items, and the textbook
definitions of the ratios and measures built from them, each with where it comes from.

It is used only for what a question names without defining: a definition the question gives
always wins, and a row of the document labelled with the measure itself ("Free cash flow |
2019: 4,411") is read as printed before any definition is applied. Line items are found in a
document by the meaning of their row labels (figures.py), not by a list of labels: the names
below are what textbooks and the two reporting standards call the same item, so that "sales"
and "revenue", or "cost of sales" and "cost of goods sold", are known to be one thing.

Sources:
- [CFA] CFA Institute, "Financial Analysis Techniques", in T. R. Robinson, E. Henry, W. L.
  Pirie, M. A. Broihahn, *International Financial Statement Analysis* (Wiley, 3rd ed., 2015),
  the tables of activity, liquidity, solvency and profitability ratios.
- [BMA] R. Brealey, S. Myers, F. Allen, *Principles of Corporate Finance* (McGraw-Hill, 13th ed.,
  2020), ch. 28 "Financial Analysis".
- [IAS1] IFRS Foundation, IAS 1 *Presentation of Financial Statements* (the names IFRS gives
  the items US GAAP filings call otherwise: revenue and turnover, profit and net income).
- [IAS7] IFRS Foundation, IAS 7 *Statement of Cash Flows* (its examples of investing cash
  flows: payments to acquire property, plant and equipment).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from retrieval.keywords import stemmer


# The three statements a line item is reported in [IAS1, IAS7].
BALANCE_SHEET, INCOME_STATEMENT, CASH_FLOWS = "balance sheet", "income statement", "cash flow statement"


@dataclass(frozen=True)
class Item:
    """A line item: its name in answers, other names for the same thing, and the statement
    that reports it."""

    name: str
    also: tuple[str, ...]
    statement: str
    outflow: bool = False  # a payment, printed negative in a cash flow statement; used as an amount


ITEMS = (
    Item("revenue", ("revenues", "sales", "net sales", "net revenue", "turnover", "total revenue"), INCOME_STATEMENT),
    Item("cost of goods sold", ("cost of sales", "cost of revenue", "cogs"), INCOME_STATEMENT),  # [CFA]
    Item("gross profit", (), INCOME_STATEMENT),
    Item("operating income", ("operating profit", "income from operations", "ebit"), INCOME_STATEMENT),  # [CFA]
    Item("net income", ("net earnings", "net profit", "profit for the year"), INCOME_STATEMENT),  # [IAS1]
    Item(
        "cash from operations",
        ("cash flow from operations", "operating cash flow", "cash from operating activities"),
        CASH_FLOWS,
    ),
    Item(
        "capital expenditures",
        (
            "capex",
            "purchases of property, plant and equipment",  # [IAS7]
            "purchases of property and equipment",
            "additions to property, plant and equipment",
        ),
        CASH_FLOWS,
        outflow=True,
    ),
    Item("depreciation and amortization", ("d&a",), CASH_FLOWS),
    Item("dividends paid", ("cash dividends", "dividends"), CASH_FLOWS, outflow=True),
    Item("total current assets", ("current assets",), BALANCE_SHEET),
    Item("total current liabilities", ("current liabilities",), BALANCE_SHEET),
    Item("total assets", (), BALANCE_SHEET),
    Item("inventory", ("inventories",), BALANCE_SHEET),
    Item("accounts payable", ("trade payables",), BALANCE_SHEET),
    Item("accounts receivable", ("trade receivables",), BALANCE_SHEET),
    Item(
        "net property, plant and equipment",
        ("property, plant and equipment", "fixed assets", "pp&e"),
        BALANCE_SHEET,
    ),
    Item("total equity", ("shareholders' equity", "stockholders' equity"), BALANCE_SHEET),
    Item("total debt", (), BALANCE_SHEET),
    Item("interest expense", (), INCOME_STATEMENT),
)

# How a page's heading or a question names each statement.
STATEMENT_NAMES = {
    BALANCE_SHEET: re.compile(r"balance sheets?|statements? of financial (?:position|condition)", re.I),
    INCOME_STATEMENT: re.compile(
        r"income statements?|p&l|profit and loss|statements? of (?:consolidated )?(?:comprehensive )?"
        r"(?:income|operations|earnings)",
        re.I,
    ),
    CASH_FLOWS: re.compile(r"cash flows? statements?|statements? of (?:consolidated )?cash flows?", re.I),
}


def statements_named(text: str | None) -> frozenset[str]:
    """The statements a heading or a question names."""
    return frozenset(kind for kind, pattern in STATEMENT_NAMES.items() if pattern.search(text or ""))


@dataclass(frozen=True)
class Measure:
    names: tuple[str, ...]  # what a question calls it; the first is the name in answers
    formula: str  # in the words formulas.py reads: line items, + - * /, "average X", "change in X"
    percent: bool  # stated as a percentage
    source: str


MEASURES = (
    Measure(
        ("current ratio", "working capital ratio"), "total current assets / total current liabilities", False, "CFA"
    ),
    Measure(
        ("working capital", "net working capital"), "total current assets - total current liabilities", False, "BMA"
    ),
    Measure(("operating cash flow ratio",), "cash from operations / total current liabilities", False, "CFA"),
    Measure(("gross margin", "gross profit margin"), "gross profit / revenue", True, "CFA"),
    Measure(("operating margin", "operating profit margin"), "operating income / revenue", True, "CFA"),
    Measure(("net profit margin", "net margin", "profit margin"), "net income / revenue", True, "CFA"),
    Measure(("return on assets", "roa"), "net income / average total assets", True, "CFA"),
    Measure(("return on equity", "roe"), "net income / average total equity", True, "CFA"),
    Measure(
        ("total asset turnover", "asset turnover", "asset turnover ratio"),
        "revenue / average total assets",
        False,
        "CFA",
    ),
    Measure(
        ("fixed asset turnover", "fixed asset turnover ratio"),
        "revenue / average net property, plant and equipment",
        False,
        "CFA",
    ),
    Measure(("inventory turnover", "inventory turnover ratio"), "cost of goods sold / average inventory", False, "CFA"),
    Measure(
        ("days payable outstanding", "dpo", "number of days of payables"),
        "365 * average accounts payable / (cost of goods sold + change in inventory)",
        False,
        "CFA",
    ),
    Measure(("debt to equity ratio", "debt-to-equity ratio"), "total debt / total equity", False, "CFA"),
    Measure(("interest coverage ratio", "interest coverage"), "operating income / interest expense", False, "CFA"),
    Measure(("dividend payout ratio", "payout ratio"), "dividends paid / net income", False, "BMA"),
    Measure(("retention ratio", "plowback ratio"), "(net income - dividends paid) / net income", False, "BMA"),
    Measure(("free cash flow", "fcf"), "cash from operations - capital expenditures", False, "CFA"),
    Measure(("ebitda",), "operating income + depreciation and amortization", False, "CFA"),
    Measure(("ebitda margin",), "(operating income + depreciation and amortization) / revenue", True, "CFA"),
)

# A margin is a measure of profit (or of a cost) over revenue [CFA]: "D&A % margin" is D&A over revenue.
MARGIN = "{} / revenue"

SOURCES = {
    "CFA": "CFA Institute, International Financial Statement Analysis, 'Financial Analysis Techniques'",
    "BMA": "Brealey, Myers and Allen, Principles of Corporate Finance, ch. 28",
}


def item_named(phrase: str) -> Item | None:
    """The line item a phrase names exactly (by any of its names), else None."""
    said = _plain(phrase)
    return next((item for item in ITEMS if said in {_plain(n) for n in (item.name, *item.also)}), None)


def item_within(phrase: str) -> tuple[Item, str] | None:
    """The line item whose name (any of them, the longest first) the phrase holds as words,
    with the name as the phrase says it ("capital expenditure" for capital expenditures)."""
    words = [w.strip(",.;:?!") for w in phrase.split()]
    said = [_plain(w) for w in words]
    names = sorted(((n, item) for item in ITEMS for n in (item.name, *item.also)), key=lambda x: -len(x[0]))
    for name, item in names:
        wanted = _plain(name)
        for start in range(len(words)):
            for end in range(start + 1, len(words) + 1):
                joined = " ".join(w for w in said[start:end] if w)
                if joined == wanted:
                    return item, " ".join(words[start:end])
                if len(joined) >= len(wanted):
                    break
    return None


def measure_named(phrase: str) -> Measure | None:
    said = _plain(phrase)
    return next((m for m in MEASURES if said in {_plain(n) for n in m.names}), None)


@lru_cache(maxsize=4096)
def _plain(text: str) -> str:
    """A name as compared: its words' stems, so that a name in the singular is the same name
    ("capital expenditure" and "capital expenditures")."""
    return " ".join(stemmer().stemWords(text.lower().replace("’", "'").replace("-", " ").split()))
