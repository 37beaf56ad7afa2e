"""A million chunks in one collection on one machine: ingest rate, disk and memory per chunk, and
search latency in each mode, through the same Collection and search() calls the app makes.

    python bench/million_bench.py [--chunks 1000000] [--work /tmp/docent-million] [--out bench/results]

What is real and what is sampled. A million distinct real chunks are not on this machine, and
embedding them would take hours of its CPU (the rate is measured here, on real chunks). So:
- text: each chunk's words are drawn from the Python standard library's words as often as they
  occur there, as long as its real 135-word chunks (bm25_bench.stdlib_chunks), 20 chunks a
  document; their keyword terms are computed as ingest computes them (keyword_terms);
- vectors: drawn from a Gaussian mixture fitted to all-MiniLM-L6-v2's embeddings of the library's
  21,000 real chunks (1,024 k-means centres, one covariance around them), then normalised; the
  bench checks the stand-in at the real set's size (nearest-neighbour cosine, HNSW recall), and
  `--stand-in-at 100000` at a larger one, beside real vectors of that size;
- queries: 200 real docstring sentences, embedded by the model (keyword and hybrid search use
  their words).
The store writes (SQLite, the keyword index, the HNSW graph the collection switches to at its
size, the index files saved as it goes) are exactly the app's. Embedding is timed apart, on the
real chunks, and reported as what it would add. Searching runs in a fresh process that opens the
saved collection, so its memory is what a server holding the collection needs. Vector recall is
checked against exact search over the same vectors. Writes bench/results/million.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import ann_data  # noqa: E402
from bm25_bench import docstring_queries, stdlib_chunks  # noqa: E402
from report import cpu_name, write_report  # noqa: E402

from ingest.models import Chunk, Document, Page  # noqa: E402
from retrieval.embed import Embedder  # noqa: E402
from retrieval.index import HNSWIndex  # noqa: E402
from retrieval.keywords import keyword_terms  # noqa: E402
from retrieval.search import search  # noqa: E402
from retrieval.store import HNSW_EF, HNSW_M, Collection, PreparedDocument  # noqa: E402

CHUNKS_PER_DOCUMENT = 20
DOCUMENTS_PER_WRITE = 100  # one transaction, as a folder upload writes its batch
VECTOR_CLUSTERS = 1024
QUERIES = 200
REPORT_EVERY = 100_000
EF_SWEEP = (HNSW_EF, 2 * HNSW_EF, 4 * HNSW_EF)  # the app's beam, and wider ones


def memory_mib(field: str) -> float:
    """A memory figure of this process from /proc: VmRSS (resident now) or VmHWM (its peak;
    unlike ru_maxrss, not carried over exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


class WordSampler:
    """Chunk texts drawn to a real corpus's word frequencies and chunk lengths."""

    def __init__(self, texts: list[str], seed: int):
        counts: dict[str, int] = {}
        for text in texts:
            for word in text.split():
                counts[word] = counts.get(word, 0) + 1
        self.words = np.asarray(list(counts), dtype=object)
        self.cumulative = np.cumsum(np.fromiter(counts.values(), dtype=np.float64))
        self.lengths = np.asarray([len(t.split()) for t in texts])
        self.rng = np.random.default_rng(seed)

    def texts(self, n: int) -> list[str]:
        lengths = self.rng.choice(self.lengths, size=n)
        draws = np.searchsorted(self.cumulative, self.rng.random(int(lengths.sum())) * self.cumulative[-1], "right")
        words = self.words[draws]
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        return [" ".join(words[bounds[i] : bounds[i + 1]]) for i in range(n)]


class VectorSampler:
    """Unit vectors from a Gaussian mixture fitted to real embeddings: spherical k-means
    centres, weighted by their members, and one covariance of the members around their centres
    (real chunks gather by topic; one Gaussian over all of them would spread the vectors
    evenly, which is not what an index meets)."""

    def __init__(self, real: np.ndarray, clusters: int, seed: int):
        self.rng = np.random.default_rng(seed)
        centres = real[self.rng.choice(len(real), clusters, replace=False)]
        for _ in range(15):
            member = np.argmax(real @ centres.T, axis=1)
            for c in range(clusters):
                if (member == c).any():
                    centres[c] = real[member == c].mean(axis=0)
        member = np.argmax(real @ centres.T, axis=1)
        residual = real - centres[member]
        dim = real.shape[1]
        self.centres = centres
        self.weights = np.bincount(member, minlength=clusters) / len(real)
        self.factor = np.linalg.cholesky(np.cov(residual, rowvar=False) + 1e-6 * np.eye(dim))

    def vectors(self, n: int) -> np.ndarray:
        picked = self.rng.choice(len(self.centres), size=n, p=self.weights)
        z = self.rng.standard_normal((n, self.centres.shape[1]))
        v = (self.centres[picked] + z @ self.factor.T).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def graph_figures(vectors: np.ndarray, queries: np.ndarray, efs=(HNSW_EF,)) -> dict:
    """The mean cosine of a vector to its nearest neighbour, and the recall@10 of the
    collection's HNSW graph over these vectors for the queries, at each beam width."""
    some = vectors[:500] @ vectors.T
    some[np.arange(500), np.arange(500)] = -1
    index = HNSWIndex(vectors.shape[1], metric="ip", M=HNSW_M)
    index.add(vectors, np.arange(len(vectors)))
    exact = ann_data.exact_truth(vectors, queries, 10)
    figures = {"nearest_cosine": round(float(some.max(axis=1).mean()), 3)}
    for ef in efs:
        _, found = index.search(queries, 10, ef=ef)
        figures[f"recall_at_10_ef{ef}"] = round(recall(found.tolist(), exact), 4)
    return figures


def stand_in_check(real: np.ndarray, sampled: np.ndarray, queries: np.ndarray) -> dict:
    """The sampled vectors against the real ones at the real set's size."""
    return {"real": graph_figures(real, queries), "sampled": graph_figures(sampled, queries)}


def stand_in_at(size: int) -> dict:
    """How the stand-in behaves at a larger size, and against real vectors of that size: this
    bench's stand-in with its questions, and bench/ann_data.py's 100,000 real MiniLM passages of
    the Python documentation (held-out passages as queries) beside a stand-in fitted to 21,000
    of them (needs python3.11-doc; embedded once and cached)."""
    embedder = Embedder()
    real = stdlib_chunks(21_000)
    queries = np.stack([embedder.embed_query(q) for q in docstring_queries(real, QUERIES)])
    sampler = VectorSampler(embedder.embed(real), VECTOR_CLUSTERS, seed=12)
    figures = {"stand_in": graph_figures(sampler.vectors(size), queries, EF_SWEEP)}
    pydoc = ann_data.minilm()
    base, held_out = pydoc.base.astype(np.float32)[:size], pydoc.queries.astype(np.float32)
    figures["pydoc_real"] = graph_figures(base, held_out, EF_SWEEP)
    fitted = VectorSampler(base[:21_000], VECTOR_CLUSTERS, seed=12)
    figures["pydoc_stand_in"] = graph_figures(fitted.vectors(len(base)), held_out, EF_SWEEP)
    return figures


def folder_bytes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()}


def ingest(args) -> dict:
    real = stdlib_chunks(21_000)
    embedder = Embedder()
    start = time.perf_counter()
    real_vectors = embedder.embed(real)
    embed_rate = len(real) / (time.perf_counter() - start)
    queries = docstring_queries(real, QUERIES)
    query_vectors = np.stack([embedder.embed_query(q) for q in queries])
    np.save(args.work / "queries.npy", query_vectors)
    (args.work / "queries.json").write_text(json.dumps(queries))
    words, vectors = WordSampler(real, seed=11), VectorSampler(real_vectors, VECTOR_CLUSTERS, seed=12)
    check = stand_in_check(real_vectors, vectors.vectors(len(real_vectors)), query_vectors)
    print(json.dumps(check), flush=True)
    model_name, dim = embedder.name, embedder.dim
    del embedder

    folder = args.work / "collection"
    collection = Collection(folder, model_name=model_name, dim=dim, gpu_search=False)
    all_vectors = open(args.work / "vectors.f32", "wb")  # for the exact search that checks recall
    per_write = CHUNKS_PER_DOCUMENT * DOCUMENTS_PER_WRITE
    prepare_s = store_s = 0.0
    progress, last_store_s, last_done = [], 0.0, 0
    for first in range(0, args.chunks, per_write):
        n = min(per_write, args.chunks - first)
        started = time.perf_counter()
        texts = words.texts(n)
        batch_vectors = vectors.vectors(n)
        all_vectors.write(batch_vectors.tobytes())
        prepared = []
        for d in range(0, n, CHUNKS_PER_DOCUMENT):
            number = (first + d) // CHUNKS_PER_DOCUMENT
            title = f"Document {number}"
            chunk_texts = texts[d : d + CHUNKS_PER_DOCUMENT]
            chunks = [
                Chunk(text=t, context=title, page=1 + j // 4, section=None, ordinal=j, char_start=0, char_end=len(t))
                for j, t in enumerate(chunk_texts)
            ]
            pages = [Page(number=p, text="") for p in range(1, 1 + (len(chunks) + 3) // 4)]
            document = Document(f"doc-{number}.txt", title, "text", f"{number:064x}", pages)
            terms = [keyword_terms(c.index_text) for c in chunks]
            prepared.append((document, chunks, batch_vectors[d : d + len(chunks)], terms))
        prepare_s += time.perf_counter() - started
        started = time.perf_counter()
        collection.write_documents([PreparedDocument(*p) for p in prepared])
        store_s += time.perf_counter() - started
        done = first + n
        if done % REPORT_EVERY == 0 or done == args.chunks:
            progress.append(
                {
                    "chunks": done,
                    "store_s": round(store_s, 1),
                    "rate_since_last": round((done - last_done) / max(store_s - last_store_s, 1e-9)),
                    "resident_mib": round(memory_mib("VmRSS")),
                    "vector_index": type(collection.indexes.vectors).__name__,
                }
            )
            last_store_s, last_done = store_s, done
            print(json.dumps(progress[-1]), flush=True)
    started = time.perf_counter()
    collection.close()
    close_s = time.perf_counter() - started
    all_vectors.close()
    return {
        "chunks": args.chunks,
        "embed_chunks_per_s": round(embed_rate, 1),
        "prepare_s": round(prepare_s, 1),
        "store_s": round(store_s + close_s, 1),
        "store_chunks_per_s": round(args.chunks / (store_s + close_s)),
        "ingest_peak_mib": round(memory_mib("VmHWM")),
        "progress": progress,
        "files": folder_bytes(folder),
        "stand_in_check": check,
        "real_chunks": len(real),
        "model": model_name,
        "dim": dim,
    }


def percentiles(seconds: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(float(np.percentile(seconds, 50)) * 1e3, 2),
        "p95_ms": round(float(np.percentile(seconds, 95)) * 1e3, 2),
    }


def serve(args) -> dict:
    """In a fresh process: open the saved collection, then search as the app does."""
    info = json.loads((args.work / "ingest.json").read_text())
    before = memory_mib("VmRSS")
    started = time.perf_counter()
    collection = Collection(args.work / "collection", model_name=info["model"], dim=info["dim"], gpu_search=False)
    open_s = time.perf_counter() - started
    opened_mib = memory_mib("VmRSS") - before
    queries = json.loads((args.work / "queries.json").read_text())
    query_vectors = np.load(args.work / "queries.npy")
    figures = {"open_s": round(open_s, 1), "open_resident_mib": round(opened_mib), "modes": {}}
    for mode in ("keyword", "vector", "hybrid"):
        times, found = [], []
        for text, vector in zip(queries, query_vectors):
            started = time.perf_counter()
            results = search(collection, text, query_vector=vector, k=10, mode=mode, fusion="leaders")
            times.append(time.perf_counter() - started)
            found.append([hit.chunk_id for hit in results])
        figures["modes"][mode] = percentiles(times)
        if mode != "hybrid":  # the native index's own part of it
            figures["modes"][f"{mode}, index only"] = percentiles(index_times(collection, mode, queries, query_vectors))
        if mode == "vector":
            vector_found = found
    figures["serve_peak_mib"] = round(memory_mib("VmHWM"))  # before the exact search maps every vector
    exact = exact_top10(args.work, query_vectors)
    figures["vector_recall_at_10"] = round(recall(vector_found, exact), 4)
    figures["ef_sweep"] = ef_sweep(collection, query_vectors, exact)
    collection.close()
    return figures


def index_times(collection: Collection, mode: str, queries: list[str], query_vectors: np.ndarray) -> list[float]:
    times = []
    for text, vector in zip(queries, query_vectors):
        started = time.perf_counter()
        if mode == "keyword":
            collection.keyword_search(keyword_terms(text), 20, allowed=None)
        else:
            collection.vector_search(vector, 20, allowed=None)
        times.append(time.perf_counter() - started)
    return times


def exact_top10(work: Path, queries: np.ndarray) -> np.ndarray:
    """The exact top 10 chunk ids over every stored vector. Chunk ids follow insertion order,
    so row i of vectors.f32 is chunk id i + 1."""
    vectors = np.memmap(work / "vectors.f32", dtype=np.float32, mode="r").reshape(-1, queries.shape[1])
    return ann_data.exact_truth(vectors, queries, 10) + 1


def recall(found: list[list[int]], exact: np.ndarray) -> float:
    return sum(len(set(f[:10]) & set(e.tolist())) for f, e in zip(found, exact)) / exact.size


def ef_sweep(collection: Collection, queries: np.ndarray, exact: np.ndarray) -> list[dict]:
    """The HNSW graph alone at wider beams than the app's: recall@10 and p50 per ef."""
    index, rows = collection.indexes.vectors, []
    for ef in EF_SWEEP:
        times, found = [], []
        for q in queries:
            started = time.perf_counter()
            _, ids = index.search(q[None, :], 10, ef=ef)
            times.append(time.perf_counter() - started)
            found.append(ids[0].tolist())
        rows.append({"ef": ef, "recall_at_10": round(recall(found, exact), 4), **percentiles(times)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/docent-million"))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--phase", choices=("all", "serve"), default="all", help=argparse.SUPPRESS)
    parser.add_argument(
        "--stand-in-at", type=int, metavar="N", help="only check the stand-in vectors at N, against real ones (100,000)"
    )
    args = parser.parse_args()
    if args.stand_in_at:
        print(json.dumps(stand_in_at(args.stand_in_at), indent=1))
        return
    if args.phase == "serve":
        print(json.dumps(serve(args)))
        return
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    figures = ingest(args)
    (args.work / "ingest.json").write_text(json.dumps(figures))
    served = subprocess.run(
        [sys.executable, __file__, "--phase", "serve", "--work", str(args.work)], capture_output=True, text=True
    )
    if served.returncode:
        sys.exit(f"the search phase failed:\n{served.stderr}")
    figures["serve"] = json.loads(served.stdout.strip().splitlines()[-1])
    figures["cpu"] = cpu_name()
    report(args, figures)


def report(args, figures: dict) -> None:
    n = figures["chunks"]
    disk = sum(figures["files"].values())
    serve_figures = figures["serve"]
    check = figures["stand_in_check"]
    rows = [
        ["chunks", f"{n:,}"],
        [
            f"stand-in check at {figures['real_chunks']:,} vectors: nearest-neighbour cosine, HNSW recall@10 (real / sampled)",
            f"{check['real']['nearest_cosine']}, {check['real'][f'recall_at_10_ef{HNSW_EF}']} / "
            f"{check['sampled']['nearest_cosine']}, {check['sampled'][f'recall_at_10_ef{HNSW_EF}']}",
        ],
        ["vector index the collection chose", figures["progress"][-1]["vector_index"]],
        ["store rate (SQLite + indexes, chunks/s)", f"{figures['store_chunks_per_s']:,}"],
        ["embedding rate on real chunks (chunks/s)", figures["embed_chunks_per_s"]],
        ["embedding time this collection would take (h)", round(n / figures["embed_chunks_per_s"] / 3600, 1)],
        ["disk (bytes/chunk)", f"{disk / n:,.0f}"],
        ["peak memory while ingesting (MiB)", f"{figures['ingest_peak_mib']:,}"],
        ["open the saved collection (s)", serve_figures["open_s"]],
        [
            "resident memory of the opened collection (bytes/chunk)",
            f"{serve_figures['open_resident_mib'] * 2**20 / n:,.0f}",
        ],
        ["peak memory while serving, model not loaded (MiB)", f"{serve_figures['serve_peak_mib']:,}"],
    ]
    for mode, times in serve_figures["modes"].items():
        rows.append([f"{mode} search p50 / p95 (ms)", f"{times['p50_ms']} / {times['p95_ms']}"])
    rows.append(["vector recall@10 against exact search", serve_figures["vector_recall_at_10"]])
    for row in serve_figures["ef_sweep"]:
        rows.append(
            [
                f"the graph alone at ef={row['ef']}: recall@10, p50 / p95 (ms)",
                f"{row['recall_at_10']}, {row['p50_ms']} / {row['p95_ms']}",
            ]
        )
    text = write_report(
        args.out, "million", figures, f"A million chunks in one collection ({figures['cpu']})", ["", "value"], rows
    )
    print(text)
    print(json.dumps(figures["progress"], indent=1))


if __name__ == "__main__":
    main()
