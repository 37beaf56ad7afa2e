"""Hybrid fusion: a passage first by keyword search on a rare exact term is not pushed out by
passages that are middling in both lists; a list without a decisive leader forces nothing."""

from __future__ import annotations

from retrieval.search import keep_leaders, reciprocal_rank_fusion

# Keyword search puts passage 99 first by far (it holds the rare term); the vector list does not
# have it at all, and passages 1..30 are in both lists at middling ranks.
VECTOR = [(i, 0.62 - i * 0.001) for i in range(1, 51)]
KEYWORD = [(99, 14.0)] + [(i, 3.0 - i * 0.01) for i in range(30, 0, -1)]


def ids(ranked) -> list[int]:
    return [i for i, _ in ranked]


def test_plain_rrf_pushes_the_keyword_leader_down():
    fused = ids(reciprocal_rank_fusion([ids(VECTOR), ids(KEYWORD)]))
    assert fused.index(99) >= 10  # out of any answer's passages


def test_a_decisive_leader_is_kept_near_the_top():
    rrf = reciprocal_rank_fusion([ids(VECTOR), ids(KEYWORD)])
    fused = keep_leaders(rrf, [VECTOR, KEYWORD], within=3)
    order = ids(fused)
    assert order.index(99) == 2
    assert order[:2] == ids(rrf)[:2]  # the vector list's leader leads nothing: left where RRF put it
    scores = [s for _, s in fused]
    assert scores == sorted(scores, reverse=True)  # still best first
    assert sorted(order) == sorted(ids(rrf))  # nothing lost or doubled


def test_a_flat_list_forces_nothing():
    # A long question in common words: BM25 scores fall gently, no passage stands out.
    flat_keyword = [(id_, 3.0 - 0.05 * n) for n, id_ in enumerate([99, *range(30, 0, -1)])]
    rrf = reciprocal_rank_fusion([ids(VECTOR), ids(flat_keyword)])
    assert keep_leaders(rrf, [VECTOR, flat_keyword]) == rrf
