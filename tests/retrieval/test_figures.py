"""Figures a question asks to be worked out: the formula read from the question, each figure
found as a table row of the asked year on its statement's page, the result shown with its
working and every figure cited."""

from __future__ import annotations

import pytest

from retrieval.answer.figures import table_rows
from retrieval.answer.formulas import parse_calculation, words
from retrieval.service import Source
from support.pdfgen import make_pdf
from support.shared_data import shared_path


def _formula(question: str) -> str:
    calculation = parse_calculation(question)
    assert calculation is not None, question
    return words(calculation.expression, calculation.year)


def test_a_question_s_own_definition_becomes_the_formula():
    question = (
        "Here's the question: what is the FY2015 operating cash flow ratio for Harbor Tools? Operating cash flow"
        " ratio is defined as: cash from operations / total current liabilities. Round your answer to two"
        " decimal places."
    )
    calculation = parse_calculation(question)
    assert (calculation.name, calculation.year, calculation.decimals) == ("operating cash flow ratio", 2015, 2)
    assert not calculation.percent and not calculation.is_amount
    assert [(f.item.name, f.year) for f in calculation.figures()] == [
        ("cash from operations", 2015),
        ("total current liabilities", 2015),
    ]
    # A definition under another name of the metric wins over the usual one, with its averages
    # and changes between two years.
    assert (
        _formula(
            "What is the FY2020 days payable outstanding (DPO) for Corning? DPO is defined as: 365 * (average"
            " accounts payable between FY2019 and FY2020) / (FY2020 COGS + change in inventory between FY2019 and"
            " FY2020). Round your answer to two decimal places."
        )
        == "365 * (accounts payable FY2019 + accounts payable) / 2 / (cost of goods sold + inventory - inventory FY2019)"
    )
    calculation = parse_calculation(
        "What is Lockheed Martin's FY2021 net working capital? Define net working capital as total current"
        " assets less total current liabilities. Answer in USD millions."
    )
    assert words(calculation.expression, 2021) == "total current assets - total current liabilities"
    assert calculation.is_amount and calculation.scale == 1e6


def test_named_metrics_and_the_ways_questions_ask_around_them():
    # A metric named without its definition is computed by the usual one.
    assert _formula("What is the FY2018 fixed asset turnover ratio for CVS Health?") == (
        "revenue / ((net property, plant and equipment FY2017 + net property, plant and equipment) / 2)"
    )
    assert (
        _formula(
            "What is Adobe's year-over-year change in unadjusted operating income from FY2015 to FY2016 (in"
            " units of percents and round to one decimal place)?"
        )
        == "(operating income - operating income FY2015) / operating income FY2015"
    )
    assert _formula("What is Lockheed Martin's 2 year total revenue CAGR from FY2020 to FY2022?") == (
        "(revenue / revenue FY2020) ^ 0.5 - 1"
    )
    calculation = parse_calculation(
        "What is the FY2018 - FY2020 3 year average of capex as a % of revenue for MGM Resorts? Answer in"
        " units of percents and round to one decimal place."
    )
    assert calculation.percent and calculation.decimals == 1
    assert words(calculation.expression, calculation.year) == (
        "(capital expenditures FY2018 / revenue FY2018 + capital expenditures FY2019 / revenue FY2019"
        " + capital expenditures / revenue) / 3"
    )
    # A formula stated in the asking sentence itself; its parenthesis is a remark, not a name.
    assert (
        _formula(
            "What is American Water Works's FY2021 unadjusted operating income + depreciation and amortization"
            " from the cash flow statement (unadjusted EBITDA) in USD millions?"
        )
        == "operating income + depreciation and amortization"
    )


@pytest.mark.parametrize(
    "question",
    [
        "What is the default width of \\heavyrulewidth in booktabs?",
        "How many titles is the DMCA divided into?",
        "Has MGM Resorts paid dividends to common shareholders in FY2022?",  # yes or no: not a figure
        "What is the operating cash flow ratio of Harbor Tools?",  # no year: no column to read
        "How much did Verizon expect to pay for its retirees in 2024?",  # names no line item
    ],
)
def test_questions_that_ask_for_no_calculation_are_left_to_the_passages(question):
    assert parse_calculation(question) is None


def test_rows_the_table_reader_left_as_text_or_without_headers_are_still_read():
    # A row printed without column headers takes the years printed above the table; a row the
    # table reader left as a line of text takes the headers of the rows around it.
    headerless = "December 31,\n2018\n2017\nCash | $1,526 | $1,499\nAccounts payable | 302,578 | 255,028"
    assert dict(table_rows(headerless))["Accounts payable"] == [("2018", "302,578"), ("2017", "255,028")]
    loose = "Inventories | 2020: 1,426.3 | 2019: 1,559.3\nTotal current assets 5,121.3 4,186.5"
    assert dict(table_rows(loose))["Total current assets"] == [("2020", "5,121.3"), ("2019", "4,186.5")]


def _statement(title: str, unit: str, rows: list[tuple[str, str, str]]) -> list:
    return [
        "Harbor Tools Inc.",
        title,
        unit,
        [(400, "2022"), (480, "2021")],
        *[[(72, label), (400, this_year), (480, last_year)] for label, this_year, last_year in rows],
    ]


@pytest.fixture(scope="module")
def filing(docent, tmp_path_factory):
    """A made 10-K: prose, a balance sheet in thousands, a cash flow statement in millions."""
    prose = [
        "Liquidity. Our operating cash flow ratio improved as cash from operations grew faster than our",
        "current liabilities. Cash flow from operations was strong in fiscal 2022 and fiscal 2021.",
    ]
    balance = _statement(
        "Consolidated Balance Sheets",
        "(In thousands)",
        [
            ("Inventories", "612,000", "588,000"),
            ("Total current assets", "3,100,000", "2,950,000"),
            ("Accounts payable", "402,000", "377,000"),
            ("Total current liabilities", "2,500,000", "2,410,000"),
        ],
    )
    cash_flows = _statement(
        "Consolidated Statements of Cash Flows",
        "(In millions)",
        [
            ("Net earnings", "820", "760"),
            ("Net cash provided by operating activities", "1,250", "1,100"),
            ("Purchases of property and equipment", "(310)", "(295)"),
            ("Dividends paid", "(205)", "(190)"),
        ],
    )
    path = tmp_path_factory.mktemp("filing") / "harbor-2022-10k.pdf"
    path.write_bytes(make_pdf([prose * 3, balance, cash_flows], title="Harbor Tools 2022 10-K"))
    outcomes = docent.ingest([Source.from_path(path)], collection="figures")
    assert [o.status for o in outcomes] == ["added"]
    return path


def test_a_ratio_of_figures_from_two_statements_in_different_units_is_worked_out_and_cited(docent, filing):
    answer = docent.ask(
        "What is the FY2022 operating cash flow ratio for Harbor Tools? Operating cash flow ratio is defined as:"
        " cash from operations / total current liabilities. Round your answer to two decimal places.",
        collection="figures",
    )
    # 1,250 million / 2,500,000 thousand: the units are the pages' own, so 0.50 and not 0.0005.
    assert "Operating cash flow ratio, FY2022: **0.50**" in answer.text, answer.text
    assert "Net cash provided by operating activities | 2022: 1,250 [1]" in answer.text
    assert "Total current liabilities | 2022: 2,500,000 [2]" in answer.text
    assert [c.page for c in answer.citations] == [3, 2]  # the cash flow statement, the balance sheet
    assert answer.answered


def test_an_amount_is_stated_in_the_asked_unit_and_an_outflow_counts_as_spent(docent, filing):
    answer = docent.ask(
        "What is the FY2022 free cash flow for Harbor Tools? Answer in USD millions.", collection="figures"
    )
    assert "Free cash flow, FY2022: **$940 million**" in answer.text, answer.text  # 1,250 - 310
    assert "Purchases of property and equipment | 2022: (310)" in answer.text
    answer = docent.ask("What is the FY2022 retention ratio for Harbor Tools?", collection="figures")
    assert "**0.75**" in answer.text, answer.text  # (820 - 205) / 820


def test_a_figure_the_documents_do_not_give_is_not_guessed(docent, filing):
    # No 2019 column anywhere: the answer is the passages' own words, with no worked figure.
    answer = docent.ask(
        "What is the FY2019 operating cash flow ratio for Harbor Tools? Round your answer to two decimal places.",
        collection="figures",
    )
    assert "**" not in answer.text and "worked out" not in answer.text, answer.text


def test_a_real_filing_s_ratio_is_worked_out_from_its_statements(docent):
    filing = shared_path("financebench-dev", "pdfs", "ADOBE_2017_10K.pdf")
    assert {o.status for o in docent.ingest([Source.from_path(filing)], collection="adobe")} <= {"added", "unchanged"}
    answer = docent.ask(
        "What is the FY2017 operating cash flow ratio for Adobe? Operating cash flow ratio is defined as: cash"
        " from operations / total current liabilities. Round your answer to two decimal places.",
        collection="adobe",
    )
    # FinanceBench's gold answer is 0.83, from the cash flow statement (page 61) and the
    # balance sheet (page 57).
    assert "**0.83**" in answer.text, answer.text
    assert {c.page for c in answer.citations} == {57, 61}


def test_a_row_is_looked_up_by_its_label_in_one_document(docent, filing):
    from retrieval.search import passages_with_lines

    store = docent.collection("figures")
    source = next(d.source for d in docent.documents(collection="figures"))
    found = passages_with_lines(store, source, ["total current liabilities", "Capital spending"])
    assert [h.page for h in found] == [2]  # letter case aside; labels no row has find nothing
    assert "Total current liabilities | 2022: 2,500,000" in found[0].text
    # A label is matched literally: "%" and "_" are not wildcards, and it must begin a line.
    assert passages_with_lines(store, source, ["%", "_nventories", "current liabilities"]) == []
    assert passages_with_lines(store, "no-such.pdf", ["Inventories"]) == []


def test_a_figure_printed_in_a_summary_and_in_its_statement_is_taken_from_the_statement():
    # Adobe's FY2015 10-K as ingest reads it: the MD&A summarises the cash flow statement in
    # millions under the statement's name (page 51); the statements print thousands.
    from retrieval.answer.figures import work_out
    from retrieval.models import Hit

    def page(number, section, text):
        return Hit(
            source="adobe.pdf",
            title="ADBE 10K FY15",
            page=number,
            chunk_id=number,
            score=1.0,
            text=text,
            section=section,
        )

    passages = [
        page(
            51,
            "Consolidated Statements of Cash Flows (in millions)",
            "Net cash provided by operating activities | 2015: $1,469.5 | 2014: $1,287.5",
        ),
        page(
            59,
            "CONSOLIDATED BALANCE SHEETS (In thousands, except par value)",
            "Total current liabilities | 2015: 2,213,556 | 2014: 2,494,435",
        ),
        page(
            63,
            "CONSOLIDATED STATEMENTS OF CASH FLOWS (In thousands)",
            "Net cash provided by operating activities | 2015: 1,469,502 | 2014: 1,287,482",
        ),
    ]
    worked = work_out(parse_calculation("What is the FY2015 operating cash flow ratio for Adobe?"), passages)
    assert worked.result == "0.66"
    assert [passages[f.passage].page for f in worked.figures] == [63, 59]
    assert worked.working == "1,469,502 / 2,213,556 (in thousands)"


def test_asked_whether_a_figure_is_positive_the_answer_says_yes_or_no_first(docent, filing):
    answer = docent.ask("Does Harbor Tools have positive working capital based on FY2022 data?", collection="figures")
    # 3,100,000 - 2,500,000 thousand
    assert answer.text.startswith("Yes, it is positive. Working capital, FY2022: **600,000 thousand**"), answer.text
    assert [c.page for c in answer.citations] == [2]
