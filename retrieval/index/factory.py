"""Indexes from short descriptions, as in Faiss ("Flat", "HNSW32,SQ8", "IVF1024,PQ32"), and
indexes back from files and bytes. The one place that knows every index kind: a new kind adds
its class to indexes.py, one entry to KINDS (how its description reads) and one to the
native-class table (how a saved one is recognised)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Callable

from retrieval.index import _engine
from retrieval.index.indexes import BM25Index, FlatIndex, HNSWIndex, IVFIndex

_STORAGE_TOKENS = {"Flat": "f32", "F32": "f32", "SQfp16": "f16", "F16": "f16", "SQ8": "sq8"}


@dataclass(frozen=True)
class IndexKind:
    """One family of descriptions: the syntax shown in errors, and a builder that returns None
    when a description is not of this family."""

    syntax: str
    build: Callable[..., object | None]  # (dim, head, rest, rerank, metric, options)


def _flat(dim, head, rest, rerank, metric, options):
    if head == "Flat" and not rest and not rerank:
        return FlatIndex(dim, metric=metric, **options)
    return None


def _hnsw(dim, head, rest, rerank, metric, options):
    match = re.fullmatch(r"HNSW(\d+)", head)
    if not match or len(rest) > 1:
        return None
    storage = _STORAGE_TOKENS.get(rest[0]) if rest else "f32"
    if storage is None:
        return None
    return HNSWIndex(
        dim,
        metric=metric,
        M=int(match.group(1)),
        storage=storage,
        rerank=rerank or options.pop("rerank", False),
        **options,
    )


def _ivf(dim, head, rest, rerank, metric, options):
    match = re.fullmatch(r"IVF(\d+)", head)
    if not match or len(rest) != 1:
        return None
    pq = re.fullmatch(r"PQ(\d+)", rest[0])
    if rest[0] != "Flat" and not pq:
        return None
    return IVFIndex(
        dim,
        metric=metric,
        nlist=int(match.group(1)),
        pq_m=int(pq.group(1)) if pq else 0,
        rerank=rerank or options.pop("rerank", False),
        **options,
    )


KINDS = (
    IndexKind("'Flat'", _flat),
    IndexKind("'HNSW<M>[,SQfp16|,SQ8][,Rerank]'", _hnsw),
    IndexKind("'IVF<nlist>,Flat' / 'IVF<nlist>,PQ<m>[,Rerank]'", _ivf),
)

# The Python class that wraps each native class, for indexes read back from files and bytes.
_WRAPPERS = {
    _engine.FlatIndex: FlatIndex,
    _engine.HnswIndex: HNSWIndex,
    _engine.IvfIndex: IVFIndex,
}


def index_factory(dim: int, description: str = "Flat", *, metric: str = "ip", **options):
    """Builds an index from a short description, as in Faiss:

    ``"Flat"`` exact search; ``"HNSW32"`` an HNSW graph with M=32 (``"HNSW32,SQfp16"`` or
    ``"HNSW32,SQ8"`` store vectors as fp16 or int8; append ``",Rerank"`` to keep fp32 originals
    and re-score candidates exactly); ``"IVF1024,Flat"`` and ``"IVF1024,PQ32"`` inverted lists
    over 1,024 k-means cells, with vectors kept whole or product-quantized into 32 bytes.
    Keyword options go to the index (``ef_construction``, ``seed``, ...).
    """
    tokens = [t.strip() for t in str(description).split(",") if t.strip()]
    if not tokens:
        raise ValueError("empty index description: try 'Flat', 'HNSW32', 'HNSW32,SQ8' or 'IVF1024,PQ32'")
    head, rest = tokens[0], tokens[1:]
    rerank = "Rerank" in rest
    rest = [t for t in rest if t != "Rerank"]
    for kind in KINDS:
        index = kind.build(dim, head, rest, rerank, metric, options)
        if index is not None:
            return index
    syntaxes = [kind.syntax for kind in KINDS]
    raise ValueError(f"unknown index description {description!r}: use {', '.join(syntaxes[:-1])} or {syntaxes[-1]}")


def _wrap(native, checkpoint: int):
    wrapper = _WRAPPERS.get(type(native))
    if wrapper is not None:
        index = wrapper(native.dim, metric=native.metric, _native=native)
    else:
        index = BM25Index(_native=native)
    index.checkpoint = checkpoint
    return index


def load(path: str | os.PathLike, *, mmap: bool = False):
    """Loads any index written by save(); a damaged or foreign file raises IndexFormatError.

    mmap=True maps the file read-only instead of copying it: a flat or HNSW index then searches
    the file's pages in place (shared between processes, paged in on demand) and cannot be
    changed; IVF and BM25 indexes are read out of the mapping into memory.
    """
    loader = _engine.map_file if mmap else _engine.load_file
    native, checkpoint = loader(os.fspath(path))
    return _wrap(native, checkpoint)


def from_bytes(blob: bytes):
    """Loads any index from to_bytes() output; damaged bytes raise IndexFormatError."""
    native, checkpoint = _engine.load_bytes(bytes(blob))
    return _wrap(native, checkpoint)
