"""Exact match against any of the references, with optional case/punctuation folding."""

from __future__ import annotations

import evaluate

from llmbench.scoring.metric_module import mean, metric_info
from llmbench.scoring.textnorm import normalize_text, strip_punctuation


def _fold(text: str, ignore_case: bool, ignore_punctuation: bool, squad_normalize: bool) -> str:
    if squad_normalize:
        return normalize_text(text)
    text = text.strip()
    if ignore_case:
        text = text.lower()
    if ignore_punctuation:
        text = strip_punctuation(text).strip()
    return text


class ExactMatch(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return metric_info("1.0 when the prediction equals one of the references, else 0.0.")

    def _compute(
        self,
        predictions: list[str],
        references: list[list[str]],
        ignore_case: bool = False,
        ignore_punctuation: bool = False,
        squad_normalize: bool = False,
    ) -> dict[str, object]:
        opts = (ignore_case, ignore_punctuation, squad_normalize)
        scores = [
            float(any(_fold(p, *opts) == _fold(r, *opts) for r in refs))
            for p, refs in zip(predictions, references, strict=True)
        ]
        return {"exact_match": mean(scores), "per_sample": {"exact_match": scores}}
