"""Formulas over figures: the expression a calculation evaluates, read from English ("cash from
operations / total current liabilities", "365 * average accounts payable / (cost of goods sold
+ change in inventory)"), and written back out in words or with the figures put in.

An operand is a figure named by a phrase ("total current liabilities", "Other") at a year, a
number, a name the question defined, or a measure of the glossary (expanded into its own
formula); "average X" and "change in X" span two years.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Callable

from retrieval.answer.glossary import item_named, item_within, measure_named
from retrieval.keywords import named_years


@dataclass(frozen=True)
class Figure:
    """A figure of a document, named as the question names it, in a year (None: not said)."""

    phrase: str
    year: int | None = None
    also: tuple[str, ...] = ()  # other names of the same line item (glossary)
    outflow: bool = False  # a payment printed negative, used as the amount paid
    statement: str | None = None  # the statement that reports it, where the glossary knows

    @classmethod
    def named(cls, phrase: str, year: int | None = None) -> "Figure":
        """The figure a phrase names; where the phrase holds a line item's name ("capex for the
        hotels"), also the same phrase with the item's other names ("capital expenditures for
        the hotels")."""
        item = item_named(phrase)
        if item is not None:
            others = tuple(n for n in (item.name, *item.also) if plain_name(n) != plain_name(phrase))
            return cls(phrase, year, others, item.outflow, item.statement)
        found = item_within(phrase)
        if found is None:
            return cls(phrase, year)
        item, said = found
        pattern = re.compile(rf"(?<!\w){re.escape(said)}(?!\w)", re.I)
        others = tuple(pattern.sub(name, phrase, count=1) for name in (item.name, *item.also) if name != said)
        return cls(phrase, year, others, item.outflow, item.statement)


@dataclass(frozen=True)
class Number:
    value: float


@dataclass(frozen=True)
class Operation:
    op: str  # "+", "-", "*", "/", "^"
    left: "Expression"
    right: "Expression"


Expression = Figure | Number | Operation


class NotAFormula(ValueError):
    pass


_YEAR = r"(?:FY\s?|fiscal(?: year)?\s)?((?:19|20)\d\d)"
_AVERAGE_BETWEEN = re.compile(
    rf"^(?:the )?average (?:of )?(.+?) (?:between|from|for|in) {_YEAR} (?:and|to|-) {_YEAR}$", re.I
)
_CHANGE_BETWEEN = re.compile(rf"^(?:the )?change (?:in|of) (.+?) (?:between|from) {_YEAR} (?:and|to) {_YEAR}$", re.I)
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
_TOKEN = re.compile(r"\(|\)|\s[-+*/]\s|\b(?:divided by|multiplied by|less(?! than)|minus|plus|times)\b", re.I)
_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")
_OWNER = re.compile(r"^[A-Z][\w&.-]*(?:\s+[A-Z][\w&.-]*){0,3}['’]s\s+")


def parse_formula(text: str, definitions: dict[str, str]) -> Expression:
    """The formula text states, its operands phrases of figures (NotAFormula when it states
    none). definitions: names the question defined -> their formulas, which win over the
    glossary's."""
    return _Parser(definitions).parse(text)


class _Parser:
    def __init__(self, definitions: dict[str, str]):
        self.definitions = {plain_name(k): v for k, v in definitions.items()}
        self.expanding: set[str] = set()

    def parse(self, text: str) -> Expression:
        tokens = _tokens(text)
        position, node = self._sum(tokens, 0)
        if position != len(tokens):
            raise NotAFormula(text)
        return node

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
            raise NotAFormula("a formula ends with an operator")
        token = tokens[i]
        if token == "(":
            i, node = self._sum(tokens, i + 1)
            if i >= len(tokens) or tokens[i] != ")":
                raise NotAFormula("unbalanced parentheses")
            return i + 1, node
        if token in "+-*/)":
            raise NotAFormula(f"unexpected {token!r}")
        return i + 1, self.operand(token)

    def operand(self, text: str) -> Expression:
        text = text.strip(" .?:,")
        if _NUMBER.match(text):
            return Number(float(text))
        for pattern, combine in ((_AVERAGE_BETWEEN, average_of), (_CHANGE_BETWEEN, change_of)):
            if match := pattern.match(text):
                return combine(self.operand(match.group(1)), int(match.group(2)), int(match.group(3)))
        for prefix, combine in (("average ", average_of), ("change in ", change_of)):
            bare = re.sub(r"^(?:the )", "", text, flags=re.I)
            if bare.lower().startswith(prefix):
                # "average total assets" with no years: the year before the asked one and it.
                return OverTwoYears(combine, self.operand(bare[len(prefix) :]))
        years = sorted(int(y) for y in named_years(text))
        phrase = _OWNER.sub("", without_years(text))  # "Harbor's operating income": the figure, not its owner
        if not phrase:
            raise NotAFormula(text)
        name = plain_name(phrase)
        node: Expression
        if name in self.definitions or measure_named(name) is not None:
            if name in self.expanding:
                raise NotAFormula(f"{name} is defined by itself")
            self.expanding.add(name)
            try:
                node = self.parse(self.definitions.get(name) or measure_named(name).formula)
            finally:
                self.expanding.discard(name)
        else:
            node = Figure.named(phrase)
        return bind(node, years[-1]) if len(years) == 1 else node


_DANGLING = re.compile(r"\b(?:for|of|from|to|in|on|and|or|the|by|with|at)$", re.I)


def _tokens(text: str) -> list[str]:
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


def states_operators(text: str) -> bool:
    """Whether a text writes arithmetic between phrases ("operating income + depreciation"),
    not a label with a slash in it ("Provision for / (benefit from) income taxes")."""
    tokens = _tokens(text)
    operators = [i for i, t in enumerate(tokens) if t in ("+", "-", "*", "/")]
    return bool(operators) and not any(i > 0 and _DANGLING.search(tokens[i - 1]) for i in operators)


@dataclass(frozen=True)
class OverTwoYears:
    """An average or a change over the year before the asked year and it, until the year is known."""

    combine: Callable[[Expression, int, int], Expression]  # average_of or change_of
    value: Expression


def average_of(value: Expression, first: int, second: int) -> Expression:
    return Operation("/", Operation("+", bind(value, first), bind(value, second)), Number(2))


def change_of(value: Expression, before: int, after: int) -> Expression:
    return Operation("-", bind(value, after), bind(value, before))


def bind(node, year: int | None):
    """The expression with every figure that names no year set to `year`."""
    if year is None:
        return node
    if isinstance(node, Figure):
        return node if node.year is not None else replace(node, year=year)
    if isinstance(node, OverTwoYears):
        return node.combine(node.value, year - 1, year)
    if isinstance(node, Operation):
        return Operation(node.op, bind(node.left, year), bind(node.right, year))
    return node


def figures_of(node: Expression) -> list[Figure]:
    """The figures an expression needs, each once, in the order it names them."""
    found: list[Figure] = []

    def walk(n) -> None:
        if isinstance(n, Figure):
            if n not in found:
                found.append(n)
        elif isinstance(n, Operation):
            walk(n.left)
            walk(n.right)
        elif isinstance(n, OverTwoYears):
            walk(n.value)

    walk(node)
    return found


_PERIOD_WORDS = set(
    """in for during of at as on from to between and over by the fiscal year years fy calendar ended ending end
    year-end period periods respectively financial both across q1 q2 q3 q4 h1 h2 quarter quarters half first second third
    fourth months month three six nine twelve""".split()
)
_MONTHS = set(
    """january february march april may june july august september october november december jan feb mar apr jun
    jul aug sep sept oct nov dec""".split()
)
_EDGE_WORDS = set("the a an of in for on at to by from with and its their our company's group's".split())
_YEAR_TOKEN = re.compile(r"^(?:fy\s?'?)?(?:(?:19|20)\d\d|\d\d)$|^(?:19|20)\d\d$")


def without_years(text: str) -> str:
    """A phrase with the periods it names taken out: "Other in 2019 from 2018" -> "Other",
    "net sales for fiscal years 2019 and 2018" -> "net sales"."""
    tokens = re.findall(r"[\w'’&.%-]+|[^\w\s]", text)
    marked = [bool(named_years(t)) or bool(re.fullmatch(r"(?:19|20)\d\d", t)) for t in tokens]
    if not any(marked):
        return _trim_edges(tokens)
    # The words around a year that only say when: "for the year ended December 31, 2019".
    for direction in (1, -1):
        order = range(len(tokens)) if direction == 1 else range(len(tokens) - 1, -1, -1)
        for i in order:
            if not marked[i]:
                continue
            j = i - direction
            while 0 <= j < len(tokens) and not marked[j] and _says_when(tokens[j]):
                marked[j] = True
                j -= direction
    kept = [t for t, m in zip(tokens, marked) if not m]
    return _trim_edges(kept)


def _says_when(token: str) -> bool:
    word = token.lower().strip(".")
    return (
        word in _PERIOD_WORDS or word in _MONTHS or word in {",", "-", "–", "/"} or bool(re.fullmatch(r"\d{1,2}", word))
    )


def _trim_edges(tokens: list[str]) -> str:
    while tokens and (tokens[0].lower() in _EDGE_WORDS or not re.search(r"\w", tokens[0])):
        tokens = tokens[1:]
    while tokens and (tokens[-1].lower() in _EDGE_WORDS or not re.search(r"[\w)%]", tokens[-1])):
        tokens = tokens[:-1]
    text = " ".join(tokens)
    return re.sub(r"\s+([,.)])", r"\1", re.sub(r"\(\s+", "(", text)).strip()


def plain_name(text: str) -> str:
    """A name as compared: lower case, curly quotes straight, hyphens as spaces."""
    return " ".join(text.lower().replace("’", "'").replace("-", " ").strip(" .?:,").split())


def words(node: Expression, years: set[int] | None = None) -> str:
    """The formula in words: "cash from operations / total current liabilities"; a figure of a
    year not in `years` says its year ("total assets 2016")."""
    years = years or set()
    return formula_text(node, lambda f: f.phrase if f.year is None or f.year in years else f"{f.phrase} {f.year}")


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
