"""Every file type Docent reads, from real files made with the libraries that write them (Word,
PowerPoint, Excel), real text formats and a saved manual page; provenance (heading path, slide,
sheet and rows) checked; types told by content; a folder's other files listed, not skipped."""

from __future__ import annotations

import io
import random
import zipfile
from pathlib import Path

import pytest

from ingest.sources import Source, expand_paths, load_file
from retrieval.service import Docent
from retrieval.settings import load_settings
from support.officegen import make_docx, make_pptx, make_xlsx
from support.pdfgen import HANDBOOK_PAGES, make_pdf

WEB_PAGE = Path(__file__).parents[1] / "data" / "web" / "xsltproc.html"


def _load(name: str, data: bytes):
    loaded = load_file(name, data, None, 10_000)
    assert isinstance(loaded, tuple), loaded
    return loaded[0]


def test_a_word_file_has_heading_sections_list_items_and_table_rows():
    document = _load("handbook.docx", make_docx())
    assert document.kind == "docx" and document.title == "Harbor Handbook"
    by_section = {p.section: p.text for p in document.pages}
    assert by_section["Mooring fees"].split("\n") == [
        "A mooring permit is paid monthly at the harbor office.",
        "",
        "• Bring the boat's registration papers.",
        "• Bring proof of insurance.",
    ]
    assert by_section["Mooring fees › Fees by year"].split("\n") == [
        "Mooring permit | 2022: 120 euros | 2021: 110 euros",
        "Winter storage | 2022: 300 euros | 2021: 280 euros",
    ]
    assert "first Thursday" in by_section["Safety"]


def test_a_presentation_has_a_page_per_slide_with_its_notes_and_tables():
    document = _load("review.pptx", make_pptx())
    assert document.kind == "pptx" and document.title == "Quarterly review"
    assert [p.section for p in document.pages] == ["Slide 1: Quarterly review", "Slide 2: Prices"]
    assert "Notes: Mention the new harbor office." in document.pages[0].text
    assert "Service: Mooring permit | Price: 120 euros" in document.pages[1].text.split("\n")


def test_a_workbook_has_its_rows_named_by_their_header_in_blocks_of_rows():
    document = _load("revenue.xlsx", make_xlsx())
    assert document.kind == "xlsx"
    assert [p.section for p in document.pages] == ["Revenue, rows 2-51", "Revenue, rows 52-61", "Notes, row 1"]
    assert document.pages[0].text.split("\n")[0] == "region: North | quarter: Q1 | revenue: 1000"
    assert document.pages[1].text.split("\n")[-1] == "region: East | quarter: Q4 | revenue: 1059"


def test_csv_markdown_text_and_a_saved_web_page():
    csv = _load(
        "prices.csv", b"service;price;unit\nMooring permit;120;month\nCrane lift;75;lift\nWinter storage;300;season\n"
    )
    assert csv.kind == "csv" and csv.pages[0].section == "prices, rows 2-4"
    assert csv.pages[0].text.split("\n")[1] == "service: Crane lift | price: 75 | unit: lift"

    markdown = (
        b"# Harbor guide\n\nThe harbor opens at 6 am\nand closes at 10 pm.\n\n## Fuel\n\n"
        b"The fuel dock sells diesel.\n\n```\nfuel --pump 3\n```\n"
    )
    guide = _load("guide.md", markdown)
    assert guide.kind == "text" and guide.title == "Harbor guide"
    assert [(p.section, p.text) for p in guide.pages] == [
        ("Harbor guide", "The harbor opens at 6 am and closes at 10 pm."),
        ("Harbor guide › Fuel", "The fuel dock sells diesel.\n\n```\nfuel --pump 3\n```"),
    ]
    plain = _load("notes.txt", "Ferries leave\nevery hour.\n\nTickets cost 4 €.".encode("cp1252"))
    assert [p.text for p in plain.pages] == ["Ferries leave every hour.\n\nTickets cost 4 €."]

    page = _load("xsltproc.html", WEB_PAGE.read_bytes())
    assert page.kind == "html" and page.title == "xsltproc"
    assert "OPTIONS" in [p.section for p in page.pages]


def test_the_type_is_told_by_content_not_by_name():
    assert _load("handbook.bin", make_docx()).kind == "docx"
    assert _load("manual.txt", make_pdf(HANDBOOK_PAGES)).kind == "pdf"
    assert _load("README", b"# Setup\n\nRun the installer.\n").kind == "text"
    # A few words of text named .pdf are a broken PDF, not a text document.
    assert "not a PDF file (its content looks like plain text)" in load_file("report.pdf", b"hello", None, 10).reason


def test_damaged_and_unknown_files_name_the_problem():
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("photos/1.txt", "not an office file")
    assert (
        "a ZIP archive that is not a Word, PowerPoint or Excel file"
        in load_file("photos.zip", archive.getvalue(), None, 10).reason
    )
    truncated = make_docx()[:3000]
    assert "damaged" in load_file("cut.docx", truncated, None, 10).reason
    assert "not a kind of file Docent reads" in load_file("clip.mp3", b"ID3\x04\x00\x00\x00\x00\x00", None, 10).reason
    assert "holds no text" in load_file("empty.md", b"\n\n", None, 10).reason
    # Random bytes named as text are refused, not stored as passages of garbage.
    junk = random.Random(7).randbytes(100_000)
    for name in ("notes.txt", "table.csv"):
        assert "binary data, not text" in load_file(name, junk, None, 10).reason


def test_a_folder_ingest_reads_every_type_and_lists_what_it_does_not_read(docent, tmp_path):
    folder = tmp_path / "team"
    (folder / "deck").mkdir(parents=True)
    (folder / "handbook.docx").write_bytes(make_docx())
    (folder / "deck" / "review.pptx").write_bytes(make_pptx())
    (folder / "revenue.xlsx").write_bytes(make_xlsx(6))
    (folder / "data.json").write_text('{"a": 1}')
    (folder / ".DS_Store").write_bytes(b"\x00\x01")
    sources = expand_paths([str(folder)])
    assert [Path(s.name).name for s in sources] == ["data.json", "review.pptx", "handbook.docx", "revenue.xlsx"]
    outcomes = {Path(o.source).name: o for o in docent.ingest(sources, collection="team")}
    assert {n: o.status for n, o in outcomes.items()} == {
        "review.pptx": "added",
        "data.json": "skipped",
        "handbook.docx": "added",
        "revenue.xlsx": "added",
    }
    assert "not a kind of file Docent reads (a .json file; it reads PDF (.pdf)" in outcomes["data.json"].error

    answer = docent.ask("How much did a mooring permit cost in 2022?", collection="team")
    assert answer.text.startswith("Mooring permit | 2022: 120 euros [1]"), answer.text
    cited = answer.citations[0]
    assert cited.source.endswith("handbook.docx") and cited.page is None
    assert cited.section == "Mooring fees › Fees by year"


def test_sources_given_one_by_one_are_read_by_content(docent, tmp_path):
    path = tmp_path / "minutes"
    path.write_bytes(b"# Board minutes\n\nThe board approved the new crane.\n")
    outcome = docent.ingest([Source.from_path(path)], collection="minutes")[0]
    assert outcome.status == "added" and outcome.title == "Board minutes"


def test_a_heading_longer_than_a_passage_is_cut_and_the_files_beside_it_go_in(docent, tmp_path):
    # A heading path longer than the model's window: the header is cut, not the file refused.
    long_heading = tmp_path / "long_heading.md"
    heading = " ".join(f"Section {n} of the harbour rules on berths, cranes and pilots" for n in range(40))
    long_heading.write_text(f"# {heading}\n\nThe harbour master assigns each berth by noon.\n")
    control = tmp_path / "control.md"
    control.write_text("# Crane rules\n\nCranes stop when the wind passes 20 metres per second.\n")
    outcomes = docent.ingest([Source.from_path(long_heading), Source.from_path(control)], collection="headings")
    assert [o.status for o in outcomes] == ["added", "added"], [o.error for o in outcomes]
    hit = docent.search("Who assigns each berth?", k=1, collection="headings", sources=[str(long_heading)])[0]
    assert "assigns each berth by noon" in hit.text


def test_a_file_that_would_make_more_passages_than_allowed_is_refused_and_the_rest_go_in(docent, tmp_path):
    capped = Docent(load_settings(home=str(tmp_path / "capped"), max_file_chunks=20))
    capped._embedder = docent.embedder
    big = tmp_path / "minutes.md"
    big.write_text(
        "# Minutes\n\n" + "\n\n".join(f"Item {n}: the board approved berth {n} for the season." * 8 for n in range(60))
    )
    small = tmp_path / "rules.md"
    small.write_text("# Rules\n\nCranes stop when the wind passes 20 metres per second.\n")
    outcomes = capped.ingest([Source.from_path(big), Source.from_path(small)], collection="capped")
    assert outcomes[0].status == "failed" and "more than this server takes from one file (20" in outcomes[0].error
    assert "DOCENT_MAX_FILE_CHUNKS" in outcomes[0].error and outcomes[1].status == "added"
    assert [d.source for d in capped.documents(collection="capped")] == [str(small)]


def test_a_name_in_either_unicode_form_is_one_document(docent):
    text = b"# Menu\n\nThe harbour cafe opens at seven.\n"
    composed, decomposed = "caf\u00e9.md", "cafe\u0301.md"  # as Windows and as macOS write it
    first = docent.ingest([Source(composed, data=text)], collection="names")[0]
    again = docent.ingest([Source(decomposed, data=text)], collection="names")[0]
    assert (first.status, again.status, again.source) == ("added", "unchanged", composed)


@pytest.mark.parametrize("name", ["handbook.docx", "review.pptx", "revenue.xlsx", "fees.eml"])
def test_office_files_are_offered_by_the_uploader(name):
    from ingest.sources import SUFFIXES

    assert Path(name).suffix in SUFFIXES


def _email(attachments: list[tuple[str, bytes, str]], *, html: bool = False) -> bytes:
    """A message as a mail client writes it (the standard library's own MIME writer)."""
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"] = "Harbour Office <office@harbour.example>"
    message["To"] = "crew@harbour.example"
    message["Date"] = "Mon, 02 Mar 2026 09:15:00 +0100"
    message["Subject"] = "Mooring fees for 2026"
    text = "Hello all,\n\nthe board set the mooring fee for 2026 at 130 euros per month.\nDetails attached."
    message.set_content(text)
    if html:
        message.add_alternative(f"<html><body><p>{text.replace(chr(10), '<br>')}</p></body></html>", subtype="html")
    for name, data, kind in attachments:
        maintype, subtype = kind.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return message.as_bytes()


def test_an_email_is_its_message_then_each_attachment_it_can_read():
    forwarded = _email([])
    data = _email(
        [
            ("handbook.pdf", make_pdf(HANDBOOK_PAGES), "application/pdf"),
            ("fees.docx", make_docx(), "application/octet-stream"),
            ("song.mp3", b"ID3\x04\x00\x00\x00\x00\x00", "audio/mpeg"),
            ("earlier.eml", forwarded, "application/octet-stream"),
        ],
        html=True,
    )
    document = _load("fees.eml", data)
    assert document.kind == "email" and document.title == "Mooring fees for 2026"
    message = document.pages[0]
    assert message.section == "message" and message.text.startswith("From: Harbour Office <office@harbour.example>")
    assert "mooring fee for 2026 at 130 euros per month" in message.text and "<br>" not in message.text
    sections = [p.section for p in document.pages[1:]]
    assert sections[:4] == [f"attachment handbook.pdf, page {n}" for n in range(1, 5)]
    assert "attachment fees.docx › Mooring fees › Fees by year" in sections
    assert "attachment earlier.eml › message" in sections  # the forwarded message, read as one
    assert [w for w in document.warnings if "song.mp3" in w and "not a kind of file Docent reads" in w]
    assert _load("fees.bin", data).kind == "email"  # told by content


def test_a_cited_email_attachment_says_where_it_is(docent):
    data = _email([("handbook.pdf", make_pdf(HANDBOOK_PAGES), "application/pdf")])
    outcome = docent.ingest([Source("fees.eml", data=data)], collection="mail")[0]
    assert outcome.status == "added", outcome
    answer = docent.ask("How much does a mooring permit for a private boat cost?", collection="mail")
    assert answer.citations and answer.citations[0].source == "fees.eml"
    assert answer.citations[0].section.startswith(("attachment handbook.pdf, page", "message"))
    assert "not an e-mail" not in (outcome.error or "")
    assert "holds no text" in load_file("empty.eml", b"From: a@b.example\nSubject: x\n\n", None, 10).reason
