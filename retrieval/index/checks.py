"""Checks at the engine's Python boundary: arrays, ids, metrics and counts, with messages that
name the problem. Shared by the CPU indexes and the GPU face, so both refuse the same inputs."""

from __future__ import annotations

import numpy as np

METRICS = ("ip", "l2", "cosine")


def as_matrix(values, dim: int, what: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (n, {dim}), got shape {array.shape}")
    if array.shape[1] != dim:
        raise ValueError(f"{what} have dimension {array.shape[1]}, the index has dimension {dim}")
    if not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"{what} must be numeric, got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.float32)


def as_ids(ids, what: str = "ids") -> np.ndarray:
    array = np.asarray(ids)
    if array.ndim == 0:
        array = array[None]
    if array.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{what} must be integers, got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.int64)


def check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}: use one of {', '.join(METRICS)}")


def check_positive(value, name: str) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_k(k: int) -> int:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool):
        raise TypeError(f"k must be an integer, got {type(k).__name__}")
    if k <= 0:
        raise ValueError(f"k must be at least 1, got {k}")
    return int(k)


def remove_ids(native, ids, missing_ok: bool) -> int:
    """A native index's remove, with unknown ids a KeyError unless missing_ok."""
    id_array = as_ids(ids)
    if not missing_ok:
        unknown = [int(i) for i in id_array if int(i) not in native]
        if unknown:
            raise KeyError(f"ids not in the index: {unknown[:10]}")
    return native.remove(id_array)
