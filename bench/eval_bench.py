"""Retrieval quality on Cranfield (BEIR format): every search mode and both fusions.

    python bench/eval_bench.py --cranfield ../shared/data/cranfield [--home build/bench-home]

Runs `docent eval` (embeddings are cached in the collection, so a second run is quick) and
writes bench/results/cranfield.md, cranfield.json and cranfield.png.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from retrieval.evaluate import evaluate, format_table, load_eval_set, plot
from retrieval.service import Docent
from retrieval.settings import load_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cranfield", type=Path, required=True, help="the BEIR folder of Cranfield")
    parser.add_argument("--home", type=Path, default=Path("build/bench-home"))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()

    docent = Docent(load_settings(home=str(args.home)))
    eval_set = load_eval_set(args.cranfield)
    results = evaluate(docent, eval_set, collection="eval-cranfield")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cranfield.json").write_text(json.dumps(results, indent=2))
    plot(results, args.out / "cranfield.png", f"Cranfield: {len(eval_set.queries)} queries")
    table = format_table(results)
    header = (
        f"# Cranfield, {len(eval_set.queries)} queries, {len(eval_set.documents)} abstracts "
        f"({len(eval_set.skipped)} without text skipped); all-MiniLM-L6-v2 + BM25, RRF k=60, convex alpha=0.5"
    )
    (args.out / "cranfield.md").write_text(f"{header}\n\n{table}\n")
    print(header, "", table, sep="\n")


if __name__ == "__main__":
    main()
