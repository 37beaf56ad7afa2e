"""A PDF page's text read by pdfium (ingest/pdf_text.py): words whole, and safe from many threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ingest import load_pdf
from support.pdfgen import make_pdf, write_pdf
from support.shared_data import shared_path
from webapp.app.render import page_image


def _report(pages: int) -> bytes:
    page = [
        "Segment results. The figures below are in thousands of euros and unaudited.",
        [(400, "2024"), (480, "2023")],
        [(72, "Harbour dues"), (400, "1,204"), (480, "1,187")],
        [(72, "Mooring permits"), (400, "318"), (480, "297")],
        [(72, "Total revenue"), (400, "1,522"), (480, "1,484")],
    ]
    return make_pdf([page + [f"Page {n} of the harbour report."] for n in range(1, pages + 1)])


def test_pdfs_read_and_drawn_from_many_threads_at_once_read_as_one_at_a_time(tmp_path: Path):
    # pdfium may not be entered from two threads at once (a crawl reads PDFs on its threads,
    # the app draws cited pages on its own): every use of it takes one lock.
    path = tmp_path / "report.pdf"
    path.write_bytes(_report(12))
    alone = [page.text for page in load_pdf(path).pages]
    assert "Harbour dues | 2024: 1,204 | 2023: 1,187" in alone[0].split("\n")

    def read(i: int):
        if i % 3 == 2:
            return page_image(path, 1 + i % 12)[:8]
        return [page.text for page in load_pdf(path.read_bytes() if i % 2 else path).pages]

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(read, range(48)))
    for i, result in enumerate(results):
        assert result == (b"\x89PNG\r\n\x1a\n" if i % 3 == 2 else alone)


def test_a_word_hyphenated_across_a_line_break_is_one_word_again():
    text = " ".join(page.text for page in load_pdf(shared_path("pdfs", "pdfminer_dmca.pdf")).pages)
    assert "legal protection and effective legal remedies against the circumvention" in text
    assert "protec-" not in text and "\ufffe" not in text


def test_two_words_moved_apart_without_a_space_are_two_words_and_a_spaced_heading_stays_whole(tmp_path: Path):
    # Some PDFs part words by moving the next one right instead of drawing a space; pdfium reads
    # a small move as no space ("Asignificant"). Even gaps (a letter-spaced heading) part nothing,
    # nor does a move inside a word English knows.
    heading = tuple(x for letter in "TRUSTEES" for x in (letter, -110))[:-1]
    prose = [
        heading,
        ("A", -110, "notable share of the fees is paid in", -120, "advance."),
        ("The lock gates need improve", -110, "ment before the winter."),
    ]
    text = load_pdf(write_pdf(tmp_path / "prose.pdf", [prose])).pages[0].text
    assert "TRUSTEES" in text.split()
    assert "A notable share of the fees is paid in advance." in text
    assert "need improvement before" in text
    table = [
        [(400, ("Year", -110, "ended")), (480, "2023")],
        [(72, ("Harbour", -110, "dues")), (400, "1,204"), (480, "1,187")],
        [(72, ("Mooring", -110, "permits")), (400, "318"), (480, "297")],
        [(72, "Total revenue"), (400, "1,522"), (480, "1,484")],
    ]
    rows = load_pdf(write_pdf(tmp_path / "table.pdf", [table])).pages[0].text.split("\n")
    assert any(row.startswith("Harbour dues | ") for row in rows), rows
    assert any(row.startswith("Mooring permits | ") for row in rows), rows
