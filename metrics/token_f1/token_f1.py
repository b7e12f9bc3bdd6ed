"""SQuAD token F1: overlap of normalised tokens, best over the references."""

from __future__ import annotations

from collections import Counter

import evaluate

from llmbench.scoring.metric_module import mean, metric_info
from llmbench.scoring.textnorm import normalize_text


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = normalize_text(prediction).split(), normalize_text(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


class TokenF1(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return metric_info(
            "Token-level F1 between normalised prediction and reference (SQuAD v1.1).",
            citation="Rajpurkar et al., SQuAD: 100,000+ Questions for Machine Comprehension, 2016",
        )

    def _compute(self, predictions: list[str], references: list[list[str]]) -> dict[str, object]:
        scores = [
            max(token_f1(p, r) for r in refs) if refs else 0.0
            for p, refs in zip(predictions, references, strict=True)
        ]
        return {"token_f1": mean(scores), "per_sample": {"token_f1": scores}}
