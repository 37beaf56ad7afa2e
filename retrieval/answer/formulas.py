"""What figure a question asks to be worked out, as a formula over line items and years.

"What is the FY2015 operating cash flow ratio for Adobe? Operating cash flow ratio is defined
as: cash from operations / total current liabilities." asks for
    cash from operations[2015] / total current liabilities[2015].
A question gives its own definitions ("X is defined as: ...", "Define X as ..."), or names a
metric whose usual definition financial_terms.py holds, or a line item ("the FY2018 net property,
plant and equipment"). Around the asked figure the question may say "year-over-year change in X
from FY2015 to FY2016", "X CAGR from FY2020 to FY2022", "FY2019 - FY2021 3 year average X",
"X % margin" or "X as a % of revenue"; definitions may say "average X between FY2016 and
FY2017" and "change in X between FY2019 and FY2020". Anything else is not a calculation: the
parser returns None and the answer is the passages' own words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Callable

from ingest.text import sentence_spans
from retrieval.answer.financial_terms import LINE_ITEMS, METRICS, UNITS, LineItem
from retrieval.keywords import named_years


@dataclass(frozen=True)
class Figure:
    """A line item's value in a fiscal year (year None until bound to the asked year)."""

    item: LineItem
    year: int | None = None


@dataclass(frozen=True)
class Number:
    value: float


@dataclass(frozen=True)
class Operation:
    op: str  # "+", "-", "*", "/", "^"
    left: "Expression"
    right: "Expression"


Expression = Figure | Number | Operation


@dataclass(frozen=True)
class Calculation:
    name: str  # what is computed, as the question says it ("operating cash flow ratio")
    expression: Expression
    year: int  # the asked fiscal year (the latest one named)
    percent: bool  # state the result in percent
    decimals: int | None  # as asked ("round to two decimal places"), else None
    scale: float | None  # an amount asked in USD millions (1e6) or billions (1e9)
    sign: str | None = None  # "positive" or "negative" when asked whether it is ("Does X have positive ...?")

    def figures(self) -> list[Figure]:
        """The figures it needs, each once, in the order the formula names them."""
        found: list[Figure] = []

        def walk(node: Expression) -> None:
            if isinstance(node, Figure):
                if node not in found:
                    found.append(node)
            elif isinstance(node, Operation):
                walk(node.left)
                walk(node.right)

        walk(self.expression)
        return found

    @property
    def is_amount(self) -> bool:
        """An amount (a sum or difference of figures), not a ratio."""

        def divides(node: Expression) -> bool:
            return isinstance(node, Operation) and (node.op in "/^" or divides(node.left) or divides(node.right))

        return not divides(self.expression) and not self.percent


class _NotAFormula(ValueError):
    pass


_ASKS = re.compile(r"\b(what (is|was|were|are)|how much|calculate|compute)\b", re.I)
_SIGN_ASKED = re.compile(
    r"^(?:does|did|do|is|was|were|has|had)\b.*?\b(?P<sign>positive|negative)\s+(?P<what>.+?)"
    r"(?:\s+(?:in|for|based on|as of|at|during)\b.*)?\?$",
    re.I,
)
_DEFINITION = re.compile(
    r"^(?:define\s+(?P<name1>.+?)\s+as:?\s+(?P<expr1>.+?)|(?P<name2>.+?)\s+(?:here\s+)?(?:is|are)\s+defined\s+as:?\s+"
    r"(?P<expr2>.+?))\s*\.?$",
    re.I | re.S,
)
_PARENTHESES = re.compile(r"\s*\([^()]*\)")
_YEAR = r"(?:FY\s?|fiscal(?: year)?\s)?((?:19|20)\d\d)"
_AVERAGE_BETWEEN = re.compile(rf"^average (?:of )?(.+?) between {_YEAR} and {_YEAR}$", re.I)
_CHANGE_BETWEEN = re.compile(rf"^change in (.+?) between {_YEAR} and {_YEAR}$", re.I)
_YEAR_OVER_YEAR = re.compile(rf"year[- ]over[- ]year (?:change|growth) in (.+?) from {_YEAR} to {_YEAR}", re.I)
_CAGR = re.compile(rf"(?:\d+[- ]year )?(.+?) CAGR from {_YEAR} to {_YEAR}", re.I)
_SPAN_AVERAGE = re.compile(rf"{_YEAR}\s*[-–]\s*{_YEAR}\s+(?:\d+[- ]year\s+)?average (?:of )?(.+)", re.I)
_OF_REVENUE = re.compile(r"(.+?) as an? (?:%|percent(?:age)?) of (?:total |net )?(?:revenues?|sales)\b", re.I)
_MARGIN = re.compile(r"(.+?)\s*%\s*margin\b", re.I)
_DECIMALS = re.compile(r"round\w*[^.?]*?\b(zero|no|one|two|three|four|\d) decimal", re.I)
_PERCENT_ASKED = re.compile(r"\bin (?:units of )?percents?\b|\bas a percent(?:age)?\b|\bin %", re.I)
_SCALE_ASKED = re.compile(r"\b(?:in )?(?:USD|US\$|\$|dollars)?\s?(millions|billions|thousands)\b", re.I)
_OPERATORS = {
    "+": "+",
    "-": "-",
    "*": "*",
    "/": "/",
    "divided by": "/",
    "less": "-",
    "minus": "-",
    "plus": "+",
    "times": "*",
    "multiplied by": "*",
}
_TOKEN = re.compile(r"\(|\)|\s[-+*/]\s|\b(?:divided by|multiplied by|less|minus|plus|times)\b", re.I)
_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")
_WORD_NUMBERS = {"zero": 0, "no": 0, "one": 1, "two": 2, "three": 3, "four": 4}
_QUALIFIERS = re.compile(
    r"\b(unadjusted|reported|gaap|the|from the (?:cash flow|income) statement|from the statement of cash flows|"
    r"year[- ]end|total annual|annual|amount|amount of)\b",
    re.I,
)


def parse_calculation(question: str) -> Calculation | None:
    """The calculation the question asks for, or None when it asks for none (see the module)."""
    sentences = [question[s:e].strip() for s, e in sentence_spans(question)]
    definitions, others = {}, []
    for sentence in sentences:
        match = _DEFINITION.match(sentence)
        if match and not sentence.rstrip().endswith("?"):
            name = _normal(match.group("name1") or match.group("name2"))
            definitions[name] = match.group("expr1") or match.group("expr2")
        else:
            others.append(sentence)
    asking = next((s for s in others if s.endswith("?")), None)
    if asking is None:
        return None
    sign = _SIGN_ASKED.match(asking)
    if sign is None and not _ASKS.search(asking):
        return None
    asking = _PARENTHESES.sub("", asking)
    years = sorted(int(y) for y in named_years(asking))
    if not years:
        return None  # a filing's figures are found by their year's column
    parser = _Parser(definitions)
    try:
        name, expression, percent = _asked(sign.group("what") if sign else asking, parser)
    except _NotAFormula:
        return None
    decimals = _DECIMALS.search(question)
    scale = _SCALE_ASKED.search(asking) or _SCALE_ASKED.search(question)
    return Calculation(
        name=name,
        expression=_bind(expression, years[-1]),
        year=years[-1],
        percent=percent or bool(_PERCENT_ASKED.search(question)),
        decimals=_decimals(decimals.group(1)) if decimals else None,
        scale=UNITS[scale.group(1).lower()] if scale else None,
        sign=sign.group("sign").lower() if sign else None,
    )


def _decimals(word: str) -> int:
    return int(word) if word.isdigit() else _WORD_NUMBERS[word.lower()]


def _asked(asking: str, parser: "_Parser") -> tuple[str, Expression, bool]:
    """What the asking sentence names: (its name, its formula, whether it is a percentage)."""
    if match := _YEAR_OVER_YEAR.search(asking):
        phrase, start, end = match.group(1), int(match.group(2)), int(match.group(3))
        value = parser.phrase(phrase)
        growth = Operation("/", Operation("-", _bind(value, end), _bind(value, start)), _bind(value, start))
        return f"year-over-year change in {parser.name(phrase)}", growth, True
    if match := _CAGR.search(asking):
        phrase, start, end = match.group(1), int(match.group(2)), int(match.group(3))
        value = parser.phrase(phrase)
        ratio = Operation("/", _bind(value, end), _bind(value, start))
        cagr = Operation("-", Operation("^", ratio, Number(1 / max(end - start, 1))), Number(1))
        return f"{parser.name(phrase)} CAGR", cagr, True
    if match := _SPAN_AVERAGE.search(asking):
        start, end, phrase = int(match.group(1)), int(match.group(2)), match.group(3)
        name, value, percent = _asked(phrase, parser)
        if not start < end <= start + 10:
            raise _NotAFormula(phrase)
        total = _bind(value, start)
        for year in range(start + 1, end + 1):
            total = Operation("+", total, _bind(value, year))
        return f"{end - start + 1}-year average {name}", Operation("/", total, Number(end - start + 1)), percent
    for pattern, said in ((_OF_REVENUE, "as a % of revenue"), (_MARGIN, "% margin")):
        if match := pattern.search(asking):
            phrase, revenue = match.group(1), Figure(_ITEMS_BY_NAME["revenue"])
            return f"{parser.name(phrase)} {said}", Operation("/", parser.phrase(phrase), revenue), True
    expression = parser.expression(asking, asked=True)
    if isinstance(expression, Figure):
        return expression.item.name, expression, False
    name = parser.name(asking) if parser.names_one(asking) else words(expression)
    return name, expression, False


class _Parser:
    """English formulas: operands are line items, metrics or names the question defined; operators
    are + - * / ("divided by", "less") and parentheses."""

    def __init__(self, definitions: dict[str, str]):
        self.definitions = definitions
        self.expanding: set[str] = set()

    def name(self, phrase: str) -> str:
        """The known name the phrase holds (for the answer's words), else the phrase."""
        found = self._longest_name(phrase)
        return found[0] if found else _normal(phrase)

    def names_one(self, text: str) -> bool:
        """Whether the text names one metric or defined name (not a formula of its own)."""
        found = self._longest_name(text)
        return found is not None and found[1] != "item"

    def phrase(self, phrase: str) -> Expression:
        return self.expression(phrase, asked=True)

    def expression(self, text: str, asked: bool = False) -> Expression:
        tokens = self._tokens(text)
        if asked and any(t in "+-*/" for t in tokens):
            # The asking sentence states its own formula ("operating income + D&A") only when
            # each part names something; otherwise its operators belong to other words.
            try:
                return self._parse_all(tokens)
            except _NotAFormula:
                return self._operand(_PARENTHESES.sub("", text))
        if asked:
            return self._operand(text)
        return self._parse_all(tokens)

    def _parse_all(self, tokens: list[str]) -> Expression:
        position, node = self._sum(tokens, 0)
        if position != len(tokens):
            raise _NotAFormula(" ".join(tokens))
        return node

    def _tokens(self, text: str) -> list[str]:
        tokens, last = [], 0
        for match in _TOKEN.finditer(text):
            if text[last : match.start()].strip():
                tokens.append(text[last : match.start()].strip())
            token = match.group().strip().lower()
            tokens.append(_OPERATORS.get(token, token))
            last = match.end()
        if text[last:].strip(" .?"):
            tokens.append(text[last:].strip(" .?"))
        return tokens

    def _sum(self, tokens: list[str], i: int) -> tuple[int, Expression]:
        i, node = self._product(tokens, i)
        while i < len(tokens) and tokens[i] in ("+", "-"):
            op = tokens[i]
            i, right = self._product(tokens, i + 1)
            node = Operation(op, node, right)
        return i, node

    def _product(self, tokens: list[str], i: int) -> tuple[int, Expression]:
        i, node = self._atom(tokens, i)
        while i < len(tokens) and tokens[i] in ("*", "/"):
            op = tokens[i]
            i, right = self._atom(tokens, i + 1)
            node = Operation(op, node, right)
        return i, node

    def _atom(self, tokens: list[str], i: int) -> tuple[int, Expression]:
        if i >= len(tokens):
            raise _NotAFormula("a formula ends with an operator")
        token = tokens[i]
        if token == "(":
            i, node = self._sum(tokens, i + 1)
            if i >= len(tokens) or tokens[i] != ")":
                raise _NotAFormula("unbalanced parentheses")
            return i + 1, node
        if token in "+-*/)":
            raise _NotAFormula(f"unexpected {token!r}")
        return i + 1, self._operand(token)

    def _operand(self, text: str) -> Expression:
        text = text.strip(" .?:")
        if _NUMBER.match(text):
            return Number(float(text))
        for pattern, prefix, combine in (
            (_AVERAGE_BETWEEN, "average ", _average),
            (_CHANGE_BETWEEN, "change in ", _change),
        ):
            if match := pattern.match(text):
                return combine(self._operand(match.group(1)), int(match.group(2)), int(match.group(3)))
            if text.lower().startswith(prefix):
                # "average total assets" with no years: the year before's and the asked year's.
                return _OverTwoYears(combine, self._operand(text[len(prefix) :]))
        years = sorted(int(y) for y in named_years(text))
        found = self._longest_name(text)
        if found is None:
            raise _NotAFormula(text)
        name, kind = found
        if kind == "item":
            node: Expression = Figure(_ITEMS_BY_ASKED[name])
        else:
            if name in self.expanding:
                raise _NotAFormula(f"{name} is defined by itself")
            self.expanding.add(name)
            try:
                node = self.expression(self._definition(name))
            finally:
                self.expanding.discard(name)
        return _bind(node, years[-1]) if len(years) == 1 else node

    def _definition(self, name: str) -> str:
        """The question's own definition of the name or of another name of the same metric,
        else the usual one."""
        names = next((names for names in METRICS if name in names), (name,))
        given = [self.definitions[n] for n in names if n in self.definitions]
        return given[0] if given else METRICS[names]

    def _longest_name(self, text: str) -> tuple[str, str] | None:
        """The longest defined name, metric or line item the text names: (name, its kind)."""
        plain = " " + _normal(text) + " "
        candidates = [(n, "defined") for n in self.definitions] + [(n, "metric") for names in METRICS for n in names]
        candidates += [(n, "item") for n in _ITEMS_BY_ASKED]
        held = [(n, kind) for n, kind in candidates if f" {n} " in plain]
        return max(held, key=lambda c: (len(c[0]), c[1] != "item")) if held else None


@dataclass(frozen=True)
class _OverTwoYears:
    """An average or a change over the year before and the asked year, until the year is known."""

    combine: Callable[[Expression, int, int], Expression]  # _average or _change
    value: Expression


def _average(value: Expression, first: int, second: int) -> Expression:
    return Operation("/", Operation("+", _bind(value, first), _bind(value, second)), Number(2))


def _change(value: Expression, before: int, after: int) -> Expression:
    return Operation("-", _bind(value, after), _bind(value, before))


def _bind(node, year: int):
    """The expression with every figure that names no year set to `year`."""
    if isinstance(node, Figure):
        return node if node.year is not None else replace(node, year=year)
    if isinstance(node, _OverTwoYears):
        return node.combine(node.value, year - 1, year)
    if isinstance(node, Operation):
        return Operation(node.op, _bind(node.left, year), _bind(node.right, year))
    return node


def _normal(text: str) -> str:
    """Lower case, "&" kept, qualifiers and punctuation other than "&" and "," dropped."""
    text = text.lower().replace("’", "'").replace("'s ", " ")
    text = _QUALIFIERS.sub(" ", text)
    text = re.sub(r"[^\w&,' ]+", " ", text)
    text = re.sub(r"\s*,\s*", ", ", text)
    return " ".join(text.split()).strip(" ,")


_ITEMS_BY_NAME = {item.name: item for item in LINE_ITEMS}
_ITEMS_BY_ASKED = {_normal(asked): item for item in LINE_ITEMS for asked in (item.name,) + item.asked}


def words(node: Expression, year: int | None = None) -> str:
    """The formula in words: "cash from operations / total current liabilities"; a figure of
    another year than `year` says its year ("total assets FY2016")."""
    return formula_text(node, lambda f: f.item.name if f.year in (None, year) else f"{f.item.name} FY{f.year}")


def formula_text(node: Expression, figure_text: Callable[[Figure], str]) -> str:
    """The formula written out, each figure as figure_text gives it, parenthesised only where
    the order of operations needs it."""
    if isinstance(node, Figure):
        return figure_text(node)
    if isinstance(node, Number):
        return f"{node.value:g}"
    left = _grouped(node.left, node.op, figure_text)
    return f"{left} {node.op} {_grouped(node.right, node.op, figure_text, right=True)}"


def _grouped(node: Expression, parent: str, figure_text, right: bool = False) -> str:
    text = formula_text(node, figure_text)
    if isinstance(node, Operation) and _needs_parentheses(node.op, parent, right):
        return f"({text})"
    return text


_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "^": 3}


def _needs_parentheses(child: str, parent: str, right: bool) -> bool:
    if _PRECEDENCE[child] != _PRECEDENCE[parent]:
        return _PRECEDENCE[child] < _PRECEDENCE[parent]
    return right and parent in "-/^"
