"""Writes small, real PDFs for tests: one text page per list of lines, Helvetica, no dependencies.

The output is a plain PDF 1.4 file (catalog, page tree, pages with content streams, a
cross-reference table) that any reader opens, pypdf included.
"""

from __future__ import annotations

from pathlib import Path


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _show(text: str | tuple[str | int, ...]) -> str:
    """The operator drawing a text, or a TJ array's pieces moved apart by the numbers between."""
    if isinstance(text, str):
        return f"({_escape(text)}) Tj"
    return "[" + " ".join(f"({_escape(p)})" if isinstance(p, str) else str(p) for p in text) + "] TJ"


def make_pdf(
    pages: list[list[str | tuple[str | int, ...] | list[tuple[int, str | tuple]] | list[tuple[int, int, str]]]],
    *,
    title: str | None = None,
) -> bytes:
    """A PDF of the given pages; a line is a string, a table row of (x, text) cells, cells
    placed anywhere on the page, (x, y, text), or a tuple of strings each moved from the one
    before by a number between them, in thousandths of the font size to the left (a TJ array:
    ("A", -110, "word") draws "word" 0.11 of the size right of "A", no space between); a row's
    cell may be such a tuple too."""
    objects: list[bytes] = []  # object n is objects[n - 1]

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled in below
    tree = add(b"")
    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    page_ids = []
    for lines in pages:
        ops = ["BT", "/F1 11 Tf", "14 TL", "72 740 Td"]
        for line in lines:
            if isinstance(line, (str, tuple)):
                ops.append(f"{_show(line)} T*")
                continue
            if line and len(line[0]) == 3:
                # Cells each at its own (x, y), drawn in the order given (a table whose header
                # cells are drawn one at a time, a date over its year); the lines go on below.
                for cell_x, cell_y, cell in line:
                    ops.append(f"1 0 0 1 {cell_x} {cell_y} Tm {_show(cell)}")
                ops.append(f"1 0 0 1 72 {min(y for _, y, _ in line) - 14} Tm")
                continue
            # A row of cells, each at its own x (a table's columns): drawn from the line's
            # start, then the next line starts at the left margin again.
            x = 72
            for cell_x, cell in line:
                ops.append(f"{cell_x - x} 0 Td {_show(cell)}")
                x = cell_x
            ops.append(f"{72 - x} -14 Td")
        ops.append("ET")
        stream = "\n".join(ops).encode("cp1252")
        content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        page_ids.append(
            add(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R >>"
                % (tree, font, content)
            )
        )
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % tree
    kids = b" ".join(b"%d 0 R" % p for p in page_ids)
    objects[tree - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(page_ids))
    info = add(b"<< /Title (%s) >>" % _escape(title).encode("cp1252")) if title else None

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    trailer = b"<< /Size %d /Root %d 0 R" % (len(objects) + 1, catalog)
    if info:
        trailer += b" /Info %d 0 R" % info
    out += b"trailer\n" + trailer + b" >>\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def write_pdf(path: Path, pages: list[list[str]], **kwargs) -> Path:
    path.write_bytes(make_pdf(pages, **kwargs))
    return path


def encrypt(pdf: bytes, *, user_password: str, owner_password: str = "owner") -> bytes:
    """The same PDF encrypted with AES-256 (empty user_password: opens for anyone)."""
    from io import BytesIO

    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(BytesIO(pdf)))
    writer.encrypt(user_password=user_password, owner_password=owner_password, algorithm="AES-256")
    buffer = BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


# A small handbook whose facts each live on one known page.
HANDBOOK_TITLE = "Harbor Operations Handbook"
HANDBOOK_PAGES = [
    [
        "Harbor Operations Handbook",
        "This handbook describes the daily operations of the Northgate harbor.",
        "It is written for harbor staff, pilots and visiting skippers.",
        "Each chapter covers one area of work and names the office responsible for it.",
    ],
    [
        "Chapter 1. The lighthouse",
        "The lighthouse keeper must log the fog signal every four hours during fog.",
        "The lamp is cleaned each Monday morning before sunrise.",
        "Spare bulbs are stored in the locked cabinet on the second floor of the tower.",
    ],
    [
        "Chapter 2. Mooring fees",
        "A mooring permit for a private boat costs 120 euros per month.",
        "Commercial vessels pay a fee that depends on their length: 8 euros per meter per day.",
        "Fees are paid at the harbor office, which is open from 8 am to 4 pm on weekdays.",
    ],
    [
        "Chapter 3. Safety drills",
        "A fire drill is held on the first Thursday of every quarter.",
        "All staff gather at the assembly point next to the fuel dock when the siren sounds.",
        "The safety officer records the time it takes to evacuate the buildings.",
    ],
]


def make_manual(name: str, pages: int) -> bytes:
    """A PDF titled "{name} manual" whose every page says something of its own (identical text
    is embedded once only, so a long one really costs embedding time)."""
    return make_pdf(
        [
            [f"{name} manual, page {p}."]
            + [
                f"Rule {p}.{s} of the {name} manual: valve {p * 31 + s} stays shut below {s + p} bar."
                for s in range(14)
            ]
            for p in range(1, pages + 1)
        ],
        title=f"{name} manual",
    )
