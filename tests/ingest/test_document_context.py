"""Every passage says what it comes from: a filing's company, form and period (read from its
cover), and a statement's name over every passage of the statement."""

from __future__ import annotations

from ingest import chunk_document, load_pdf
from ingest.filings import filing_context
from ingest.sources import load_file
from retrieval.service import Source
from support.pdfgen import make_pdf
from support.shared_data import shared_path


def _cover(company: str, year: int) -> list[str]:
    """A 10-K cover as the SEC prescribes it (the lines every filing's first page carries)."""
    return [
        "UNITED STATES SECURITIES AND EXCHANGE COMMISSION",
        "Washington, D.C. 20549",
        "FORM 10-K",
        "ANNUAL REPORT PURSUANT TO SECTION 13 OR 15(d) OF THE SECURITIES EXCHANGE ACT OF 1934",
        f"For the fiscal year ended December 31, {year}",
        "Commission file number 001-12345",
        company,
        "(Exact name of registrant as specified in its charter)",
        "Delaware (State or other jurisdiction of incorporation or organization)",
    ]


def _statement(rows: int) -> list:
    """A cash flow statement long enough for several passages, headed as filings head it."""
    labels = ["Purchases of equipment", "Proceeds from sales", "Dividends paid", "Share repurchases"]
    return [
        "Harbor Tools Inc.",
        "Consolidated Statements of Cash Flows",
        "(in millions)",
        [(400, "2022"), (480, "2021")],
        *[[(72, f"{labels[i % 4]} of line {i}"), (400, f"{100 + i}"), (480, f"{90 + i}")] for i in range(rows)],
    ]


def test_a_filings_cover_names_its_company_form_and_period_in_every_passage():
    document = load_pdf(make_pdf([_cover("HARBOR TOOLS INC.", 2022), ["Item 1. Business"] * 3]), "a.pdf")
    about = "HARBOR TOOLS INC., Form 10-K, fiscal year 2022 (FY2022), ended December 31, 2022"
    assert document.about == about
    assert all(about in chunk.context for chunk in chunk_document(document))
    # A quarterly report whose name is on its own line and whose cover lists its trading
    # symbol (as covers have since 2019), and a document that is no filing.
    quarterly = (
        "FORM 10-Q\nFor the quarterly period ended June 30, 2023\nAcme Corp.\n(Exact name of registrant as"
        " specified in its charter)\nTitle of each class Trading Symbol(s) Name of each exchange on which"
        " registered Common stock, par value $0.01 ACME The New York Stock Exchange"
    )
    assert filing_context(quarterly) == "Acme Corp. (ACME), Form 10-Q, quarter ended June 30, 2023"
    assert filing_context("Minutes of the board. The form was filed in 2022.") is None
    # Files read whole carry it too: a filing saved as text.
    text = "\n".join(_cover("Harbor Tools Inc.", 2021)).encode()
    document, _ = load_file("cover.txt", text, None, 100)
    assert document.about.startswith("Harbor Tools Inc., Form 10-K, fiscal year 2021")


def test_every_passage_of_a_statement_carries_its_heading_and_prose_pages_do_not():
    prose = ["Liquidity. Cash is shown in the Consolidated Balance Sheets at cost."] * 3
    document = load_pdf(make_pdf([_statement(70), prose]), "statement.pdf")
    statement, text_page = document.pages
    assert statement.section == "Consolidated Statements of Cash Flows (in millions)"
    assert text_page.section is None
    chunks = [c for c in chunk_document(document) if c.page == 1]
    assert len(chunks) >= 2
    assert all(c.context == "statement — Consolidated Statements of Cash Flows (in millions)" for c in chunks)


def test_the_filing_of_the_year_asked_for_ranks_first(docent, tmp_path):
    # Filings whose capital expenditure passages differ only in their figure: only what each
    # passage says of its document (the cover's company and year) tells them apart.
    filings = [
        ("Harbor Tools Inc.", 2021),
        ("Harbor Tools Inc.", 2022),
        ("Bay Foods Corp.", 2022),
        ("Cove Steel Co.", 2021),
    ]
    for number, (company, year) in enumerate(filings):
        page = [f"Capital expenditures were {300 + 17 * number} million dollars, spent on new stores and plants."]
        (tmp_path / f"filing-{number}.pdf").write_bytes(make_pdf([_cover(company, year), page * 3]))
    sources = [Source.from_path(tmp_path / f"filing-{n}.pdf") for n in range(len(filings))]
    assert {o.status for o in docent.ingest(sources, collection="filings")} == {"added"}
    for year, expected in ((2022, "filing-1.pdf"), (2021, "filing-0.pdf")):
        hits = docent.search(f"Harbor Tools FY{year} capital expenditures", k=8, collection="filings")
        passages = [h.source.rsplit("/", 1)[-1] for h in hits if h.page == 2]  # not the covers
        assert passages[0] == expected, [(h.source, h.page, h.score) for h in hits]


def test_a_real_filing_without_a_title_is_known_by_its_cover_and_its_statements():
    # Its metadata title is the EDGAR accession number "0001410636-21-000101".
    document = load_pdf(shared_path("financebench-dev", "pdfs", "AMERICANWATERWORKS_2020_10K.pdf"))
    assert document.title == "AMERICANWATERWORKS 2020 10K"
    assert document.about == (
        "AMERICAN WATER WORKS COMPANY, INC. (AWK), Form 10-K, fiscal year 2020 (FY2020), ended December 31, 2020"
    )
    sections = {p.number: p.section for p in document.pages}
    assert sections[86] == "Consolidated Statements of Cash Flows (In millions)"
    assert sections[84] == "Consolidated Statements of Operations (In millions, except per share data)"
    assert sections[3] is None  # the table of contents names the statements, in a list
