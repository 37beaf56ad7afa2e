"""A question that names files is searched in them: "Globex" and "2022" name GLOBEX_2022_10K.pdf
among filings that all have the same tables."""

from __future__ import annotations

import pytest

from retrieval.service import Source
from support.pdfgen import make_pdf


def _filing(company: str, year: int, revenue: str, dividends: str) -> bytes:
    return make_pdf(
        [
            [
                f"{company} Corporation annual report for the fiscal year {year}.",
                f"{company} designs and sells industrial pumps and valves to utilities.",
            ],
            [
                "Consolidated Statements of Cash Flows. All figures are in millions of dollars.",
                [(400, str(year)), (480, str(year - 1))],
                [(72, "Net revenue"), (400, revenue), (480, "1,000")],
                [(72, "Dividends paid"), (400, dividends), (480, "(90)")],
                [(72, "Capital expenditures"), (400, "(310)"), (480, "(295)")],
            ],
            [
                "Earnings per share rose on higher earnings from the pump business.",
                "Quarterly earnings are announced in an earnings release each quarter.",
            ],
        ]
    )


@pytest.fixture(scope="module")
def filings(docent, tmp_path_factory):
    folder = tmp_path_factory.mktemp("filings")
    made = {
        "ACME_2021_10K.pdf": _filing("Acme", 2021, "1,200", "(101)"),
        "ACME_2022_10K.pdf": _filing("Acme", 2022, "1,350", "(102)"),
        "GLOBEX_2022_10K.pdf": _filing("Globex", 2022, "2,480", "(207)"),
        "INITECH_2022_EARNINGS.pdf": _filing("Initech", 2022, "3,900", "(301)"),
    }
    for name, data in made.items():
        (folder / name).write_bytes(data)
    outcomes = docent.ingest([Source.from_path(folder / name) for name in made], collection="filings")
    assert all(o.status == "added" for o in outcomes), outcomes
    return {name: str(folder / name) for name in made}


def _sources(hits) -> set[str]:
    return {h.source.rsplit("/", 1)[-1] for h in hits}


def test_a_question_naming_a_company_and_a_year_is_searched_in_that_filing(docent, filings):
    hits = docent.search("How much did Globex pay in dividends in FY2022?", collection="filings")
    assert _sources(hits) == {"GLOBEX_2022_10K.pdf"}
    answer = docent.ask("How much did Globex pay in dividends in 2022?", collection="filings")
    assert "Dividends paid | 2022: (207) [1]" in answer.text, answer.text


def test_a_company_named_without_a_year_keeps_all_its_filings(docent, filings):
    hits = docent.search("What were Acme's capital expenditures?", collection="filings")
    assert _sources(hits) == {"ACME_2021_10K.pdf", "ACME_2022_10K.pdf"}


def test_common_words_in_file_names_name_nothing(docent, filings):
    # "earnings" is in INITECH_2022_EARNINGS.pdf's name, but every filing uses the word.
    hits = docent.search("How are quarterly earnings announced?", collection="filings")
    assert len(_sources(hits)) > 1


def test_naming_can_be_turned_off_and_an_explicit_filter_wins(docent, filings):
    question = "How much did Globex pay in dividends in FY2022?"
    assert len(_sources(docent.variant(scope_by_name=False).search(question, collection="filings"))) > 1
    chosen = [filings["ACME_2022_10K.pdf"]]
    assert _sources(docent.search(question, collection="filings", sources=chosen)) == {"ACME_2022_10K.pdf"}
