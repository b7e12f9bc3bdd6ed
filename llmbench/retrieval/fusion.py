"""Reciprocal rank fusion (Cormack, Clarke and Büttcher, "Reciprocal Rank Fusion
outperforms Condorcet and individual Rank Learning Methods", SIGIR 2009): a document's fused
score is the sum over rankings of 1 / (k + its rank there), ranks from 1, with k = 60 as in
the paper. Only ranks are used, so BM25's unbounded scores and cosine similarities need no
common scale."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

Key = TypeVar("Key", bound=Hashable)


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[Key]], k: int = 60
) -> list[tuple[Key, float]]:
    """Every document of ``rankings`` (each best first) with its fused score, best first;
    equal scores keep the order in which documents were first met (first ranking first)."""
    scores: dict[Key, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, 1):
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
    order = {key: n for n, key in enumerate(scores)}
    return sorted(scores.items(), key=lambda item: (-item[1], order[item[0]]))
