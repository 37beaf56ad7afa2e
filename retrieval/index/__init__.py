"""The engine's Python API: numpy in, numpy out, keyword arguments, one interface per index.

    from retrieval.index import index_factory, load, from_bytes
    idx = index_factory(384, "HNSW32", metric="cosine")   # or "Flat", "HNSW32,SQ8", "IVF1024,PQ32"
    idx.add(vectors, ids)
    distances, ids = idx.search(queries, k=10, ef=64)

Distances follow the metric: inner product and cosine give similarities (higher is better),
``l2`` gives squared Euclidean distances (lower is better). Where fewer than k results
exist, the rest of the row holds id -1.

The package is the engine's face and imports nothing else of Docent: `_engine` (and
`_engine_cuda`, when built) are the compiled modules, `checks` the boundary checks,
`indexes` the index classes, `factory` the descriptions and loading, `gpu` the GPU engine.
"""

from __future__ import annotations

from retrieval.index import _engine
from retrieval.index._engine import IndexFormatError
from retrieval.index.checks import METRICS
from retrieval.index.factory import KINDS, from_bytes, index_factory, load
from retrieval.index.indexes import BM25Index, FlatIndex, HNSWIndex, IVFIndex, VectorIndex, kmeans

__all__ = [
    "BM25Index",
    "FlatIndex",
    "HNSWIndex",
    "VectorIndex",
    "IVFIndex",
    "IndexFormatError",
    "KINDS",
    "METRICS",
    "kmeans",
    "from_bytes",
    "index_factory",
    "load",
    "simd_level",
    "supported_simd_levels",
    "set_simd_level",
    "Int8Encoder",
    "encoder_supported",
]

simd_level = _engine.simd_level
supported_simd_levels = _engine.supported_simd_levels
set_simd_level = _engine.set_simd_level
# The int8 sentence encoder for CPUs without VNNI (native/src/encoder.h); retrieval/embed/native.py uses it.
Int8Encoder = _engine.Int8Encoder
encoder_supported = _engine.encoder_supported
