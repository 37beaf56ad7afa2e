"""OCR: scanned PDFs, image-only pages inside text PDFs, and images are read, marked as read by
OCR; the real scans of ../shared/data/pdfs are read within the character error rate bar."""

from __future__ import annotations

from io import BytesIO

import pytest
from PIL import Image, ImageDraw, ImageFont
from pypdf import PdfReader, PdfWriter

from ingest import NoTextLayerError, load_pdf
from ingest.ocr import MARK, ocr_available
from ingest.sources import load_file
from support.cer import character_error_rate
from support.pdfgen import HANDBOOK_PAGES, make_pdf
from support.shared_data import shared_path

pytestmark = pytest.mark.skipif(
    not ocr_available(), reason="the OCR engine cannot be imported here (rapidocr-onnxruntime; OpenCV needs libGL)"
)

NOTICE = ["Harbor notice", "The fuel dock is closed on Sundays.", "Ask the harbor master for diesel."]


def _scanned(lines: list[str], angle: float = 0) -> Image.Image:
    """A page of typed lines as a scanner gives it: an image at 300 dpi, no text layer."""
    page = Image.new("RGB", (2480, 1200), "white")
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=64)
    for n, line in enumerate(lines):
        draw.text((200, 200 + 120 * n), line, fill="black", font=font)
    return page.rotate(angle, expand=True, fillcolor="white") if angle else page


def _image_bytes(image: Image.Image, kind: str) -> bytes:
    buffer = BytesIO()
    image.save(buffer, format=kind, resolution=300)
    return buffer.getvalue()


def _one_after_another(*pdfs: bytes) -> bytes:
    """The pages of the PDFs in one PDF."""
    writer = PdfWriter()
    for data in pdfs:
        writer.append(PdfReader(BytesIO(data)))
    buffer = BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def test_an_image_only_page_inside_a_text_pdf_is_read_by_ocr_and_marked():
    mixed = _one_after_another(make_pdf(HANDBOOK_PAGES[:1]), _image_bytes(_scanned(NOTICE), "PDF"))
    document = load_pdf(mixed, source="mixed.pdf")
    assert [(p.number, p.section) for p in document.pages] == [(1, None), (2, MARK)]
    assert "fuel dock is closed on Sundays" in document.pages[1].text
    assert "pages without a text layer were read by OCR: 2" in document.warnings


@pytest.mark.parametrize("kind", ["PNG", "JPEG", "TIFF"])
def test_images_are_read_by_ocr(kind):
    loaded = load_file(f"notice.{kind.lower()}", _image_bytes(_scanned(NOTICE, angle=2), kind), None, 10)
    assert isinstance(loaded, tuple), loaded
    document = loaded[0]
    assert document.kind == "image" and document.pages[0].section == MARK
    assert "Ask the harbor master for diesel." in document.pages[0].text


def _merged(*pdfs: bytes) -> bytes:
    """One page: the first PDF's first page with the others' first pages drawn over it."""
    writer = PdfWriter(clone_from=BytesIO(pdfs[0]))
    for other in pdfs[1:]:
        writer.pages[0].merge_page(PdfReader(BytesIO(other)).pages[0])
    buffer = BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def test_a_page_of_a_few_words_and_nothing_else_is_skipped_without_ocr(monkeypatch):
    import ingest.pdf

    drawn = []
    monkeypatch.setattr(ingest.pdf, "read_image", lambda image: drawn.append(image) or "")
    document = load_pdf(make_pdf([HANDBOOK_PAGES[0], ["Appendix A"], ["See page 1."]]), source="short.pdf")
    assert [p.number for p in document.pages] == [1] and not drawn  # nothing there for OCR to read
    assert "pages with too little text to index were skipped: 2-3" in document.warnings
    with pytest.raises(NoTextLayerError, match="too little text to index"):
        load_pdf(make_pdf([["Appendix A"], ["Index"]]), source="two-words.pdf")
    blank_scan_and_a_word = _one_after_another(
        _image_bytes(Image.new("RGB", (1240, 1754), "white"), "PDF"), make_pdf([["Index"]])
    )
    with pytest.raises(NoTextLayerError, match="no text layer, and OCR found no writing"):  # the scan says why
        load_pdf(blank_scan_and_a_word, source="scan-and-index.pdf")


def test_a_few_words_over_a_scan_are_not_taken_for_the_page():
    captioned = _merged(_image_bytes(_scanned(NOTICE), "PDF"), make_pdf([["Figure 1"]]))
    document = load_pdf(captioned, source="captioned.pdf")
    assert document.pages[0].section == MARK and "fuel dock is closed on Sundays" in document.pages[0].text


def test_a_blank_scan_says_ocr_found_nothing_and_an_unreadable_image_is_named():
    with pytest.raises(NoTextLayerError, match="no text layer, and OCR found no writing"):
        load_pdf(_image_bytes(Image.new("RGB", (1240, 1754), "white"), "PDF"), source="blank.pdf")
    assert "the image is damaged" in load_file("cut.png", _image_bytes(_scanned(NOTICE), "PNG")[:200], None, 10).reason


@pytest.mark.parametrize(
    "name, bar", [("ocrmypdf_linn.pdf", 0.05), ("ocrmypdf_skew.pdf", 0.10), ("ocrmypdf_rotated_skew.pdf", 0.10)]
)
def test_the_real_brochure_scan_is_read_within_the_error_rate_bar_and_the_right_way_up(name, bar):
    transcription = shared_path("pdfs", "ocrmypdf_linn.txt").read_text()
    document = load_pdf(shared_path("pdfs", name))
    assert document.pages[0].section == MARK
    assert document.pages[0].text.startswith("The LinnSequencer")
    assert character_error_rate(document.pages[0].text, transcription) <= bar


@pytest.mark.parametrize(
    "name, words",
    [
        ("ocrmypdf_c02-22.pdf", "tip-toeing along a path"),
        ("ocrmypdf_vector.pdf", "Sample Vector PDF"),
        ("ocrmypdf_epson.pdf", "Optical character recognition"),
    ],
)
def test_real_scans_and_vector_text_are_read_by_ocr(name, words):
    document = load_pdf(shared_path("pdfs", name))
    assert words in document.pages[0].text and document.pages[0].section == MARK


def test_a_real_mixed_scan_keeps_its_text_page_and_reads_the_others():
    document = load_pdf(shared_path("pdfs", "ocrmypdf_multipage.pdf"))
    assert [(p.number, p.section) for p in document.pages] == [
        (1, MARK),
        (2, MARK),
        (3, MARK),
        (4, None),
        (5, MARK),
        (6, MARK),
    ]
    assert "pages without a text layer were read by OCR: 1-3, 5-6" in document.warnings


def test_a_font_without_a_unicode_map_that_draws_nothing_readable_is_reported():
    with pytest.raises(NoTextLayerError, match="OCR found no writing"):
        load_pdf(shared_path("pdfs", "ocrmypdf_truetype_font_nomapping.pdf"))
