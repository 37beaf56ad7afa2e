"""How wide an app search's HNSW beam must be on a real collection, asked real questions.

    python bench/hnsw_ef_bench.py --home H --collection C --questions Q.jsonl [Q2.jsonl ...]

Reads a collection's stored embeddings and its saved vector index (a collection of at least
retrieval.store's HNSW_FROM_CHUNKS chunks, so an HNSW graph built as the app builds it), embeds
each file's questions (`question` of each line) and, at the hybrid depth of 50, compares the
graph with exact search for several beam widths (ef): recall@50 (mean, worst question, share of
questions under 0.9) and one query's latency on one thread; Faiss's HNSW with the same M and
construction beam, built on the same vectors, is the peer. Writes bench/results/hnsw_ef.md and .json.

The benchmark sets elsewhere ask questions drawn from the corpus they search; a team's
collection is many documents of a few kinds, and its questions are not its passages. E.g.
`docent --home H eval -c eval-financebench-dev bench/sets/answer_set.jsonl` builds such a
collection (24,000 chunks of 30 filings and 8 other PDFs).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from pathlib import Path

import faiss
import numpy as np

from report import cpu_name, per_query_ms, write_report
from retrieval.index import load
from retrieval.service import Docent
from retrieval.settings import load_settings
from retrieval.store import HNSW_EF, HNSW_M

HERE = Path(__file__).resolve().parent
DEPTH = 50
EFS = (128, 256, 384, 512)


def recall(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return np.array([len(set(f.tolist()) & set(t.tolist())) / DEPTH for f, t in zip(found, truth)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--collection", required=True)
    parser.add_argument("--questions", required=True, nargs="+", type=Path)
    parser.add_argument("--limit", type=int, default=600, help="questions taken from each file at most")
    args = parser.parse_args()
    folder = args.home / "collections" / args.collection
    graph = load(folder / "vectors.idx")
    db = sqlite3.connect(f"file:{folder / 'docent.sqlite3'}?mode=ro", uri=True)
    rows = db.execute("SELECT id, embedding FROM chunks ORDER BY id").fetchall()
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    vectors = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
    peer = faiss.IndexHNSWFlat(vectors.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
    peer.hnsw.efConstruction = graph.ef_construction
    peer.add(vectors)
    faiss.omp_set_num_threads(1)
    docent = Docent(load_settings(home=str(args.home)))

    figures, table = {}, []
    for path in args.questions:
        texts = [json.loads(line)["question"] for line in path.open()][: args.limit]
        queries = np.asarray(docent.embedder.embed(texts), dtype=np.float32)
        truth = ids[np.argsort(-(queries @ vectors.T), axis=1)[:, :DEPTH]]
        for ef in EFS:
            ours = recall(graph.search(queries, DEPTH, ef=ef)[1], truth)
            peer.hnsw.efSearch = ef
            theirs = recall(ids[peer.search(queries, DEPTH)[1]], truth)
            ms = per_query_ms(lambda q: graph.search(q, DEPTH, ef=ef, threads=1), queries)
            peer_ms = per_query_ms(lambda q: peer.search(q, DEPTH), queries)
            row = {
                "questions": len(texts),
                "recall": float(ours.mean()),
                "worst": float(ours.min()),
                "under_0_9": float((ours < 0.9).mean()),
                "ms": ms,
                "faiss_recall": float(theirs.mean()),
                "faiss_worst": float(theirs.min()),
                "faiss_ms": peer_ms,
            }
            figures[f"{path.name} ef={ef}"] = row
            mark = " (the app's)" if ef == HNSW_EF else ""
            table.append(
                [
                    f"{path.name} ({len(texts)})",
                    f"{ef}{mark}",
                    f"{row['recall']:.4f}",
                    f"{row['worst']:.2f}",
                    f"{row['under_0_9']:.3f}",
                    f"{ms:.3f}",
                    f"{row['faiss_recall']:.4f}",
                    f"{row['faiss_worst']:.2f}",
                    f"{peer_ms:.3f}",
                ]
            )
            print(table[-1], flush=True)
    print(
        write_report(
            HERE / "results",
            "hnsw_ef",
            figures,
            f"HNSW beam widths on '{args.collection}' ({len(ids):,} chunks, M={HNSW_M}), recall@{DEPTH} against exact"
            f" search, one thread, {cpu_name()}",
            [
                "questions",
                "ef",
                "recall@50",
                "worst",
                "share < 0.9",
                "ms",
                "Faiss recall@50",
                "Faiss worst",
                "Faiss ms",
            ],
            table,
        )
    )


if __name__ == "__main__":
    main()
