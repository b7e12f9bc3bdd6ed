"""TER through sacrebleu: corpus TER as the aggregate, sentence TER per item.

Translation edit rate is edits per reference word, x100: 0 is a perfect match and lower is
better (it passes 100 when the hypothesis needs more edits than the reference has words)."""

from __future__ import annotations

import evaluate
import sacrebleu

from llmbench.scoring.corpus import reference_streams, sacrebleu_metric
from llmbench.scoring.metric_module import metric_info


class Ter(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return metric_info(
            "TER (translation edit rate) from sacrebleu; corpus and per-sentence; lower is better.",
            citation="Snover et al., A Study of Translation Edit Rate with Targeted Human "
            "Annotation, 2006",
        )

    def _compute(self, predictions: list[str], references: list[list[str]]) -> dict[str, object]:
        corpus = sacrebleu_metric("ter").corpus_score(predictions, reference_streams(references))
        per_item = [
            sacrebleu.sentence_ter(p, list(refs)).score
            for p, refs in zip(predictions, references, strict=True)
        ]
        return {"ter": corpus.score, "per_sample": {"ter": per_item}}
