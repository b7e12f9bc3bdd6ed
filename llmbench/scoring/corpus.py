"""Corpus-level metrics (sacrebleu BLEU, chrF, TER) as sums of per-item statistics.

A corpus score is not a mean of sentence scores: BLEU sums n-gram matches and lengths over
the corpus, then combines the sums. Its interval must therefore resample items and recompute
the corpus score, not bootstrap sentence scores. sacrebleu itself works this way (its
``paired_bs`` / ``paired_ar`` significance tests): each item yields a row of sufficient
statistics and the score is a function of their column sums. This module is the one place
that builds the sacrebleu metric objects, so the evaluate modules' aggregates and the
bootstrap of :mod:`llmbench.scoring.stats` use the same configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from llmbench.scoring.stats import Corpus

if TYPE_CHECKING:
    from sacrebleu.metrics.base import Metric

CORPUS_METRICS = ("bleu", "chrf", "ter")


def sacrebleu_metric(name: str) -> Metric:
    """A sacrebleu metric with its default settings (as ``sacrebleu.corpus_<name>`` uses)."""
    from sacrebleu.metrics.bleu import BLEU
    from sacrebleu.metrics.chrf import CHRF
    from sacrebleu.metrics.ter import TER

    factories: dict[str, Callable[[], Metric]] = {"bleu": BLEU, "chrf": CHRF, "ter": TER}
    if name not in factories:
        raise KeyError(f"{name!r} is not a corpus metric (known: {', '.join(CORPUS_METRICS)})")
    return factories[name]()


def reference_streams(references: Sequence[Sequence[str]]) -> list[list[str]]:
    """sacrebleu wants one stream per reference position; every item needs as many."""
    counts = {len(refs) for refs in references}
    if len(counts) > 1:
        raise ValueError("bleu/chrf/ter need the same number of references for every item")
    width = counts.pop() if counts else 1
    return [[refs[i] for refs in references] for i in range(width)]


def corpus_statistics(
    name: str, predictions: Sequence[str], references: Sequence[Sequence[str]]
) -> Corpus:
    """Per-item sufficient statistics of corpus metric ``name`` and the score of their sums.

    ``Corpus.estimate()`` equals ``sacrebleu.corpus_<name>(predictions, streams).score``."""
    metric = sacrebleu_metric(name)
    rows = metric._extract_corpus_statistics(list(predictions), reference_streams(references))
    table = np.asarray(rows, dtype=np.float64).reshape(len(predictions), -1)

    def score(summed: np.ndarray) -> float:
        return float(metric._compute_score_from_stats(list(summed)).score)

    return Corpus(table, score)
