"""Embedding throughput and quality: OpenVINO against sentence-transformers on torch.

    python bench/embed_bench.py --shared ../shared/data [--out bench/results]

The same 2,000-odd real chunks for both (Cranfield's 1,400 abstracts as Docent indexes them,
and the chunks of the text PDFs in shared/data/pdfs), the same threads, one run. Reports
chunks per second, the speed-up, the mean cosine between the two backends' vectors, how many
of each chunk's 10 nearest neighbours agree, and nDCG@10 of vector search on Cranfield with
each backend. Writes bench/results/embed.md and embed.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ingest import IngestError, chunk_document, load_pdf
from retrieval.embed import Embedder
from retrieval.evaluate import load_eval_set, ndcg_at
from retrieval.index import FlatIndex


def corpus(shared: Path, embedder: Embedder) -> tuple[list[str], list[str]]:
    """(texts, Cranfield doc id or '' for PDF chunks), as Docent would index them."""
    eval_set = load_eval_set(shared / "cranfield")
    texts, ids = [], []
    for document in eval_set.documents:
        for chunk in chunk_document(document, count_tokens=embedder.count_tokens, max_tokens=embedder.max_tokens):
            texts.append(chunk.index_text)
            ids.append(document.source)
    for pdf in sorted((shared / "pdfs").glob("*.pdf")):
        try:
            document = load_pdf(pdf)
        except IngestError:
            continue
        for chunk in chunk_document(document, count_tokens=embedder.count_tokens, max_tokens=embedder.max_tokens):
            texts.append(chunk.index_text)
            ids.append("")
    return texts, ids


def cranfield_ndcg(shared: Path, embedder: Embedder, vectors: np.ndarray, ids: list[str]) -> float:
    eval_set = load_eval_set(shared / "cranfield")
    rows = [i for i, d in enumerate(ids) if d]
    index = FlatIndex(vectors.shape[1])
    index.add(vectors[rows], np.arange(len(rows)))
    qids = list(eval_set.queries)
    queries = embedder.embed([eval_set.queries[q] for q in qids])
    _, found = index.search(queries, k=100)
    scores = []
    for qid, row in zip(qids, found):
        ranking = list(dict.fromkeys(ids[rows[i]] for i in row if i >= 0))
        scores.append(ndcg_at(ranking, eval_set.qrels[qid]))
    return float(np.mean(scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()

    torch_embedder = Embedder(backend="torch")
    fast = Embedder(backend="openvino", cache_dir=Path("build/bench-models"))
    texts, ids = corpus(args.shared, torch_embedder)
    results = {}
    vectors = {}
    for name, embedder in (("torch (sentence-transformers)", torch_embedder), ("openvino", fast)):
        embedder.embed(texts[:64])  # warm up
        started = time.perf_counter()
        vectors[name] = embedder.embed(texts)
        seconds = time.perf_counter() - started
        results[name] = {"chunks_per_s": len(texts) / seconds, "seconds": seconds}
    a, b = vectors.values()
    cosine = (a * b).sum(axis=1)
    neighbours = []
    for start in range(0, len(a), 500):
        na = np.argsort(-(a[start : start + 500] @ a.T), axis=1)[:, 1:11]
        nb = np.argsort(-(b[start : start + 500] @ b.T), axis=1)[:, 1:11]
        neighbours += [len(set(x) & set(y)) / 10 for x, y in zip(na, nb)]
    for (name, embedder), vec in zip((("torch (sentence-transformers)", torch_embedder), ("openvino", fast)), (a, b)):
        results[name]["cranfield_vector_ndcg@10"] = cranfield_ndcg(args.shared, embedder, vec, ids)
    base = results["torch (sentence-transformers)"]["chunks_per_s"]
    for row in results.values():
        row["speedup"] = row["chunks_per_s"] / base
    summary = {
        "chunks": len(texts),
        "mean_cosine_openvino_vs_torch": float(cosine.mean()),
        "min_cosine": float(cosine.min()),
        "top10_neighbours_shared": float(np.mean(neighbours)),
        "openvino_precision": str(fast._openvino.compiled.get_property("INFERENCE_PRECISION_HINT")),
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "embed.json").write_text(json.dumps(summary, indent=2))
    lines = [
        f"# Embedding {len(texts)} real chunks (Cranfield + shared PDFs), all-MiniLM-L6-v2, same machine and threads",
        "",
        "| backend | chunks/s | speed-up | Cranfield nDCG@10 (vector) |",
        "|---|---:|---:|---:|",
    ]
    for name, row in results.items():
        lines.append(f"| {name} | {row['chunks_per_s']:.1f} | {row['speedup']:.2f}x | {row['cranfield_vector_ndcg@10']:.4f} |")
    lines += [
        "",
        f"OpenVINO ran in {summary['openvino_precision']}; mean cosine to torch {summary['mean_cosine_openvino_vs_torch']:.5f}"
        f" (min {summary['min_cosine']:.5f}); {summary['top10_neighbours_shared']:.1%} of top-10 neighbours shared.",
    ]
    (args.out / "embed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
