"""Embeddings: the Embedder (torch, OpenVINO float, OpenVINO int8), the OpenVINO model and its
export, the int8 copy with its quality gate, and the packaged calibration texts."""

from retrieval.embed.embedder import BACKENDS, PACKAGED_MODEL_NAME, STAGES, Embedder, model_identity
from retrieval.embed.openvino import OpenVinoModel, default_cache_dir, export_folder, mean_pool

__all__ = [
    "BACKENDS",
    "PACKAGED_MODEL_NAME",
    "STAGES",
    "Embedder",
    "OpenVinoModel",
    "default_cache_dir",
    "export_folder",
    "mean_pool",
    "model_identity",
]
