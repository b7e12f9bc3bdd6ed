"""ROUGE F-measures through Google's rouge_score; best over the references, mean over items."""

from __future__ import annotations

import evaluate
from rouge_score import rouge_scorer

from llmbench.scoring.metric_module import mean, metric_info

DEFAULT_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


class Rouge(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return metric_info(
            "ROUGE-N / ROUGE-L F-measure per item (rouge_score), aggregated by the mean.",
            citation="Lin, ROUGE: A Package for Automatic Evaluation of Summaries, 2004",
        )

    def _compute(
        self,
        predictions: list[str],
        references: list[list[str]],
        rouge_types: list[str] | None = None,
        use_stemmer: bool = False,
    ) -> dict[str, object]:
        types = list(rouge_types or DEFAULT_TYPES)
        scorer = rouge_scorer.RougeScorer(types, use_stemmer=use_stemmer)
        per_sample: dict[str, list[float]] = {t: [] for t in types}
        for prediction, refs in zip(predictions, references, strict=True):
            scores = scorer.score_multi(list(refs), prediction)
            for t in types:
                per_sample[t].append(scores[t].fmeasure)
        result: dict[str, object] = {t: mean(v) for t, v in per_sample.items()}
        result["per_sample"] = per_sample
        return result
