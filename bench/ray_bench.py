"""Docent on a two-node Ray cluster on this host against Docent on one machine, in one run.

    python bench/ray_bench.py --shared ../shared/data [--vectors 1000000] [--collection-home build/bench-home-ctx2]

1. Ingest: the shared text PDFs (as bench/ingest_bench.py) by the local pipeline, then by Ray
   Data into a sharded collection of two shards (extraction tasks, one embedding actor); the
   same model, loaded before the clock starts on the local side (the Ray side's actor loads its
   own: that is part of its cost).
2. Search through Docent's router: the same passages searched in the local collection and in the
   sharded one (hybrid, vector, keyword), per query p50 and p95.
3. Scatter-gather at scale: --vectors exact vectors (384-d, synthetic: the overhead does not
   depend on their values) in one index searched in this process with two threads, against two
   shard actors of half each, on the two nodes, one thread each, the query fanned out and the
   top k merged as the router does. Reports each path's p50 and p95 and the overhead over the
   slower shard's own search time.
4. What a shard costs, for the projection in docs/scale.md: the resident memory and file bytes
   per chunk of a real collection (--collection-home, e.g. the FinanceBench collection made by
   bench/eval_bench.py), and its hybrid search time in one thread.

Each node gets one CPU (the machine has two cores): the two shards run side by side as on two
machines, and the one-machine runs use both cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # every node on 127.0.0.1

import numpy as np  # noqa: E402
import ray  # noqa: E402

from report import cpu_name  # noqa: E402

HERE = Path(__file__).resolve().parent
DIM = 384
K = 10


def percentiles(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"p50_ms": 1000 * statistics.median(ordered), "p95_ms": 1000 * ordered[int(0.95 * (len(ordered) - 1))]}


def ingest_part(shared: Path, tmp: Path, address: str) -> tuple[dict, object, object]:
    from ingest.sources import expand_paths
    from retrieval.service import Docent
    from retrieval.settings import load_settings

    folder = tmp / "pdfs"
    folder.mkdir()
    for pdf in sorted((shared / "pdfs").glob("pdfminer_*.pdf")):
        if "aes" not in pdf.name:
            (folder / pdf.name).write_bytes(pdf.read_bytes())
    local = Docent(load_settings(home=str(tmp / "local"), model_cache=str(HERE.parent / "build" / "bench-models")))
    local.load_model()
    started = time.perf_counter()
    local_outcomes = local.ingest(expand_paths([str(folder)]), collection="pdfs")
    local_seconds = time.perf_counter() - started
    on_ray = Docent(
        load_settings(
            home=str(tmp / "ray"),
            model_cache=str(HERE.parent / "build" / "bench-models"),
            ray_address=address,
            ray_shards=2,
            ray_shard_cpus=0.25,
            ray_embed_actors=1,
        )
    )
    on_ray._embedder = local.embedder  # the query side; the cluster's actor loads its own
    on_ray.collection("pdfs")  # shard actors up before the clock starts
    started = time.perf_counter()
    ray_outcomes = on_ray.ingest(expand_paths([str(folder)]), collection="pdfs")
    ray_seconds = time.perf_counter() - started
    chunks = sum(o.chunks for o in local_outcomes if o.ok)
    assert chunks == sum(o.chunks for o in ray_outcomes if o.ok), "the two pipelines stored different chunks"
    result = {
        "files": len(local_outcomes),
        "chunks": chunks,
        "local_s": local_seconds,
        "ray_s": ray_seconds,
        "ray_vs_local": local_seconds / ray_seconds,
    }
    return result, local, on_ray


def router_part(local, on_ray, queries: list[str]) -> list[dict]:
    from retrieval.search import search

    rows = []
    single, sharded = local.collection("pdfs"), on_ray.collection("pdfs")
    vectors = [local.embedder.embed_query(q) for q in queries]
    for mode in ("hybrid", "vector", "keyword"):
        times = {"one machine": [], "two shards": []}
        for _ in range(3):
            for query, vector in zip(queries, vectors):
                for name, store in (("one machine", single), ("two shards", sharded)):
                    started = time.perf_counter()
                    search(store, query, query_vector=vector, k=K, mode=mode)
                    times[name].append(time.perf_counter() - started)
        one, two = percentiles(times["one machine"]), percentiles(times["two shards"])
        rows.append({"mode": mode, "one": one, "two": two, "overhead_p50_ms": two["p50_ms"] - one["p50_ms"]})
    return rows


@ray.remote(num_cpus=1)
class BenchShard:
    """Half of the vectors (made here from a seed: nothing large crosses the wire), exact search."""

    def __init__(self, n: int, seed: int):
        from retrieval.index import FlatIndex

        self.index = FlatIndex(DIM, metric="ip")
        for first in range(0, n, 100_000):
            part = make_vectors(min(100_000, n - first), seed * 1000 + first // 100_000)
            self.index.add(part, np.arange(first, first + len(part)) + seed * n)

    def search(self, query: np.ndarray) -> tuple[float, list]:
        started = time.perf_counter()
        scores, ids = self.index.search(query[None, :], K, threads=1)
        return time.perf_counter() - started, list(zip(scores[0].tolist(), ids[0].tolist()))


def make_vectors(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, DIM), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def scatter_part(n: int, queries: int) -> dict:
    from retrieval.index import FlatIndex

    half = n // 2
    shards = [BenchShard.remote(half, seed) for seed in (0, 1)]
    ray.get([s.search.remote(make_vectors(1, 99)[0]) for s in shards])  # built and warm
    whole = FlatIndex(DIM, metric="ip")
    for seed in (0, 1):
        for first in range(0, half, 100_000):
            part = make_vectors(min(100_000, half - first), seed * 1000 + first // 100_000)
            whole.add(part, np.arange(first, first + len(part)) + seed * half)
    qs = make_vectors(queries, 7)
    local, sharded, slowest = [], [], []
    for q in qs:
        started = time.perf_counter()
        scores, ids = whole.search(q[None, :], K, threads=2)
        local.append(time.perf_counter() - started)
        started = time.perf_counter()
        answers = ray.get([s.search.remote(q) for s in shards])
        merged = sorted((hit for _, hits in answers for hit in hits), key=lambda h: (-h[0], h[1]))[:K]
        sharded.append(time.perf_counter() - started)
        slowest.append(max(t for t, _ in answers))
        assert [i for _, i in merged] == ids[0].tolist(), "sharded exact search found other vectors"
    overhead = [s - t for s, t in zip(sharded, slowest)]
    return {
        "vectors": n,
        "queries": queries,
        "one": percentiles(local),
        "two": percentiles(sharded),
        "shard_search": percentiles(slowest),
        "overhead": percentiles(overhead),
    }


def resident_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def shard_cost_part(home: Path) -> dict | None:
    """Bytes and search time per chunk of a real collection (the projection's inputs)."""
    from retrieval.search import search
    from retrieval.service import Docent
    from retrieval.settings import load_settings

    names = [p.name for p in (home / "collections").iterdir() if (p / "docent.sqlite3").exists()]
    if not names:
        return None
    docent = Docent(load_settings(home=str(home), model_cache=str(HERE.parent / "build" / "bench-models")))
    docent.load_model()
    before = resident_bytes()
    store = docent.collection(names[0])
    after = resident_bytes()
    chunks = store.chunk_count()
    folder = home / "collections" / names[0]
    files = {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()}
    questions = ["total revenue", "net cash provided by operating activities", "dividends paid per share"] * 20
    vectors = [docent.embedder.embed_query(q) for q in questions]
    times = {mode: [] for mode in ("hybrid", "vector", "keyword")}
    for mode in times:
        for q, v in zip(questions, vectors):
            started = time.perf_counter()
            search(store, q, query_vector=v, k=K, mode=mode)
            times[mode].append(time.perf_counter() - started)
    return {
        "collection": names[0],
        "chunks": chunks,
        "resident_bytes_per_chunk": (after - before) / chunks,
        "file_bytes_per_chunk": {name: size / chunks for name, size in files.items()},
        **{mode: percentiles(samples) for mode, samples in times.items()},
        "index": type(store.indexes.vectors).__name__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--collection-home", type=Path, default=HERE.parent / "build" / "bench-home-ctx2")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--only-shard-cost", action="store_true", help="part 4 alone (no cluster)")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent / "tests"))
    if args.only_shard_cost:
        print(json.dumps(shard_cost_part(args.collection_home), indent=2))
        return

    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False},
    )
    cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    result = {"cpu": cpu_name()}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            from support.docstrings import QUERIES

            result["ingest"], local, on_ray = ingest_part(args.shared, Path(tmp), cluster.address)
            result["router"] = router_part(local, on_ray, list(QUERIES))
            on_ray.delete_collection("pdfs")  # its shard actors go, freeing the nodes' CPUs
        result["scatter"] = scatter_part(args.vectors, args.queries)
    finally:
        ray.shutdown()
        cluster.shutdown()
    if args.collection_home.is_dir():
        result["shard_cost"] = shard_cost_part(args.collection_home)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ray.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
