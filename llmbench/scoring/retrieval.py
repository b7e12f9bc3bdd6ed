"""Retrieval quality per item, against the item's gold passage ids (binary relevance).

At cutoff k, over the ranked ids retrieved and the set R of gold ids:
hit = 1 if any of the first k is gold; recall@k = |gold in the first k| / |R|;
precision@k = |gold in the first k| / k; reciprocal rank = 1 / the rank of the first gold
id within the first k (0 if none; its mean is MRR@k); nDCG@k = DCG / ideal DCG with
DCG = sum over ranks i <= k of rel_i / log2(i + 1) and the ideal ranking putting every gold
id first (Järvelin and Kekäläinen 2002). An item without gold ids is unscored (NaN).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

KEYS = ("hit_rate", "recall_at_k", "precision_at_k", "mrr", "ndcg_at_k")


def item_scores(ranked: Sequence[str], gold: Sequence[str], k: int) -> dict[str, float]:
    """Every key's value for one item; NaN everywhere when it has no gold passage."""
    relevant = set(gold)
    if not relevant:
        return dict.fromkeys(KEYS, math.nan)
    top = list(ranked[:k])
    found = [i for i, passage in enumerate(top, 1) if passage in relevant]
    dcg = sum(1.0 / math.log2(i + 1) for i in found)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(relevant), k) + 1))
    return {
        "hit_rate": float(bool(found)),
        "recall_at_k": len(found) / len(relevant),
        "precision_at_k": len(found) / k,
        "mrr": 1.0 / found[0] if found else 0.0,
        "ndcg_at_k": dcg / ideal,
    }
