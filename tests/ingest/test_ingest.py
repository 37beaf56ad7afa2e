"""PDF loading and chunking on made PDFs and on the awkward real PDFs in ../shared/data/pdfs."""

from __future__ import annotations

import pytest

from support.shared_data import shared_path
from ingest import (
    CorruptPDFError,
    EncryptedPDFError,
    NoTextLayerError,
    NotAPDFError,
    chunk_document,
    load_pdf,
)
from ingest.chunking import approximate_token_count
from ingest.models import Document, Page
from ingest.page_breaks import mend_page_break
from ingest.text import clean_page_text, sentence_spans
from support.pdfgen import HANDBOOK_PAGES, HANDBOOK_TITLE, encrypt, make_pdf


def test_pages_are_numbered_from_one_and_keep_their_text():
    doc = load_pdf(make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE), source="handbook.pdf")
    assert doc.title == HANDBOOK_TITLE and doc.kind == "pdf" and len(doc.content_hash) == 64
    assert [p.number for p in doc.pages] == [1, 2, 3, 4]
    assert "120 euros per month" in doc.pages[2].text
    chunks = chunk_document(doc)
    assert {c.page for c in chunks if "120 euros" in c.text} == {3}
    assert all(c.context == HANDBOOK_TITLE for c in chunks)


def test_title_falls_back_to_the_file_name():
    doc = load_pdf(make_pdf([["Some text on a page, long enough to count as text."]]), source="dir/q3-report.pdf")
    assert doc.title == "q3-report"
    # Junk metadata titles (an SEC accession number, "Document") give way to the file name's words.
    for junk in ("0001410636-21-000101", "Document"):
        doc = load_pdf(
            make_pdf([["Revenue grew in 2020, as the letter to shareholders explains at length."]], title=junk),
            source="pdfs/AMERICANWATERWORKS_2020_10K.pdf",
        )
        assert doc.title == "AMERICANWATERWORKS 2020 10K"
    assert (
        load_pdf(
            make_pdf([["Some text on a page, long enough to count as text."]], title="ADBE 10K FY15"),
            source="ADOBE_2015_10K.pdf",
        ).title
        == "ADBE 10K FY15"
    )


def test_hyphenated_line_breaks_and_wrapped_lines_are_joined():
    text = clean_page_text("The commit-\nment of the com-\nmittee was\nunanimous. A new\nsentence starts.")
    assert text == "The commitment of the committee was unanimous. A new sentence starts."


def test_a_heading_line_is_not_glued_to_the_sentence_under_it():
    text = clean_page_text("Chapter 2. Mooring fees\nA mooring permit costs 120 euros.")
    assert [text[s:e] for s, e in sentence_spans(text)] == [
        "Chapter 2. Mooring fees",
        "A mooring permit costs 120 euros.",
    ]


def test_abbreviations_do_not_end_sentences():
    text = "See Fig. 3 and e.g. the appendix for details. Dr. Smith agreed. The end."
    assert [text[s:e] for s, e in sentence_spans(text)] == [
        "See Fig. 3 and e.g. the appendix for details.",
        "Dr. Smith agreed.",
        "The end.",
    ]


def test_a_sentence_across_a_page_break_stays_whole_on_its_first_page():
    pdf = make_pdf(
        [
            ["The first page talks about harbors.", "The fee for a mooring permit is"],
            ["120 euros per month, paid in advance.", "The second page then talks about drills."],
        ]
    )
    doc = load_pdf(pdf, source="split.pdf")
    assert "The fee for a mooring permit is 120 euros per month, paid in advance." in doc.pages[0].text
    assert doc.pages[1].text.startswith("The second page")


def test_running_headers_and_printed_page_numbers_neither_split_a_sentence_nor_move_the_next_page():
    """A page number under the last sentence is no unfinished sentence: the next page's heading
    and first sentence stay on it. A sentence that does run over the break is kept whole without
    the next page's running header inside it."""
    header = "Harbor Authority Annual Report 2024"
    pdf = make_pdf(
        [
            [header, "Moorings are let by the month.", "Their fees are set each spring by the", "board.", "1"],
            [header, "Storm Drills", "Drills are held twice a year.", "Staff who miss one attend the", "2"],
            [header, "next drill in the spring.", "Each drill ends with a written report.", "3"],
            [header, "Fuel Prices", "Diesel costs 1.80 euros a litre.", "4"],
        ]
    )
    pages = load_pdf(pdf, source="report.pdf").pages
    assert "Storm Drills" not in pages[0].text and pages[1].text.startswith(header)
    assert "Storm Drills" in pages[1].text and "Drills are held twice a year." in pages[1].text
    assert "Staff who miss one attend the next drill in the spring." in pages[1].text  # no header inside
    assert pages[2].text.startswith(header) and "Each drill ends with a written report." in pages[2].text
    assert "Fuel Prices" in pages[3].text and "Fuel Prices" not in pages[2].text


def test_a_page_holding_only_the_rest_of_a_sentence_is_left_without_text():
    first = Page(4, "Manual 2024\n\nStaff who miss a drill attend the\n\n4")
    rest = Page(5, "Manual 2024\n\nnext one in the spring.\n\n5")
    kept, emptied = mend_page_break(first, rest)
    assert kept.text == "Manual 2024\n\nStaff who miss a drill attend the next one in the spring.\n\n4"
    assert emptied.text == ""


def test_chunks_fit_the_token_budget_and_overlap():
    sentence = "Each sentence in this long page adds exactly one more fact about the harbor and its staff."
    pages = [[f"{sentence[:-1]} number {i}." for i in range(80)]]
    doc = load_pdf(make_pdf(pages), source="long.pdf")
    chunks = chunk_document(doc, max_tokens=128, overlap_tokens=30)
    assert len(chunks) > 3
    for chunk in chunks:
        assert approximate_token_count(chunk.context) + approximate_token_count(chunk.text) + 2 <= 128
        assert chunk.text.endswith(".")  # whole sentences only
        assert doc.pages[0].text[chunk.char_start : chunk.char_end] == chunk.text
    for a, b in zip(chunks, chunks[1:]):
        assert b.char_start < a.char_end  # consecutive chunks overlap
        assert b.char_start > a.char_start  # and always move forward


def test_a_word_longer_than_a_passage_is_cut_into_passages_of_bounded_size():
    # One "word" of 20,000 characters (a blob, a file of one token) is no single huge passage.
    page = Page(1, "The archive follows. " + "Q" * 20_000 + " The end.")
    chunks = chunk_document(Document("blob.txt", "blob", "text", "0" * 64, [page]), max_tokens=128)
    assert len(chunks) > 10
    assert all(approximate_token_count(c.context) + approximate_token_count(c.text) + 2 <= 128 for c in chunks)
    assert "".join(c.text for c in chunks).count("Q") >= 20_000  # every part is in some passage


def test_not_a_pdf_with_a_pdf_name_is_reported(tmp_path):
    path = tmp_path / "notes.pdf"
    path.write_text("<html><body>an HTML page saved as .pdf</body></html>")
    with pytest.raises(NotAPDFError, match="not a PDF file.*HTML"):
        load_pdf(path)


def test_corrupt_pdf_is_reported():
    with pytest.raises(CorruptPDFError, match="damaged"):
        load_pdf(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage", source="broken.pdf")


def test_password_protected_pdf_is_reported():
    with pytest.raises(EncryptedPDFError, match="password"):
        load_pdf(encrypt(make_pdf(HANDBOOK_PAGES), user_password="secret"), source="locked.pdf")


def test_pdf_encrypted_with_an_empty_user_password_opens():
    doc = load_pdf(encrypt(make_pdf(HANDBOOK_PAGES), user_password=""), source="open.pdf")
    assert "120 euros" in doc.pages[2].text


def test_pdf_with_no_text_layer_is_reported():
    blank = make_pdf([[], []])
    with pytest.raises(NoTextLayerError, match="no text layer.*OCR"):
        load_pdf(blank, source="scan.pdf")


# ---- the awkward real PDFs in ../shared/data/pdfs ------------------------------------------


def test_real_aes_encrypted_pdf_with_a_password_is_refused():
    with pytest.raises(EncryptedPDFError, match="password"):
        load_pdf(shared_path("pdfs", "pdfminer_aes-128.pdf"))


def test_real_pdf_encrypted_with_empty_password_opens():
    doc = load_pdf(shared_path("pdfs", "pdfminer_dmca.pdf"))
    assert len(doc.pages) == 18 and "Digital Millennium Copyright Act" in doc.title
    assert "WIPO" in doc.pages[1].text


def test_real_invalid_file_is_reported_as_corrupt():
    with pytest.raises(CorruptPDFError):
        load_pdf(shared_path("pdfs", "ocrmypdf_invalid.pdf"))


def test_real_pdf_with_broken_xref_is_recovered():
    doc = load_pdf(shared_path("pdfs", "pdfminer_zen_of_python_corrupted.pdf"))
    assert "Beautiful is better than ugly" in doc.pages[0].text


def test_real_two_column_paper_keeps_sentences_whole():
    doc = load_pdf(shared_path("pdfs", "pdfminer_naacl06-shinyama.pdf"))
    text = " ".join(p.text for p in doc.pages)
    assert "Existing IE systems require a lot of time and human effort to tune for a new scenario." in text
    assert "intervention" in text and "inter- vention" not in text


def test_real_fifty_page_manual_chunks_with_pages():
    doc = load_pdf(shared_path("pdfs", "pdfminer_i1040nr.pdf"))
    chunks = chunk_document(doc)
    assert len(doc.pages) == 50
    assert {c.page for c in chunks} == set(range(1, 51))


def test_without_ocr_a_pdf_with_pages_lacking_text_is_stored_as_partial(docent, monkeypatch):
    """Pages without a text layer that no OCR engine can read: the document is stored with the
    pages it has, its outcome names the pages it lacks, and the CLI's exit code says so (3)."""
    import sys

    from webapp.cli.documents import _describe, ingest_exit_code

    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)  # `import` fails: no OCR engine
    data = make_pdf([HANDBOOK_PAGES[0], [" "], HANDBOOK_PAGES[1], [" "], [" "]], title=HANDBOOK_TITLE)
    document = load_pdf(data, source="half-scanned.pdf")
    assert document.missing_pages == [2, 4, 5] and [p.number for p in document.pages] == [1, 3]
    outcome = docent.ingest_documents([document], collection="partial")[0]
    assert outcome.status == "added" and outcome.partial and outcome.missing_pages == [2, 4, 5]
    assert outcome.to_dict()["missing_pages"] == [2, 4, 5]
    assert "partial: pages 2, 4-5 not read" in _describe(outcome)
    assert ingest_exit_code([outcome]) == 3
    whole = docent.ingest_documents([load_pdf(make_pdf(HANDBOOK_PAGES), source="whole.pdf")], collection="partial")
    assert not whole[0].partial and ingest_exit_code(whole) == 0
