"""Keyword search that skips what cannot change the top 10: Docent's BM25 (MaxScore over postings
kept in slot order, in blocks) against its own exhaustive scoring of the same index, bm25s and
tantivy, at growing collection sizes, one thread each, in one run.

Documents are sampled to the Python standard library's keyword statistics: each of its stemmed
terms drawn as often as it occurs there, documents as long as its 135-word chunks (the library
holds about 21,000 such chunks; a million real distinct chunks are not on this machine). The
queries are real: 200 sentences of its docstrings, as keyword terms.

    python bench/keyword_pruning_bench.py [--sizes 100000,1000000] [--out bench/results]

Every query's top 10 from the pruned search is checked against the exhaustive one (ids and
scores equal to the bit), and so is the index saved and opened again; the time to open it
(Docent's file, tantivy's folder, as after a restart) is reported beside. bm25s and tantivy score
with their own BM25 variants (Lucene's idf, no epsilon floor), so their lists are not compared;
their speed on the same tokens is.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from bm25_bench import docstring_queries, stdlib_chunks
from retrieval.index import BM25Index
from retrieval.index.factory import load as load_index
from retrieval.keywords import keyword_terms


def sampled_corpus(texts: list[str], n_docs: int, seed: int = 3):
    """n_docs documents of token ids drawn to the texts' term frequencies and lengths, and the
    vocabulary (term -> id)."""
    tokenized = [keyword_terms(t) for t in texts]
    vocab: dict[str, int] = {}
    counts: list[int] = []
    for doc in tokenized:
        for term in doc:
            i = vocab.setdefault(term, len(vocab))
            if i == len(counts):
                counts.append(0)
            counts[i] += 1
    p = np.asarray(counts, dtype=np.float64) / sum(counts)
    lengths = np.asarray([len(d) for d in tokenized if d])
    rng = np.random.default_rng(seed)
    doc_lengths = rng.choice(lengths, size=n_docs)
    flat = rng.choice(len(p), size=int(doc_lengths.sum()), p=p).astype(np.int32)
    bounds = np.concatenate([[0], np.cumsum(doc_lengths)])
    return flat, bounds, vocab


def percentiles(seconds: list[float]) -> tuple[float, float]:
    return float(np.percentile(seconds, 50) * 1e3), float(np.percentile(seconds, 95) * 1e3)


def per_query(search, queries) -> list[float]:
    times = []
    for q in queries:
        start = time.perf_counter()
        search(q)
        times.append(time.perf_counter() - start)
    return times


def run_docent(flat, bounds, queries, k: int) -> dict:
    index = BM25Index()
    start = time.perf_counter()
    for i in range(len(bounds) - 1):
        index.add(i, flat[bounds[i] : bounds[i + 1]])
    build = time.perf_counter() - start
    index.search(queries[:1], k=k)  # derive the length norms once, outside the timing
    row = {"build_s": build}
    for name, exhaustive in (("exhaustive", True), ("pruned", False)):
        per_query(lambda q: index.search([q], k=k, threads=1, exhaustive=exhaustive), queries[:20])  # warm
        times = per_query(lambda q: index.search([q], k=k, threads=1, exhaustive=exhaustive), queries)
        row[name] = dict(zip(("p50_ms", "p95_ms"), percentiles(times)))
    pruned = index.search(queries, k=k, threads=1)
    exhaustive = index.search(queries, k=k, threads=1, exhaustive=True)
    row["identical_top_k"] = bool(np.array_equal(pruned[0], exhaustive[0]) and np.array_equal(pruned[1], exhaustive[1]))
    with tempfile.TemporaryDirectory() as folder:  # saved as a collection keeps it, and opened again
        path = Path(folder) / "keywords.idx"
        index.save(path)
        start = time.perf_counter()
        opened = load_index(path)
        row["open_s"] = time.perf_counter() - start
    again = opened.search(queries, k=k, threads=1)
    row["identical_after_open"] = bool(np.array_equal(pruned[0], again[0]) and np.array_equal(pruned[1], again[1]))
    return row


def run_bm25s(flat, bounds, queries, k: int) -> dict:
    import bm25s
    from bm25s.tokenization import Tokenized

    ids = [flat[bounds[i] : bounds[i + 1]].tolist() for i in range(len(bounds) - 1)]
    vocab = {str(t): t for t in range(int(flat.max()) + 1)}
    retriever = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
    start = time.perf_counter()
    retriever.index(Tokenized(ids=ids, vocab=vocab), show_progress=False)
    build = time.perf_counter() - start
    del ids
    as_tokens = [[[str(t) for t in q]] for q in queries]  # its fastest query form (Tokenized ids: 5x slower)

    def search(q):
        retriever.retrieve(q, k=k, show_progress=False, n_threads=1)

    per_query(search, as_tokens[:20])
    return {"build_s": build, "query": dict(zip(("p50_ms", "p95_ms"), percentiles(per_query(search, as_tokens))))}


def run_tantivy(flat, bounds, queries, k: int, folder: Path) -> dict:
    import tantivy

    schema = tantivy.SchemaBuilder().add_text_field("body", stored=False, tokenizer_name="whitespace").build()
    index = tantivy.Index(schema, path=str(folder))
    start = time.perf_counter()
    writer = index.writer(heap_size=512 << 20, num_threads=1)
    for i in range(len(bounds) - 1):
        writer.add_document(tantivy.Document(body=" ".join(f"t{t}" for t in flat[bounds[i] : bounds[i + 1]])))
    writer.commit()
    writer.wait_merging_threads()
    build = time.perf_counter() - start
    del index, writer
    start = time.perf_counter()
    index = tantivy.Index.open(str(folder))  # opened again from its files, as after a restart
    searcher = index.searcher()
    opened = time.perf_counter() - start
    parsed = [index.parse_query(" ".join(f"t{t}" for t in q), ["body"]) for q in queries]
    per_query(lambda q: searcher.search(q, k), parsed[:20])
    times = per_query(lambda q: searcher.search(q, k), parsed)
    return {"build_s": build, "open_s": opened, "query": dict(zip(("p50_ms", "p95_ms"), percentiles(times)))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--peers", default="bm25s,tantivy", help="comma-separated; empty for Docent alone")
    parser.add_argument(
        "--bm25s-max",
        type=int,
        default=200_000,
        help="largest size given to bm25s (it wants every token as a Python int)",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()

    texts = stdlib_chunks(21000)
    sizes = [int(s) for s in args.sizes.split(",")]
    flat, bounds, vocab = sampled_corpus(texts, max(sizes))
    queries = [[vocab[t] for t in keyword_terms(q) if t in vocab] for q in docstring_queries(texts, args.queries)]
    queries = [q for q in queries if q]
    peers = [p for p in args.peers.split(",") if p]
    results = {}
    for size in sizes:
        part = (flat[: bounds[size]], bounds[: size + 1])
        row = {"docent": run_docent(*part, queries, args.k)}
        print(size, "docent", row["docent"], flush=True)
        if "bm25s" in peers and size <= args.bm25s_max:
            row["bm25s"] = run_bm25s(*part, queries, args.k)
            print(size, "bm25s", row["bm25s"], flush=True)
        if "tantivy" in peers:
            with tempfile.TemporaryDirectory() as folder:  # its index on disk, gone after the run
                row["tantivy"] = run_tantivy(*part, queries, args.k, Path(folder))
            print(size, "tantivy", row["tantivy"], flush=True)
        results[size] = row

    meta = {
        "queries": len(queries),
        "k": args.k,
        "mean_document_tokens": float(np.diff(bounds).mean()),
        "vocabulary": len(vocab),
        "machine": platform.processor() or platform.machine(),
        "threads": 1,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "keyword_pruning.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    lines = [
        f"# BM25 top {args.k}, {len(queries)} real queries, documents sampled to the standard library's"
        f" keyword statistics ({meta['mean_document_tokens']:.0f} terms each), 1 thread",
        "",
        "| documents | Docent exhaustive p50 / p95 (ms) | Docent pruned p50 / p95 (ms) | pruned speed-up (p50) |"
        " same top k | bm25s p50 (ms) | tantivy p50 (ms) | Docent build (s) | Docent open (s) | tantivy open (s) |",
        "|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for size, row in results.items():
        d = row["docent"]
        peer = {name: f"{row[name]['query']['p50_ms']:.3f}" if name in row else "-" for name in ("bm25s", "tantivy")}
        tantivy_open = f"{row['tantivy']['open_s']:.3f}" if "tantivy" in row else "-"
        lines.append(
            f"| {size:,} | {d['exhaustive']['p50_ms']:.3f} / {d['exhaustive']['p95_ms']:.3f} |"
            f" {d['pruned']['p50_ms']:.3f} / {d['pruned']['p95_ms']:.3f} |"
            f" {d['exhaustive']['p50_ms'] / d['pruned']['p50_ms']:.1f}x |"
            f" {'yes' if d['identical_top_k'] and d['identical_after_open'] else 'NO'} |"
            f" {peer['bm25s']} | {peer['tantivy']} | {d['build_s']:.1f} | {d['open_s']:.2f} | {tantivy_open} |"
        )
    (args.out / "keyword_pruning.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
