"""Latency of the default question pipeline (hybrid search + extractive answer) on a collection
of about 20,000 chunks: FinanceBench's development filings, asked its own questions.

    python bench/answer_latency_bench.py [--home build/bench-home] [--collection eval-financebench-dev]
        [--questions ../shared/data/financebench-dev/eval.jsonl] [--label NAME]

The collection is the one `bench/eval_bench.py --financebench` ingests. Each question is asked
once, timed whole (embedding the question, hybrid search, the extractive answer), then searched
for again, timed (its embedding is remembered by then: the index work alone). Writes
bench/results/answer_latency[-LABEL].md and .json.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from report import cpu_name, write_report
from retrieval.evaluate import load_eval_set
from retrieval.service import Docent
from retrieval.settings import load_settings

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=Path("build/bench-home"))
    parser.add_argument("--collection", default="eval-financebench-dev")
    parser.add_argument("--questions", type=Path, default=HERE.parents[1] / "shared/data/financebench-dev/eval.jsonl")
    parser.add_argument("--label", default="")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()

    docent = Docent(load_settings(home=str(args.home), llm="extractive"))
    questions = list(load_eval_set(args.questions).queries.values())
    chunks = sum(d.chunks for d in docent.documents(collection=args.collection))
    docent.ask(questions[0], collection=args.collection)  # loads the model and the indexes
    search_ms, ask_ms = [], []
    for question in questions:
        started = time.perf_counter()
        docent.ask(question, collection=args.collection)  # embeds the question: not asked before
        ask_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        docent.search(question, k=10, collection=args.collection)  # its embedding is remembered
        search_ms.append((time.perf_counter() - started) * 1000)

    def summary(values: list[float]) -> dict:
        return {"p50_ms": float(np.percentile(values, 50)), "p95_ms": float(np.percentile(values, 95))}

    result = {
        "cpu": cpu_name(),
        "threads": os.cpu_count(),
        "collection": args.collection,
        "chunks": chunks,
        "questions": len(questions),
        "search": summary(search_ms),
        "ask": summary(ask_ms),
    }
    label = f" ({args.label})" if args.label else ""
    title = f"Question latency{label}: {chunks} chunks, {len(questions)} questions, {result['cpu']}, {os.cpu_count()} threads"
    table = [
        ["search again (hybrid, k=10; embedding remembered)", f"{result['search']['p50_ms']:.0f}", f"{result['search']['p95_ms']:.0f}"],
        ["ask (embed + search + extractive answer)", f"{result['ask']['p50_ms']:.0f}", f"{result['ask']['p95_ms']:.0f}"],
    ]  # fmt: skip
    stem = f"answer_latency-{args.label}" if args.label else "answer_latency"
    print(write_report(args.out, stem, result, title, ["step", "p50 ms", "p95 ms"], table))


if __name__ == "__main__":
    main()
