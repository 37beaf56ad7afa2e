"""PDF text extraction with tables kept as rows, against plain extraction (as before tables),
in one run on the same files.

    python bench/extract_bench.py [--shared ../shared/data]

Two sets: the text PDFs of shared/data/pdfs (prose, forms, slides, a paper), and the
FinanceBench development filings (table-heavy). Each file is loaded twice by ingest.pdf.load_pdf,
once as shipped and once with the table pass off (no page looks tabular: every page is read by
pypdf's plain extraction alone, as before). Reports pages per second for both, their ratio,
and the share of pages read again in layout mode. Writes bench/results/extract.md and .json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import ingest.pdf
from report import cpu_name, write_report
from ingest.errors import IngestError
from ingest.pdf import load_pdf
from ingest.tables import looks_tabular

HERE = Path(__file__).resolve().parent


def timed_load(files: list[Path], *, tables: bool) -> tuple[float, int, int]:
    """(seconds, pages, pages read in layout mode) for loading every file."""
    layout_pages = 0

    def counting(text: str) -> bool:
        nonlocal layout_pages
        found = tables and looks_tabular(text)
        layout_pages += found
        return found

    ingest.pdf.looks_tabular = counting
    pages = 0
    started = time.perf_counter()
    for path in files:
        try:
            pages += len(load_pdf(path).pages)
        except IngestError:
            pass  # encrypted, scanned or broken: the same for both
    return time.perf_counter() - started, pages, layout_pages


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
        plain_s, pages, _ = timed_load(files, tables=False)
        tables_s, _, layout = timed_load(files, tables=True)
        rows[name] = {
            "files": len(files),
            "pages": pages,
            "plain_pages_per_s": pages / plain_s,
            "tables_pages_per_s": pages / tables_s,
            "speed_ratio": plain_s / tables_s,
            "layout_share": layout / pages if pages else 0.0,
        }
    cpu = cpu_name()
    header = [
        "set",
        "files",
        "pages",
        "plain pages/s",
        "with table rows pages/s",
        "speed (tables / plain)",
        "pages read in layout mode",
    ]
    table = [
        [name, r["files"], r["pages"], f"{r['plain_pages_per_s']:.1f}", f"{r['tables_pages_per_s']:.1f}",
         f"{r['speed_ratio']:.2f}x", f"{100 * r['layout_share']:.0f}%"]
        for name, r in rows.items()
    ]  # fmt: skip
    figures = {"cpu": cpu, "threads": 1, **rows}
    print(write_report(args.out, "extract", figures, f"PDF extraction, one thread, {cpu}", header, table))


if __name__ == "__main__":
    main()
