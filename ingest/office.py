"""Word, PowerPoint and Excel files (python-docx, python-pptx, openpyxl), each into pages whose
section says where a passage is: a Word file's heading path, "Slide 7: Pricing", "Revenue, rows
2-51". Tables become rows whose every cell is named by its column header (ingest/tables.py).

The three are ZIP archives told apart by what they hold, not by their names.
"""

from __future__ import annotations

import hashlib
import zipfile
import zlib
from io import BytesIO

from ingest.errors import IngestError
from ingest.limits import limits, too_much
from ingest.models import Document, Page, title_from_name
from ingest.tables import sheet_pages, table_lines

# The part each kind of Office file must hold.
_PARTS = {"word/document.xml": "docx", "ppt/presentation.xml": "pptx", "xl/workbook.xml": "xlsx"}
_NAMES = {"docx": "Word document", "pptx": "PowerPoint presentation", "xlsx": "Excel workbook"}


def load_office(name: str, data: bytes) -> Document:
    """A .docx, .pptx or .xlsx file as a Document; an IngestError names what is wrong."""
    try:
        with zipfile.ZipFile(BytesIO(data)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise IngestError(name, f"the file is a damaged ZIP archive and cannot be read ({exc})") from None
    kind = next((k for part, k in _PARTS.items() if part in names), None)
    if kind is None:
        raise IngestError(
            name, "a ZIP archive that is not a Word, PowerPoint or Excel file; unpack it and add its files"
        )
    reader = {"docx": _docx, "pptx": _pptx, "xlsx": _xlsx}[kind]
    try:
        title, pages = reader(BytesIO(_text_parts(name, data)))
    except IngestError:
        raise
    except Exception as exc:  # the libraries raise many types for a damaged part
        raise IngestError(name, f"the {_NAMES[kind]} is damaged and cannot be read ({type(exc).__name__}: {exc})")
    pages = [p for p in pages if p.text.strip()]
    if not pages:
        raise IngestError(name, f"the {_NAMES[kind]} holds no text")
    return Document(
        source=name,
        title=title or title_from_name(name),
        kind=kind,
        content_hash=hashlib.sha256(data).hexdigest(),
        pages=[Page(number=n, text=p.text, section=p.section) for n, p in enumerate(pages, start=1)],
        size_bytes=len(data),
    )


def _text_parts(name: str, data: bytes) -> bytes:
    """The archive with only its XML parts (text, structure, relationships) unpacked, up to
    DOCENT_MAX_UNPACKED_BYTES, and every other part (pictures, video, embedded files, fonts) left
    empty: they hold no text to read, and the libraries would hold each of them in memory."""
    cap = limits().max_unpacked_bytes
    unpacked, out = 0, BytesIO()
    try:
        with zipfile.ZipFile(BytesIO(data)) as archive, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as copy:
            for item in archive.infolist():
                if item.is_dir():
                    continue
                if not item.filename.endswith((".xml", ".rels")):
                    copy.writestr(item.filename, b"")
                    continue
                # Counted as read, not as declared: a part's header may lie about its size.
                with archive.open(item) as part, copy.open(zipfile.ZipInfo(item.filename), "w", force_zip64=True) as to:
                    while block := part.read(1 << 20):
                        unpacked += len(block)
                        if unpacked > cap:
                            found = f"it unpacks to more than {cap:,} bytes (pictures and embedded files aside)"
                            raise IngestError(name, too_much(found, cap, "MAX_UNPACKED_BYTES"))
                        to.write(block)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
        raise IngestError(name, f"the file is a damaged ZIP archive and cannot be read ({exc})") from None
    return out.getvalue()


def _docx(file) -> tuple[str | None, list[Page]]:
    """Sections under the document's headings; paragraphs, list items and tables in order."""
    import docx

    document = docx.Document(file)
    pages: list[Page] = []
    headings: list[tuple[int, str]] = []
    blocks: list[str] = []

    def flush() -> None:
        if blocks:
            pages.append(Page(0, "\n\n".join(blocks), " › ".join(t for _, t in headings) or None))
            blocks.clear()

    first_heading = None
    for item in document.iter_inner_content():
        if isinstance(item, docx.table.Table):
            lines = table_lines([[cell.text for cell in row.cells] for row in item.rows])
            if lines:
                blocks.append("\n".join(lines))
            continue
        text = " ".join(item.text.split())
        if not text:
            continue
        style = (item.style.name if item.style is not None else "") or ""
        level = _heading_level(style)
        if level is not None:
            first_heading = first_heading or text
            if level:  # a section's heading; level 0 is the document's title, which names no section
                flush()
                while headings and headings[-1][0] >= level:
                    headings.pop()
                headings.append((level, text))
        elif "List" in style:
            # Consecutive items are one block, a line each, so they stay items.
            if blocks and blocks[-1].startswith("• "):
                blocks[-1] += f"\n• {text}"
            else:
                blocks.append(f"• {text}")
        else:
            blocks.append(text)
    flush()
    return (document.core_properties.title or "").strip() or first_heading, pages


def _heading_level(style: str) -> int | None:
    if style == "Title":
        return 0
    if style.startswith("Heading"):
        number = style.removeprefix("Heading").strip()
        return int(number) if number.isdigit() else 1
    return None


def _pptx(file) -> tuple[str | None, list[Page]]:
    """One page per slide: its title, its text and tables, then its speaker notes."""
    import pptx

    presentation = pptx.Presentation(file)
    pages = []
    first_title = None
    for number, slide in enumerate(presentation.slides, start=1):
        title_shape = slide.shapes.title
        title = " ".join(title_shape.text_frame.text.split()) if title_shape is not None else ""
        first_title = first_title or title
        blocks = [title] if title else []
        for shape in _shapes(slide.shapes):
            if shape is title_shape:
                continue
            if getattr(shape, "has_table", False) and shape.has_table:
                lines = table_lines([[cell.text for cell in row.cells] for row in shape.table.rows])
                if lines:
                    blocks.append("\n".join(lines))
            elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
                lines = [
                    ("• " if paragraph.level > 0 or len(shape.text_frame.paragraphs) > 1 else "") + text
                    for paragraph in shape.text_frame.paragraphs
                    if (text := " ".join("".join(run.text for run in paragraph.runs).split()))
                ]
                if lines:
                    blocks.append("\n".join(lines))
        if slide.has_notes_slide:
            notes = " ".join(slide.notes_slide.notes_text_frame.text.split())
            if notes:
                blocks.append(f"Notes: {notes}")
        section = f"Slide {number}" + (f": {title}" if title else "")
        pages.append(Page(number, "\n\n".join(blocks), section))
    return (presentation.core_properties.title or "").strip() or first_title, pages


def _shapes(shapes):
    """Every shape, those inside groups included, in the slide's order."""
    for shape in shapes:
        if getattr(shape, "shape_type", None) is not None and hasattr(shape, "shapes"):
            yield from _shapes(shape.shapes)
        else:
            yield shape


def _xlsx(file) -> tuple[str | None, list[Page]]:
    """Each sheet's rows (their values, not formulas), a page per block of rows."""
    import openpyxl

    workbook = openpyxl.load_workbook(file, read_only=True, data_only=True)
    try:
        pages = []
        for sheet in workbook.worksheets:
            rows = ((n, list(values)) for n, values in enumerate(sheet.iter_rows(values_only=True), start=1))
            pages += sheet_pages(sheet.title, rows)
        return (workbook.properties.title or "").strip() or None, pages
    finally:
        workbook.close()
