"""Figures a question asks to be worked out, by general means: the operation read from the
question's English, each figure found as the table cell whose row label, column and title say
what the question names, the result shown with its working and every row cited, and nothing
stated when a figure cannot be told for sure."""

from __future__ import annotations

import pytest

from retrieval.answer.calculations import parse_calculation
from retrieval.answer.cells import passage_cells
from retrieval.answer.figures import Unclear, Worked, render, work_out
from retrieval.answer.formulas import Figure, words
from retrieval.models import Hit
from retrieval.service import Source
from support.pdfgen import make_pdf
from support.shared_data import shared_path


def _formula(question: str) -> str:
    calculation = parse_calculation(question)
    assert calculation is not None, question
    return words(calculation.expression)


@pytest.mark.parametrize(
    "question, kind, formula",
    [
        ("How much did the fuel revenue change from 2021 to 2022?", "change", "fuel revenue 2022 - fuel revenue 2021"),
        (
            "What was the percentage increase in berth fees between 2020 and 2022?",
            "percent change",
            "(berth fees 2022 - berth fees 2020) / berth fees 2020",
        ),
        (
            "By what percentage did the crane hire grow from 2021 to 2022?",
            "percent change",
            "(crane hire 2022 - crane hire 2021) / crane hire 2021",
        ),
        (
            "What is the average winter storage income from 2019 to 2021?",
            "average",
            "(winter storage income 2019 + winter storage income 2020 + winter storage income 2021) / 3",
        ),
        (
            "What is the 2022 average number of moorings?",
            "average",
            "(number of moorings 2021 + number of moorings 2022) / 2",
        ),
        ("What is the total of pilotage and towage in 2022?", "sum", "pilotage 2022 + towage 2022"),
        ("What was the combined dredging cost in 2021 and 2022?", "sum", "dredging cost 2021 + dredging cost 2022"),
        (
            "What is pilotage as a percentage of total harbor income in 2022?",
            "share",
            "pilotage 2022 / total harbor income 2022",
        ),
        (
            "What percentage of total harbor income was pilotage in 2022?",
            "share",
            "pilotage 2022 / total harbor income 2022",
        ),
        (
            "What is the proportion of towage in the total harbor income in 2021?",
            "share",
            "towage 2021 / total harbor income 2021",
        ),
        ("What is the ratio of pilotage to towage in 2022?", "ratio", "pilotage 2022 / towage 2022"),
        (
            "What is the difference between the summer and winter mooring fees in 2022?",
            "difference",
            "summer mooring fees 2022 - winter mooring fees 2022",
        ),
        (
            "What is the 2-year berth revenue CAGR from 2020 to 2022?",
            "growth rate",
            "(berth revenue 2022 / berth revenue 2020) ^ 0.5 - 1",
        ),
        (
            "What was the change in the current ratio from 2021 to 2022?",
            "change",
            "total current assets 2022 / total current liabilities 2022 - total current assets 2021 / total current"
            " liabilities 2021",
        ),
    ],
)
def test_the_operation_is_read_from_the_question_in_general_terms(question, kind, formula):
    calculation = parse_calculation(question)
    assert calculation is not None, question
    assert (calculation.kind, words(calculation.expression)) == (kind, formula)


def test_a_measure_of_the_glossary_is_read_from_its_own_row_first_else_worked_out_by_its_definition():
    calculation = parse_calculation("What is the current ratio in 2022?")
    assert words(calculation.expression) == "current ratio 2022"
    assert [words(a) for a in calculation.alternatives] == [
        "total current assets 2022 / total current liabilities 2022"
    ]
    printed = _hit("Liquidity\nCurrent ratio | 2022: 1.4 | 2021: 1.2\nTotal current assets | 2022: 700 | 2021: 600")
    assert render(_worked("What is the current ratio in 2022?", [printed]), [1]).startswith(
        "Current ratio, 2022: **1.4**, as the document states it."
    )
    balance = _hit(
        "Balance sheet\nTotal current assets | 2022: 700 | 2021: 600\nTotal current liabilities | 2022: 500 | 2021: 400"
    )
    assert _worked("What is the current ratio in 2022?", [balance]).result == "1.40"


def test_a_line_item_is_known_by_its_name_in_either_number_and_only_as_whole_words():
    capex = Figure.named("capital expenditure for the hotels")
    assert capex.statement == "cash flow statement" and "capex for the hotels" in capex.also
    # "current assets" inside "non-current assets" is not the balance sheet's current assets.
    other = Figure.named("other non-current assets")
    assert other.also == () and other.statement is None


def test_a_question_s_own_definition_wins_over_the_glossary_and_its_format_is_kept():
    calculation = parse_calculation(
        "What was Harbor Tools' FY2015 operating cash flow ratio? The operating cash flow ratio is defined as"
        " cash from operations / total current liabilities; round it to two decimal places."
    )
    assert (calculation.name, calculation.years, calculation.decimals) == ("operating cash flow ratio", (2015,), 2)
    assert words(calculation.expression) == "cash from operations 2015 / total current liabilities 2015"
    assert (
        _formula(
            "What were the FY2022 days payable of Harbor Tools? Days payable is defined as: 365 * (average trade"
            " payables between FY2021 and FY2022) / (FY2022 cost of sales + change in inventories between FY2021"
            " and FY2022). Give one decimal place."
        )
        == "365 * (trade payables 2021 + trade payables 2022) / 2 / (cost of sales 2022 + inventories 2022 - inventories 2021)"
    )
    # Without a definition, the glossary's (a textbook's) is used where no row gives the measure.
    calculation = parse_calculation("What was Harbor Tools' retention ratio in FY2018?")
    assert words(calculation.alternatives[0]) == "(net income 2018 - dividends paid 2018) / net income 2018"
    # A formula written out in the question, its remark in parentheses aside.
    calculation = parse_calculation(
        "What is Harbor's FY2021 operating income + depreciation and amortization (EBITDA) in USD millions?"
    )
    assert words(calculation.expression) == "operating income 2021 + depreciation and amortization 2021"
    assert calculation.scale == 1e6


@pytest.mark.parametrize(
    "question",
    [
        "What is the default width of \\heavyrulewidth in booktabs?",
        "How many titles is the DMCA divided into?",
        "What was the reason for the increase in harbor dues collected?",
        "What were the weighted-average fuel prices for diesel and LNG in 2021, respectively?",
        "What was the Gain / (loss) on vessel disposals in 2020?",  # a label with a slash
        "What is the amount of total berth income in 2021?",  # a figure to read, not to work out
    ],
)
def test_questions_that_ask_for_no_calculation_are_left_to_the_passages(question):
    assert parse_calculation(question) is None


def _hit(text: str, section: str | None = None, page: int = 1, title: str = "Harbor annual report") -> Hit:
    return Hit(source="harbor.html", title=title, page=page, chunk_id=page, score=1.0, text=text, section=section)


HARBOR = _hit(
    "Harbor income (in thousands)\n"
    "Pilotage | 2022: 1,200 | 2021: 1,000\n"
    "Towage | 2022: 800 | 2021: 850\n"
    "Other | 2022: (40) | 2021: 25\n"
    "Total harbor income | 2022: 1,960 | 2021: 1,875\n"
    "Occupancy rate | 2022: 81.5% | 2021: 78.0%"
)


def _worked(question: str, passages=(HARBOR,)) -> Worked:
    outcome = work_out(parse_calculation(question), list(passages))
    assert isinstance(outcome, Worked), outcome
    return outcome


def test_cells_are_named_by_row_column_title_period_and_scale():
    cells = {(c.label, c.column): c for c in passage_cells([HARBOR])}
    other = cells[("Other", "2022")]
    assert (other.value, other.printed, other.scale, other.periods) == (-40.0, "40", 1e3, frozenset({"2022"}))
    assert cells[("Occupancy rate", "2021")].percent
    assert cells[("Pilotage", "2022")].title == "Harbor income (in thousands)"
    # Rows printed without column names take the years above the table; a line the PDF table
    # reader left as text takes the column names of the rows around it; spaced digits are read.
    headerless = passage_cells([_hit("December 31,\n2018\n2017\nAccounts payable | 302,578 | 255,028")])
    assert [(c.column, c.value) for c in headerless] == [("2018", 302578.0), ("2017", 255028.0)]
    loose = passage_cells([_hit("Inventories | 2020: 1,426.3 | 2019: 1,559.3\nTotal current assets 5,121.3 4,186.5")])
    assert [(c.label, c.column) for c in loose][2:] == [
        ("Total current assets", "2020"),
        ("Total current assets", "2019"),
    ]
    spaced = passage_cells([_hit("Operating loss carryforward | 2019: 73,260 | 2 0 1 8: 57,768")])
    assert spaced[1].periods == frozenset({"2018"})


def test_a_change_an_average_and_a_share_are_worked_out_with_the_rows_cited():
    change = _worked("What is the change in Other from 2021 to 2022?")
    assert change.result == "-65 thousand" and change.working == "(40) - 25 (in thousands)"
    assert render(change, [1, 1]).startswith("Change in Other, 2021 to 2022: **-65 thousand**, worked out")
    assert "Other | 2022: (40) | 2021: 25 [1]" in render(change, [1, 1])
    assert _worked("What was the average towage for 2021 and 2022?").result == "825 thousand"
    assert _worked("What percentage of total harbor income was pilotage in 2022?").result == "61.22%"
    # With no year named, a percentage change is between the row's latest two periods.
    assert _worked("What is the percentage change in pilotage?").result == "20.00%"


def test_the_percentage_change_of_a_percentage_is_stated_in_points_and_relative():
    worked = _worked("What was the percentage change in the occupancy rate from 2021 to 2022?")
    assert worked.result == "3.5 percentage points (4.49%)"


def test_a_figure_that_cannot_be_told_for_sure_is_not_guessed():
    # Two rows fit "income" alike and give different figures: nothing is stated, both are shown.
    unclear = work_out(parse_calculation("What was the change in income from 2021 to 2022?"), [HARBOR])
    assert isinstance(unclear, Unclear) and unclear.cells
    # No 2019 column.
    unclear = work_out(parse_calculation("What was the change in towage from 2019 to 2022?"), [HARBOR])
    assert isinstance(unclear, Unclear) and "no figure for 2019" in unclear.problems[0]
    # A word of the question that no row and no passage uses: the figure is not here.
    unclear = work_out(parse_calculation("What was the change in towage fuel surcharges from 2021 to 2022?"), [HARBOR])
    assert isinstance(unclear, Unclear)
    # Nothing in the tables about the question at all: left to the passages' words.
    assert work_out(parse_calculation("What was the change in staff headcount from 2021 to 2022?"), [HARBOR]) is None


def test_an_implausible_result_is_not_stated():
    odd = _hit("Harbor income\nPilotage | 2022: 1,200\nTotal harbor income | 2022: 960")
    unclear = work_out(parse_calculation("What is pilotage as a percentage of total harbor income in 2022?"), [odd])
    assert isinstance(unclear, Unclear) and "larger than the total" in unclear.problems[0]


def test_the_part_of_noncontrolling_interests_is_not_the_company_s_figure():
    # "attributable to Harbor" only says whose; the minority's part is another quantity.
    earnings = _hit(
        "Consolidated Statements of Earnings (in millions)\n"
        "Net earnings attributable to noncontrolling interests | 2022: 90 | 2021: 70\n"
        "Net earnings attributable to Harbor | 2022: 2,707 | 2021: 2,340"
    )
    assert _worked("What was the change in net income from 2021 to 2022?", [earnings]).result == "367 million"


def test_figures_in_different_units_are_compared_in_one_and_a_figure_printed_twice_is_one_figure():
    summary = _hit(
        "Cash flows (in millions)\nNet cash provided by operating activities | 2015: $1,469.5 | 2014: $1,287.5",
        section="Liquidity",
        page=51,
    )
    balance = _hit(
        "CONSOLIDATED BALANCE SHEETS (In thousands)\nTotal current liabilities | 2015: 2,213,556 | 2014: 2,494,435",
        page=59,
    )
    statement = _hit(
        "CONSOLIDATED STATEMENTS OF CASH FLOWS (In thousands)\n"
        "Net cash provided by operating activities | 2015: 1,469,502 | 2014: 1,287,482",
        page=63,
    )
    worked = _worked(
        "What was Adobe's operating cash flow ratio in FY2015, to two decimals?",
        [summary, balance, statement],
    )
    assert worked.result == "0.66"


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
        "What is Harbor Tools' operating cash flow ratio for FY2022? Define the operating cash flow ratio as"
        " cash from operations / total current liabilities. Give it to two decimal places.",
        collection="figures",
    )
    # 1,250 million / 2,500,000 thousand: the units are the pages' own, so 0.50 and not 0.0005.
    assert "Operating cash flow ratio, 2022: **0.50**" in answer.text, answer.text
    assert "Net cash provided by operating activities | 2022: 1,250 [" in answer.text
    assert "Total current liabilities | 2022: 2,500,000 [" in answer.text
    assert {c.page for c in answer.citations} == {2, 3}  # the balance sheet, the cash flow statement
    assert answer.answered


def test_an_amount_is_stated_in_the_asked_unit_and_an_outflow_counts_as_spent(docent, filing):
    answer = docent.ask(
        "What is the FY2022 free cash flow for Harbor Tools? Answer in USD millions.", collection="figures"
    )
    assert "Free cash flow, 2022: **$940 million**" in answer.text, answer.text  # 1,250 - 310
    assert "Purchases of property and equipment | 2022: (310)" in answer.text
    answer = docent.ask("What was Harbor Tools' retention ratio in FY2022?", collection="figures")
    assert "**0.75**" in answer.text, answer.text  # (820 - 205) / 820


def test_a_figure_the_documents_do_not_give_is_not_guessed_and_the_answer_says_why(docent, filing):
    answer = docent.ask(
        "What was Harbor Tools' operating cash flow ratio in FY2019, to two decimals?",
        collection="figures",
    )
    assert "**" not in answer.text and "worked out" not in answer.text, answer.text
    assert "no figure for 2019" in answer.text


def test_asked_whether_a_figure_is_positive_the_answer_says_yes_or_no_first(docent, filing):
    answer = docent.ask("Did Harbor Tools end FY2022 with positive working capital?", collection="figures")
    # 3,100,000 - 2,500,000 thousand
    assert answer.text.startswith("Yes, it is positive. Working capital, 2022: **600,000 thousand**"), answer.text
    assert [c.page for c in answer.citations] == [2]


def test_a_real_filing_s_ratio_is_worked_out_from_its_statements(docent):
    filing = shared_path("financebench-dev", "pdfs", "ADOBE_2017_10K.pdf")
    assert {o.status for o in docent.ingest([Source.from_path(filing)], collection="adobe")} <= {"added", "unchanged"}
    answer = docent.ask(
        "For Adobe's fiscal 2017, what is its cash from operations divided by its total current liabilities?"
        " Two decimal places, please.",
        collection="adobe",
    )
    # The figure a FinanceBench analyst worked out for this measure is 0.83, from the cash flow
    # statement (page 61) and the balance sheet (page 57); the question is asked in other words.
    assert "**0.83**" in answer.text, answer.text
    assert {c.page for c in answer.citations} == {57, 61}


def test_a_question_naming_a_year_is_answered_from_that_year_s_filing(docent):
    # Two 10-Ks of one company print the same kinds of pages, and the later one repeats the
    # earlier year's figures in its comparative columns: "in 2016" means the FY2016 filing.
    filings = [shared_path("financebench-dev", "pdfs", f"ADOBE_{year}_10K.pdf") for year in (2016, 2017)]
    outcomes = docent.ingest([Source.from_path(f) for f in filings], collection="adobe")
    assert {o.status for o in outcomes} <= {"added", "unchanged"}
    for year in (2016, 2017):
        hits = docent.search(f"What were total revenues in {year}?", k=5, collection="adobe")
        assert hits[0].source.endswith(f"ADOBE_{year}_10K.pdf"), [h.source for h in hits]


@pytest.mark.parametrize(
    "question, result",
    [
        ("In which year was pilotage higher?", "2022"),
        ("Which year had the lowest towage?", "2022"),
        ("Which fiscal year saw the higher occupancy rate?", "2022"),
        ("In which years was pilotage above 1,100 thousand?", "2022"),
        ("In which year was the occupancy rate below 80%?", "2021"),
        ("Which years did towage exceed $2 million?", "none of them"),
        ("How many years did towage exceed 820 thousand?", "1 (2021)"),
        ("How many years did pilotage exceed $500 thousand?", "2 (2022 and 2021)"),
    ],
)
def test_the_periods_of_a_row_are_compared(question, result):
    worked = _worked(question)
    assert worked.result.split(", ")[0] == result  # the one period named with its figure: "2022, 1,200 thousand"
    text = render(worked, [1])
    # The lead says what was compared, the working lists every period's figure, the row is cited.
    assert f"**{worked.result}**, worked out from the figures below:" in text
    assert "Pilotage |" in text or "Towage |" in text or "Occupancy rate |" in text


def test_a_row_printed_all_negative_is_compared_by_size():
    losses = _hit("Impairment losses (in thousands)\nImpairments | 2022: (310) | 2021: (95)")
    worked = _worked("In which year were impairments larger?", [losses])
    assert worked.result == "2022, -310 thousand" and "compared by size" in worked.working


def test_an_average_over_a_row_is_worked_out_not_read():
    text = render(_worked("What was the average towage?"), [1])
    assert text.startswith("Average towage: **825 thousand**, worked out from the figures below: (800 + 850) / 2")


SEGMENTS = (
    "Segment results (in millions)\n"
    "Ferries | Revenue 2022: 410 | Revenue 2021: 380 | Operating income 2022: 35 | Operating income 2021: 41\n"
    "Cargo | Revenue 2022: 620 | Revenue 2021: 590 | Operating income 2022: 28 | Operating income 2021: 52\n"
    "Marinas | Revenue 2022: 150 | Revenue 2021: 140 | Operating income 2022: 19 | Operating income 2021: 17\n"
    "Total | Revenue 2022: 1,180 | Revenue 2021: 1,110 | Operating income 2022: 82 | Operating income 2021: 110\n"
    "\nAll three segments grew their revenue."
)


@pytest.mark.parametrize(
    "question, result",
    [
        ("Which segment had the highest revenue in 2022?", "Cargo"),
        ("Which segment earned the lowest operating income in 2022?", "Marinas"),
        ("Which segment had the highest operating income in 2021?", "Cargo"),
        ("Which segment had the highest operating income?", "Ferries"),  # the latest year shown
    ],
)
def test_the_rows_of_a_table_are_compared_in_the_column_the_question_names(question, result):
    worked = _worked(question, [_hit(SEGMENTS)])
    assert worked.result.split(", ")[0] == result
    text = render(worked, [1])
    assert all(f"{segment} |" in text for segment in ("Ferries", "Cargo", "Marinas"))  # every row compared, cited
    assert "Total |" not in text  # a total is not one of the rows compared


def test_rows_compared_must_be_all_of_their_table():
    # The table runs past its passage and the next passage was not read: no answer.
    cut = _hit("Segment results (in millions)\n" + "\n".join(SEGMENTS.split("\n")[1:3]), page=7)
    outcome = work_out(parse_calculation("Which segment had the highest revenue in 2022?"), [cut])
    assert isinstance(outcome, Unclear) and "goes on past" in outcome.problems[0]
    # With the next passage of the document (its chunk follows), the rest of the table is read.
    rest = _hit("\n".join(SEGMENTS.split("\n")[3:]), page=8)
    worked = _worked("Which segment had the lowest revenue in 2022?", [cut, rest])
    assert worked.result == "Marinas, 150 million"  # the second part in the first part's unit
    # Rows that do not add up to the table's total leave some out.
    gap = _hit(SEGMENTS.replace("Marinas | Revenue 2022: 150", "Marinas | Revenue 2022: 50"))
    outcome = work_out(parse_calculation("Which segment had the lowest revenue in 2022?"), [gap])
    assert isinstance(outcome, Unclear) and "do not add up" in outcome.problems[0]


def test_one_line_item_over_years_comes_from_one_row():
    # 2022 from one row and 2021 from another make no change of either.
    split = _hit(
        "Fees (in thousands)\n"
        "Mooring fees | 2022: 300\n"
        "Berth fees | 2022: 90 | 2021: 80\n"
        "\nCash received (in thousands)\n"
        "Mooring fees received | 2021: 280"
    )
    outcome = work_out(parse_calculation("What was the change in mooring fees from 2021 to 2022?"), [split])
    assert isinstance(outcome, Unclear) and "rows labelled differently" in outcome.problems[0]
    # A table with its years down the side has one row a year: that is one item.
    down = _hit(
        "Shares (in thousands)\nNonvested as of December 31, 2021 | Number of shares: 410\nNonvested as of December 31, 2022 | Number of shares: 380"
    )
    assert (
        _worked(
            "What is the combined number of nonvested shares at December 31, 2021 and December 31, 2022?", [down]
        ).value
        == 790
    )


def test_note_references_are_no_figures():
    noted = _hit(
        "Assets (in millions)\n"
        "Investments | 2022 Note: 14 | 2022: 1,216.0 | 2021: 1,212.9\n"
        "Transfers (Note (b)) | 2022: (1,421) | 2021: (7,816)"
    )
    assert _worked("In which year were investments higher?", [noted]).result == "2022, 1,216.0 million"
    assert _worked("What was the change in transfers from 2021 to 2022?", [noted]).value == 6395


def test_a_qualified_measure_is_read_as_printed_never_worked_from_the_textbook():
    table = _hit(
        "Results (in thousands)\n"
        "Operating income | 2022: 5,000 | 2021: 4,000\n"
        "Depreciation and amortization | 2022: 1,000 | 2021: 900\n"
        "Underlying EBITDA | 2022: 6,400 | 2021: 5,100"
    )
    assert "6,400" in render(_worked("What was Harbor's underlying EBITDA for fiscal 2022?", [table]), [1])
    without = _hit(
        "Results (in thousands)\nOperating income | 2022: 5,000\nDepreciation and amortization | 2022: 1,000"
    )
    # No row says "underlying": nothing is worked out (the passages are quoted instead).
    assert work_out(parse_calculation("What was Harbor's underlying EBITDA for fiscal 2022?"), [without]) is None
    assert _worked("What was Harbor's EBITDA for fiscal 2022?", [without]).value == 6000


def test_a_comparison_that_is_not_worked_out_is_not_read_as_one():
    # "the second highest" is not the highest: no comparison, the passages' words answer it.
    assert parse_calculation("Which segment had the second highest revenue in 2022?") is None
    assert parse_calculation("Which year had the next largest towage?") is None


def test_how_a_figure_is_calculated_asks_for_the_method():
    assert parse_calculation("How is the average selling price calculated?") is None
    assert parse_calculation("How are adjusted earnings determined?") is None


def test_a_name_that_lists_rows_is_their_sum_not_the_closest_one():
    property_table = _hit(
        "Property (in thousands)\n"
        "Land | 2022: 672 | 2021: 672\n"
        "Leasehold improvements | 2022: 798 | 2021: 1,238\n"
        "Land, property and equipment, gross | 2022: 8,109 | 2021: 8,381"
    )
    worked = _worked(
        "What share of gross land, property and equipment do land and leasehold improvements make up in 2022?",
        [property_table],
    )
    assert worked.result == "18.13%"


def test_words_that_only_say_a_quantity_name_no_row():
    assert _worked("What was the change in the pilotage amount from 2021 to 2022?").value == 200
    assert _worked("What was the change in the towage value from 2021 to 2022?").value == -50


def test_a_change_word_of_the_row_stays_in_its_name():
    rates = _hit(
        "Assumptions\nExpected rate of salary increase | 2022: 3.0% | 2021: 2.5%\nDiscount rate | 2022: 4.1% | 2021: 2.9%"
    )
    assert _worked(
        "What was the year-over-year change in the expected rate of salary increase, 2021 to 2022?", [rates]
    ).value == pytest.approx(0.5)


def test_the_columns_of_a_row_are_compared_when_the_things_compared_head_them():
    regions = _hit(
        "Revenue by region (in millions)\n"
        "Revenue | Americas 2022: 410 | Europe 2022: 380 | Asia 2022: 150 | Total 2022: 940 | Americas 2021: 300 | "
        "Europe 2021: 420 | Asia 2021: 140 | Total 2021: 860"
    )
    assert _worked("Which region had the highest revenue in 2021?", [regions]).result == "Europe, 420 million"
    assert (
        _worked("Which of the company's regions brought in the least revenue?", [regions]).result == "Asia, 150 million"
    )


def test_comparisons_are_answered_end_to_end_from_an_ingested_page(docent, tmp_path):
    # A real HTML page through ingest (its table read as rows), search and the extractive answer.
    page = tmp_path / "harbor-segments.html"
    page.write_text(
        "<html><head><title>Harbor Group segment report</title></head><body>"
        "<h1>Segment results</h1><p>Revenue and operating income by segment, in millions.</p>"
        "<table><tr><th>Segment</th><th>Revenue 2022</th><th>Revenue 2021</th>"
        "<th>Operating income 2022</th><th>Operating income 2021</th></tr>"
        "<tr><td>Ferries</td><td>410</td><td>380</td><td>35</td><td>41</td></tr>"
        "<tr><td>Cargo</td><td>620</td><td>590</td><td>28</td><td>52</td></tr>"
        "<tr><td>Marinas</td><td>150</td><td>140</td><td>19</td><td>17</td></tr>"
        "<tr><td>Total</td><td>1,180</td><td>1,110</td><td>82</td><td>110</td></tr></table>"
        "<p>Cargo volumes recovered in 2022 while ferry margins held.</p></body></html>",
        encoding="utf-8",
    )
    assert [o.status for o in docent.ingest([Source.from_path(page)], collection="segments")] == ["added"]
    answer = docent.ask("Which segment had the lowest operating income in 2021?", collection="segments")
    assert "**Marinas, 17 million**, worked out from the figures below" in answer.text, answer.text
    assert answer.citations and answer.citations[0].source.endswith("harbor-segments.html")
    answer = docent.ask("In which year was the revenue of Ferries higher?", collection="segments")
    assert "**2022, 410 million**" in answer.text, answer.text


def test_among_things_which_one_compares_the_rows_of_their_table():
    hedges = _hit(
        "Derivative instruments (notional amounts, in millions)\n"
        "Interest rate swaps | 2022: 19,779 | 2021: 17,768\n"
        "Cross currency swaps | 2022: 32,502 | 2021: 26,961\n"
        "Foreign exchange forwards | 2022: 932 | 2021: 1,180\n"
        "\nThe swaps hedge the fair value of fixed-rate debt."
    )
    question = "Among the derivative instruments the harbor uses to hedge its debt, which one had the lowest notional amount in 2021?"
    assert _worked(question, [hedges]).result == "Foreign exchange forwards, 1,180 million"


def test_the_things_a_question_lists_are_compared_each_as_a_figure():
    assert _worked("Which was higher in 2021, pilotage or towage?").result == "Pilotage, 1,000 thousand"
    assert _worked("Which of pilotage and towage was lower in 2022?").result == "Towage, 800 thousand"
    flows = _hit(
        "Consolidated Statements of Cash Flows (in millions)\n"
        "Cash provided by operations | 2023: 5,841 | 2022: 5,188\n"
        "Cash used by investing activities | 2023: (564) | 2022: (1,524)\n"
        "Cash used by financing activities | 2023: (7,447) | 2022: (4,836)"
    )
    question = "Of operating, investing and financing activities, which had the most cash flow in 2023?"
    assert _worked(question, [flows]).result == "operating (Cash provided by operations), 5,841 million"


def test_a_day_the_question_names_picks_its_column_among_a_year_s_quarters():
    quarters = _hit(
        "Quarterly data (in millions)\n"
        "Gross margin | July 27, 2022: 8,574 | April 27, 2022: 8,173 | January 26, 2022: 7,773\n"
        "Revenue | July 27, 2022: 13,428 | April 27, 2022: 12,958 | January 26, 2022: 12,446"
    )
    # The filing's own "Gross margin" row is an amount: it is stated as printed, not as a textbook
    # margin (a percentage) that the amount would then fail.
    worked = _worked("For the quarter ended on July 27, 2022, what was the gross margin?", [quarters])
    assert worked.result == "8,574 million"
    share = _worked(
        "For the quarter ended on April 27, 2022, what was gross margin as a percentage of revenue?", [quarters]
    )
    assert share.result == "63.07%"  # 8,173 / 12,958


def test_a_total_not_labelled_so_is_not_one_of_the_things_compared():
    # "Consolidated" is the sum of the segments: not the segment with the highest revenue.
    consolidated = _hit(
        "Revenue by segment (in millions)\n"
        "Ferries | 2022: 410\nCargo | 2022: 620\nMarinas | 2022: 150\nConsolidated | 2022: 1,180\n"
        "\nAll three segments grew."
    )
    assert _worked("Which segment had the highest revenue in 2022?", [consolidated]).result == "Cargo, 620 million"
    by_column = _hit(
        "Revenue by region (in millions)\nRevenue | Americas 2022: 410 | Europe 2022: 380 | Group 2022: 790"
    )
    assert _worked("Which region had the lowest revenue in 2022?", [by_column]).result == "Europe, 380 million"
    assert _worked("Which region had the highest revenue in 2022?", [by_column]).result == "Americas, 410 million"


def test_the_rows_of_a_table_past_a_threshold_are_counted():
    worked = _worked("How many segments had revenue above $200 million in 2022?", [_hit(SEGMENTS)])
    assert worked.result == "2 (Ferries and Cargo)"
    assert render(worked, [1]).startswith(
        "Number of segments with revenue above $200 million, 2022: **2 (Ferries and Cargo)**"
    )
    none = _worked("How many segments had operating income above $60 million in 2021?", [_hit(SEGMENTS)])
    assert none.result == "0"
