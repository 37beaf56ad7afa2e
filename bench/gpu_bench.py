"""The GPU engine against torch (matmul + topk on the same GPU) and, when installed, Faiss's GPU
build: exact search over 1,000,000 x 384 vectors with 1,024 queries (k=10), and IVF-Flat and
IVF-PQ (48 bytes a vector, plain and re-ranked) at recall@10 = 0.95.

    python bench/gpu_bench.py [--n 1000000] [--dim 384] [--queries 1024]

Needs a CUDA GPU and Docent built with its GPU engine (a CUDA compiler at `pip install .`).
The vectors are a Gaussian mixture (10,000 centres, unit length), so IVF cells mean something.
For each run: queries per second (best of 5 after a warm-up) and the share of the GPU's bound:
the time the arithmetic would take at peak (tensor cores for f16/bf16, CUDA cores for f32) or
the time reading the vectors would take at peak memory bandwidth, whichever is longer, over
the time measured. Writes bench/results/gpu.md and gpu.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from retrieval.index import gpu

HERE = Path(__file__).resolve().parent
# Dense peaks (no sparsity) from the vendors' data sheets: TFLOPS and TB/s.
PEAKS = {
    "H200": {"f32": 67, "f16": 989, "bf16": 989, "bandwidth": 4.8},
    "H100": {"f32": 67, "f16": 989, "bf16": 989, "bandwidth": 3.35},
    "A100": {"f32": 19.5, "f16": 312, "bf16": 312, "bandwidth": 2.0},
}


def peaks_for(name: str) -> dict | None:
    return next((p for key, p in PEAKS.items() if key in name), None)


def timed(run, repeats: int = 5) -> float:
    run()  # warm-up (and kernel loading)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def make_data(n: int, dim: int, nq: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((10_000, dim)).astype(np.float32)
    base = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        part = slice(start, min(n, start + 100_000))
        rows = part.stop - part.start
        base[part] = centres[rng.integers(0, len(centres), rows)] + 0.6 * rng.standard_normal((rows, dim)).astype(
            np.float32
        )
    queries = centres[rng.integers(0, len(centres), nq)] + 0.6 * rng.standard_normal((nq, dim)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return base, queries.astype(np.float32)


def share(seconds: float, n: int, dim: int, nq: int, precision: str | None, peaks: dict | None) -> float | None:
    if peaks is None or precision is None:
        return None
    element = 4 if precision == "f32" else 2
    arithmetic = 2.0 * n * dim * nq / (peaks[precision] * 1e12)
    reading = n * dim * element / (peaks["bandwidth"] * 1e12)
    return max(arithmetic, reading) / seconds


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def record_ivf(name: str, index, queries: np.ndarray, k: int, truth: np.ndarray, record, note: str = "") -> None:
    """Times the smallest nprobe whose recall@k reaches 0.95 (or the largest tried, saying so)."""
    largest = min(index.nlist, gpu.MAX_K)
    for nprobe in [p for p in (1, 2, 4, 8, 16, 32, 64, 128) if p < largest] + [largest]:
        reached = recall(index.search(queries, k, nprobe=nprobe)[1], truth)
        if reached >= 0.95:
            break
    seconds = timed(lambda: index.search(queries, k, nprobe=nprobe))
    never = "" if reached >= 0.95 else " (never reaches 0.95)"
    # An IVF search reads a few cells, shared by many queries: no single bound applies, so no share.
    record(
        "Docent",
        f"{name} nprobe={nprobe}",
        seconds,
        None,
        f"recall@{k} {reached:.4f}{never}" + (f"; {note}" if note else ""),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1024)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--nlist", type=int, default=4096, help="IVF cells")
    parser.add_argument("--pq-m", type=int, default=48, help="IVF-PQ bytes per vector (must divide dim)")
    args = parser.parse_args()
    reason = gpu.unavailable_reason()
    if reason:
        raise SystemExit(f"no GPU to benchmark: {reason}")
    device = gpu.devices()[0]
    peaks = peaks_for(device["name"])
    n, dim, nq, k = args.n, args.dim, args.queries, args.k
    base, queries = make_data(n, dim, nq)
    rows = []

    def record(library: str, run: str, seconds: float, precision: str | None, note: str = "") -> None:
        rows.append(
            {
                "library": library,
                "run": run,
                "qps": nq / seconds,
                "ms": seconds * 1000,
                "share_of_bound": share(seconds, n, dim, nq, precision, peaks),
                "note": note,
            }
        )
        print(rows[-1], flush=True)

    truth = None
    for precision in ("f32", "f16", "bf16"):
        index = gpu.GpuFlatIndex(dim, metric="ip", precision=precision)
        index.add(base)
        seconds = timed(lambda: index.search(queries, k))
        ids = index.search(queries, k)[1]
        if precision == "f32":
            truth = ids
        record("Docent", f"exact {precision}", seconds, precision, f"recall@{k} {recall(ids, truth):.4f}")
        index.reset()  # frees its GPU memory before the next precision

    try:
        import torch

        if not torch.cuda.is_available():
            raise ImportError("torch has no CUDA here")
        for precision, dtype in (("f32", torch.float32), ("f16", torch.float16), ("bf16", torch.bfloat16)):
            x = torch.from_numpy(base).to("cuda", dtype)
            q_host = torch.from_numpy(queries)

            def torch_search():
                q = q_host.to("cuda", dtype)
                values, ids = torch.topk(q @ x.T, k, dim=1)
                return values.float().cpu(), ids.cpu()

            if precision == "f32":
                torch.backends.cuda.matmul.allow_tf32 = False
            # An independent check of Docent's exact answers: torch's fp32 top k is the same set.
            agreement = recall(torch_search()[1].numpy(), truth)
            record(
                f"torch {torch.__version__}",
                f"matmul+topk {precision}",
                timed(lambda: (torch_search(), torch.cuda.synchronize())),
                precision,
                f"recall@{k} against Docent f32 {agreement:.4f}",
            )
            x = None
            torch.cuda.empty_cache()
    except ImportError as exc:
        print(f"torch skipped: {exc}")

    # IVF at recall@10 = 0.95: the smallest nprobe that reaches it, for whole vectors and for
    # PQ codes (48 bytes for 384-d: 32x smaller), plain and re-ranked with the fp32 originals.
    nlist, pq_m = args.nlist, args.pq_m
    sample = base[np.random.default_rng(1).choice(n, min(n, 256 * nlist), replace=False)]
    ivf = gpu.GpuIvfFlatIndex(dim, gpu.kmeans(sample, nlist, iterations=20, spherical=True), metric="ip")
    ivf.add(base)
    record_ivf(f"IVF{nlist},Flat", ivf, queries, k, truth, record)
    del ivf
    for rerank in (False, True):
        pq = gpu.GpuIvfPqIndex.train(sample, nlist, pq_m, metric="ip", rerank=rerank)
        pq.add(base)
        record_ivf(
            f"IVF{nlist},PQ{pq_m}" + (",Rerank" if rerank else ""),
            pq,
            queries,
            k,
            truth,
            record,
            f"{pq.memory_bytes / 2**20:,.1f} MiB on the GPU",
        )
        del pq

    try:
        import faiss

        if not hasattr(faiss, "StandardGpuResources"):
            raise ImportError("this Faiss has no GPU support")
        resources = faiss.StandardGpuResources()
        flat = faiss.GpuIndexFlatIP(resources, dim)
        flat.add(base)
        record(f"Faiss {faiss.__version__}", "GpuIndexFlatIP f32", timed(lambda: flat.search(queries, k)), "f32")
    except ImportError as exc:
        print(f"Faiss GPU skipped: {exc}")

    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "gpu.json").write_text(
        json.dumps({"device": device, "n": n, "dim": dim, "queries": nq, "k": k, "rows": rows}, indent=2)
    )
    lines = [
        f"# GPU search on {device['name']}: {n:,} x {dim}, {nq} queries, k={k}",
        "",
        "| library | run | QPS | ms | share of bound | note |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in rows:
        bound = f"{100 * r['share_of_bound']:.0f}%" if r["share_of_bound"] is not None else "n/a"
        lines.append(f"| {r['library']} | {r['run']} | {r['qps']:,.0f} | {r['ms']:.2f} | {bound} | {r['note']} |")
    (out / "gpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
