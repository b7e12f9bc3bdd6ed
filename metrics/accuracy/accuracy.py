"""Accuracy of discrete labels (choice letters, classes): prediction == reference."""

from __future__ import annotations

import evaluate

from llmbench.scoring.metric_module import mean, metric_info


class Accuracy(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return metric_info(
            "Fraction of predictions equal (after stripping) to the reference label."
        )

    def _compute(self, predictions: list[str], references: list[list[str]]) -> dict[str, object]:
        scores = [
            float(p.strip() in {r.strip() for r in refs})
            for p, refs in zip(predictions, references, strict=True)
        ]
        return {"accuracy": mean(scores), "per_sample": {"accuracy": scores}}
