"""A long PDF ingested whole and streamed in parts: time and peak Python memory, side by side.

    python bench/stream_bench.py [--pages 1500]

Makes one text PDF of --pages pages (15 sentences a page), then ingests it twice into fresh
data homes with the same loaded model: once read whole (the path below 300 pages) and once
streamed 32 pages at a time (the path above). Peak memory is what tracemalloc sees of Python's
allocations during the ingest (numpy arrays included), not the process's RSS: the model's own
memory is the same for both and would hide the difference. Writes bench/results/stream.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=1500)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent / "tests"))  # tests/support
    from support.pdfgen import make_pdf

    import ingest.pipeline as pipeline
    from retrieval.service import Docent, Source
    from retrieval.settings import load_settings

    pdf = Path(tempfile.mkdtemp()) / "long.pdf"
    pdf.write_bytes(
        make_pdf(
            [
                [f"Section {p} of the long manual."]
                + [
                    f"Clause {p}.{s}: the pump {p * 13 + s} runs at {s + p} litres a minute, and the valve {p * 7 + s} stays shut "
                    f"below {s} bar."
                    for s in range(14)
                ]
                for p in range(1, args.pages + 1)
            ],
            title="Long manual",
        )
    )
    model = Docent(load_settings(home=tempfile.mkdtemp()))
    model.load_model()
    rows = []
    for name, threshold in (("read whole", 10**9), ("streamed, 32 pages a part", 300)):
        pipeline.STREAM_FROM_PAGES = threshold
        docent = Docent(load_settings(home=tempfile.mkdtemp()))
        docent._embedder = model.embedder
        tracemalloc.start()
        started = time.perf_counter()
        outcome = docent.ingest([Source.from_path(pdf)])[0]
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        docent.close()
        rows.append((name, outcome.chunks, seconds, args.pages / seconds, peak / 2**20))
        print(rows[-1], flush=True)
    lines = [
        f"# One {args.pages}-page PDF ({pdf.stat().st_size / 2**20:.1f} MiB), read whole and streamed",
        "",
        "| path | chunks | seconds | pages/s | peak Python memory (MiB) |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {n} | {c} | {s:.1f} | {r:.1f} | {m:.1f} |" for n, c, s, r, m in rows]
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "stream.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
