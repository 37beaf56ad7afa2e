"""What a question asks to be worked out, read in general terms: the operation (a change, a
percentage change, an average, a sum, a difference, a ratio, a share, a growth rate, a
formula the question gives or a measure the glossary defines, or a comparison: which period
or row is highest or lowest, which periods pass a threshold, how many), the figures it needs
(each a phrase naming a row or column of a table, at a year), and how the result is to be
stated.

    "By what percentage did net debt change from 2021 to 2022?"
        -> (net debt[2022] - net debt[2021]) / net debt[2021], in percent
    "What is Grocery as a percentage of total net sales in 2018?"
        -> Grocery[2018] / total net sales[2018], in percent
    "What is the FY2023 quick ratio? ... is defined as: (cash + receivables) / current
     liabilities."  -> the question's own formula, at 2023
    "Which segment had the highest revenue in 2019?"
        -> the rows of the table naming revenue compared, at 2019

The phrases are the question's own words with the periods taken out; which row of which table
each names is decided against the documents (figures.py), by the meaning of the row labels.
A question that asks for none of these is no calculation: parse_calculation returns None and
the answer is the passages' own words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ingest.text import sentence_spans
from retrieval.answer.formulas import (
    Expression,
    Figure,
    NotAFormula,
    Number,
    Operation,
    OverTwoYears,
    bind,
    figures_of,
    parse_formula,
    plain_name,
    states_operators,
    without_years,
    words,
)
from retrieval.answer.glossary import MARGIN, measure_named, statements_named
from retrieval.keywords import named_years

SCALES = {"thousands": 1e3, "millions": 1e6, "billions": 1e9}
# The periods of a row read off the row itself: its latest and the one before it.
LATEST, PREVIOUS = -1, -2
KINDS = (
    "change",
    "percent change",
    "growth rate",
    "average",
    "sum",
    "difference",
    "ratio",
    "share",
    "formula",
    "value",
    "comparison",
)


@dataclass(frozen=True)
class Comparison:
    """What a comparison asks: the period of a row (or, `among`, the row of a table) with the
    highest (most=True) or lowest figure; with a threshold, the periods above (most=True) or
    below it, or how many they are (count)."""

    most: bool
    among: str | None = None  # "segment" of "Which segment had ...": rows compared, not periods
    threshold: float | None = None  # as written: 100.0 of "less than 100.0 million"
    threshold_scale: float | None = None  # 1e6 of "million"; None where the question names none
    threshold_percent: bool = False
    count: bool = False  # "How many years did X exceed ...": how many periods, not which
    items: tuple[str, ...] = ()  # "Which was higher, revenue or cost of sales?": the things named, compared


@dataclass(frozen=True)
class Calculation:
    kind: str  # one of KINDS
    name: str  # what is worked out, in words ("percentage change in net debt")
    expression: Expression
    years: tuple[int, ...]  # the years asked about, in order
    percent: bool  # stated as a percentage
    decimals: int | None = None  # as asked ("round to two decimal places")
    scale: float | None = None  # an amount asked in millions (1e6) or billions (1e9)
    sign: str | None = None  # "positive" or "negative" when asked whether it is
    alternatives: tuple[Expression, ...] = ()  # other readings, tried when the first finds no figures
    statements: frozenset[str] = frozenset()  # the financial statements the question says to use
    comparison: Comparison | None = None  # for kind "comparison"
    on_date: str | None = None  # the one day of the year the question names ("july 27"), its columns' tie-breaker

    def figures(self) -> list[Figure]:
        return figures_of(self.expression)

    @property
    def is_amount(self) -> bool:
        """An amount (a sum or difference of figures), not a ratio."""

        def divides(node) -> bool:
            return isinstance(node, Operation) and (node.op in "/^" or divides(node.left) or divides(node.right))

        return not divides(self.expression) and not self.percent


_DEFINITION = re.compile(
    r"^(?:define\s+(?P<name1>.+?)\s+as:?\s+(?P<expr1>.+?)|(?P<name2>.+?)\s+(?:here\s+)?(?:is|are)\s+defined\s+as:?\s+"
    r"(?P<expr2>.+?))\s*\.?$",
    re.I | re.S,
)
_ASKING_START = re.compile(
    r"\b(?:what|how much|how many|calculate|compute|find|determine|by what|by how much|what's)\b", re.I
)
_HEAD = re.compile(
    r"^.*?\b(?:what(?:'s|\s+(?:is|was|were|are|would be|will be))?|how much(?:\s+(?:is|was|were|are|did|does|do|has|"
    r"had))?|calculate|compute|find|determine|give)\b\s*(?:the\s+|a\s+|an\s+)?",
    re.I,
)
_AUXILIARY = re.compile(r"^(?:did|does|do|has|have|had|was|were|is|are)\s+", re.I)
_CHANGE_VERB = re.compile(
    r"\s+(?:change|increase|decrease|grow|rise|fall|decline|drop|go up|go down)(?:d|s)?\b(?:\s+by)?", re.I
)
_SIGN_ASKED = re.compile(
    r"^(?:does|did|do|is|was|were|has|had)\b.*?\b(?P<sign>positive|negative)\s+(?P<what>.+?)"
    r"(?:\s+(?:in|for|based on|as of|at|during)\b.*)?\?$",
    re.I,
)
# A remark in parentheses on how to answer ("as a percentage", "using the figures of the cash
# flow statement"), not a name.
_FORMAT_REMARK = re.compile(
    r"\s*\((?=[^()]*\b(?:percent\w*|decimals?|round\w*|units?|millions|billions|thousands|usd|answer)\b|"
    r"\s*(?:using|based on|as per|per|from|excluding|including)\b)[^()]*\)",
    re.I,
)
_PARENTHESES = re.compile(r"\s*\([^()]*\)")
_STATEMENT_REMARK = re.compile(
    r"\s*\b(?:from|in|on|using|per|based on|according to)\s+(?:the\s+)?(?:(?:consolidated\s+)?statements?\s+of\s+"
    r"(?:cash\s+flows?|income|operations|financial\s+position)|cash\s+flow\s+statement|income\s+statement|"
    r"balance\s+sheet|p&l(?:\s+statement)?)\b",
    re.I,
)
_DECIMALS = re.compile(r"(?:round\w*[^.?]*?|\bto\s+)\b(zero|no|one|two|three|four|\d) decimal", re.I)
# "..., to two decimals", "rounded to one decimal place": how to state it, not what.
_ROUNDING = re.compile(
    r",?\s*\b(?:(?:rounded|round(?:ed)?\s+it)\s+)?to\s+(?:zero|no|one|two|three|four|\d)\s+decimal(?:\s+places?|s)?\b",
    re.I,
)
_PERCENT_ASKED = re.compile(
    r"\bin (?:units of )?percents?\b|\bas a percent(?:age)?\b|\bin %|\(%\)|\bin percentage\b", re.I
)
_SCALE_ASKED = re.compile(r"\bin (?:usd |us\$ |\$ ?|dollars? )?(millions|billions|thousands)\b", re.I)
_WORD_NUMBERS = {"zero": 0, "no": 0, "one": 1, "two": 2, "three": 3, "four": 4}

# The operations, as English says them.
_CHANGE_WORDS = (
    r"(?:(?:absolute\s+)?(?:increase\s*/\s*\(?\s*decrease\s*\)?|decrease\s*/\s*\(?\s*increase\s*\)?|change|increase|"
    r"decrease|growth|decline|rise|drop|fall|reduction|movement|variation|variance))"
)
_PERCENT_WORD = r"(?<!\w)(?:percent(?:age)?|%)"
_BOTH_WAYS = re.compile(
    r"\b(?:increase|decrease|gain|loss|income|expense)\s*/\s*\(?\s*(?:decrease|increase|loss|gain|expense|income|benefit)",
    re.I,
)
_PERCENT_CHANGE = re.compile(
    rf"(?:\babsolute\s+)?{_PERCENT_WORD}\s*(?:point\s+)?{_CHANGE_WORDS}\b(?:\s+(?:in|of|for))?|\b(?:growth rate|rate of (?:growth|change|"
    rf"increase|decrease))\b(?:\s+(?:in|of|for))?|\bby (?:what|how much) {_PERCENT_WORD}\b",
    re.I,
)
_CAGR = re.compile(r"\b(?:cagr|compound(?:ed)? annual growth(?: rate)?)\b(?:\s+(?:in|of|for)\b)?", re.I)
_CHANGE = re.compile(rf"\b(?:year[- ]over[- ]year\s+|yoy\s+|net\s+)?{_CHANGE_WORDS}(?!\w)(?:\s+(?:in|of|for)\b)?", re.I)
_CHANGED = re.compile(
    r"^(?P<x>.+?)\s+(?:change|increase|decrease|grow|rise|fall|decline|drop|go up|go down)(?:d|s)?\b(?:\s+by)?",
    re.I,
)
# "average" as an operation, not in "weighted-average exchange rate", a row's own name.
_AVERAGE = re.compile(r"(?<![\w-])(?<!weighted )(?:average|mean)\b(?:\s+(?:of|for|in)\b)?", re.I)
_SUM = re.compile(r"\b(?:the\s+)?(?:sum|total|combined|aggregate)\b(?:\s+(?:of|for|in)\b)?", re.I)
_DIFFERENCE = re.compile(
    r"\bdifference (?:between|in|of)\s+(?P<a>.+?)\s+(?:and|versus|vs\.?|compared to)\s+(?P<b>.+)$", re.I
)
_MORE_THAN = re.compile(
    r"^how much (?P<dir>more|higher|greater|larger|bigger|less|lower|smaller|fewer)\b\s*(?:is|was|are|were|did|does)?\s+"
    r"(?P<a>.+?)\s+than\s+(?P<b>.+)$",
    re.I,
)
_RATIO = (
    re.compile(
        r"\bratio (?:of|between)\s+(?P<a>.+?)\s+(?:to|over|against|and|versus|vs\.?|compared to)\s+(?P<b>.+)$", re.I
    ),
    re.compile(r"^(?P<a>.+?)[- ]to[- ](?P<b>.+?)[- ]ratio\b", re.I),
    re.compile(r"^(?P<a>.+?)\s+(?:divided by|over)\s+(?P<b>.+)$", re.I),
)
_SHARE_NOUN = rf"(?:{_PERCENT_WORD}|proportion|share|fraction|portion)"
_SHARE = (
    # "B as a percentage of A"
    re.compile(
        rf"^(?P<b>.+?)\s+(?:expressed\s+|represented\s+)?as\s+(?:an?\s+)?(?:{_SHARE_NOUN}|ratio)\s+(?:of|to)\s+(?P<a>.+)$",
        re.I,
    ),
    # "what percentage of A is B"
    re.compile(
        rf"\b{_SHARE_NOUN}\s+of\s+(?P<a>.+?)\s+(?:is|was|are|were|comes from|came from|is from|was from|consists of|"
        rf"consisted of|is made up of|was made up of|is attributable to|was attributable to|is due to|was due to|"
        rf"is represented by|was represented by)\s+(?P<b>.+)$",
        re.I,
    ),
    # "what percentage of A does B account for / make up"
    re.compile(
        rf"\b{_SHARE_NOUN}\s+of\s+(?P<a>.+?)\s+(?:does|did|do)\s+(?P<b>.+?)\s+(?:account for|make up|represent|"
        rf"constitute|comprise|contribute)\b.*$",
        re.I,
    ),
    # "B accounts for what percentage of A"
    re.compile(
        rf"^(?P<b>.+?)\s+(?:accounts? for|accounted for|makes? up|made up|represents?|represented|comprises?|"
        rf"comprised|constitutes?|constituted|contributes?|contributed)\s+(?:what|how much|the)\s+(?:of\s+)?"
        rf"{_SHARE_NOUN}\s+(?:of|to)\s+(?P<a>.+)$",
        re.I,
    ),
    # "the percentage of B in total A", "the proportion of B out of A"
    re.compile(
        rf"\b{_SHARE_NOUN}\s+of\s+(?P<b>.+?)\s+(?:in|out of|of|over|to|within|from|relative to|compared to|against|"
        rf"among|in relation to)\s+(?P<a>(?:the\s+)?(?:company's\s+)?(?:total|overall|combined|aggregate|all)\b.+)$",
        re.I,
    ),
    re.compile(
        rf"\b{_SHARE_NOUN}\s+of\s+(?P<b>.+?)\s+(?:out of|over|relative to|compared to|against|in relation to|in)\s+"
        rf"(?P<a>.+)$",
        re.I,
    ),
)
_ITEM_SEPARATOR = re.compile(r"\s*,\s*(?:and\s+)?|\s+and\s+", re.I)
# "the two-year mean", "a 5-year sales CAGR", "over the three-year period": the span the years
# name, not what is asked for ("due in less than one year" is).
_SPAN_OF_YEARS = re.compile(
    r"(?<!than )(?<!within )(?<!in )(?<!after )(?<!over )\b(?:[1-9]|1[0-9]|one|two|three|four|five|ten)[- ]years?\b"
    r"(?=\s+\w)",
    re.I,
)
_RANGE = re.compile(
    r"\b(?:from|between)\s+(?:FY\s?|fiscal(?: year)?\s)?((?:19|20)\d\d)\s+(?:to|and|through|-)\s+"
    r"(?:FY\s?|fiscal(?: year)?\s)?((?:19|20)\d\d)\b|\b(?:FY\s?)?((?:19|20)\d\d)\s*[-–]\s*(?:FY\s?)?((?:19|20)\d\d)\b",
    re.I,
)


def parse_calculation(question: str) -> Calculation | None:
    """The calculation the question asks for, or None when it asks for none."""
    sentences = [question[s:e].strip() for s, e in sentence_spans(question)]
    definitions, others = {}, []
    for sentence in sentences:
        match = _DEFINITION.match(sentence)
        if match and not sentence.rstrip().endswith("?"):
            name = match.group("name1") or match.group("name2")
            # "The quick ratio is defined as ...": the measure's name without its article.
            name = re.sub(r"^(?:the|an?)\s+", "", plain_name(_last_clause(name)))
            # "... defined as A / B; round it to ...": the formula ends with its clause.
            definitions[name] = (match.group("expr1") or match.group("expr2")).split(";")[0].strip()
        else:
            others.append(sentence)
    asking = _asking(others)
    if asking is None:
        return None
    decimals = _DECIMALS.search(question)
    scale = _SCALE_ASKED.search(asking) or _SCALE_ASKED.search(question)
    percent_asked = bool(_PERCENT_ASKED.search(question))
    sign = _SIGN_ASKED.match(asking)
    text = _STATEMENT_REMARK.sub("", _FORMAT_REMARK.sub("", sign.group("what") if sign else asking))
    text = _ROUNDING.sub("", _SCALE_ASKED.sub("", re.sub(r"\?\s*$", "", text))).strip()
    years = tuple(sorted({int(y) for y in named_years(asking if sign else text)}))
    if _ASKS_HOW_DONE.match(asking):
        return None  # "How is the average selling price calculated?": the method, not a figure
    dates = {f"{m.group(1).lower()} {int(m.group(2))}" for m in _DAY.finditer(asking)}
    on_date = dates.pop() if len(dates) == 1 else None
    compared = _comparison(text) if sign is None else None
    if compared is not None:
        if compared.comparison.items:  # each listed thing at the asked year, else its row's latest
            compared = replace(compared, expression=bind(compared.expression, years[-1] if years else LATEST))
        return replace(compared, years=years, statements=statements_named(question), on_date=on_date)
    try:
        calculation = _read(text, years, definitions, percent_asked, whole=sign is None)
        if calculation is None and scale is not None:
            calculation = _value(text, years)
    except NotAFormula:
        return None
    if calculation is None:
        return None
    return Calculation(
        kind=calculation.kind,
        name=calculation.name,
        expression=calculation.expression,
        years=years,
        percent=calculation.percent or (percent_asked and calculation.kind not in ("change", "sum", "difference")),
        decimals=_decimals(decimals.group(1)) if decimals else None,
        scale=SCALES[scale.group(1).lower()] if scale else None,
        sign=sign.group("sign").lower() if sign else None,
        alternatives=calculation.alternatives,
        statements=statements_named(question),
        on_date=on_date,
    )


_DAY = re.compile(
    r"\b(january|february|march|april|may|june|july|august|september|october|november|december)\s+(\d{1,2})\b", re.I
)
_ASKS_HOW_DONE = re.compile(
    r"^how\s+(?:is|are|was|were|do|does|did|will|would|should)\b.*\b(?:calculated|computed|determined|derived|"
    r"measured|defined|estimated|arrived at|assessed|recogni[sz]ed|accounted for)\b",
    re.I,
)
# "In which year was ...", "Which fiscal year has ...", "Which of the years had ...": the periods
# of one row compared.
_WHICH_PERIOD = re.compile(
    r"^(?:(?:in|for|during|at|over)\s+)?(?:which|what)\s+(?:of\s+the\s+)?(?:(?:fiscal|financial|calendar)\s+)?"
    r"(?:years?|periods?|quarters?|fys?|months?|dates?)\b\s*(?:,\s*)?(?P<rest>.+)$",
    re.I,
)
_MOST = r"highest|largest|greatest|biggest|most|higher|larger|greater|bigger|more"
_LEAST = r"lowest|smallest|least|fewest|lower|smaller|less|fewer"
_THRESHOLD = re.compile(
    rf"(?:\bof\s+)?\b(?:(?P<most>{_MOST}|above|over|exceed(?:ed|ing|s)?)|(?P<least>{_LEAST}|below|under))"
    r"(?:\s+than)?\s*(?P<number>[-$€£¥]?\s?\d[\d,]*(?:\.\d+)?)\s*(?P<unit>%|percent\b|thousands?\b|millions?\b|"
    r"billions?\b|k\b|m\b|mn\b|bn\b)?",
    re.I,
)
_EXTREME = re.compile(
    rf"\b(?:the\s+|a\s+)?(?:(?P<most>{_MOST})|(?P<least>{_LEAST}))\b(?:\s+(?:amount|value)\s+of)?", re.I
)
_ORDINAL = re.compile(r"\b(?:second|third|fourth|fifth|2nd|3rd|4th|5th|next)\s*$", re.I)
_LEADING_VERB = re.compile(
    r"^(?:has|had|have|was|were|is|are|did|does|do|saw|see|sees|showed|shows|recorded|records|reported|reports|"
    r"generated|earned|made|contributed|accounted for|brought in)\s+",
    re.I,
)
_UNIT_SCALES = {"k": 1e3, "m": 1e6, "mn": 1e6, "bn": 1e9, **{name[:-1]: value for name, value in SCALES.items()}}


_HOW_MANY_PERIODS = re.compile(
    r"^how many\s+(?:of\s+the\s+)?(?:(?:fiscal|financial|calendar)\s+)?(?:years|periods|quarters|months)\b\s*"
    r"(?P<rest>.+)$",
    re.I,
)
_HOW_MANY_ROWS = re.compile(
    r"^how many\s+(?!(?:of\s+the\s+)?(?:(?:fiscal|financial|calendar)\s+)?(?:years|periods|quarters|months)\b)"
    r"(?P<among>[a-z][\w-]*(?:\s+[a-z][\w-]*){0,2}?)\s+(?:of\s+(?P<of>.+?)\s+)?(?P<rest>(?:had|have|has|were|was|are|"
    r"is|saw|showed|reported|recorded|exceed(?:ed|s)?)\b.+)$",
    re.I,
)
# "Which segment had ...", "In which currency was ...", "Which of the contractual obligations
# has ...", "In 2021, which of Harbor's segments had ...": the rows of a table compared.
_WHICH_ROW = re.compile(
    r"^(?:[^,?]{1,40},\s*)?(?:(?:in|for|at|from)\s+)?(?:which|what)\s+(?:one\s+)?(?:of\s+(?:the|its|their|our|"
    r"(?:[A-Z][\w.&-]*\s+){0,2}[A-Z][\w.&-]*(?:['’]s?))\s+)?(?P<among>[a-z][\w-]*(?:\s+[a-z][\w-]*){0,2}?)"
    r"\s+(?P<rest>(?:has|had|have|was|were|is|are|saw|showed|reported|recorded|generated|earned|made|contributed|"
    r"accounted for|brought in)\b.+)$",
    re.I,
)


# "Among the derivative instruments it uses, which one had ...": the rows of a table compared.
_AMONG = re.compile(
    r"^(?:among|of)\s+(?P<among>.+?),\s*(?:which|what)\b(?:\s+one)?(?:\s+of\s+(?:them|these|those))?\s+(?P<rest>.+)$",
    re.I,
)
# What only says which of them: "all of the", "its", "the company's"; a clause after the noun.
_AMONG_WORDS = re.compile(
    r"^(?:all\s+)?(?:of\s+)?(?:(?:the|its|their|our)\s+)?(?:[\w.&-]+['’]s?\s+(?=\w))?|\s+(?:that|which|used|it)\b.*$",
    re.I,
)


# "Which was higher in 2022, revenue or cost of sales?", "Which of revenue and cost of sales
# was higher?", "Of ferries, cargo and marinas, which earned the most?"
_WHICH_OF_LISTED = (
    re.compile(
        r"^(?:which|what)\s+(?:one\s+)?(?:is|was|were|are|has|had)\s+(?P<rest>[^,]+?),\s*(?P<items>[^,]+(?:,[^,]+)*"
        r"\bor\b.+)$",
        re.I,
    ),
    re.compile(
        r"^(?:which|what)\s+(?:one\s+)?of\s+(?P<items>.+?\b(?:or|and)\b.+?)\s+(?P<rest>(?:has|had|was|were|is|"
        r"are|saw|showed|reported|recorded|generated|earned|made|brought in)\b.+)$",
        re.I,
    ),
    _AMONG,
)
_LISTED = re.compile(r"\s*,\s*(?:and\s+|or\s+)?|\s+(?:and|or)\s+", re.I)


def _listed_compared(text: str) -> Calculation | None:
    """Which of the things a question lists has the highest or lowest figure: each a figure
    of its own (the thing, and what is compared where the question says: "cash flow"), at the
    asked year, else each row's latest."""
    for pattern in _WHICH_OF_LISTED:
        match = pattern.match(text)
        if match is None:
            continue
        listed = match.group("items") if "items" in pattern.groupindex else match.group("among")
        items = [_phrase(i) for i in _LISTED.split(without_years(listed)) if _phrase(i)]
        rest = re.sub(r"\s*\([^()]*\)", "", _LEADING_VERB.sub("", match.group("rest").strip()))
        extreme = _EXTREME.search(rest)
        if len(items) < 2 or len(items) > 6 or extreme is None:
            continue
        what = _phrase(_remove(rest, extreme))
        # "operations, investing and financing activities": each an activity, the last names it.
        last = items[-1].split()
        tail = last[-1] if len(last) == 2 else None
        figures = []
        for item in items:
            names = [f"{item} {what}".strip(), item]
            if tail and len(item.split()) == 1:
                names.insert(1, f"{item} {tail}")
            figure = Figure.named(names[0])
            also = [n for n in dict.fromkeys([*figure.also, *names[1:]]) if n != names[0]]
            figures.append(replace(figure, also=tuple(also)))
        most = extreme.group("most") is not None
        name = f"the {'highest' if most else 'lowest'} {what + ' ' if what else ''}of {listed_in_words(items)}"
        return Calculation(
            kind="comparison",
            name=name,
            expression=_sum_of(figures),
            years=(),
            percent=False,
            comparison=Comparison(most=most, items=tuple(items)),
        )
    return None


def _comparison(text: str) -> Calculation | None:
    """A question asking which period of a row is highest or lowest, or which periods lie
    above or below a figure it gives ("In which year was X larger?", "Which year has the
    lowest X?", "In which years was X less than 100.0 million?"), or which row of a table is
    ("Which segment had the highest X in 2019?")."""
    match = _WHICH_PERIOD.match(text) or _HOW_MANY_PERIODS.match(text)
    count = match is not None and match.re is _HOW_MANY_PERIODS
    among = None
    if match is None and _HOW_MANY_ROWS.match(text):  # "How many segments had revenue above ...?"
        match, count = _HOW_MANY_ROWS.match(text), True
        among = match.group("among").lower()
    if match is None:
        match = _WHICH_ROW.match(text) or _AMONG.match(text)
        among = _AMONG_WORDS.sub("", match.group("among").lower()).strip() if match is not None else ""
        if not among or re.search(r"\b(?:respectively|and|or)\b|,", among, re.I):
            return _listed_compared(text)  # things listed one by one: each a figure of its own
    rest = _LEADING_VERB.sub("", match.group("rest").strip())
    threshold = _THRESHOLD.search(rest) if among is None or count else None
    if count and threshold is None:
        return None  # "How many years ...?" without a figure to pass: no count of periods
    if threshold is not None:
        unit = (threshold.group("unit") or "").lower()
        number = float(re.sub(r"[^\d.]", "", threshold.group("number")))
        percent = unit in ("%", "percent")
        comparison = Comparison(
            most=threshold.group("most") is not None,
            threshold=number,
            threshold_scale=_UNIT_SCALES.get(unit.rstrip("s")),
            threshold_percent=percent,
            count=count,
        )
        words_said = "above" if comparison.most else "below"
        said = f"{threshold.group('number').strip()}{'%' if percent else (' ' + unit if unit else '')}"
        phrase_text = _remove(rest, threshold)
        if count and among and "of" in match.groupdict() and match.group("of"):
            phrase_text = match.group("of")  # "How many lines of harbor income exceeded ...?"
        comparison = replace(comparison, among=among)
    else:
        extreme = _EXTREME.search(rest)
        if extreme is None or _ORDINAL.search(rest[: extreme.start()]):
            return None  # "the second highest": not worked out (the highest would be wrong)
        comparison = Comparison(most=extreme.group("most") is not None, among=among)
        phrase_text = _remove(rest, extreme)
    phrase_text = re.sub(r"\s+(?:of|was|were|is|are)$", "", phrase_text.strip(), flags=re.I)
    try:
        figure = _figure(phrase_text)
    except NotAFormula:
        return None
    if threshold is not None:
        if among:
            name = f"{'number of ' if count else ''}{among} with {figure.phrase} {words_said} {said}"
        else:
            name = f"{'number of ' if count else ''}periods when {figure.phrase} was {words_said} {said}"
    else:
        name = f"{among or 'period'} with the {'highest' if comparison.most else 'lowest'} {figure.phrase}"
    return Calculation(
        kind="comparison",
        name=name,
        expression=figure,
        years=(),
        percent=False,
        comparison=comparison,
    )


def _asking(sentences: list[str]) -> str | None:
    """The sentence that asks: the one ending with "?", else one that starts to ask."""
    asking = [s for s in sentences if s.rstrip().endswith("?")]
    if asking:
        sentence = asking[-1]
        # "My question: what is ...?": the question after the colon.
        return sentence.split(": ", 1)[1] if re.match(r"^[^:?]{0,60}question\s*:", sentence, re.I) else sentence
    return next((s for s in sentences if _ASKING_START.search(s)), None)


def _last_clause(name: str) -> str:
    """ "Operating cash flow ratio" of "...? Operating cash flow ratio" (a definition's name)."""
    return re.split(r"[?:]\s+", name)[-1]


def _decimals(word: str) -> int:
    return int(word) if word.isdigit() else _WORD_NUMBERS[word.lower()]


@dataclass(frozen=True)
class _Read:
    kind: str
    name: str
    expression: Expression
    percent: bool
    alternatives: tuple[Expression, ...] = ()


def _read(text: str, years: tuple[int, ...], definitions: dict, percent_asked: bool, whole: bool) -> _Read | None:
    """The calculation text asks for, tried from the most specific wording to the least."""
    body = _HEAD.sub("", text, count=1) if whole and not re.match(r"^by\b", text, re.I) else text
    if whole:
        # "By how much did X increase", "How much did X grow": what follows the auxiliary says
        # what changed, as "did X grow" does.
        asked = re.match(r"^(?:by\s+)?how much\s+(?P<aux>did|does|do|has|have|had)\s+(?P<rest>.+)$", text, re.I)
        if asked is not None and _CHANGED.match(asked.group("rest")):
            body = f"{asked.group('aux')} {asked.group('rest')}"
    if whole and not _HEAD.match(text) and not re.match(r"^(?:how|by)\b", text, re.I):
        return None
    if re.search(r"\brespectively\b", body, re.I):
        return None  # figures listed one by one, not one figure worked out
    readers = (
        _defined,
        _written,
        _growth_rate,
        _percent_change,
        _share,
        _ratio,
        _change,
        _average,
        _sum,
        _difference,
        _margin,
        _measure,
    )
    for reader in readers:
        found = reader(body, years, definitions, percent_asked)
        if found is not None:
            return found
    return None


_OWNER = re.compile(r"^(?:the\s+)?(?:company's|group's|firm's|entity's|its|our|their)\s+", re.I)
_QUANTITY = re.compile(
    r"^(?:the\s+)?(?:value|amount|figure|level|balance|percentage|proportion|share|ratio) (?:of|for)\s+(?:the\s+)?",
    re.I,
)


_ACRONYM = re.compile(r"\s*\((?=[^()]*[A-Z])[A-Z&.\s/-]{2,8}\)")  # "(D&A)", "(DPO)": the phrase again


def _phrase(text: str) -> str:
    """The phrase naming a figure: the periods, "the value of" and "the company's" taken out."""
    phrase = without_years(_SPAN_OF_YEARS.sub(" ", _ACRONYM.sub("", text)))
    for pattern in (_OWNER, _QUANTITY, _OWNER):
        phrase = pattern.sub("", phrase).strip()
    return phrase


def _figure(text: str, year: int | None = None) -> Figure:
    """The figure a phrase names. A change verb left in it ("did revenue grow") is no part of
    the name, unless a row's label holds it ("expected rate of salary increase"): the phrase
    with it is another name of the figure."""
    asked_if = _AUXILIARY.match(text.strip())  # "did revenue grow": the verb is what is asked
    said = _AUXILIARY.sub("", text.strip())
    phrase = _phrase(_CHANGE_VERB.sub(" ", said))
    if not phrase:
        raise NotAFormula(text)
    figure = Figure.named(phrase, year)
    whole = _phrase(said)
    if asked_if is None and whole != phrase and plain_name(whole) not in {plain_name(n) for n in figure.also}:
        figure = replace(figure, also=(*figure.also, whole))
    return figure


def _defined(body: str, years, definitions: dict, percent_asked: bool) -> _Read | None:
    """A name the question itself defines: its definition wins over anything else."""
    phrase = plain_name(_phrase(body))
    for name in sorted(definitions, key=len, reverse=True):
        if name and (_is_named(name, phrase) or _acronym_of(name, plain_name(body))):
            expression = bind(parse_formula(definitions[name], definitions), years[-1] if years else None)
            return _Read("formula", name, expression, percent_asked)
    return None


def _measure(body: str, years, definitions: dict, percent_asked: bool) -> _Read | None:
    """A measure of the glossary the question names ("the FY2023 asset turnover ratio")."""
    phrase = _phrase(body)
    found = _measure_span(plain_name(phrase))
    if found is None:
        return None
    measure, said = found
    year = years[-1] if years else None
    if _qualified(phrase, said):
        # "underlying EBITDA", "segment operating margin": not the textbook's measure, and only
        # a row of that name gives it.
        return _Read("value", phrase, Figure.named(phrase, year), measure.percent or percent_asked)
    formula = bind(parse_formula(measure.formula, definitions), year)
    # A row of the document labelled with the measure ("Free cash flow | 2019: 4,411") is read
    # as printed; the textbook definition is worked out only where there is none.
    printed = Figure.named(measure.names[0], year)
    return _Read("formula", measure.names[0], printed, measure.percent or percent_asked, (formula,))


# Words beside a measure's name that do not make it another quantity: whose it is, or that it
# is as reported.
_NOT_QUALIFYING = frozenset(
    "the a an of for in on at by its their our company group firm entity total annual reported gaap consolidated "
    "unadjusted fiscal year".split()
)


_NAMED_OWNER = re.compile(r"^(?:[A-Z0-9][\w&.-]*\s+){0,3}[A-Z0-9][\w&.-]*(?:['’]s|s['’])\s+")  # "Harbor Tools' "


def _qualified(phrase: str, said: str) -> bool:
    """Whether the phrase qualifies the measure it names with words of its own ("underlying
    EBITDA", "the Americas gross margin"), not only says whose it is ("Adobe's EBITDA", "the
    EBITDA for Adobe")."""
    name = plain_name(_NAMED_OWNER.sub("", phrase))
    at = re.search(rf"(?<!\w){re.escape(said)}(?!\w)", name)
    if at is None:
        return False
    before = name[: at.start()].split()
    after = name[at.end() :].split()
    if after and after[0] in ("for", "of", "at", "in", "by"):
        after = []  # "... for Adobe": whose
    return any(w not in _NOT_QUALIFYING and not re.search(r"'s$", w) for w in before + after)


_MARGIN = re.compile(r"^(?P<x>.+?)\s*(?:%|percent(?:age)?)?\s+margin\b", re.I)


def _margin(body: str, years, definitions: dict, percent_asked: bool) -> _Read | None:
    """A margin, X over revenue: "the D&A % margin", "the EBITDA margin" of an EBITDA the
    question defines. A margin the glossary names ("gross margin") is the glossary's."""
    phrase = _phrase(body)
    match = _MARGIN.search(phrase)
    if match is None:
        return None
    said = plain_name(_phrase(match.group("x")))
    if said not in definitions and _measure_in(f"{said} margin") is not None:
        return None
    value, name = _operand(match.group("x"), definitions)
    revenue = parse_formula(MARGIN.format("x"), definitions).right
    expression = Operation("/", value, revenue)
    return _Read("formula", f"{name} margin", bind(expression, years[-1] if len(years) == 1 else None), True)


def _operand(text: str, definitions: dict) -> tuple[Expression, str]:
    """What a change, an average or a growth rate is of: a name the question defines, a
    measure of the glossary, else a figure; with its name."""
    value = _figure(text)
    name = plain_name(value.phrase)
    if name in definitions:
        return parse_formula(definitions[name], definitions), value.phrase
    measure = _measure_in(name)
    if measure is not None:
        return parse_formula(measure.formula, definitions), measure.names[0]
    return value, value.phrase


# "How much did the company pay out in cash dividends": the figure is what the verb is about.
_SPENT_ON = re.compile(
    r"^(?:(?:did|does|do|has|have|had|will|would)\s+)?.+?\s+(?:pay|paid|spend|spent|earn|earned|generate|generated|"
    r"receive|received|invest|invested|incur|incurred|raise|raised|borrow|borrowed|repay|repaid|return|returned)\b"
    r"(?:\s+(?:out|back))?\s+(?:in|on|for|as|to|from)?\s*",
    re.I,
)


def _value(text: str, years: tuple[int, ...]) -> _Read | None:
    """One figure asked for in a scale of its own ("... in USD billions"): read and restated."""
    if len(years) > 1:
        return None
    body = _SPENT_ON.sub("", _HEAD.sub("", text, count=1), count=1)
    value = _figure(body, years[-1] if years else None)
    return _Read("value", value.phrase, value, False)


def _written(body: str, years, definitions: dict, percent_asked: bool) -> _Read | None:
    """A formula the asking sentence writes out ("operating income + depreciation and
    amortization"), each of its parts a phrase naming a figure; remarks in parentheses aside."""
    if _BOTH_WAYS.search(body):
        return None  # "increase / (decrease)": a change, not a quotient
    text = _PARENTHESES.sub("", body)
    if not states_operators(text):
        return None
    try:
        expression = bind(parse_formula(text, definitions), years[-1] if len(years) == 1 else None)
    except NotAFormula:
        return None
    parts = figures_of(expression)
    if len({f.phrase for f in parts}) < 2 or any(len(_terms_of(f.phrase)) == 0 for f in parts):
        return None
    if not _bound(expression):
        return None  # "average X" with no year to take it around
    return _Read("formula", words(expression), expression, percent_asked)


def _bound(node) -> bool:
    """Whether every average or change of the expression has its years."""
    if isinstance(node, OverTwoYears):
        return False
    return not isinstance(node, Operation) or (_bound(node.left) and _bound(node.right))


def _terms_of(phrase: str) -> list[str]:
    return re.findall(r"[a-z]{2,}", phrase.lower())


def _is_named(name: str, phrase: str) -> bool:
    """Whether the phrase asks for the defined name itself ("the operating cash flow ratio for
    Adobe", "Adobe's DPO"), not for something built on it ("the average EBITDA margin")."""
    if phrase == name or phrase.endswith(f" {name}") or _acronym_of(name, phrase):
        return True
    return bool(re.match(rf"{re.escape(name)} (?:for|of|at|in) ", phrase))


def _acronym_of(name: str, phrase: str) -> bool:
    """Whether the phrase names the defined name by its acronym in parentheses or alone
    ("days payable outstanding (dpo)" for "dpo")."""
    return len(name) <= 5 and f"({name})" in phrase


def _measure_in(phrase: str):
    """The glossary measure whose name the phrase holds as words, the longest name first."""
    found = _measure_span(phrase)
    return found[0] if found else None


def measure_words(text: str) -> str:
    """The words by which a text names a measure of the glossary ("net working capital"), else
    "": a name Docent can work out from other rows, which a document need not print."""
    found = _measure_span(re.sub(r"[?,.;:!]", " ", text.lower()))
    return found[1] if found else ""


def _measure_span(phrase: str):
    words = re.sub(r"[()%]", " ", phrase).split()
    spans = sorted(
        ((i, j) for i in range(len(words)) for j in range(i + 1, min(len(words), i + 6) + 1)), key=lambda s: s[0] - s[1]
    )
    for start, end in spans:
        said = " ".join(words[start:end])
        measure = measure_named(said)
        if measure is not None:
            return measure, said
    return None


def _growth_rate(body: str, years, definitions, percent_asked) -> _Read | None:
    match = _CAGR.search(body)
    if match is None or len(years) < 2:
        return None
    value, name = _operand(_remove(body, match), definitions)
    start, end = years[0], years[-1]
    ratio = Operation("/", bind(value, end), bind(value, start))
    rate = Operation("-", Operation("^", ratio, Number(1 / (end - start))), Number(1))
    return _Read("growth rate", f"compound annual growth rate of {name}", rate, True)


def _percent_change(body: str, years, definitions, percent_asked) -> _Read | None:
    match = _PERCENT_CHANGE.search(body)
    if match is None:
        changed = _CHANGE.search(body) if percent_asked else None
        if changed is None or re.search(rf"\b{_PERCENT_WORD}\s+of\b", body, re.I):
            return None
        match = changed
    value, name = _operand(_remove(body, match), definitions)
    return _Read("percent change", f"percentage change in {name}", _over_years(value, years, "/"), True)


def _change(body: str, years, definitions, percent_asked) -> _Read | None:
    match = _CHANGE.search(body)
    if match is not None and not re.search(r"\b(?:reason|why|cause|driver|explain|what caused)\b", body, re.I):
        value, name = _operand(_remove(body, match), definitions)
        # "the net decrease in cash in 2019": a row may print the change itself.
        noun = re.search(r"\b(?:in|of|for)$", match.group(), re.I) and not _AUXILIARY.match(body)
        printed = (Figure.named(_phrase(body), years[-1] if years else None),) if noun and len(years) <= 1 else ()
        return _Read("change", f"change in {name}", _over_years(value, years, "-"), False, printed)
    changed = _CHANGED.match(body)
    if changed is not None and _AUXILIARY.match(changed.group("x")):
        value, name = _operand(_AUXILIARY.sub("", changed.group("x")), definitions)
        return _Read("change", f"change in {name}", _over_years(value, years, "-"), False)
    return None


def _over_years(value: Expression, years: tuple[int, ...], op: str) -> Expression:
    """The later year's figure less the earlier's (op "-"), or that over the earlier's (op "/").
    One year named: it and the year before; none: the row's latest period and the one before
    it (LATEST and PREVIOUS, which figures.py reads off the row)."""
    if len(years) >= 2:
        before, after = years[0], years[-1]
    elif len(years) == 1:
        before, after = years[0] - 1, years[0]
    else:
        before, after = PREVIOUS, LATEST
    difference = Operation("-", bind(value, after), bind(value, before))
    if op == "-":
        return difference
    return Operation("/", difference, bind(value, before))


def _share(body: str, years, definitions, percent_asked) -> _Read | None:
    for pattern in _SHARE:
        match = pattern.search(body)
        if match is None:
            continue
        read = _two_parts(match.group("b"), match.group("a"), years)
        if read is None:
            continue
        (part, part_name), (whole, whole_name) = read
        return _Read(
            "share",
            f"{part_name} as a percentage of {whole_name}",
            Operation("/", part, whole),
            True,
            _listed_parts(match.group("b"), match.group("a"), years),
        )
    return None


def _listed_parts(first: str, second: str, years) -> tuple[Expression, ...]:
    """The quotient read with a part that lists items ("land and leasehold improvements") as
    their sum, the first part, the second, then both: tried when the part is no row of its own
    ("land, property and equipment" may be one)."""
    readings = []
    for split in ((True, False), (False, True), (True, True)):
        parts = _two_parts(first, second, years, split=split)
        if parts:
            quotient = Operation("/", parts[0][0], parts[1][0])
            if quotient not in readings:
                readings.append(quotient)
    return tuple(readings)


def _shared_head(first: str, second: str) -> tuple[str, str]:
    """ "the summer and winter mooring fees": each is a mooring fee."""
    a, b = without_years(first).split(), without_years(second).split()
    if len(a) == 1 and len(b) >= 2 and a[0].lower() not in ("total", "sum"):
        return f"{first} {' '.join(b[1:])}", second
    return first, second


def _ratio(body: str, years, definitions, percent_asked) -> _Read | None:
    for pattern in _RATIO:
        match = pattern.search(body)
        if match is None:
            continue
        read = _two_parts(match.group("a"), match.group("b"), years)
        if read is None:
            continue
        (first, first_name), (second, second_name) = read
        return _Read(
            "ratio",
            f"ratio of {first_name} to {second_name}",
            Operation("/", first, second),
            percent_asked,
            _listed_parts(match.group("a"), match.group("b"), years),
        )
    return None


def _two_parts(first: str, second: str, years: tuple[int, ...], split: tuple[bool, bool] = (False, False)):
    """Two operands, each at the years it names, else at the one year the question names; a
    part that names two years is the change between them ("the change in X between 2018 and
    2019 as a percentage of the 2018 X"), one that says "the sum of A and B" their sum (and,
    split, any part that lists items). None when they are no two operands (or, split, when
    neither part lists items)."""
    parts = []
    listed = False
    for text, split_this in zip((first, second), split):
        own = sorted({int(y) for y in named_years(text)})
        phrase = _phrase(text)
        total = _SUM.match(phrase)
        items = _items(_remove(phrase, total)) if total is not None else (_items(phrase) if split_this else [])
        listed = listed or (split_this and total is None and len(items) >= 2)
        if len(items) >= 2 and len(own) <= 1:
            year = own[0] if own else (years[-1] if len(years) == 1 else None)
            figures = [Figure.named(i, year) for i in items]
            parts.append((_sum_of(figures), "sum of " + listed_in_words([f.phrase for f in figures])))
            continue
        change = _CHANGE.search(phrase)
        if len(own) == 2 and change is not None:
            value = _figure(_remove(phrase, change))
            parts.append((_over_years(value, tuple(own), "-"), f"change in {value.phrase}"))
            continue
        if len(own) > 1 or not phrase:
            return None
        year = own[0] if own else (years[-1] if len(years) == 1 else None)
        if year is None and len(years) > 1:
            return None  # several years and none said for this part: not one figure
        parts.append((Figure.named(phrase, year), phrase))
    if plain_name(parts[0][1]) == plain_name(parts[1][1]) and parts[0][0] == parts[1][0]:
        return None
    if any(split) and not listed:
        return None
    return parts


def _average(body: str, years, definitions, percent_asked) -> _Read | None:
    match = _AVERAGE.search(body)
    if match is None:
        return None
    rest = _remove(body, match)
    over = _years_between(body, years)
    if len(over) == 1:
        over = [over[0] - 1, over[0]]  # "the 2019 average": of its opening and closing figures
    if len(over) >= 2:
        inner = _inner(rest, definitions, percent_asked)
        total = _sum_over(inner.expression, over)
        return _Read(
            "average",
            f"average {inner.name} over {listed_in_words(over)}",
            Operation("/", total, Number(len(over))),
            inner.percent,
        )
    items = _items(rest)
    year = years[-1] if years else None
    whole = _figure(rest, year)
    alternatives = ()
    if len(items) >= 2:
        split = _sum_of([Figure.named(i, year) for i in items])
        alternatives = (Operation("/", split, Number(len(items))),)
    # No periods named: over the periods the row shows (figures.py reads None as "every period").
    return _Read("average", f"average {whole.phrase}", whole, percent_asked, alternatives)


def _inner(text: str, definitions, percent_asked) -> _Read:
    """What an average or a sum is taken of: a share or a measure, else a figure."""
    text = without_years(_SPAN_OF_YEARS.sub(" ", text))
    for reader in (_defined, _share, _ratio, _margin, _measure):
        found = reader(text, (), definitions, percent_asked)
        if found is not None:
            return found
    value = _figure(text)
    return _Read("value", value.phrase, value, percent_asked)


def _sum(body: str, years, definitions, percent_asked) -> _Read | None:
    match = _SUM.search(body)
    if match is None:
        return None
    rest = _remove(body, match)
    over = _years_between(body, years)
    items = _items(rest)
    if len(over) >= 2 and len(items) < 2:
        value = _figure(rest)
        return _Read("sum", f"sum of {value.phrase} over {listed_in_words(over)}", _sum_over(value, over), False)
    if len(items) >= 2 and len(years) <= 1:
        year = years[-1] if years else None
        figures = [Figure.named(i, year) for i in items]
        return _Read("sum", "sum of " + listed_in_words([f.phrase for f in figures]), _sum_of(figures), False)
    return None


def _difference(body: str, years, definitions, percent_asked) -> _Read | None:
    match = _DIFFERENCE.search(body) or _MORE_THAN.search(body)
    if match is None:
        return None
    first, second = (_phrase(p) for p in _shared_head(match.group("a"), match.group("b")))
    if first and not second and len(years) >= 2:
        value = Figure.named(first)
        return _Read("change", f"change in {value.phrase}", _over_years(value, years, "-"), False)
    if not first or not second or len(years) > 1:
        return None
    year = years[-1] if years else None
    expression = Operation("-", Figure.named(first, year), Figure.named(second, year))
    return _Read("difference", f"difference between {first} and {second}", expression, percent_asked)


def _remove(text: str, match: re.Match) -> str:
    return f"{text[: match.start()]} {text[match.end() :]}".strip()


def _items(text: str) -> list[str]:
    """The phrases a list names ("A, B and C"), periods taken out; one phrase when it is none."""
    parts = [_phrase(p) for p in _ITEM_SEPARATOR.split(without_years(text))]
    parts = [p for p in parts if p]
    return parts if len(parts) >= 2 else []


def _years_between(text: str, years: tuple[int, ...]) -> list[int]:
    """The years a span covers: "from 2017 to 2019" and "2017-2019" are the three years; a list
    of years is those years."""
    match = _RANGE.search(text)
    if match is not None:
        start, end = sorted(int(g) for g in (match.groups()[:2] if match.group(1) else match.groups()[2:]))
        if end - start <= 10:
            return sorted(set(range(start, end + 1)) | set(years))
    return list(years)


def _sum_over(value: Expression, years: list[int]) -> Expression:
    return _sum_of([bind(value, y) for y in years])


def _sum_of(parts: list[Expression]) -> Expression:
    total = parts[0]
    for part in parts[1:]:
        total = Operation("+", total, part)
    return total


def listed_in_words(things) -> str:
    """Things in words: "A", "A and B", "A, B and C"."""
    things = [str(t) for t in things]
    return things[0] if len(things) == 1 else f"{', '.join(things[:-1])} and {things[-1]}"
