"""The data sets of the ANN benchmark, each as (base, queries, ground truth, metric).

* ``glove``: GloVe 6B 50-d, 100,000 base vectors and 1,000 held-apart queries, cosine, from the
  split in ``../shared/data/glove-100k`` (see its README for provenance).
* ``minilm``: all-MiniLM-L6-v2 embeddings (384-d, normalized, inner product) of 101,000 real
  passages (paragraphs and sentences) of the Python documentation: the manual in Debian's
  ``python3.11-doc`` (``/usr/share/doc/python3.11/html/_sources``), then the docstrings of the
  standard library (``/usr/lib/python3.11``) and of numpy; 1,000 of them, picked at random, are the queries
  and are not in the base. Embedding takes a while on two cores, so vectors are computed once and
  cached in ``bench/data/`` (git-ignored).

Ground truth is exact search (numpy, float64 accumulation) and cached with the vectors.

    python bench/ann_data.py minilm     # build the cache ahead of a benchmark run
"""

from __future__ import annotations

import argparse
import ast
import itertools
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data"
PYDOC = Path("/usr/share/doc/python3.11/html/_sources")
STDLIB = Path("/usr/lib/python3.11")
GLOVE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "glove-100k"
N_BASE, N_QUERY, GT_K = 100_000, 1_000, 100


@dataclass
class Dataset:
    name: str
    base: np.ndarray  # float32 (n, dim)
    queries: np.ndarray  # float32 (q, dim)
    truth: np.ndarray  # int64 (q, GT_K): rows of base, best first
    metric: str  # "cosine" or "ip"


def glove(folder: Path = GLOVE) -> Dataset:
    if not (folder / "glove50_base.npy").exists():
        raise FileNotFoundError(f"GloVe split not found in {folder} (../shared/data/glove-100k)")
    return Dataset(
        "glove-100k (50-d, cosine)",
        np.load(folder / "glove50_base.npy").astype(np.float32),
        np.load(folder / "glove50_query.npy").astype(np.float32),
        np.load(folder / "glove50_gt_cosine_ids.npy").astype(np.int64),
        "cosine",
    )


def passages(root: Path = PYDOC, stdlib: Path = STDLIB) -> list[str]:
    """Paragraphs of 6-120 words and the sentences of each, markup stripped, without repeats:
    from the reStructuredText sources of the manual, then the docstrings of the stdlib and numpy."""
    if not root.exists():
        raise FileNotFoundError(f"{root} not found: apt-get install python3.11-doc")
    seen, out = set(), []
    texts = (path.read_text(errors="replace") for path in sorted(root.rglob("*.txt")))
    for text in itertools.chain(texts, docstrings(stdlib), docstrings(Path(np.__file__).parent)):
        for paragraph in re.split(r"\n\s*\n", text):
            lines = [line.strip() for line in paragraph.splitlines()]
            if not lines or lines[0].startswith(("..", ">>>", "::", "=", "-" * 3, "|")):
                continue
            flat = re.sub(r":[a-z:]+:`~?([^`<]*)(<[^>]*>)?`", r"\1", " ".join(lines))
            flat = re.sub(r"`+([^`]*)`+_?", r"\1", flat)
            flat = re.sub(r"^[*+-] |\s+", " ", flat).strip()
            sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z])", flat)
            for piece in [flat] + (sentences if len(sentences) > 1 else []):
                if 6 <= len(piece.split()) <= 120 and piece not in seen:
                    seen.add(piece)
                    out.append(piece)
    return out


def docstrings(root: Path):
    for path in sorted(root.rglob("*.py")):
        if {"test", "tests", "site-packages", "dist-packages"} & set(path.relative_to(root).parts):
            continue
        try:
            tree = ast.parse(path.read_text(errors="replace"))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    yield doc


def exact_truth(base: np.ndarray, queries: np.ndarray, k: int = GT_K) -> np.ndarray:
    out = np.empty((len(queries), k), dtype=np.int64)
    base64 = base.astype(np.float64)
    for start in range(0, len(queries), 100):
        scores = queries[start : start + 100].astype(np.float64) @ base64.T
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        out[start : start + 100] = np.take_along_axis(top, order, axis=1)
    return out


def minilm(folder: Path = DATA) -> Dataset:
    cache = folder / "minilm-pydoc-100k.npz"
    if not cache.exists():
        build_minilm(cache)
    data = np.load(cache)
    return Dataset("minilm-pydoc-100k (384-d, ip)", data["base"], data["queries"], data["truth"], "ip")


def build_minilm(cache: Path) -> None:
    from retrieval.embed import Embedder

    texts = passages()
    if len(texts) < N_BASE + N_QUERY:
        raise RuntimeError(f"only {len(texts)} passages in {PYDOC}; need {N_BASE + N_QUERY}")
    rng = np.random.default_rng(20261129)
    chosen = rng.choice(len(texts), N_BASE + N_QUERY, replace=False)
    texts = [texts[i] for i in chosen]
    embedder = Embedder(backend="auto", cache_dir=Path("build/bench-models"))
    started = time.perf_counter()
    vectors = np.concatenate([embedder.embed(texts[i : i + 5000]) for i in range(0, len(texts), 5000)])
    print(f"embedded {len(texts)} passages in {time.perf_counter() - started:.0f} s ({embedder.backend})")
    base, queries = vectors[:N_BASE], vectors[N_BASE:]
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, base=base, queries=queries, truth=exact_truth(base, queries))
    cache.with_suffix(".txt").write_text("\n".join(texts) + "\n")  # row i of base/queries (base first)


DATASETS = {"glove": glove, "minilm": minilm}

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="build and cache a benchmark data set")
    parser.add_argument("name", choices=sorted(DATASETS))
    data = DATASETS[parser.parse_args().name]()
    print(data.name, data.base.shape, data.queries.shape, data.truth.shape)
