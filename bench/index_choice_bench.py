"""When should a collection switch from exact (flat) search to HNSW? Measured, not guessed.

    python bench/index_choice_bench.py

On real 384-d MiniLM embeddings (bench/ann_data.py's minilm set), for growing collection
sizes: the latency of one query (as the app searches: one question at a time, the hybrid
candidate depth of 50) with the flat index and with HNSW as a collection builds it
(retrieval.store's HNSW_M and HNSW_EF), and HNSW's recall against the flat result. Writes bench/results/index_choice.md. The crossover
it shows is retrieval.store.indexes.HNSW_FROM_CHUNKS.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import ann_data  # noqa: E402
from report import per_query_ms  # noqa: E402

from retrieval.index import FlatIndex, HNSWIndex  # noqa: E402
from retrieval.store import HNSW_EF, HNSW_M  # noqa: E402

DEPTH = 50
SIZES = (1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000)


def main() -> None:
    data = ann_data.minilm()
    queries = data.queries[:300]
    lines = [
        f"# Flat or HNSW (M={HNSW_M}, ef={max(HNSW_EF, DEPTH)}) for one query at the hybrid depth (k={DEPTH}), 384-d MiniLM, 1 thread",
        "",
        "| chunks | flat ms | HNSW ms | speed-up | HNSW recall@50 | HNSW build s |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for n in SIZES:
        base = data.base[:n]
        flat = FlatIndex(384)
        flat.add(base)
        hnsw = HNSWIndex(384, M=HNSW_M)
        started = time.perf_counter()
        hnsw.add(base, threads=2)
        build = time.perf_counter() - started
        truth = flat.search(queries, DEPTH)[1]
        found = hnsw.search(queries, DEPTH, ef=max(HNSW_EF, DEPTH))[1]
        recall = np.mean([len(set(a) & set(b)) / DEPTH for a, b in zip(found, truth)])
        f = per_query_ms(lambda q: flat.search(q, DEPTH, threads=1), queries)
        h = per_query_ms(lambda q: hnsw.search(q, DEPTH, threads=1, ef=max(HNSW_EF, DEPTH)), queries)
        lines.append(f"| {n:,} | {f:.3f} | {h:.3f} | {f / h:.1f}x | {recall:.4f} | {build:.1f} |")
        print(lines[-1], flush=True)
    out = Path(__file__).parent / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "index_choice.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
