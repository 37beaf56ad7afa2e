"""The embedding model on Docent's own int8 encoder (native/src/encoder.h), for CPUs without VNNI.

There OpenVINO's int8 products go through 16-bit intermediate sums that can saturate (its int8
copy loses quality: mean cosine 0.9946 on an AVX2-only EPYC) or, with 7-bit weights, run slower
than f32. Docent's encoder quantizes weights (per output channel) and activations (per token, as
each layer makes them) to 7 bits, so four products always fit in AVX2's 16-bit sums and none
saturates: the matrix products run at about 2.5x f32's pace. No calibration and no file is
made: the weights are read from the packaged model's safetensors and quantized on loading (a
tenth of a second). The gate is the int8 copy's: a mean cosine of at least 0.995 to the float
model on the held-out packaged texts, and at least 1.1x its speed; the report (`native-int8.json`
beside the float export) names the CPU it was measured on and is measured again on another.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from retrieval.embed import quantize
from retrieval.embed.cpu import CpuPrecision, cpu_model_name

log = logging.getLogger(__name__)

REPORT = "native-int8.json"
PRECISION = "int8 (Docent's encoder, 7-bit)"

Tokenize = Callable[[list[str]], dict]


def unsupported_reason(model_path: Path) -> str | None:
    """Why Docent's encoder cannot run this model here; None when it can."""
    from retrieval.index import encoder_supported

    if not encoder_supported():
        return "it needs AVX2 and FMA (or DOCENT_SIMD is set to generic)"
    try:
        config = json.loads((model_path / "config.json").read_text())
    except (OSError, ValueError):
        return f"{model_path / 'config.json'} cannot be read"
    if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
        return "it runs BERT models with GELU only"
    if config.get("position_embedding_type", "absolute") != "absolute":
        return "it runs absolute position embeddings only"
    if not (model_path / "model.safetensors").exists():
        return "the model has no model.safetensors"
    return None


def encoder_shape(config: dict) -> dict:
    """Int8Encoder's shape arguments from a BERT config.json."""
    return dict(
        hidden=config["hidden_size"],
        heads=config["num_attention_heads"],
        intermediate=config["intermediate_size"],
        layers=config["num_hidden_layers"],
        vocab=config["vocab_size"],
        max_positions=config["max_position_embeddings"],
        layer_norm_eps=config.get("layer_norm_eps", 1e-12),
    )


class NativeInt8Model:
    """Embeds as OpenVinoModel does (same tokenizer, mean pooling, unit length), on the engine."""

    precision = PRECISION

    def __init__(self, model_path: Path, threads: int | None = None):
        from safetensors.numpy import load_file

        from retrieval.index import Int8Encoder

        config = json.loads((model_path / "config.json").read_text())
        weights = load_file(str(model_path / "model.safetensors"))
        self.encoder = Int8Encoder(**encoder_shape(config), weights=weights)
        # The cores this process may use (a container's CPU set, not the machine's count).
        self.threads = threads or len(os.sched_getaffinity(0))

    def embed(self, texts: list[str], tokenize: Tokenize, batch_size: int) -> np.ndarray:
        """batch_size is not needed: every sequence runs at its own length, none padded."""
        if not texts:
            return np.empty((0, self.encoder.dim), dtype=np.float32)
        encoded = tokenize(texts)
        keep = encoded["attention_mask"].astype(bool)
        offsets = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(keep.sum(axis=1), out=offsets[1:])
        ids = encoded["input_ids"][keep].astype(np.int32)  # row by row, each row's tokens in order
        return self.encoder.encode(ids, offsets, self.threads)


def read_report(folder: Path, cpu: CpuPrecision) -> dict | None:
    """The gate's report, if it was measured on this CPU as Docent sees it now."""
    try:
        report = json.loads((folder / REPORT).read_text())
    except (OSError, ValueError):
        return None
    here = {"cpu": cpu_model_name(), "cpu_vnni": cpu.vnni, "cpu_bf16": cpu.bf16, "isa_cap": cpu.capped_at}
    return report if all(report.get(key) == value for key, value in here.items()) else None


def check(folder: Path, model: NativeInt8Model, tokenize: Tokenize, cpu: CpuPrecision) -> dict:
    """Runs the gate against the float export in folder and writes the report."""
    started = time.perf_counter()
    report = quantize.gate(model, folder, tokenize, cpu)
    report.update(
        weights="7-bit per output channel; activations 7-bit per token",
        cpu=cpu_model_name(),
        cpu_vnni=cpu.vnni,
        cpu_bf16=cpu.bf16,
        isa_cap=cpu.capped_at,
        threads=model.threads,
        seconds=round(time.perf_counter() - started, 1),
    )
    staging = folder / f".{REPORT}.{os.getpid()}"
    try:
        staging.write_text(json.dumps(report, indent=2))
        os.replace(staging, folder / REPORT)
    except OSError as exc:  # a model cache made by another user (a Docker image's build) may be read-only
        log.warning(
            "cannot keep the int8 encoder's report in %s (%s): it is measured again on the next start", folder, exc
        )
    if report["accepted"]:
        log.info("Docent's int8 encoder passed its check: %s", quantize.verdict(report))
    else:
        log.warning("Docent's int8 encoder failed its check (%s); using the float model", quantize.verdict(report))
    return report
