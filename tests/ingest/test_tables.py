"""Tables in PDFs kept as rows, and the lines whose breaks carry meaning kept as lines."""

from __future__ import annotations

from ingest import load_pdf
from ingest.tables import looks_tabular, sheet_pages, table_lines
from ingest.textfiles import load_html_file
from ingest.text import clean_page_text, line_kind
from support.pdfgen import make_pdf
from support.shared_data import shared_path


def _statement_page() -> list:
    """An income statement laid out as a filing prints one: labels at the margin, figures in
    year columns, a sentence of prose above."""
    rows = [
        ("Total net revenue", "$5,123", "$4,876"),
        ("Cost of revenue", "1,904", "1,811"),
        ("Research and development", "(412)", "(388)"),
        ("Operating income", "1,207", "—"),
        ("Net income", "$902", "$851"),
    ]
    return [
        "Consolidated Statements of Income. The figures are in millions of dollars.",
        [(400, "2022"), (480, "2021")],
        *[[(72, label), (400, this_year), (480, last_year)] for label, this_year, last_year in rows],
    ]


def test_a_table_row_keeps_its_label_its_figures_and_their_years_together():
    page = load_pdf(make_pdf([_statement_page()]), source="statement.pdf").pages[0]
    lines = page.text.split("\n")
    assert "Total net revenue | 2022: $5,123 | 2021: $4,876" in lines
    assert "Research and development | 2022: (412) | 2021: (388)" in lines
    assert "Operating income | 2022: 1,207 | 2021: —" in lines
    assert "Consolidated Statements of Income. The figures are in millions of dollars." in page.text


def test_prose_with_figures_is_not_read_as_a_table():
    prose = (
        "Operating revenues for the Regulated Businesses were $3,255 million for 2020,\n"
        "$3,094 million for 2019 and $2,984 million for 2018, accounting for 86%, 86%\n"
        "and 87%, respectively, of total operating revenues. In 2020 the Company served\n"
        "3.5 million customers in 16 states and employed 7,000 people.\n"
    )
    assert not looks_tabular(prose)
    page = load_pdf(make_pdf([prose.splitlines()]), source="prose.pdf").pages[0]
    assert " | " not in page.text and "\n" not in page.text


def test_listing_lines_and_list_items_stay_lines_and_prose_is_joined():
    raw = (
        "To use a proxy, add this line to\n"
        "/etc/apt/apt.conf.d/proxy:\n"
        'Acquire::http::Proxy "http://proxy:3128";\n'
        "\\heavyrulewidth=.08em\n"
        "The options are:\n"
        "• verbose output, which prints every\n"
        "file it reads\n"
        "• quiet output\n"
    )
    assert clean_page_text(raw).split("\n") == [
        "To use a proxy, add this line to /etc/apt/apt.conf.d/proxy:",
        'Acquire::http::Proxy "http://proxy:3128";',
        "\\heavyrulewidth=.08em",
        "The options are:",
        "• verbose output, which prints every file it reads",
        "• quiet output",
    ]
    assert [line_kind(x) for x in ("Net income | 2020: $709", "$ 709 $ 621 Adjustments", "1. Open the valve")] == [
        "row",
        "prose",
        "item",
    ]


def test_a_filings_cash_flow_statement_keeps_its_rows():
    pdf = shared_path("financebench-dev", "pdfs", "AMERICANWATERWORKS_2020_10K.pdf")
    page = next(p for p in load_pdf(pdf).pages if p.number == 86)
    lines = page.text.split("\n")
    assert "Dividends paid | 2020: (389) | 2019: (353) | 2018: (319)" in lines
    assert "Net cash provided by operating activities | 2020: 1,426 | 2019: 1,383 | 2018: 1,386" in lines
    # A label printed on two lines is one row.
    assert any(
        line.startswith("Proceeds from issuances of employee stock plans") and line.endswith("| 2018: 16")
        for line in lines
    )


def test_column_years_printed_one_per_line_still_head_the_rows():
    # MGM Resorts' balance sheets print "December 31," then each year on a line of its own.
    page = [
        "Consolidated Balance Sheets (In thousands)",
        [(400, "December 31,")],
        [(400, "2018")],
        [(480, "2017")],
        [(72, "Cash and cash equivalents"), (400, "$1,526,762"), (480, "$1,499,995")],
        [(72, "Accounts payable"), (400, "302,578"), (480, "255,028")],
        [(72, "Total current liabilities"), (400, "4,210,213"), (480, "3,930,190")],
    ]
    lines = load_pdf(make_pdf([page]), source="balance.pdf").pages[0].text.split("\n")
    assert "Accounts payable | 2018: 302,578 | 2017: 255,028" in lines


def test_a_header_drawn_cell_by_cell_is_read_by_where_its_cells_stand():
    # The page draws each date with its year under it, one column after the other: read in
    # drawing order that is "December 31," "2023" "December 31," "2022", no header line.
    page = [
        "Consolidated Balance Sheets (In millions)",
        [(400, 700, "December 31,"), (400, 686, "2023"), (480, 700, "December 31,"), (480, 686, "2022")],
        [(72, "Inventories"), (400, "$1,204"), (480, "$1,187")],
        [(72, "Prepaid expenses"), (400, "118"), (480, "97")],
        [(72, "Total current assets"), (400, "5,310"), (480, "4,978")],
        [(72, "Net income (loss)"), (400, "$ (212)"), (480, "$ 64")],
    ]
    lines = load_pdf(make_pdf([page]), source="balance.pdf").pages[0].text.split("\n")
    assert "Inventories | 2023: $1,204 | 2022: $1,187" in lines
    assert "Prepaid expenses | 2023: 118 | 2022: 97" in lines
    assert "Net income (loss) | 2023: $(212) | 2022: $64" in lines  # a sign apart from its figure


def test_a_percent_sign_printed_apart_from_its_figure_stays_with_it():
    page = [
        "Share of net revenue by region. Figures are percentages of the total.",
        [(400, "2024"), (480, "2023")],
        [(72, "North Sea"), (400, "41.5 %"), (480, "39.0 %")],
        [(72, "Baltic"), (400, "33.1"), (430, "%"), (480, "35.2"), (510, "%")],
        [(72, "Total"), (400, "100.0 %"), (480, "100.0 %")],
    ]
    lines = load_pdf(make_pdf([page]), source="regions.pdf").pages[0].text.split("\n")
    assert "North Sea | 2024: 41.5% | 2023: 39.0%" in lines
    assert "Baltic | 2024: 33.1% | 2023: 35.2%" in lines


def test_a_currency_sign_close_after_the_previous_column_s_figure_still_parts_the_columns():
    # Corning prints "$" a little more than a space after the figure of the column before.
    pdf = shared_path("financebench-dev", "pdfs", "CORNING_2020_10K.pdf")
    lines = next(p for p in load_pdf(pdf).pages if p.number == 86).text.split("\n")
    assert "Gross profit | 2020: $87 | 2019: $9 | 2018: $367" in lines
    assert "Non-controlling interest | 2020: $9 | 2019: $42" in lines


def test_a_statement_whose_cells_are_drawn_out_of_order_keeps_its_rows():
    # American Water Works draws this page's cells in no reading order (pypdf's plain text ran
    # every row together) and Coca-Cola's statements have cells pypdf's layout did not part.
    pdf = shared_path("financebench-dev", "pdfs", "AMERICANWATERWORKS_2020_10K.pdf")
    lines = next(p for p in load_pdf(pdf).pages if p.number == 61).text.split("\n")
    assert "Depreciation and amortization | 2020: 562 | 2019: 529 | 2018: 500" in lines
    pdf = shared_path("financebench-dev", "pdfs", "COCACOLA_2017_10K.pdf")
    lines = next(p for p in load_pdf(pdf).pages if p.number == 49).text.split("\n")
    assert "Cost of goods sold | 13,256 | 16,465 | 17,482 | (19) | (6)" in lines


def test_a_real_balance_sheet_with_its_years_on_lines_of_their_own_keeps_them_on_every_row():
    pdf = shared_path("financebench-dev", "pdfs", "MGMRESORTS_2018_10K.pdf")
    page = next(p for p in load_pdf(pdf).pages if p.number == 57)
    assert "Accounts payable | 2018: $302,578 | 2017: $255,028" in page.text.split("\n")


def test_a_web_page_table_keeps_its_column_names_title_rows_and_merged_headings():
    # As an annual report's table is saved as HTML: a heading spanning the year columns, a
    # unit over every column, a group row, and a second header row under the years.
    html = (
        "<html><head><title>Segments</title></head><body><p>Net sales by segment were as follows.</p><table>"
        "<tr><th></th><th></th><th>Fiscal</th><th></th></tr>"
        "<tr><td></td><td>2019</td><td>2018</td><td>2017</td></tr>"
        "<tr><td></td><td></td><td>(in millions)</td><td></td></tr>"
        "<tr><td>Transportation Solutions:</td><td></td><td></td><td></td></tr>"
        "<tr><td>Automotive</td><td>$ 5,686</td><td>$ 6,092</td><td>$ 5,228</td></tr>"
        "<tr><td>Sensors</td><td>914</td><td>918</td><td>814</td></tr>"
        "</table><table>"
        "<tr><th></th><th>2019</th><th></th><th>2018</th><th></th></tr>"
        "<tr><td></td><td>Amount</td><td>%</td><td>Amount</td><td>%</td></tr>"
        "<tr><td>Maintenance</td><td>254,924</td><td>91%</td><td>239,310</td><td>91%</td></tr>"
        "</table></body></html>"
    )
    document = load_html_file("segments.html", html.encode())
    lines = "\n".join(p.text for p in document.pages).split("\n")
    assert ["Fiscal", "(in millions)", "Transportation Solutions:"] == lines[
        lines.index("Fiscal") : lines.index("Fiscal") + 3
    ]
    assert "Automotive | 2019: $ 5,686 | 2018: $ 6,092 | 2017: $ 5,228" in lines
    assert "Maintenance | 2019 Amount: 254,924 | 2019 %: 91% | 2018 Amount: 239,310 | 2018 %: 91%" in lines


def test_a_title_row_above_a_sheet_s_header_heads_every_page_and_the_header_still_names_the_cells():
    rows = [
        ["In millions of CHF", None, None],
        ["Zone", "Sales", "Growth"],
        ["Europe", 1200, "3%"],
        ["Asia", 900, "5%"],
    ]
    pages = sheet_pages("Zones", enumerate(rows, start=1))
    assert pages[0].text.split("\n") == [
        "In millions of CHF",
        "Zone: Europe | Sales: 1200 | Growth: 3%",
        "Zone: Asia | Sales: 900 | Growth: 5%",
    ]
    assert pages[0].section == "Zones, rows 3-4"
    assert table_lines([["", "2022", "2021"], ["Mooring permit", "120", "110"]]) == [
        "Mooring permit | 2022: 120 | 2021: 110"
    ]
