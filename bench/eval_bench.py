"""Retrieval quality of every search mode and fusion: Cranfield (BEIR format) and, when given,
FinanceBench's development split (questions about SEC filings, scored by evidence page).

    python bench/eval_bench.py --cranfield ../shared/data/cranfield \
        [--financebench ../shared/data/financebench-dev/eval.jsonl] [--home build/bench-home]

Runs what `docent eval` runs (embeddings are cached in the collections, so a second run is quick)
and writes bench/results/cranfield.md, .json and .png (and financebench-dev.* when given).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from retrieval.evaluate import evaluate, format_table, load_eval_set, plot
from retrieval.service import Docent
from retrieval.settings import load_settings


def run(docent: Docent, path: Path, name: str, out: Path) -> str:
    eval_set = load_eval_set(path)
    started = time.perf_counter()
    results = evaluate(docent, eval_set, collection=f"eval-{name}")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(results, indent=2))
    plot(results, out / f"{name}.png", f"{name}: {len(eval_set.queries)} queries")
    what = (
        f"{len(eval_set.documents)} documents ({len(eval_set.skipped)} without text skipped)"
        if eval_set.documents
        else f"{len(eval_set.files)} PDFs, scored by evidence page"
    )
    header = (
        f"# {name}, {len(eval_set.queries)} queries, {what}; all-MiniLM-L6-v2 + BM25, RRF k=60,"
        f" convex alpha=0.5 ({time.perf_counter() - started:.0f} s)"
    )
    text = f"{header}\n\n{format_table(results)}\n"
    (out / f"{name}.md").write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cranfield", type=Path, required=True, help="the BEIR folder of Cranfield")
    parser.add_argument("--financebench", type=Path, help="FinanceBench's eval.jsonl (development split)")
    parser.add_argument("--home", type=Path, default=Path("build/bench-home"))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()

    docent = Docent(load_settings(home=str(args.home)))
    print(run(docent, args.cranfield, "cranfield", args.out))
    if args.financebench:
        print(run(docent, args.financebench, "financebench-dev", args.out))


if __name__ == "__main__":
    main()
