"""Real Word, PowerPoint and Excel files for tests, written by python-docx, python-pptx and
openpyxl (the libraries Docent reads them with, and what Office files are made with in
scripts), holding a harbor handbook's facts."""

from __future__ import annotations

import io


def make_docx() -> bytes:
    import docx

    document = docx.Document()
    document.add_heading("Harbor Handbook", level=0)
    document.add_heading("Mooring fees", level=1)
    document.add_paragraph("A mooring permit is paid monthly at the harbor office.")
    document.add_paragraph("Bring the boat's registration papers.", style="List Bullet")
    document.add_paragraph("Bring proof of insurance.", style="List Bullet")
    document.add_heading("Fees by year", level=2)
    table = document.add_table(rows=3, cols=3)
    for row, cells in zip(table.rows, [["", "2022", "2021"], ["Mooring permit", "120 euros", "110 euros"],
                                       ["Winter storage", "300 euros", "280 euros"]]):  # fmt: skip
        for cell, text in zip(row.cells, cells):
            cell.text = text
    document.add_heading("Safety", level=1)
    document.add_paragraph("A fire drill is held on the first Thursday of every quarter.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def make_pptx() -> bytes:
    import pptx
    from pptx.util import Inches

    deck = pptx.Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = "Quarterly review"
    slide.placeholders[1].text_frame.text = "Revenue grew in every region."
    slide.notes_slide.notes_text_frame.text = "Mention the new harbor office."
    slide = deck.slides.add_slide(deck.slide_layouts[5])
    slide.shapes.title.text = "Prices"
    table = slide.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(6), Inches(2)).table
    for r, cells in enumerate([["Service", "Price"], ["Mooring permit", "120 euros"], ["Crane lift", "75 euros"]]):
        for c, text in enumerate(cells):
            table.cell(r, c).text = text
    buffer = io.BytesIO()
    deck.save(buffer)
    return buffer.getvalue()


def make_xlsx(rows: int = 60) -> bytes:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Revenue"
    sheet.append(["region", "quarter", "revenue"])
    for n in range(rows):
        sheet.append([["North", "South", "East"][n % 3], f"Q{n % 4 + 1}", 1000 + n])
    workbook.create_sheet("Notes").append(["Figures are in euros."])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
