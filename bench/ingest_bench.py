"""End-to-end PDF ingest (extraction, chunking, embedding, storing), before and after.

    python bench/ingest_bench.py --shared ../shared/data [--docs /usr/share/doc/python3.11/html]

The PDF set: the text PDFs of shared/data/pdfs, plus PDFs made from the Python
documentation's own text (python3.11-doc's _sources, one PDF per page of the docs, 45 lines a
PDF page) until there are at least 1,000 pages. Three runs, each in a fresh process and data
home: "before" is the pipeline as it was (torch embeddings, one file after another); "after" is
today's (PDF extraction in worker processes ahead of the embedding), once with OpenVINO in float
and once with the default backend (this CPU's int8 model: OpenVINO's with VNNI, Docent's encoder
without). The model is loaded (and its export made, in build/bench-models) before the clock
starts.
Reports pages per second, the share of wall time spent embedding, and peak memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from report import BusyCores, cpu_name

HERE = Path(__file__).resolve().parent
RUNS = {"before": "torch", "after-float": "openvino", "after": "auto"}  # run -> embedding backend


def build_pdf_set(shared: Path, docs: Path, folder: Path, min_pages: int = 1000) -> int:
    sys.path.insert(0, str(HERE.parent / "tests"))  # tests/support
    from support.pdfgen import make_pdf
    from pypdf import PdfReader

    pages = 0
    for pdf in sorted((shared / "pdfs").glob("pdfminer_*.pdf")):
        if "aes" in pdf.name:
            continue
        (folder / pdf.name).write_bytes(pdf.read_bytes())
        try:
            reader = PdfReader(pdf)
            if reader.is_encrypted:
                reader.decrypt("")
            pages += len(reader.pages)
        except Exception:
            pass
    for source in sorted((docs / "_sources").rglob("*.txt")):
        lines = [
            w for line in source.read_text(errors="replace").splitlines() for w in (textwrap.wrap(line, 90) or [""])
        ]
        pdf_pages = [lines[i : i + 45] for i in range(0, len(lines), 45)]
        if not any(any(l.strip() for l in p) for p in pdf_pages):
            continue
        safe = [[l.encode("cp1252", "replace").decode("cp1252") for l in p] for p in pdf_pages]
        (folder / f"pydoc-{source.stem}.pdf").write_bytes(make_pdf(safe, title=source.stem))
        pages += len(pdf_pages)
        if pages >= min_pages:
            break
    return pages


def run_one(mode: str, folder: Path, home: Path) -> dict:
    """Runs in its own process (see main) so peak memory is its own."""
    from ingest.sources import expand_paths
    from retrieval.service import Docent
    from retrieval.settings import load_settings

    docent = Docent(
        load_settings(
            home=str(home), embedding_backend=RUNS[mode], model_cache=str(HERE.parent / "build" / "bench-models")
        )
    )
    docent.load_model()
    inner = docent.embedder
    timing = {"embed": 0.0}

    class Timed:
        def __getattr__(self, name):
            return getattr(inner, name)

        def embed(self, texts, **kwargs):
            started = time.perf_counter()
            try:
                return inner.embed(texts, **kwargs)
            finally:
                timing["embed"] += time.perf_counter() - started

    docent._embedder = Timed()
    sources = expand_paths([str(folder)])
    busy = BusyCores().start()
    started = time.perf_counter()
    if mode == "before":
        outcomes = [docent.ingest([s])[0] for s in sources]  # one file after another
    else:
        outcomes = docent.ingest(sources)
    seconds = time.perf_counter() - started
    busy_cores = busy.stop()
    docent.close()
    pages = sum(o.pages for o in outcomes if o.ok)
    return {
        "mode": mode,
        "backend": inner.backend,  # what the requested backend became
        "files": len(sources),
        "failed": sum(not o.ok for o in outcomes),
        "pages": pages,
        "chunks": sum(o.chunks for o in outcomes if o.ok),
        "seconds": seconds,
        "pages_per_s": pages / seconds,
        "embed_share": timing["embed"] / seconds,
        "busy_cores": busy_cores,
        "peak_rss_mib": (
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        )
        / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--docs", type=Path, default=Path("/usr/share/doc/python3.11/html"))
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--run", choices=list(RUNS), help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run_one(args.run, args.folder, args.home)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "pdfs"
        folder.mkdir()
        pages = build_pdf_set(args.shared, args.docs, folder)
        rows = []
        for mode in RUNS:
            out = subprocess.run(
                [sys.executable, __file__, "--run", mode, "--folder", str(folder), "--home", str(Path(tmp) / mode)],
                capture_output=True,
                text=True,
                check=True,
            )
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ingest.json").write_text(json.dumps(rows, indent=2))
    lines = [
        f"# Ingest of {rows[0]['files']} PDFs, {pages} pages, {cpu_name()}, one run",
        "",
        "| pipeline | pages | chunks | time (s) | pages/s | embedding share | busy cores | peak memory (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        busy = f"{r['busy_cores']:.2f}" if r["busy_cores"] is not None else "n/a"
        lines.append(
            f"| {r['mode']} ({r['backend']}) | {r['pages']} | {r['chunks']} | {r['seconds']:.1f} | {r['pages_per_s']:.2f} |"
            f" {r['embed_share']:.0%} | {busy} | {r['peak_rss_mib']:.0f} |"
        )
    lines.append(
        "\nSpeed-up over before: "
        + ", ".join(f"{r['mode']} {r['pages_per_s'] / rows[0]['pages_per_s']:.2f}x" for r in rows[1:])
    )
    (args.out / "ingest.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
