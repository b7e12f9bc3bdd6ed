"""chrF through sacrebleu: corpus chrF as the aggregate, sentence chrF per item (0-100)."""

from __future__ import annotations

import evaluate
import sacrebleu

from llmbench.scoring.corpus import reference_streams, sacrebleu_metric
from llmbench.scoring.metric_module import metric_info


class Chrf(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return metric_info(
            "chrF (character n-gram F-score) from sacrebleu; corpus and per-sentence.",
            citation="Popovic, chrF: character n-gram F-score for automatic MT evaluation, 2015",
        )

    def _compute(self, predictions: list[str], references: list[list[str]]) -> dict[str, object]:
        corpus = sacrebleu_metric("chrf").corpus_score(predictions, reference_streams(references))
        per_item = [
            sacrebleu.sentence_chrf(p, list(refs)).score
            for p, refs in zip(predictions, references, strict=True)
        ]
        return {"chrf": corpus.score, "per_sample": {"chrf": per_item}}
