"""PDF text extraction: Docent's (pdfium's text, tables laid out again from its characters'
positions) against pypdf's (its plain text, and its layout mode for a page that looks tabular:
what Docent used before), in one run on the same files, one thread.

    python bench/extract_bench.py [--shared ../shared/data]

Two sets: the text PDFs of shared/data/pdfs (prose, forms, slides, a paper), and the
FinanceBench development filings (table-heavy). Each file is loaded twice by
ingest.pdf.load_pdf, once as shipped and once with each page's text read by pypdf instead
(everything else the same: opening, cleaning, page breaks, OCR of pages without text). Reports
pages per second for both, their ratio, the pages that look tabular and the table rows each
reads. Writes bench/results/extract.md and .json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import ingest.pdf
import ingest.pdf_text
from report import cpu_name, write_report
from ingest.errors import IngestError
from ingest.pdf import load_pdf
from ingest.tables import is_row, looks_tabular, rebuild_with_rows

HERE = Path(__file__).resolve().parent


def pypdf_page_text(stream: ingest.pdf.PdfStream, number: int) -> str:
    """A page's text as Docent read it with pypdf: plain, or rebuilt from layout mode."""
    page = stream._reader.pages[number - 1]
    text = page.extract_text() or ""
    if looks_tabular(text):
        rebuilt = rebuild_with_rows(page.extract_text(extraction_mode="layout") or "")
        if rebuilt is not None:
            return rebuilt
    return text


def timed_load(files: list[Path]) -> tuple[float, int, int, int]:
    """(seconds, pages, pages whose pdfium text looks tabular, table rows) for loading every file."""
    tabular = 0

    def counting(text: str) -> bool:
        nonlocal tabular
        found = looks_tabular(text)
        tabular += found
        return found

    ingest.pdf_text.looks_tabular = counting
    pages = rows = 0
    started = time.perf_counter()
    try:
        for path in files:
            try:
                document = load_pdf(path)
            except IngestError:
                continue  # encrypted, scanned or broken: the same for both
            pages += len(document.pages)
            rows += sum(is_row(line) for page in document.pages for line in page.text.split("\n"))
    finally:
        ingest.pdf_text.looks_tabular = looks_tabular
    return time.perf_counter() - started, pages, tabular, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=HERE.parents[1] / "shared" / "data")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    sets = {
        "shared text PDFs": sorted((args.shared / "pdfs").glob("pdfminer_*.pdf")),
        "FinanceBench filings": sorted((args.shared / "financebench-dev" / "pdfs").glob("*.pdf")),
    }
    rows = {}
    for name, files in sets.items():
        pdfium_s, pages, tabular, pdfium_rows = timed_load(files)
        docent_reader = ingest.pdf.PdfStream._page_text
        ingest.pdf.PdfStream._page_text = pypdf_page_text
        try:
            pypdf_s, pypdf_pages, _, pypdf_rows = timed_load(files)
        finally:
            ingest.pdf.PdfStream._page_text = docent_reader
        rows[name] = {
            "files": len(files),
            "pages": pages,
            "pypdf_pages": pypdf_pages,
            "pypdf_pages_per_s": pypdf_pages / pypdf_s,
            "pdfium_pages_per_s": pages / pdfium_s,
            "speed_ratio": pypdf_s / pdfium_s,
            "tabular_share": tabular / pages if pages else 0.0,
            "pypdf_rows": pypdf_rows,
            "pdfium_rows": pdfium_rows,
        }
    cpu = cpu_name()
    header = ["set", "files", "pages", "pypdf pages/s", "pdfium pages/s", "speed", "pages that look tabular",
              "table rows (pypdf / pdfium)"]  # fmt: skip
    table = [
        [name, r["files"], r["pages"], f"{r['pypdf_pages_per_s']:.1f}", f"{r['pdfium_pages_per_s']:.1f}",
         f"{r['speed_ratio']:.1f}x", f"{100 * r['tabular_share']:.0f}%", f"{r['pypdf_rows']:,} / {r['pdfium_rows']:,}"]
        for name, r in rows.items()
    ]  # fmt: skip
    figures = {"cpu": cpu, "threads": 1, **rows}
    print(write_report(args.out, "extract", figures, f"PDF text extraction, one thread, {cpu}", header, table))


if __name__ == "__main__":
    main()
