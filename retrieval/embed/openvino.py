"""The embedding model on OpenVINO: its one-time export from the packaged PyTorch weights, and
running the exported (or int8) graph: tokenize, infer, mean pool, normalize."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

from retrieval.embed.cpu import cpu_precision


def export_folder(name: str, cache_dir) -> Path:
    import openvino as ov

    base = Path(cache_dir) if cache_dir else default_cache_dir()
    return base / re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{name}-openvino-{ov.__version__}")


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "docent" / "models"


def export(model, folder: Path) -> None:
    """Exports the transformer once; written to a temporary folder and renamed, so a concurrent
    start or a crash never leaves half a model behind."""
    import openvino as ov
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
        # mkdtemp makes it private (0700); a cache made by one user (root, building the Docker
        # image) is read by another (the service's user).
        staging.chmod(0o755)
        try:
            staging.rename(folder)
        except OSError:  # another process finished first: use theirs
            pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def mean_pool(hidden: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """The sentence vector: the mean of the token vectors the mask keeps, scaled to length 1."""
    mask = attention_mask[..., None].astype(np.float32)
    pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True).clip(1e-12)


def _batches_of_like_length(texts: list[str], batch_size: int) -> list[np.ndarray]:
    """Indices of texts in batches of similar length: every text of a batch is padded to its
    longest, so a batch ends at batch_size texts or where the next text is over twice as long
    as its first (a question's short table rows are not padded to a long sentence's length)."""
    lengths = np.array([len(t) for t in texts])
    order = np.argsort(lengths, kind="stable")
    batches, start = [], 0
    for end in range(1, len(order) + 1):
        if end == len(order) or end - start == batch_size or lengths[order[end]] > 2 * lengths[order[start]] + 40:
            batches.append(order[start:end])
            start = end
    return batches


class OpenVinoModel:
    def __init__(self, model, properties: dict | None = None):
        """model: an IR file's path, or an openvino.Model in memory."""
        import openvino as ov

        source = str(model) if isinstance(model, (str, Path)) else model
        # The precision is set, not left to OpenVINO: it would pick bf16 from the CPU's flags even
        # where oneDNN's kernels are capped below it (ONEDNN_MAX_CPU_ISA), and then fail.
        # Hyper-threads too: in latency mode OpenVINO runs on one thread per physical core, and a
        # small VM's two vCPUs are often one core's two threads (an AVX2 machine of this project
        # embedded on one of its two vCPUs while the other sat idle).
        defaults = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": cpu_precision().float_precision,
            "ENABLE_HYPER_THREADING": True,
        }
        self.compiled = ov.Core().compile_model(source, "CPU", {**defaults, **(properties or {})})
        self.precision = self.compiled.get_property("INFERENCE_PRECISION_HINT").to_string()  # "bf16", "f32"
        self._requests = threading.local()  # an infer request serves one thread at a time
        self.inputs = {port.get_any_name() for port in self.compiled.inputs}
        self.output = self.compiled.outputs[0]  # last_hidden_state

    def embed(self, texts: list[str], tokenize: Callable[[list[str]], dict], batch_size: int) -> np.ndarray:
        out = np.empty((len(texts), self.output.get_partial_shape()[2].get_length()), dtype=np.float32)
        for rows in _batches_of_like_length(texts, batch_size):
            encoded = tokenize([texts[i] for i in rows])
            hidden = self._request().infer({k: v for k, v in encoded.items() if k in self.inputs})[self.output]
            out[rows] = mean_pool(hidden, encoded["attention_mask"])
        return out

    def _request(self):
        request = getattr(self._requests, "request", None)
        if request is None:
            request = self._requests.request = self.compiled.create_infer_request()
        return request
