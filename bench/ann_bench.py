"""ANN benchmark, ann-benchmarks style: Docent's engine against Faiss, hnswlib and USearch.

    python bench/ann_bench.py                      # both data sets, every library (~15 min on 2 cores)
    python bench/ann_bench.py --datasets glove --libraries docent-hnsw hnswlib

Same data, same parameters (M, efConstruction, the ef sweep) and the same threads for every
library, in one run. Every (data set, library) pair runs in its own process, so that its
memory is measured alone: the growth of the resident set while the index is built (after its
modules are imported, and with freed heap pages returned to the system), per vector.
Build time is measured with the largest thread count; queries go as one batch of 1,000 per
call (the libraries spread them over their threads) and each point is the best of three runs.
Recall is recall@10 against exact search. Vectors are normalized once and every library runs
inner product on them (for GloVe that is cosine).

Writes bench/results/ann.json, ann.md (tables) and ann_<dataset>.png (recall against queries
per second, one panel per thread count).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import ann_data  # noqa: E402

M, EF_CONSTRUCTION, K = 16, 200, 10
EF_SWEEP = (10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
TARGET_RECALL = 0.95
RESULTS = Path(__file__).parent / "results"


# ---- the libraries, each behind the same three calls -------------------------------------------


class Docent:
    def __init__(self, dim, description="HNSW16"):
        from retrieval.index import index_factory

        self.index = index_factory(dim, description, metric="ip", ef_construction=EF_CONSTRUCTION)

    def build(self, base, threads):
        self.index.add(base, np.arange(len(base)), threads=threads)

    def search(self, queries, ef, threads):
        return self.index.search(queries, K, ef=ef, threads=threads)[1]


class FaissHNSW:
    def __init__(self, dim, sq8=False):
        import faiss

        self.faiss = faiss
        if sq8:
            self.index = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_8bit, M, faiss.METRIC_INNER_PRODUCT)
        else:
            self.index = faiss.IndexHNSWFlat(dim, M, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = EF_CONSTRUCTION

    def build(self, base, threads):
        self.faiss.omp_set_num_threads(threads)
        if not self.index.is_trained:
            self.index.train(base)
        self.index.add(base)

    def search(self, queries, ef, threads):
        self.faiss.omp_set_num_threads(threads)
        self.index.hnsw.efSearch = ef
        return self.index.search(queries, K)[1]


class Hnswlib:
    def __init__(self, dim):
        import hnswlib

        self.index = hnswlib.Index(space="ip", dim=dim)
        self.dim = dim

    def build(self, base, threads):
        self.index.init_index(max_elements=len(base), M=M, ef_construction=EF_CONSTRUCTION, random_seed=100)
        self.index.set_num_threads(threads)
        self.index.add_items(base, np.arange(len(base)))

    def search(self, queries, ef, threads):
        self.index.set_ef(ef)
        self.index.set_num_threads(threads)
        return self.index.knn_query(queries, k=K)[0]


class USearch:
    def __init__(self, dim):
        from usearch.index import Index

        self.index = Index(ndim=dim, metric="ip", dtype="f32", connectivity=M, expansion_add=EF_CONSTRUCTION)

    def build(self, base, threads):
        self.index.add(np.arange(len(base)), base, threads=threads)

    def search(self, queries, ef, threads):
        self.index.expansion_search = ef
        return self.index.search(queries, K, threads=threads).keys


LIBRARIES = {
    "docent-hnsw": lambda dim: Docent(dim, "HNSW16"),
    "docent-hnsw-f16": lambda dim: Docent(dim, "HNSW16,SQfp16"),
    "docent-hnsw-sq8-rerank": lambda dim: Docent(dim, "HNSW16,SQ8,Rerank"),
    "docent-hnsw-sq8": lambda dim: Docent(dim, "HNSW16,SQ8"),
    "faiss-hnsw-flat": lambda dim: FaissHNSW(dim),
    "faiss-hnsw-sq8": lambda dim: FaissHNSW(dim, sq8=True),
    "hnswlib": Hnswlib,
    "usearch": USearch,
}


# ---- one (data set, library) pair, in its own process ----------------------------------------


def resident_bytes() -> int:
    """Resident memory, after handing freed heap pages back (so no library pays for garbage)."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def load(name: str):
    data = ann_data.DATASETS[name]()
    base = data.base / np.linalg.norm(data.base, axis=1, keepdims=True)
    queries = data.queries / np.linalg.norm(data.queries, axis=1, keepdims=True)
    return data, np.ascontiguousarray(base, np.float32), np.ascontiguousarray(queries, np.float32)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a.tolist()) & set(b.tolist())) / K for a, b in zip(found, truth[:, :K])]))


def run_pair(dataset: str, library: str, threads: list[int], efs: list[int], repeats: int) -> dict:
    data, base, queries = load(dataset)
    LIBRARIES[library](base.shape[1])  # import the library's modules before the baseline
    gc.collect()
    before = resident_bytes()
    lib = LIBRARIES[library](base.shape[1])
    started = time.perf_counter()
    lib.build(base, max(threads))
    build_s = time.perf_counter() - started
    gc.collect()
    memory = resident_bytes() - before
    curves = {}
    for t in threads:
        points = []
        for ef in efs:
            best, found = float("inf"), None
            for _ in range(repeats):
                started = time.perf_counter()
                found = lib.search(queries, ef, t)
                best = min(best, time.perf_counter() - started)
            points.append({"ef": ef, "recall": recall(np.asarray(found), data.truth), "qps": len(queries) / best})
            if points[-1]["recall"] > 0.999:
                break
        curves[str(t)] = points
    return {
        "dataset": data.name,
        "library": library,
        "build_s": build_s,
        "bytes_per_vector": memory / len(base),
        "curves": curves,
    }


def run_exact(dataset: str, threads: list[int], repeats: int) -> list[dict]:
    """Exact batched search: all 1,000 queries in one call, Docent's flat index and Faiss IndexFlatIP."""
    import faiss

    from retrieval.index import FlatIndex

    data, base, queries = load(dataset)
    ours = FlatIndex(base.shape[1], metric="ip")
    ours.add(base)
    theirs = faiss.IndexFlatIP(base.shape[1])
    theirs.add(base)
    rows = []
    for t in threads:
        faiss.omp_set_num_threads(t)
        timings = {}
        for name, search in (
            ("docent-flat", lambda: ours.search(queries, K, threads=t)[1]),
            ("faiss-flat-ip", lambda: theirs.search(queries, K)[1]),
        ):
            search()  # warm up
            best = float("inf")
            for _ in range(repeats):
                started = time.perf_counter()
                found = search()
                best = min(best, time.perf_counter() - started)
            timings[name] = {"qps": len(queries) / best, "recall": recall(found, data.truth)}
        rows.append({"dataset": data.name, "threads": t, **timings})
    return rows


# ---- the report ---------------------------------------------------------------------------------


def qps_at(points: list[dict], target: float = TARGET_RECALL) -> float | None:
    """QPS at the target recall, interpolated (log QPS, linear recall) between the two sweep points around it."""
    points = sorted(points, key=lambda p: p["recall"])
    for low, high in zip(points, points[1:]):
        if low["recall"] <= target <= high["recall"] and high["recall"] > low["recall"]:
            share = (target - low["recall"]) / (high["recall"] - low["recall"])
            return float(np.exp(np.log(low["qps"]) + share * (np.log(high["qps"]) - np.log(low["qps"]))))
    above = [p["qps"] for p in points if p["recall"] >= target]
    return max(above) if above else None


def report(results: list[dict], exact: list[dict], threads: list[int]) -> str:
    lines = [f"# ANN benchmark: M={M}, efConstruction={EF_CONSTRUCTION}, k={K}, 1,000 queries per batch", ""]
    for dataset in dict.fromkeys(r["dataset"] for r in results):
        rows = [r for r in results if r["dataset"] == dataset]
        lines += [f"## {dataset}", ""]
        head = "| library | build s | bytes/vector | " + " | ".join(f"QPS@{TARGET_RECALL} ({t} thr)" for t in threads)
        head += (
            " | "
            + " | ".join(f"vs hnswlib ({t})" for t in threads)
            + " | "
            + " | ".join(f"vs faiss ({t})" for t in threads)
            + " | best recall |"
        )
        lines += [head, "|" + "---|" * (4 + 3 * len(threads))]
        ref = {name: next((r for r in rows if r["library"] == name), None) for name in ("hnswlib", "faiss-hnsw-flat")}
        for r in rows:
            cells = [r["library"], f"{r['build_s']:.1f}", f"{r['bytes_per_vector']:.0f}"]
            at = {t: qps_at(r["curves"][str(t)]) for t in threads}
            cells += [f"{at[t]:.0f}" if at[t] else "-" for t in threads]
            for name in ("hnswlib", "faiss-hnsw-flat"):
                for t in threads:
                    other = qps_at(ref[name]["curves"][str(t)]) if ref[name] else None
                    cells.append(f"{at[t] / other:.2f}x" if at[t] and other else "-")
            best = max(p["recall"] for p in r["curves"][str(threads[0])])
            cells.append(f"{best:.4f}")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if exact:
        lines += [
            "## Exact batched search (1,000 queries in one call)",
            "",
            "| data set | threads | Docent flat QPS | Faiss IndexFlatIP QPS | ratio |",
            "|---|---:|---:|---:|---:|",
        ]
        for row in exact:
            d, f = row["docent-flat"]["qps"], row["faiss-flat-ip"]["qps"]
            lines.append(f"| {row['dataset']} | {row['threads']} | {d:.0f} | {f:.0f} | {d / f:.2f}x |")
        lines.append("")
    return "\n".join(lines)


def plot(results: list[dict], threads: list[int], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for dataset in dict.fromkeys(r["dataset"] for r in results):
        fig, axes = plt.subplots(1, len(threads), figsize=(6 * len(threads), 4.5), squeeze=False)
        for ax, t in zip(axes[0], threads):
            for r in (r for r in results if r["dataset"] == dataset):
                points = r["curves"][str(t)]
                style = "-" if r["library"].startswith("docent") else "--"
                ax.plot(
                    [p["recall"] for p in points],
                    [p["qps"] for p in points],
                    style,
                    marker="o",
                    ms=3,
                    label=r["library"],
                )
            ax.set_yscale("log")
            ax.set_xlabel("recall@10")
            ax.set_ylabel("queries per second")
            ax.set_title(f"{dataset}, {t} thread{'s' if t > 1 else ''}")
            ax.axvline(TARGET_RECALL, color="grey", lw=0.5)
            ax.grid(True, which="both", lw=0.3)
            ax.legend(fontsize=7)
        fig.tight_layout()
        path = out / f"ann_{dataset.split()[0]}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["glove", "minilm"], choices=sorted(ann_data.DATASETS))
    parser.add_argument("--libraries", nargs="+", default=list(LIBRARIES), choices=list(LIBRARIES))
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--ef", nargs="+", type=int, default=list(EF_SWEEP))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-exact", action="store_true", help="skip the exact-search comparison")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:  # one pair, in this process; the result goes to stdout as JSON
        job = json.loads(args.worker)
        result = (
            run_exact(job["dataset"], job["threads"], job["repeats"])
            if job["library"] == "exact"
            else run_pair(job["dataset"], job["library"], job["threads"], job["efs"], job["repeats"])
        )
        print("RESULT " + json.dumps(result))
        return

    results, exact = [], []
    for dataset in args.datasets:
        ann_data.DATASETS[dataset]()  # build the cache once, before the timed runs
        jobs = [*args.libraries] + ([] if args.no_exact else ["exact"])
        for library in jobs:
            job = {
                "dataset": dataset,
                "library": library,
                "threads": args.threads,
                "efs": args.ef,
                "repeats": args.repeats,
            }
            print(f"{dataset} / {library} ...", flush=True)
            proc = subprocess.run(
                [sys.executable, __file__, "--worker", json.dumps(job)], capture_output=True, text=True
            )
            line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT ")), None)
            if proc.returncode != 0 or line is None:
                print(f"  failed: {proc.stderr.strip()[-500:]}", file=sys.stderr)
                continue
            result = json.loads(line[len("RESULT ") :])
            if library == "exact":
                exact += result
            else:
                results.append(result)
                at = {t: qps_at(result["curves"][str(t)]) for t in args.threads}
                print(
                    f"  build {result['build_s']:.1f} s, {result['bytes_per_vector']:.0f} B/vector, QPS@{TARGET_RECALL}: {at}",
                    flush=True,
                )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ann.json").write_text(json.dumps({"results": results, "exact": exact}, indent=1))
    text = report(results, exact, args.threads)
    (args.out / "ann.md").write_text(text + "\n")
    for path in plot(results, args.threads, args.out):
        print(f"wrote {path}")
    print(text)


if __name__ == "__main__":
    main()
