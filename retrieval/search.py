"""Search modes over a collection, Reciprocal Rank Fusion for hybrid search, and near-duplicate
passages collapsed into the best of them."""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from retrieval.keywords import keyword_terms, named_years
from retrieval.models import Hit, Results
from retrieval.store import Collection

MODES = ("hybrid", "vector", "keyword")
# leaders (the default): Reciprocal Rank Fusion, but a list's first hit that leads it decisively
# is kept among the first LEADERS_WITHIN, so a rare exact term's passage (first by keyword search,
# absent from the vector list) is not pushed down by passages middling in both lists.
# rrf: Reciprocal Rank Fusion alone. convex: a weighted sum of min-max normalised scores.
# bench/eval_bench.py measures each (docs/benchmarks.md): on Cranfield and FinanceBench's
# development split leaders scores exactly as rrf (no leader there stands out that far).
FUSIONS = ("leaders", "rrf", "convex")
LEADERS_WITHIN = 3
LEADER_MIN_LEAD = 2.8  # standard deviations above the mean of its list's first ten (3.0 at most)
# Each list fused in hybrid mode is this long at least: fusion needs depth to work with.
HYBRID_CANDIDATES = 50
# A passage whose word trigrams overlap a better hit's this much (Jaccard) repeats it: the same
# paragraph in two versions of a report, or boilerplate on every page of a site. Only the better
# one is returned, and k is filled from further down the list.
NEAR_DUPLICATE = 0.8


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], *, k: int = 60) -> list[tuple[int, float]]:
    """Fuses ranked id lists: score(id) = sum over lists of 1 / (k + rank), rank from 1."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, id_ in enumerate(ranking, start=1):
            scores[id_] = scores.get(id_, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def keep_leaders(
    fused: Sequence[tuple[int, float]],
    lists: Sequence[Sequence[tuple[int, float]]],
    *,
    within: int = LEADERS_WITHIN,
    min_lead: float = LEADER_MIN_LEAD,
) -> list[tuple[int, float]]:
    """A fused list in which each list's first hit that leads its list decisively (its score at
    least min_lead standard deviations above the mean of that list's first ten) is moved up to
    position `within` (1-based) if it fell lower. A moved hit takes the score of the one it
    passes, so scores still fall down the list. A flat list (a long question in common words)
    forces nothing."""
    order = [i for i, _ in fused]
    scores = dict(fused)
    for ranked in lists:
        if not ranked or ranked[0][0] not in scores or _lead([s for _, s in ranked]) < min_lead:
            continue
        leader = ranked[0][0]
        position = order.index(leader)
        if position >= within:
            order.insert(within - 1, order.pop(position))
            scores[leader] = scores[order[within]]
    return [(i, scores[i]) for i in order]


def _lead(scores: Sequence[float], top: int = 10) -> float:
    """How far the first score stands above the first ten, in their standard deviations."""
    head = np.asarray(scores[:top], dtype=np.float64)
    if len(head) < 3 or head.std() == 0:
        return 0.0
    return float((head[0] - head.mean()) / head.std())


def convex_fusion(
    by_vector: Sequence[tuple[int, float]], by_keyword: Sequence[tuple[int, float]], *, alpha: float = 0.5
) -> list[tuple[int, float]]:
    """alpha * vector score + (1 - alpha) * keyword score, each min-max normalized over its
    own list; an id missing from a list scores 0 there."""
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    scores: dict[int, float] = {}
    for weight, ranked in ((alpha, by_vector), (1 - alpha, by_keyword)):
        if not ranked:
            continue
        values = [s for _, s in ranked]
        low, span = min(values), max(values) - min(values)
        for id_, score in ranked:
            normalized = (score - low) / span if span > 0 else 1.0
            scores[id_] = scores.get(id_, 0.0) + weight * normalized
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def search(
    collection: Collection,
    query: str,
    *,
    query_vector: np.ndarray | None,
    k: int = 10,
    mode: str = "hybrid",
    fusion: str = "rrf",
    rrf_k: int = 60,
    alpha: float = 0.5,
    sources: Sequence[str] | None = None,
) -> Results:
    """The k best passages for a query. query_vector is needed by the vector and hybrid modes;
    when given, each hit also carries its cosine similarity to the query. Hybrid search fuses
    the vector and keyword lists (FUSIONS: RRF keeping decisive leaders, RRF, or convex).

    sources limits the search to those documents: their chunk ids go down into both native
    searches as one filter, so each still returns its k best among them (not the k best
    overall, filtered afterwards, which could leave nothing)."""
    if mode not in MODES:
        raise ValueError(f"unknown search mode {mode!r}: use one of {', '.join(MODES)}")
    if fusion not in FUSIONS:
        raise ValueError(f"unknown fusion {fusion!r}: use one of {', '.join(FUSIONS)}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if mode != "keyword" and query_vector is None:
        raise ValueError(f"search mode {mode!r} needs the query's embedding")

    allowed = None
    if sources is not None:
        allowed = collection.chunk_ids_for_sources(list(sources))
        if not allowed:
            return Results()
    wanted = 2 * k  # room for the near-duplicates that are collapsed
    if mode == "vector":
        ranked = collection.vector_search(query_vector, wanted, allowed=allowed)
        missing = _missing_shards(ranked)
    elif mode == "keyword":
        ranked = collection.keyword_search(keyword_terms(query), wanted, allowed=allowed)
        missing = _missing_shards(ranked)
    else:
        depth = max(wanted, HYBRID_CANDIDATES)
        by_vector, by_keyword = collection.hybrid_lists(query_vector, keyword_terms(query), depth, allowed=allowed)
        missing = _missing_shards(by_vector) | _missing_shards(by_keyword)
        lists = [[i for i, _ in by_vector], [i for i, _ in by_keyword]]
        if fusion == "rrf":
            ranked = reciprocal_rank_fusion(lists, k=rrf_k)
        elif fusion == "leaders":
            ranked = keep_leaders(reciprocal_rank_fusion(lists, k=rrf_k), [by_vector, by_keyword])
        else:
            ranked = convex_fusion(by_vector, by_keyword, alpha=alpha)
        ranked = ranked[:wanted]

    rows = collection.chunk_rows([i for i, _ in ranked], query_vector)
    ranked = collapse_near_duplicates(
        [(i, s) for i, s in ranked if i in rows], {i: r["text"] for i, r in rows.items()}, k
    )
    ranked = asked_period_first(ranked, rows, named_years(query))
    return Results([_hit(i, rows[i], score, rows[i].get("similarity")) for i, score in ranked], missing)


def asked_period_first(
    ranked: Sequence[tuple[int, float]], rows: dict[int, dict], years: set[str]
) -> list[tuple[int, float]]:
    """The passages of the documents about the asked period first. A question that names a
    year ("FY2022", "Q2 2022", "the 2019 figure") wants the document of that year, the latest
    it names: the FY2022 10-K, not the FY2018 one whose pages read the same. A document's period
    is the latest year its title or its cover says it is about (ingest/filings.py: "fiscal year
    2022 (FY2022)"); the order changes only when the passages come from documents of several
    periods and one of them is the asked one."""
    if not years:
        return list(ranked)
    asked = max(int(y) for y in years)
    period = {i: _document_period(rows[i]) for i, _ in ranked}
    if len(set(period.values())) < 2 or asked not in period.values():
        return list(ranked)
    return [r for r in ranked if period[r[0]] == asked] + [r for r in ranked if period[r[0]] != asked]


def _document_period(row: dict) -> int | None:
    """The latest year the chunk's document context names (its title and what it is, not its
    section, which may be a table of any year)."""
    context, section = row.get("context") or "", row.get("section")
    if section and context.endswith(section):
        context = context[: -len(section)]
    years = named_years(context)
    return max(int(y) for y in years) if years else None


def _missing_shards(ranked) -> set[int]:
    """The shards of a sharded collection that did not answer (retrieval.distributed)."""
    return set(getattr(ranked, "missing_shards", ()))


def passages_with_lines(collection, source: str, beginnings: Sequence[str], limit: int = 30) -> list[Hit]:
    """The document's passages, in its order, with a line beginning with one of `beginnings`
    (a table row found by its label, which ranked search finds poorly among similar rows)."""
    ids = collection.chunks_with_lines(source, beginnings, limit)
    rows = collection.chunk_rows(ids)
    return [_hit(i, rows[i], 0.0) for i in ids if i in rows]


def _hit(chunk_id: int, row: dict, score: float, similarity: float | None = None) -> Hit:
    return Hit(
        source=row["source"],
        title=row["title"],
        page=row["page"],
        chunk_id=chunk_id,
        score=score,
        text=row["text"],
        section=row["section"],
        similarity=similarity,
    )


def collapse_near_duplicates(
    ranked: Sequence[tuple[int, float]], texts: dict[int, str], k: int
) -> list[tuple[int, float]]:
    """The first k of ranked (best first) whose text does not repeat a better one's; ranked
    holds only ids whose text is known (a chunk removed since the index lookup is left out)."""
    kept: list[tuple[int, float]] = []
    seen: list[set] = []
    for id_, score in ranked:
        shingles = _shingles(texts[id_])
        if any(_jaccard(shingles, other) >= NEAR_DUPLICATE for other in seen):
            continue
        kept.append((id_, score))
        seen.append(shingles)
        if len(kept) == k:
            break
    return kept


def _shingles(text: str) -> set:
    words = re.findall(r"\w+", text.lower())
    return set(zip(words, words[1:], words[2:])) if len(words) >= 3 else {tuple(words)}


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0
