"""The extractive answer leads with the unit that answers: a listing line for a default, a table
row for a figure, a list item for an option; quoted as written, cited, Markdown marks dropped.

The passages are the text Docent's own ingest makes of real documents: the booktabs manual's
listing of its rule widths (CTAN, LPPL), a cash flow statement's rows (American Water Works'
2020 10-K, as ingest/tables.py reads it), the xsltproc manual page (tests/data/web).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.web.html import load_html
from retrieval.answer import Answerer
from retrieval.answer.extractive import ExtractiveBackend
from retrieval.answer.units import passage_units
from retrieval.models import Hit

BOOKTABS_PROSE = (
    "The rules are drawn with widths that the user may change. The top and bottom rules are "
    "heavier than the middle rules, and a partial rule under a column group is lighter still. "
    "Changing the widths affects every table that follows in the document."
)
BOOKTABS_LISTING = (
    "The default widths and separations are set as follows.\n"
    "\\heavyrulewidth=.08em\n"
    "\\lightrulewidth=.05em\n"
    "\\cmidrulewidth=.03em\n"
    "\\belowrulesep=.65ex\n"
    "\\aboverulesep=.4ex"
)
AWK = "AMERICANWATERWORKS 2020 10K"  # the title ingest gives the filing (its file name's words)
CASH_FLOWS = (
    "Consolidated Statements of Cash Flows (In millions) For the Years Ended December 31, 2020 2019 2018\n"
    "Net income | 2020: $709 | 2019: $621 | 2018: $565\n"
    "Depreciation and amortization | 2020: 604 | 2019: 582 | 2018: 545\n"
    "Repayments of long-term debt | 2020: (342) | 2019: (495) | 2018: (526)\n"
    "Dividends paid | 2020: (389) | 2019: (353) | 2018: (319)\n"
    "Anti-dilutive share repurchases | 2020: — | 2019: (36) | 2018: (45)\n"
    "Net cash provided by financing activities | 2020: 1,120 | 2019: 494 | 2018: 726"
)


def _hit(text: str, source: str, page: int | None = 1, title: str | None = None) -> Hit:
    return Hit(source=source, title=title or source, page=page, chunk_id=0, score=1.0, text=text, similarity=0.6)


@pytest.fixture(scope="module")
def answerer(docent):
    return Answerer(ExtractiveBackend(docent.embedder))


def test_a_default_is_answered_by_its_listing_line_quoted_as_code(answerer):
    answer = answerer.answer(
        "What is the default width of \\heavyrulewidth in booktabs?",
        [_hit(BOOKTABS_PROSE, "booktabs.pdf", 3), _hit(BOOKTABS_LISTING, "booktabs.pdf", 9)],
    )
    assert answer.text.startswith("`\\heavyrulewidth=.08em` [1]"), answer.text
    assert answer.citations[0].page == 9


def test_a_figure_is_answered_by_the_row_of_the_asked_year(answerer):
    answer = answerer.answer(
        "How much did American Water Works pay in dividends in 2020?",
        [
            _hit("American Water Works pays quarterly dividends to its shareholders.", "awk.pdf", 40, AWK),
            _hit(CASH_FLOWS, "awk.pdf", 86, AWK),
        ],
    )
    # The row that holds the figure leads, with only the asked year's column.
    assert answer.text.startswith("Dividends paid | 2020: (389) [1]"), answer.text
    assert answer.citations[0].page == 86
    # The cited row is what the app highlights in the passage.
    first = answer.citations[0]
    assert any("Dividends paid" in first.text[s:e] for s, e in first.highlights)


def test_an_option_is_answered_by_its_definition_without_markdown_marks(answerer):
    page = load_html((Path(__file__).parents[1] / "data" / "web" / "xsltproc.html").read_text(), "http://x/")
    hits = [_hit(p.text, "http://x/", None) for p in page.pages if p.section == "OPTIONS"]
    answer = answerer.answer("What does the --novalid option of xsltproc do?", hits)
    assert answer.text.startswith("`--novalid`:"), answer.text
    assert "DTD" in answer.text.split("[1]")[0]
    assert "**" not in answer.text and "\\" not in answer.text


def test_a_statement_question_is_still_answered_by_its_sentence(answerer):
    answer = answerer.answer(
        "Why are the top and bottom rules heavier?",
        [_hit(BOOKTABS_LISTING, "booktabs.pdf", 9), _hit(BOOKTABS_PROSE, "booktabs.pdf", 3)],
    )
    assert answer.text.startswith("The top and bottom rules are heavier than the middle rules"), answer.text


def test_units_keep_rows_and_listing_lines_whole_and_drop_markdown_escapes():
    units = passage_units(BOOKTABS_LISTING + "\n" + CASH_FLOWS.split("\n")[1] + "\n**xsltproc** reads \\[options\\].")
    assert [(u.kind, u.text) for u in units] == [
        ("sentence", "The default widths and separations are set as follows."),
        ("code", "\\heavyrulewidth=.08em"),
        ("code", "\\lightrulewidth=.05em"),
        ("code", "\\cmidrulewidth=.03em"),
        ("code", "\\belowrulesep=.65ex"),
        ("code", "\\aboverulesep=.4ex"),
        ("row", "Net income | 2020: $709 | 2019: $621 | 2018: $565"),
        ("sentence", "xsltproc reads [options]."),
    ]


def test_a_figure_written_in_words_answers_how_many(answerer):
    # The DMCA summary (U.S. Copyright Office, page 17) writes its time limit in words; an
    # arbitration clause of a 10-K exhibit writes its own in digits, about another matter.
    dmca = (
        "The obligations attach only if the distributor knew or had reason to know that the motion picture was"
        " produced subject to a collective bargaining agreement, or in the event of a court order confirming an"
        " arbitration award under the collective bargaining agreement that the producer cannot satisfy within"
        " ninety days."
    )
    clause = (
        "If the parties cannot satisfactorily resolve the dispute within thirty (30) days, the matter will be"
        " submitted to arbitration."
    )
    answer = answerer.answer(
        "Within how many days must a producer be unable to satisfy an arbitration award for the transferee's"
        " obligations to attach?",
        [_hit(clause, "exhibit.pdf", 139), _hit(dmca, "dmca.pdf", 17)],
    )
    assert answer.text.startswith("The obligations attach only if"), answer.text
    assert answer.citations[0].source == "dmca.pdf"
