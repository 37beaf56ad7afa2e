"""OCR engines side by side on the same scans: RapidOCR (ONNX Runtime, Docent's engine, through
ingest.ocr) and Tesseract (the `tesseract` command, from Debian's tesseract-ocr, when installed).

    python bench/ocr_bench.py [--shared ../shared/data] [--runs 2]

Each page of ocrmypdf_linn.pdf (a scanned two-column brochure), ocrmypdf_skew.pdf and
ocrmypdf_rotated_skew.pdf (the same page skewed, and rotated by the PDF) is drawn at 300 dpi by
pdfium, once, then read by each engine; the character error rate is against the brochure's
transcription (ocrmypdf_linn.txt), whitespace collapsed. Seconds are the best of --runs runs,
on the machine's cores (both engines use them all). Writes bench/results/ocr.md and .json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # tests/support

from report import cpu_name, write_report  # noqa: E402
from support.cer import character_error_rate  # noqa: E402

from ingest.ocr import OCR_DPI, read_image  # noqa: E402
from ingest.text import clean_page_text  # noqa: E402

SCANS = ["ocrmypdf_linn.pdf", "ocrmypdf_skew.pdf", "ocrmypdf_rotated_skew.pdf"]


def tesseract(image) -> str:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "page.png"
        image.save(path)
        return subprocess.run(["tesseract", str(path), "-"], capture_output=True, text=True, check=True).stdout


def main() -> None:
    import pypdfium2

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=HERE.parents[1] / "shared" / "data")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    transcription = (args.shared / "pdfs" / "ocrmypdf_linn.txt").read_text()
    engines = {"RapidOCR (ONNX Runtime)": lambda image: clean_page_text(read_image(image))}
    if shutil.which("tesseract"):
        version = subprocess.run(["tesseract", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
        engines[f"Tesseract ({version})"] = lambda image: clean_page_text(tesseract(image))
    rows = []
    for scan in SCANS:
        pdf = pypdfium2.PdfDocument(str(args.shared / "pdfs" / scan))
        image = pdf[0].render(scale=OCR_DPI / 72).to_pil()
        pdf.close()
        for engine, read in engines.items():
            read(image)  # loads the models
            seconds, text = float("inf"), ""
            for _ in range(args.runs):
                started = time.perf_counter()
                text = read(image)
                seconds = min(seconds, time.perf_counter() - started)
            rows.append(
                {
                    "scan": scan,
                    "engine": engine,
                    "cer": character_error_rate(text, transcription),
                    "seconds_per_page": seconds,
                    "starts_right": text.startswith("The LinnSequencer"),
                }
            )
    cpu = cpu_name()
    header = ["scan", "engine", "character error rate", "s per page", "pages per s", "first words right"]
    table = [
        [r["scan"], r["engine"], f"{100 * r['cer']:.2f}%", f"{r['seconds_per_page']:.1f}",
         f"{1 / r['seconds_per_page']:.2f}", "yes" if r["starts_right"] else "no"]
        for r in rows
    ]  # fmt: skip
    figures = {"cpu": cpu, "cores": os.cpu_count(), "dpi": OCR_DPI, "rows": rows}
    print(write_report(args.out, "ocr", figures, f"OCR at {OCR_DPI} dpi, {cpu}, {os.cpu_count()} cores", header, table))


if __name__ == "__main__":
    main()
